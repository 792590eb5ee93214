"""Forced alignment of a transcript to speech, for any language espeak-ng speaks (the aeneas method).

espeak-ng says the transcript, which gives its phones and words with their times in the synthetic voice;
dynamic time warping of the two MFCC sequences (mean-normalised per utterance) maps those times onto the
real recording. The phones then use the same phone -> mouth-shape table as the recogniser (CMU names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.audio import espeak
from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
PAD_S = 0.25  # silence around the synthetic speech, so the recording's own leading/trailing silence has a match
MAX_CELLS = 4_000_000  # DTW matrix size: longer audio is compared on a coarser time grid

# espeak-ng phoneme mnemonics (stress marks stripped) -> CMU phones of the recogniser's table
_VOWELS = {
    "a": "AA", "a:": "AA", "A": "AA", "A:": "AA", "a#": "AH", "&": "AE", "V": "AH", "@": "AH", "@2": "AH",
    "@5": "AH", "3": "ER", "3:": "ER", "E": "EH", "E:": "EH", "e": "EH", "e:": "EY", "e@": "EH", "I": "IH",
    "I2": "IH", "i": "IY", "i:": "IY", "i@": "IY", "y": "UW", "y:": "UW", "Y": "UH", "2": "ER", "2:": "ER",
    "9": "ER", "u": "UW", "u:": "UW", "U": "UH", "o": "AO", "o:": "AO", "O": "AO", "O:": "AO", "0": "AO",
    "aI": "AY", "aU": "AW", "OI": "OY", "oU": "OW", "eI": "EY", "EI": "EY", "VU": "AW", "W": "OY", "Au": "AW",
    "@U": "OW", "I@": "IY", "e@3": "EH", "U@": "UH", "@L": "L",
}
_CONSONANTS = {
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "w": "W", "l": "L", "L": "L", "r": "R", "R": "R",
    "j": "Y", "h": "HH", "x": "HH", "G": "G", "g": "G", "k": "K", "N": "NG", "n": "N", "s": "S", "z": "Z",
    "S": "SH", "Z": "ZH", "tS": "CH", "dZ": "JH", "t": "T", "d": "D", "T": "TH", "D": "DH", "c": "K",
    "J": "N", "n^": "N", "Q": "HH",
}


@dataclass
class Alignment:
    """Phones (CMU name, start, end in seconds) and words (text, start) placed on the recording."""

    phones: list[tuple[str, float, float]]
    words: list[tuple[str, float]]


def espeak_to_cmu(phone: str) -> str:
    """The recogniser's name for an espeak-ng phoneme ('SIL' for pauses and anything unknown)."""
    p = phone.strip("',%=")
    for key in (p, p.rstrip("#/-;:"), p[:2], p[:1]):
        if key in _VOWELS:
            return _VOWELS[key]
        if key in _CONSONANTS:
            return _CONSONANTS[key]
    return "SIL"


def _mfcc(wav: np.ndarray, hop: int) -> np.ndarray:
    import librosa

    m = librosa.feature.mfcc(y=np.asarray(wav, np.float32), sr=SR, n_mfcc=13, n_fft=512, hop_length=hop,
                             win_length=400)
    return (m - m.mean(axis=1, keepdims=True)).T  # cepstral mean normalisation: the channel and voice differ


def align(wav16k: np.ndarray, text: str, lang: str = "en") -> Alignment:
    """Place the phones and words of `text` (spoken in `lang`) on the recording `wav16k`."""
    import librosa

    voice = "en-us" if lang == "en" else lang
    said = espeak.synthesize(text, voice)
    pad = np.zeros(int(PAD_S * SR), np.float32)
    synth = np.concatenate([pad, said.audio, pad])
    wav = np.asarray(wav16k, np.float32).reshape(-1)
    hop = 160
    while (len(wav) // hop) * (len(synth) // hop) > MAX_CELLS:
        hop *= 2
    a, b = _mfcc(synth, hop), _mfcc(wav, hop)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=True)
    path = path[::-1]
    first = np.full(len(a), -1)
    for i, j in path:  # the first recording frame each synthetic frame maps to
        if first[i] < 0:
            first[i] = j
    frame_s = hop / SR

    def place(t: float) -> float:
        i = int(np.clip(round((t + PAD_S) / frame_s), 0, len(a) - 1))
        return float(first[i] * frame_s)

    starts = [place(t) for _, t in said.phones]
    ends = starts[1:] + [place(len(said.audio) / SR)]
    phones = [(espeak_to_cmu(p), s, max(e, s)) for (p, _), s, e in zip(said.phones, starts, ends, strict=True)]
    words = [(text[i:i + n], place(t)) for t, i, n in said.words]
    return Alignment([p for p in phones if p[2] > p[1]], words)


__all__ = ["Alignment", "align", "espeak_to_cmu"]
