"""Training samples from a prepared dataset: 5-frame face windows with their mel windows, as the reference draws them.

Layout (written by `lipdub data prepare`): `filelists/<split>.txt` lists `<source>/<clip>` folders holding
`0.jpg .. (N-1).jpg` (face crops), `audio.wav` (16 kHz mono) and `mel.npy` (the cached mel; computed and cached
here when missing). Frames are read with OpenCV (BGR, as the official networks expect) and resized to
`img_size` ignoring the aspect ratio, like the reference. Samples come back as uint8 frames and float32 mels;
`generator_inputs` / `lipdub.data.windows.expert_inputs` turn a batch into network inputs on the device (4x less
to copy).

Every random choice of sample `i` comes from a generator seeded by (seed, i), so a run is reproducible
whatever the number of workers; the training sampler adds `epoch * len(dataset)` to the index so each epoch
draws fresh reference windows and negatives.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lipdub.data.windows import load_face, mel_start, to_float
from lipdub.errors import LipdubError
from lipdub.media.audio import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One clip folder of the dataset."""

    name: str  # "<source>/<clip>" as in the filelist
    path: Path
    n_frames: int


def read_split(root: str | os.PathLike[str], split: str) -> list[Clip]:
    """The clips listed in `root/filelists/<split>.txt` (blank lines and '#' comments ignored)."""
    root = Path(root)
    filelist = root / "filelists" / f"{split}.txt"
    if not filelist.is_file():
        raise LipdubError(f"no '{split}' filelist: not a prepared dataset (see `lipdub data prepare`)", filelist)
    clips = []
    for line in filelist.read_text().splitlines():
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        path = root / name
        if not path.is_dir():
            raise LipdubError(f"clip folder {name!r} listed in {filelist.name} is missing", path)
        clips.append(Clip(name, path, _count_frames(path)))
    if not clips:
        hint = ": prepare with --val-split, or train without validation with --no-val" if split == "val" else ""
        raise LipdubError(f"the '{split}' filelist lists no clips{hint}", filelist)
    return clips


def _count_frames(path: Path) -> int:
    """Frames of a clip: clip.json's n_frames, else the number of consecutive <i>.jpg from 0."""
    meta = path / "clip.json"
    if meta.is_file():
        n = json.loads(meta.read_text()).get("n_frames")
        if isinstance(n, int):
            return n
    n = 0
    while (path / f"{n}.jpg").is_file():
        n += 1
    return n


def _check_fps(root: Path, fps: float) -> None:
    """The dataset's manifest must agree with the frame rate the windows are computed at."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return
    made = json.loads(manifest.read_text()).get("fps")
    if made is not None and abs(float(made) - fps) > 1e-6:
        raise LipdubError(f"the dataset was made at {made} fps, training expects {fps}: pass --fps {made}", manifest)


def load_mel(clip_dir: Path) -> np.ndarray:
    """The clip's (80, T) mel: mel.npy, or computed once from audio.wav and cached as mel.npy."""
    cached = clip_dir / "mel.npy"
    if cached.is_file():
        return np.load(cached).astype(np.float32, copy=False)
    wav_path = clip_dir / "audio.wav"
    if not wav_path.is_file():
        raise LipdubError("clip has neither mel.npy nor audio.wav", clip_dir)
    from lipdub.audio.mel import melspectrogram

    mel = melspectrogram(_read_wav16k(wav_path))
    try:  # cache atomically; a read-only dataset still works
        fd, tmp = tempfile.mkstemp(prefix=".mel.", suffix=".npy", dir=clip_dir)
        with os.fdopen(fd, "wb") as f:
            np.save(f, mel)
        os.replace(tmp, cached)
    except OSError as err:
        log.debug("cannot cache %s: %s", cached, err)
    return mel


def _read_wav16k(path: Path) -> np.ndarray:
    """16 kHz mono PCM16 audio.wav -> float32 in [-1, 1) (int16 / 32768, as the reference reads it)."""
    import wave

    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise LipdubError("audio.wav must be 16 kHz mono 16-bit PCM", path)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0






class _WindowDataset(Dataset):
    """Shared machinery: clip list, cached mels, frame reads, valid window starts, seeded randomness."""

    def __init__(self, root: str | os.PathLike[str], split: str = "train", *, window: int = 5, fps: float = 25.0,
                 img_size: int = 96, mel_step: int = 16, seed: int = 0, cache_frames: int = 0) -> None:
        self.root, self.split = Path(root), split
        self.window, self.fps, self.img_size, self.mel_step = window, fps, img_size, mel_step
        self.seed, self.cache_frames = seed, cache_frames
        _check_fps(self.root, fps)
        self.clips = read_split(root, split)
        self._mels: dict[int, np.ndarray] = {}
        self._frames: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        starts = [(c, s) for c, clip in enumerate(self.clips) for s in self._valid_starts(c, clip)]
        if not starts:
            raise LipdubError(f"no usable {window}-frame window in the '{split}' split (clips too short?)",
                              self.root)
        self.index = np.asarray(starts, dtype=np.int64)  # (n, 2): clip index, first frame

    # --- to override
    def _valid_starts(self, c: int, clip: Clip) -> list[int]:
        raise NotImplementedError

    # --- shared helpers
    def __len__(self) -> int:
        return len(self.index)

    def mel(self, c: int) -> np.ndarray:
        if c not in self._mels:
            self._mels[c] = load_mel(self.clips[c].path)
        return self._mels[c]

    def _mel_fits(self, c: int, frame: int) -> bool:
        start = mel_start(frame, self.fps)
        return start >= 0 and start + self.mel_step <= self.mel(c).shape[1]

    def mel_window(self, c: int, frame: int) -> np.ndarray:
        """(1, 80, mel_step) window of frame `frame` (may be shifted by the caller, e.g. frame - 1)."""
        start = mel_start(frame, self.fps)
        return self.mel(c)[None, :, start:start + self.mel_step]

    def frame(self, c: int, k: int) -> np.ndarray:
        key = (c, k)
        img = self._frames.get(key)
        if img is None:
            img = load_face(self.clips[c].path / f"{k}.jpg", self.img_size)
            if self.cache_frames:
                self._frames[key] = img
                if len(self._frames) > self.cache_frames:
                    self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(key)
        return img

    def frames(self, c: int, start: int) -> np.ndarray:
        """(window, S, S, 3) uint8 BGR frames start .. start + window - 1."""
        return np.stack([self.frame(c, k) for k in range(start, start + self.window)])

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(i)])

    def other_start(self, rng: np.random.Generator, c: int, start: int) -> int:
        """A random window start of the same clip other than `start` (the reference's 'wrong' window)."""
        n = self.clips[c].n_frames - self.window + 1
        other = int(rng.integers(0, n - 1))
        return other + 1 if other >= start else other

    def locate(self, i: int) -> tuple[int, int]:
        c, s = self.index[int(i) % len(self.index)]
        return int(c), int(s)


class LipSyncDataset(_WindowDataset):
    """Generator samples: a 5-frame window, a reference window from elsewhere in the clip, their mel windows.

    Item: `window` (T, S, S, 3) uint8 BGR ground truth; `ref` (T, S, S, 3) uint8 BGR; `indiv_mels`
    (T, 1, 80, 16), frame k's window starting at mel_start(k + frame_mel_offset) (reference: k - 1);
    `mel` (1, 80, 16), the expert's window for the whole window (starting at the first frame's own index).
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", *, frame_mel_offset: int = -1,
                 expert_mel_offset: int = 0, **kw) -> None:
        self.frame_mel_offset, self.expert_mel_offset = frame_mel_offset, expert_mel_offset
        super().__init__(root, split, **kw)

    def _valid_starts(self, c: int, clip: Clip) -> list[int]:
        if clip.n_frames < self.window + 1:  # needs a second window for the reference
            return []
        return [s for s in range(clip.n_frames - self.window + 1)
                if self._mel_fits(c, s + self.expert_mel_offset)
                and all(self._mel_fits(c, k + self.frame_mel_offset) for k in range(s, s + self.window))]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c, s = self.locate(i)
        ref = self.other_start(self.rng(i), c, s)
        indiv = [self.mel_window(c, k + self.frame_mel_offset) for k in range(s, s + self.window)]
        return {
            "window": torch.from_numpy(self.frames(c, s)),
            "ref": torch.from_numpy(self.frames(c, ref)),
            "indiv_mels": torch.from_numpy(np.stack(indiv)),
            "mel": torch.from_numpy(np.ascontiguousarray(self.mel_window(c, s + self.expert_mel_offset))),
        }


class ExpertDataset(_WindowDataset):
    """Expert samples on real frames, the reference's draw: the mel window of a 5-frame window with, with
    probability 1/2, those frames (label 1), else the frames of a random other time of the same clip (label 0).

    Item: `frames` the lower halves (T, S/2, S, 3) uint8 BGR, `mel` (1, 80, 16), `label` float32.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", *, expert_mel_offset: int = 0,
                 **kw) -> None:
        self.expert_mel_offset = expert_mel_offset
        super().__init__(root, split, **kw)

    def _valid_starts(self, c: int, clip: Clip) -> list[int]:
        if clip.n_frames < self.window + 1:
            return []
        return [s for s in range(clip.n_frames - self.window + 1) if self._mel_fits(c, s + self.expert_mel_offset)]

    def lower(self, c: int, start: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.frames(c, start)[:, self.img_size // 2:]))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c, s = self.locate(i)
        rng = self.rng(i)
        other = self.other_start(rng, c, s)
        mel = torch.from_numpy(np.ascontiguousarray(self.mel_window(c, s + self.expert_mel_offset)))
        aligned = bool(rng.integers(0, 2))
        return {"frames": self.lower(c, s if aligned else other), "mel": mel,
                "label": torch.tensor(1.0 if aligned else 0.0)}


# --- batch -> network inputs (on the device)

def generator_inputs(batch: dict[str, torch.Tensor], device: torch.device, half: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(faces (B, 6, T, S, S): [masked target, reference], indiv_mels, mel, target (B, 3, T, S, S))."""
    target = to_float(batch["window"].to(device, non_blocking=True))
    ref = to_float(batch["ref"].to(device, non_blocking=True))
    masked = target.clone()
    masked[:, :, :, half:] = 0.0
    faces = torch.cat([masked, ref], dim=1)
    indiv = batch["indiv_mels"].to(device, non_blocking=True)
    mel = batch["mel"].to(device, non_blocking=True)
    return faces, indiv, mel, target

