"""Regenerate the espeak-ng test sentences: speech synthesized by espeak-ng with its own phoneme and word timings.

The phoneme and word start times come from espeak-ng's synthesis events (espeakEVENT_PHONEME / _WORD,
audio_position in ms), so they are the synthesizer's ground truth. espeak_en.* was made with Debian's
espeak-ng 1.51; espeak_nl.* with the espeakng-loader wheel (a female voice variant, so an aligner that
speaks the text with the default male voice does not compare a voice with itself).
Run: PYTHONPATH=src python tests/data/viseme/make_espeak.py [en|nl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile

from lipdub.audio.espeak import synthesize

HERE = Path(__file__).parent
SENTENCES = {
    "en": ("en-us", 150, "Please bring me a bottle of fresh milk. The old man walked slowly over the bridge, "
                         "and five brave voices called from the valley."),
    "nl": ("nl+f3", 140, "Mijn moeder bakt op maandag brood met boter. De oude boer zoekt zijn blauwe boot "
                         "in de mist bij het meer."),
}


def main(lang: str) -> None:
    voice, rate, text = SENTENCES[lang]
    speech = synthesize(text, voice, rate)
    audio = np.concatenate([np.zeros(8000, np.float32), speech.audio])  # half a second of silence first
    soundfile.write(HERE / f"espeak_{lang}.flac", audio, 16000, subtype="PCM_16")
    doc = {"text": text, "voice": voice, "rate_wpm": rate,
           "phones": [{"phone": p, "start": round(t + 0.5, 3)} for p, t in speech.phones],
           "words": [{"word": text[i:i + n], "start": round(t + 0.5, 3)} for t, i, n in speech.words]}
    (HERE / f"espeak_{lang}.json").write_text(json.dumps(doc, indent=0))
    print(f"{len(audio) / 16000:.2f} s, {len(speech.phones)} phonemes, {len(speech.words)} words")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nl")
