"""The small interface every lip-sync engine implements: audio in once, then batches of frames -> mouth patches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lipdub.faces.types import Face

Box = tuple[int, int, int, int]  # (top, bottom, left, right), bottom/right exclusive, as Wav2Lip's --box


@dataclass
class FrameJob:
    """One output frame for one speaker: the full RGB frame, the chosen face in it, and the audio frame index."""

    index: int  # audio frame index: which of the prepared audio's frames drives this mouth
    frame: np.ndarray  # (H, W, 3) uint8 RGB, full frame
    face: Face
    box: Box  # the crop box (top, bottom, left, right): --box, or faces.crop_box(face, frame.shape)


@dataclass
class Patch:
    """New pixels for a rectangle of the frame.

    image: (bottom-top, right-left, 3) uint8 RGB. mask: optional float32 (h, w) in [0, 1] saying where the
    engine's pixels should be used (None -> the compositor builds one from the face landmarks for
    `--paste blend`, or overwrites the whole box for `--paste box`).
    """

    box: Box
    image: np.ndarray
    mask: np.ndarray | None = None


class Engine(ABC):
    """A lip-sync engine. `prepare` once per speaker audio, then `render` batches of frames in order."""

    name: str = "engine"
    batch_size: int = 1

    @abstractmethod
    def prepare(self, audio: np.ndarray, fps: float) -> int:
        """Take 16 kHz mono float32 speech; return how many video frames at `fps` it drives (covers all audio)."""

    @abstractmethod
    def render(self, jobs: Sequence[FrameJob]) -> list[Patch]:
        """Return one patch per job, in order."""

    def speech_activity(self) -> np.ndarray | None:
        """Per-frame speech probability in [0, 1] for the prepared audio (None if the engine has none)."""
        return None
