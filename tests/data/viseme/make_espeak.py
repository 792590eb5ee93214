"""Regenerate espeak_en.flac + espeak_en.json: English speech synthesized by espeak-ng with its own phoneme timings.

Needs the Debian package espeak-ng (libespeak-ng.so.1). The phoneme start times come from espeak-ng's
synthesis events (espeakEVENT_PHONEME, audio_position in ms), so they are the synthesizer's ground truth.
Run: python tests/data/viseme/make_espeak.py
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

TEXT = ("Please bring me a bottle of fresh milk. The old man walked slowly over the bridge, "
        "and five brave voices called from the valley.")
HERE = Path(__file__).parent


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


def synthesize(text: str, voice: str = "en-us", rate: int = 150) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
    lib = ctypes.CDLL("libespeak-ng.so.1")
    sr = lib.espeak_Initialize(2, 0, None, 0x0001)  # synchronous, phoneme events
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(1, rate, 0)  # espeakRATE
    chunks: list[np.ndarray] = []
    phones: list[tuple[str, float]] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                     ctypes.POINTER(_Event))

    def callback(wav, n, events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            if events[i].type == 7:  # espeakEVENT_PHONEME
                phones.append((events[i].id.string.decode(errors="replace"), events[i].audio_position / 1000))
            i += 1
        return 0

    cb = callback_type(callback)
    lib.espeak_SetSynthCallback(cb)
    buf = text.encode()
    lib.espeak_Synth(buf, len(buf) + 1, 0, 1, 0, 0x1000, None, None)  # POS_CHARACTER, espeakENDPAUSE
    lib.espeak_Synchronize()
    return np.concatenate(chunks), sr, phones


def main() -> None:
    wav, sr, phones = synthesize(TEXT)
    import librosa
    import soundfile

    audio = librosa.resample(wav.astype(np.float32) / 32768, orig_sr=sr, target_sr=16000)
    soundfile.write(HERE / "espeak_en.flac", audio, 16000, subtype="PCM_16")
    (HERE / "espeak_en.json").write_text(json.dumps({"text": TEXT, "voice": "en-us", "rate_wpm": 150, "phones": [
        {"phone": p, "start": round(t, 3)} for p, t in phones]}, indent=0))
    print(f"{len(wav) / sr:.2f} s, {len(phones)} phonemes")


if __name__ == "__main__":
    main()
