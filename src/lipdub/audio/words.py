"""English speech -> timed phones through its words (`--lang en` without a transcript).

PocketSphinx's English dictionary and trigram language model (both inside its wheel) recognise the words; a
forced alignment of those words with the same acoustic model then times each of their phones. The words may be
wrong, but their phones come from real words in a plausible order, which the phonetic decoder (cues.py) does not
know (it closes the lips mid-vowel more often); against real speakers' mouths it helped on some and not on others
(figures in docs/architecture.md). The price is speed: about real time on one core, where the phonetic decoder
is many times faster; hence an option for English speech, not the default.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from lipdub.audio.sphinx import decode_utterance, pcm16

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _decoder():
    """PocketSphinx with its English language model and dictionary (loaded once per process, ~1 s)."""
    import pocketsphinx

    model = os.path.join(pocketsphinx.get_model_path(), "en-us")
    return pocketsphinx.Decoder(hmm=os.path.join(model, "en-us"), lm=os.path.join(model, "en-us.lm.bin"),
                                dict=os.path.join(model, "cmudict-en-us.dict"), loglevel="FATAL")


def recognize_words(wav16k: np.ndarray) -> tuple[list[str], list[tuple[str, float, float]]]:
    """(words, phones): the recognised English words and their phones (CMU names, 'SIL' between words) with
    (start, end) seconds. Both empty when no word was heard or the words could not be aligned."""
    pcm = pcm16(wav16k)
    with _lock:
        dec = _decoder()
        dec.activate_search("_default")  # the language model (an alignment leaves its own search active)
        decode_utterance(dec, pcm)
        hyp = dec.hyp()
        words = [w for w in (hyp.hypstr.split() if hyp else []) if w.isascii() and w[:1].isalpha()]
        if not words:
            return [], []
        try:
            dec.set_align_text(" ".join(words))  # the words timed on the audio
            decode_utterance(dec, pcm)
            segments = [(s.word, s.start_frame, s.end_frame + 1) for s in dec.seg()]
        except RuntimeError:  # no path through these words: the caller falls back to the phonetic decoder
            return [], []
        try:
            dec.set_alignment()  # their phones timed too
            decode_utterance(dec, pcm)
            phones = [(p.name, p.start, p.start + p.duration) for w in dec.get_alignment() for p in w]
        except RuntimeError:  # happens now and then on the last word: share each word among its phones
            phones = [p for w, a, b in segments for p in _spread(dec.lookup_word(w), a, b)]
    return words, [(p, a / 100.0, b / 100.0) for p, a, b in phones]


def _spread(pronunciation: str | None, start: int, end: int) -> list[tuple[str, int, int]]:
    """A word's dictionary phones over its frames, vowels twice as long as consonants ('SIL' for fillers)."""
    names = (pronunciation or "").split() or ["SIL"]
    weights = np.array([2.0 if n[:1] in "AEIOU" else 1.0 for n in names])
    edges = np.round(start + np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * (end - start)).astype(int)
    return [(n, int(a), int(b)) for n, a, b in zip(names, edges[:-1], edges[1:], strict=True) if b > a]


__all__ = ["recognize_words"]
