"""The Wav2Lip engine: a face crop + the frame's mel window -> a new lower face, pixel-compatible with the reference."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from lipdub.audio.mel import MEL_STEP, chunk_starts, mel_windows, melspectrogram, num_video_frames
from lipdub.engines.base import Box, Engine, FrameJob, Patch
from lipdub.engines.wav2lip.checkpoint import load_model
from lipdub.engines.wav2lip.model import Wav2Lip
from lipdub.engines.wav2lip.weights import resolve_checkpoint
from lipdub.errors import LipdubError
from lipdub.settings import get_settings, resolve_device

IMG_SIZE = 96
_MIN_SAMPLES = (MEL_STEP - 1) * 200  # shortest audio that yields one 16-column mel window
_TO_UNIT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)  # uint8/255 in float64, then float32
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def face_input(crop_bgr: np.ndarray) -> np.ndarray:
    """A BGR uint8 crop -> the 96x96 face the network sees (bilinear, aspect ratio ignored), uint8."""
    return cv2.resize(crop_bgr, (IMG_SIZE, IMG_SIZE), interpolation=cv2.INTER_LINEAR)


def network_faces(faces: np.ndarray) -> np.ndarray:
    """(N, 96, 96, 3) BGR uint8 -> (N, 6, 96, 96) float32: [lower half zeroed, unmasked reference] / 255."""
    masked = faces.copy()
    masked[:, IMG_SIZE // 2:] = 0
    both = np.concatenate([masked, faces], axis=3)  # (N, 96, 96, 6)
    return np.ascontiguousarray(_TO_UNIT[both].transpose(0, 3, 1, 2))


def to_patch(pred_bgr: np.ndarray, box: Box) -> Patch:
    """One (96, 96, 3) network output in [0, 1] -> a patch of the box's size: x255, truncated, bilinear, RGB."""
    top, bottom, left, right = box
    face = (pred_bgr * 255.0).astype(np.uint8)
    face = cv2.resize(face, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    return Patch(box=box, image=np.ascontiguousarray(face[..., ::-1]), mask=None)


def clip_box(box: Box, shape: tuple[int, ...]) -> Box:
    """The part of `box` inside a frame of `shape` (numpy slicing would do the same silently)."""
    top, bottom, left, right = (int(v) for v in box)
    height, width = shape[:2]
    clipped = (max(0, top), min(height, bottom), max(0, left), min(width, right))
    if clipped[1] <= clipped[0] or clipped[3] <= clipped[2]:
        raise LipdubError(f"face box {box} lies outside the {width}x{height} frame")
    return clipped


def off_the_file(model: torch.nn.Module, dtype: torch.dtype, memory_format: torch.memory_format) -> torch.nn.Module:
    """`model` in `dtype` and `memory_format`. Its weights come memory-mapped from the checkpoint file (read whole
    when they were checked); once a conversion copies some of them (channels_last copies every 4-D weight), the
    rest is copied too, so that no tensor holds the mapping and the file's ~140 MB leave the process: without this
    they would stay resident beside their converted copy."""
    before = {t.data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    model = model.to(dtype=dtype, memory_format=memory_format)
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    if all(t.data_ptr() in before for t in tensors):  # nothing copied: the mapping is the one copy
        return model
    with torch.no_grad():
        for t in tensors:
            if t.data_ptr() in before:
                t.data = t.data.clone()
    return model


class Wav2LipEngine(Engine):
    """Wav2Lip inference on batches of frames; caches the face encoding while the crop does not change."""

    name = "wav2lip"

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "auto", batch_size: int | None = None,
                 dtype: str | None = None, threads: int | None = None, channels_last: bool = True) -> None:
        """`checkpoint`: a file, or the name of fetched official weights ('wav2lip', 'wav2lip_gan').

        dtype: the network's arithmetic, 'fp32'/'float32' (exact), 'bf16'/'bfloat16', 'fp16'/'float16' or
        'int8' (CPU); default Settings().precision (LIPDUB_PRECISION). threads: torch CPU threads (default
        Settings().threads); channels_last is ~10-20 % faster on CPU.
        """
        settings = get_settings()
        dtype = dtype or settings.precision
        self.device = resolve_device(device)
        self.batch_size = int(batch_size or settings.generator_batch(self.device))
        if dtype not in _DTYPES and dtype != "int8":
            raise LipdubError(f"unknown dtype {dtype!r} (use {', '.join(_DTYPES)} or int8)")
        self.dtype = _DTYPES.get(dtype, torch.float32)
        self._int8 = dtype == "int8"  # quantized on the first batch, calibrated on it (see quantize.py)
        if self.device == "cpu":
            torch.set_num_threads(max(1, int(threads or settings.threads)))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = load_model(resolve_checkpoint(checkpoint), "wav2lip", self.device)
        assert isinstance(model, Wav2Lip)
        self.model: Wav2Lip = off_the_file(model, self.dtype, self.memory_format)
        self._mel: np.ndarray | None = None
        self._starts: list[int] = []
        self._last_face: np.ndarray | None = None  # 96x96 BGR of the last encoded face
        self._last_feats: list[torch.Tensor] | None = None

    # -- audio -----------------------------------------------------------------------------------------
    def prepare(self, audio: np.ndarray, fps: float) -> int:
        """Mel of the speech and one window start per video frame; returns ceil(duration * fps) frames."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise LipdubError("the speech audio is empty")
        if fps <= 0:
            raise LipdubError(f"invalid frame rate {fps}")
        n_frames = num_video_frames(audio.size, fps)
        if audio.size < _MIN_SAMPLES:  # pad very short speech with silence up to one mel window
            audio = np.pad(audio, (0, _MIN_SAMPLES - audio.size))
        self._mel = melspectrogram(audio)
        self._starts = chunk_starts(self._mel.shape[1], fps, n_frames)
        return n_frames

    @property
    def num_frames(self) -> int:
        return len(self._starts)

    def audio_windows(self, indices: Sequence[int]) -> np.ndarray:
        """The (n, 1, 80, 16) mel windows of the given frame indices."""
        if self._mel is None:
            raise RuntimeError("call prepare(audio, fps) before render()")
        bad = [i for i in indices if not 0 <= i < len(self._starts)]
        if bad:
            raise ValueError(f"audio frame index {bad[0]} outside 0..{len(self._starts) - 1}")
        return mel_windows(self._mel, [self._starts[i] for i in indices])

    # -- faces -----------------------------------------------------------------------------------------
    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(array).to(self.device, dtype=self.dtype)
        return t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t

    def _face_features(self, faces: np.ndarray) -> list[torch.Tensor]:
        """Encoder features for (N, 96, 96, 3) faces, encoding each run of identical faces once."""
        first = [0] + [i for i in range(1, len(faces)) if not np.array_equal(faces[i], faces[i - 1])]
        starts = np.zeros(len(faces), dtype=np.int64)
        starts[first] = 1
        run_of = np.cumsum(starts) - 1  # job -> index of its run
        reuse = self._last_face is not None and np.array_equal(faces[0], self._last_face)
        todo = first[1:] if reuse else first
        parts: list[list[torch.Tensor]] = []
        if reuse:
            parts.append(self._last_feats)
        if todo:
            parts.append(self.model.encode_face(self._tensor(network_faces(faces[todo]))))
        feats = [torch.cat(level, 0) if len(parts) > 1 else level[0] for level in zip(*parts, strict=True)]
        self._last_face = faces[-1].copy()
        # a copy of the last row: a view would keep the whole batch's features (~9 MB at batch 8) until the next
        self._last_feats = [f[-1:].clone() for f in feats]
        if len(feats[0]) == len(faces):  # no two neighbours alike (a moving face): one row per job already
            return feats
        index = torch.as_tensor(run_of, device=self.device)
        return [f.index_select(0, index) for f in feats]

    def _quantize(self, faces: np.ndarray, windows: int = 8) -> None:
        """Swap in an int8 network calibrated on these faces and `windows` mel windows spread over the speech."""
        from lipdub.engines.wav2lip.quantize import quantize_int8

        picks = np.linspace(0, len(self._starts) - 1, num=min(windows, len(self._starts))).round().astype(int)
        audio = self._tensor(self.audio_windows(picks.tolist()))
        both = self._tensor(network_faces(faces[np.arange(len(picks)) % len(faces)]))
        self.model = quantize_int8(self.model, audio, both)
        self._int8 = False
        self._last_face, self._last_feats = None, None  # features of the float network are not reused

    def render(self, jobs: Sequence[FrameJob]) -> list[Patch]:
        """One patch (the whole box, RGB) per job, computed batch_size frames at a time."""
        patches: list[Patch] = []
        for start in range(0, len(jobs), self.batch_size):
            patches.extend(self._render_batch(jobs[start:start + self.batch_size]))
        return patches

    def _render_batch(self, jobs: Sequence[FrameJob]) -> list[Patch]:
        boxes = [clip_box(job.box, job.frame.shape) for job in jobs]
        crops = [job.frame[t:b, l:r, ::-1] for job, (t, b, l, r) in zip(jobs, boxes, strict=True)]  # RGB -> BGR
        faces = np.stack([face_input(np.ascontiguousarray(c)) for c in crops])  # (N, 96, 96, 3) BGR uint8
        audio = self._tensor(self.audio_windows([job.index for job in jobs]))
        if self._int8:
            self._quantize(faces)
        with torch.inference_mode():
            feats = self._face_features(faces)
            out = self.model.decode(self.model.audio_encoder(audio), feats)  # (N, 3, 96, 96) BGR in [0, 1]
        pred = out.float().cpu().numpy().transpose(0, 2, 3, 1)
        return [to_patch(p, box) for p, box in zip(pred, boxes, strict=True)]
