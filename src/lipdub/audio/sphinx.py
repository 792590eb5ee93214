"""What the phonetic decoder (cues.py) and the English word recogniser (words.py) share of PocketSphinx."""

from __future__ import annotations

import numpy as np


def pcm16(wav16k: np.ndarray) -> bytes:
    """16 kHz float audio as the 16-bit PCM bytes PocketSphinx reads."""
    return (np.clip(np.asarray(wav16k, np.float32), -1, 1) * 32767).astype(np.int16).tobytes()


def decode_utterance(dec, pcm: bytes) -> None:  # noqa: ANN001 - a pocketsphinx.Decoder
    """Run `dec` over one whole utterance (its results: dec.hyp(), dec.seg(), dec.get_alignment())."""
    dec.reinit_feat()  # a fresh cepstral mean: live CMN would carry the last utterance's into this one
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()


__all__ = ["decode_utterance", "pcm16"]
