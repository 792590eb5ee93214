"""espeak-ng through its C library: grapheme-to-phoneme by synthesis, with the synthesiser's own phoneme and
word timings (espeakEVENT_PHONEME / espeakEVENT_WORD). The library and its language data come from the
`espeakng-loader` wheel, or from Debian's `libespeak-ng1` package."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lipdub.errors import LipdubError
from lipdub.media.audio import SAMPLE_RATE

_EVENT_WORD, _EVENT_PHONEME = 1, 7
_lock = threading.Lock()


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Speech:
    """What espeak-ng said: 16 kHz audio, phonemes (name, start s) and words (start s, char offset, length)."""

    audio: np.ndarray
    phones: list[tuple[str, float]]
    words: list[tuple[float, int, int]]


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int]:
    """Load libespeak-ng once (the wheel's copy first, then the system's); return it and its sample rate."""
    try:
        import espeakng_loader

        lib, data = ctypes.CDLL(espeakng_loader.get_library_path()), espeakng_loader.get_data_path().encode()
    except (ImportError, OSError):
        try:
            lib, data = ctypes.CDLL("libespeak-ng.so.1"), None
        except OSError:
            raise LipdubError("--text needs espeak-ng: `pip install espeakng-loader` "
                              "(or the Debian package libespeak-ng1)") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(2, 0, data, 0x0001)  # AUDIO_OUTPUT_SYNCHRONOUS, phoneme events
    if rate <= 0:
        raise LipdubError("espeak-ng failed to start (its language data is missing)")
    return lib, rate


def synthesize(text: str, voice: str = "en-us", rate: int = 175) -> Speech:
    """Speak `text` with espeak-ng `voice` (a language code such as nl, en-us, de, fr) at `rate` words/min."""
    import soxr

    lib, sr = _library()
    chunks: list[np.ndarray] = []
    phones: list[tuple[str, float]] = []
    words: list[tuple[float, int, int]] = []

    def on_audio(wav, n, events):  # noqa: ANN001 - ctypes pointers
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                phones.append((e.id.string.decode(errors="replace"), e.audio_position / 1000))
            elif e.type == _EVENT_WORD:
                words.append((e.audio_position / 1000, e.text_position - 1, e.length))
            i += 1
        return 0

    callback = _CALLBACK(on_audio)
    buf = text.encode()
    with _lock:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise LipdubError(f"espeak-ng has no language {voice!r} (try nl, en, en-us, de, fr, es, it)")
        lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
        lib.espeak_SetSynthCallback(callback)
        lib.espeak_Synth(buf, len(buf) + 1, 0, 1, 0, 0x1000, None, None)  # POS_CHARACTER, espeakENDPAUSE
        lib.espeak_Synchronize()
    wav = np.concatenate(chunks).astype(np.float32) / 32768 if chunks else np.zeros(0, np.float32)
    audio = soxr.resample(wav, sr, SAMPLE_RATE, "HQ").astype(np.float32) if len(wav) else wav
    return Speech(audio, phones, words)


__all__ = ["Speech", "synthesize"]
