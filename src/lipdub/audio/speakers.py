"""Several speakers in one run: parse `--speaker` options and place each speaker's speech on the output timeline.

Syntax (one `--speaker` per speaking face; keys in any order, `audio` required):

    face=ID | face-at=X:Y | face-like=PHOTO   which face speaks (at most one; none -> the default face)
    audio=FILE                                 what it says
    start=SECONDS                              when it starts in the output (3.5, 3.5s, 1:02.5, 0:01:02.5)
    text=WORDS | text-file=FILE                its transcript (viseme engine: phones aligned, not recognised)
    lang=CODE                                  the transcript's language (nl, en, de, fr, ...; default en);
                                               lang=en alone: English speech, phones from its recognised words

A value may contain commas (a file name): a comma only separates options when `name=` follows it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipdub.audio.cues import english
from lipdub.errors import LipdubError
from lipdub.media.audio import SAMPLE_RATE

KEYS = ("face", "face-at", "face-like", "audio", "start", "text", "text-file", "lang")
SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
_SPLIT = re.compile(r",(?=\s*[A-Za-z][\w-]*\s*=)")  # a comma followed by `name=`
_EXAMPLE = "e.g. --speaker face=1,audio=a.wav,start=3.5"

# probability(wav16k, fps) -> per-frame speech probability from the audio's first sample
FrameProbability = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class FaceChoice:
    """Which face speaks: by track id, by a pixel inside it, or by a reference photo. All None -> default."""

    face_id: int | None = None
    at: tuple[float, float] | None = None  # (x, y) pixel in the first frame where the face is visible
    like: Path | None = None  # reference photo of the person


@dataclass
class SpeakerSpec:
    """One speaking face and its audio, starting `start` seconds into the output."""

    audio: Path
    face: FaceChoice = field(default_factory=FaceChoice)
    start: float = 0.0
    text: str | None = None  # this speaker's transcript
    lang: str | None = None  # its language


def parse_speaker(text: str, *, check_files: bool = True) -> SpeakerSpec:
    """`face=1,audio=a.wav,start=3.5` -> SpeakerSpec. Raises LipdubError naming the bad part."""
    fields: dict[str, str] = {}
    for part in _SPLIT.split(text.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in KEYS:
            raise LipdubError(f"--speaker {text!r}: unknown option {part.strip()!r}; "
                              f"use {', '.join(k + '=' for k in KEYS)} ({_EXAMPLE})")
        if key in fields:
            raise LipdubError(f"--speaker {text!r}: {key}= given twice")
        if not value:
            raise LipdubError(f"--speaker {text!r}: {key}= has no value")
        fields[key] = value
    if "audio" not in fields:
        raise LipdubError(f"--speaker {text!r}: audio=FILE is missing ({_EXAMPLE})")
    chosen = [k for k in ("face", "face-at", "face-like") if k in fields]
    if len(chosen) > 1:
        raise LipdubError(f"--speaker {text!r}: give one of {', '.join(k + '=' for k in chosen)}, not several")
    face = _face(fields, text, check_files)
    start = parse_time(fields["start"], text) if "start" in fields else 0.0
    audio = Path(fields["audio"]).expanduser()
    if check_files and not audio.is_file():
        raise LipdubError("speaker audio file not found", audio)
    return SpeakerSpec(audio=audio, face=face, start=start, text=_transcript(fields, text, check_files),
                       lang=fields.get("lang"))


def _transcript(fields: dict[str, str], text: str, check_files: bool) -> str | None:
    """The speaker's transcript from text= or text-file= (None without either)."""
    if "text" in fields and "text-file" in fields:
        raise LipdubError(f"--speaker {text!r}: give text= or text-file=, not both")
    if "lang" in fields and not ({"text", "text-file"} & fields.keys()) and not english(fields["lang"]):
        raise LipdubError(f"--speaker {text!r}: lang= without a transcript works for English only (lang=en): "
                          "give text= or text-file=")
    if "text-file" not in fields:
        return fields.get("text")
    path = Path(fields["text-file"]).expanduser()
    if not check_files:
        return None
    try:
        words = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LipdubError(f"cannot read the transcript ({err.__class__.__name__})", path) from None
    if not words.strip():
        raise LipdubError("the transcript is empty", path)
    return words


def _face(fields: dict[str, str], text: str, check_files: bool) -> FaceChoice:
    if "face" in fields:
        if not re.fullmatch(r"\d+", fields["face"]):
            raise LipdubError(f"--speaker {text!r}: face= takes a face id (a whole number from `lipdub faces`), "
                              f"got {fields['face']!r}; use face-at=X:Y for a pixel or face-like=PHOTO")
        return FaceChoice(face_id=int(fields["face"]))
    if "face-at" in fields:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*[:xX]\s*(\d+(?:\.\d*)?)\s*", fields["face-at"])
        if not m:
            raise LipdubError(f"--speaker {text!r}: face-at= takes a pixel X:Y (e.g. face-at=812:340), "
                              f"got {fields['face-at']!r}")
        return FaceChoice(at=(float(m[1]), float(m[2])))
    if "face-like" in fields:
        like = Path(fields["face-like"]).expanduser()
        if check_files and not like.is_file():
            raise LipdubError("reference photo (face-like=) not found", like)
        return FaceChoice(like=like)
    return FaceChoice()


def parse_time(value: str, text: str | None = None) -> float:
    """'3.5', '3.5s', '1:02.5' or '0:01:02.5' -> seconds (>= 0)."""
    m = re.fullmatch(r"\s*(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)\s*s?\s*", value)
    where = f"--speaker {text!r}: " if text else ""
    if value.strip().startswith("-"):
        raise LipdubError(f"{where}start= must be 0 or later (seconds into the output), got {value!r}")
    if not m:
        raise LipdubError(f"{where}start= takes seconds (3.5) or minutes:seconds (1:02.5), got {value!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_speakers(speakers: Sequence[SpeakerSpec]) -> None:
    """Several speakers must each name their face: two unnamed ones would both pick the default face."""
    if len(speakers) < 2:
        return
    unnamed = [i + 1 for i, s in enumerate(speakers) if s.face == FaceChoice()]
    if len(unnamed) > 1:
        raise LipdubError(f"--speaker #{unnamed[1]}: with several speakers, name each face "
                          "(face=ID, face-at=X:Y or face-like=PHOTO)")


def first_frame(start: float, fps: float) -> tuple[int, int]:
    """Where speech starting `start` s lands at `fps`: (first output frame, 16 kHz samples of silence to lead
    the audio with), so that frame k of the led audio is output frame `first + k` exactly."""
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    first = int(np.floor(start * fps + 1e-6))
    return first, int(round((start - first / fps) * SR))


def speaker_activity(audio16k: np.ndarray, start: float, fps: float, n_frames: int, *,
                     probability: FrameProbability | None = None) -> np.ndarray:
    """Speech probability of one speaker on each of `n_frames` output frames at `fps`.

    0 before `start` and after the audio ends; inside, the voice activity of the audio (silero VAD unless
    `probability` is given), aligned to the sub-frame: the audio is placed at exactly `start` s.
    """
    if probability is None:
        from lipdub.audio.vad import speech_probability as probability
    out = np.zeros(n_frames, np.float32)
    first, lead = first_frame(start, fps)
    if first >= n_frames:
        return out
    wav = np.concatenate([np.zeros(lead, np.float32), np.asarray(audio16k, np.float32)])
    prob = np.asarray(probability(wav, fps), np.float32)[: n_frames - first]
    out[first: first + prob.size] = prob
    return out


def output_frames(speech_end: int, video_frames: int | None, keep_video_length: bool = False) -> int:
    """Frames the output lasts: until the last speech ends (frame `speech_end`); with `keep_video_length` and a
    video of `video_frames` frames (at the output rate), at least the whole video (its tail keeps its own sound;
    speech past its end goes on over the video played backward and forward)."""
    if keep_video_length and video_frames is not None:
        return max(speech_end, video_frames)
    return speech_end
