"""LiveSession: a photo that speaks what a live voice says, frame by frame as the audio arrives.

Set-up runs once (the face is found as `lipdub animate` finds it, its mouth prepared for posing, its living-
stills motion planned); then each pushed chunk of audio goes through `LiveVoice` and every frame that became
final is drawn: the viseme renderer poses the mouth on the still, the motion layer moves the head and eyes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from lipdub.errors import LipdubError
from lipdub.live.voice import SR, FrameControls, LiveVoice

MOTION_HORIZON_S = 120.0  # the head motion is planned this far and then played back and forth (no jump)


class ChunkError(LipdubError):
    """A pushed chunk of audio is not float32 mono 16 kHz samples; the session is unchanged."""


def check_chunk(chunk: object) -> np.ndarray:
    """`chunk` as a 1-D float32 array in [-1, 1], or ChunkError with one line saying what is wrong."""
    if not isinstance(chunk, np.ndarray):
        raise ChunkError(f"audio chunk: expected a numpy float32 array, got {type(chunk).__name__}")
    if chunk.dtype != np.float32:
        raise ChunkError(f"audio chunk: expected float32 samples, got {chunk.dtype}")
    if chunk.ndim != 1:
        raise ChunkError(f"audio chunk: expected mono (1-D) samples, got shape {chunk.shape}")
    if chunk.size == 0:
        raise ChunkError("audio chunk: empty")
    if not np.isfinite(chunk).all():
        raise ChunkError("audio chunk: contains NaN or infinite samples")
    return np.clip(chunk, -1.0, 1.0)


class LiveSession:
    """`push(chunk)` float32 mono 16 kHz samples of any length -> `[(seconds, RGB frame)]` that became final;
    `close()` -> the last frames. The newest frame is never more than `lookahead_ms` behind the audio pushed.

    `photo`: a path; `face`: a person id as `lipdub faces` lists them (default: the one
    `lipdub animate` would choose); `motion`: a living-stills style (`none`, `idle`, `natural`, `lively`).
    """

    def __init__(self, photo: str | os.PathLike[str], *, motion: str = "natural", seed: int = 0,
                 fps: float = 25.0, lookahead_ms: float = 150.0, face: int | None = None):
        from lipdub import faces
        from lipdub import motion as motion_mod

        if motion not in motion_mod.STYLES:
            raise LipdubError(f"motion must be one of {', '.join(motion_mod.STYLES)}, not {motion!r}")
        if not 1.0 <= fps <= 60.0:
            raise LipdubError(f"fps must be between 1 and 60, not {fps}")
        try:
            self.voice = LiveVoice(fps, lookahead_ms / 1000.0)
        except ValueError as exc:
            raise LipdubError(f"lookahead_ms: {exc}") from None
        self.still, tracks = _still_and_faces(photo)
        self.person = faces.select(tracks, face_id=face)
        self.face = tracks.face(int(self.person), 0)
        if self.face is None or self.face.landmarks is None:
            raise LipdubError("the chosen face has no landmarks to pose", photo)
        from lipdub.engines.viseme.render import FaceRenderer

        self.renderer = FaceRenderer(self.still, np.asarray(self.face.landmarks, np.float32))
        self.fps = float(fps)
        self.horizon = int(MOTION_HORIZON_S * fps)
        self.mover = None
        if motion != "none":
            voices = {self.face.track_id: motion_mod.Voice.silent(self.horizon)}
            self.mover = motion_mod.Motion(self.still, tracks.faces_in(0), voices, fps, self.horizon, motion, seed)
        self.closed = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self.still.shape[1], self.still.shape[0]

    @property
    def pushed_seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.voice.pushed / SR

    def push(self, chunk: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """Add audio; return the frames it made final, as (seconds of audio, RGB uint8 array), oldest first."""
        if self.closed:
            raise LipdubError("live session is closed")
        samples = check_chunk(chunk)  # a bad chunk raises before anything changes
        return self.render(self.voice.push(samples))

    def close(self) -> list[tuple[float, np.ndarray]]:
        """The remaining frames of the audio pushed (its end is followed by silence); the session then ends."""
        if self.closed:
            return []
        self.closed = True
        return self.render(self.voice.flush())

    def render(self, controls: Iterable[FrameControls]) -> list[tuple[float, np.ndarray]]:
        return [(c.time, self.draw(c)) for c in controls]

    def draw(self, c: FrameControls) -> np.ndarray:
        """One output frame: the mouth posed on the still, then the head, eyes and brows moved."""
        from lipdub.composite import composite
        from lipdub.engines.viseme.shapes import SHAPES, articulate
        from lipdub.pipeline import pingpong

        weights = np.zeros((1, len(SHAPES)), np.float32)
        weights[0, SHAPES.index("C")] = c.talking  # open vowel with teeth while talking; X (rest) in silence
        pose = articulate(weights, np.float32([c.opening]), np.float32([c.rounding]))[0]
        patch = self.renderer.render(self.still, pose, cacheable=True)
        frame = composite(self.still, patch, "blend", face=self.face)
        return frame if self.mover is None else self.mover.apply(pingpong(c.index, self.horizon), frame)


def _still_and_faces(photo: str | os.PathLike[str]):
    """The photo's pixels and its faces (the cached analysis `lipdub animate` uses)."""
    from lipdub import faces, media

    if media.probe(photo).kind != "image":
        raise LipdubError("live needs a photo", photo)
    return media.read_image(photo), faces.analyze(photo)
