"""Wires the stages as one stream: decode -> faces -> engine -> composite -> mix -> encode. CLI and web call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# progress(stage, done, total): stage is one of "analyzing", "detecting", "generating", "encoding", "done"
Progress = Callable[[str, int, int], None]


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


@dataclass
class AnimateRequest:
    """Everything `animate` needs. `speakers` empty -> one speaker from `audio` + `face`."""

    media: Path
    output: Path
    audio: Path | None = None
    face: FaceChoice = field(default_factory=FaceChoice)
    speakers: list[SpeakerSpec] = field(default_factory=list)
    engine: Literal["auto", "wav2lip", "viseme"] = "auto"
    checkpoint: Path | None = None
    box: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) as Wav2Lip's --box
    paste: Literal["blend", "box"] = "blend"
    fps: float | None = None  # output rate for stills (default 25); videos keep their own rate
    keep_video_length: bool = False
    mix: Literal["replace", "original"] = "replace"
    duck_db: float = 0.0
    speech_gain_db: float = 0.0
    original_gain_db: float = 0.0
    device: str = "auto"
    batch_size: int | None = None
    use_cache: bool = True


@dataclass
class AnimateResult:
    output: Path
    frames: int
    fps: float
    duration: float
    engine: str
    speakers: list[dict]  # per speaker: chosen track id, how it was chosen, faces seen
    notes: list[str] = field(default_factory=list)  # what the user should know (engine chosen, frames without face)


def animate(request: AnimateRequest, progress: Progress | None = None) -> AnimateResult:
    """Make the chosen face(s) of `request.media` speak; write `request.output` atomically."""
    raise NotImplementedError("being written")
