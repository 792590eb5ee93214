"""Optional lip-sync expert in `lipdub data prepare`: the offset search, and shifting or dropping clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from lipdub.cli import main
from lipdub.data import sync
from lipdub.data.cut import CutConfig, cut
from lipdub.data.prepare import PrepareConfig, prepare

PREP = Path(__file__).parent / "data" / "prep"


class _PhaseExpert(nn.Module):
    """A stand-in expert that 'hears' a value in the mel and 'sees' it as the brightness of the lower face."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(np.pi))
        self.face_encoder = _Phase(lambda x: x[:, 0:3].mean(dim=(1, 2, 3)), self.scale)
        self.audio_encoder = _Phase(lambda m: m[:, :, :, 0].mean(dim=(1, 2)), self.scale)


class _Phase(nn.Module):
    def __init__(self, value, scale) -> None:
        super().__init__()
        self.value, self.scale = value, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angle = self.value(x) * self.scale
        return torch.stack([angle.cos(), angle.sin()], dim=1)


@pytest.mark.parametrize("late", [2, -3, 0])
def test_offset_search_finds_a_known_shift(late):
    rng = np.random.default_rng(1)
    n = 60
    v = rng.uniform(0, 1, n + 20)
    crops = []
    for k in range(n):
        img = np.zeros((96, 96, 3), np.uint8)
        img[48:] = round(v[k + 10] * 255)
        crops.append(img)
    # the sound of video frame k is heard at audio frame k + late
    cols = 1 + n * 640 // 200
    frame_of_col = np.round(np.arange(cols) / 3.2).astype(int)
    mel = np.repeat(v[np.clip(frame_of_col - late + 10, 0, n + 19)][None], 80, axis=0).astype(np.float32)
    est = sync.estimate_offset(crops, mel, _PhaseExpert(), max_shift=6)
    assert est["offset_frames"] == late and est["confidence"] > 0.1


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> tuple[Path, Path]:
    """The other person's clip, cut and prepared without an expert (the unshifted reference)."""
    base = tmp_path_factory.mktemp("sync")
    cut([PREP / "guest_5s.mp4"], base / "clips", CutConfig(), workers=1)
    prepare(base / "clips", base / "plain", PrepareConfig(), val_split=0, workers=1)
    return base / "clips", base / "plain"


def _only_clip(ds: Path) -> Path:
    return next(p.parent for p in ds.rglob("clip.json"))


@pytest.mark.parametrize("offset", [2, -2])
def test_prepare_shifts_clips_by_the_measured_offset(one_clip, tmp_path, monkeypatch, offset):
    clips, plain = one_clip
    ckpt = tmp_path / "expert.pth"
    ckpt.write_bytes(b"stand-in")
    monkeypatch.setattr(sync, "load_expert", lambda *a: None)
    monkeypatch.setattr(sync, "estimate_offset", lambda *a, **k: {"offset_frames": offset, "confidence": 1.0,
                                                                   "distance": 0.1})
    prepare(clips, tmp_path / "ds", PrepareConfig(sync_expert=str(ckpt)), val_split=0, workers=1)
    ref, got = _only_clip(plain), _only_clip(tmp_path / "ds")
    n = json.loads((ref / "clip.json").read_text())["n_frames"]
    info = json.loads((got / "clip.json").read_text())
    assert info["n_frames"] == n - abs(offset) and info["offset_frames"] == offset
    ref_audio, _ = sf.read(ref / "audio.wav", dtype="int16")
    audio, _ = sf.read(got / "audio.wav", dtype="int16")
    assert len(audio) == info["n_frames"] * 640
    k0 = max(0, -offset)  # first kept frame of the unshifted clip
    assert (got / "0.jpg").read_bytes() == (ref / f"{k0}.jpg").read_bytes()
    assert not (got / f"{n - abs(offset)}.jpg").exists()
    np.testing.assert_array_equal(audio, ref_audio[(k0 + offset) * 640:(k0 + offset) * 640 + len(audio)])


def test_prepare_drops_clips_off_by_more_than_allowed_and_runs_a_real_checkpoint(one_clip, tmp_path, monkeypatch):
    from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

    clips, _ = one_clip
    ckpt = write_protocol_checkpoint(tmp_path / "syncnet.pth", kind="syncnet")
    with monkeypatch.context() as m:
        m.setattr(sync, "estimate_offset", lambda *a, **k: {"offset_frames": 5, "confidence": 1.0, "distance": 0})
        man = prepare(clips, tmp_path / "far", PrepareConfig(sync_expert=str(ckpt), max_offset=3), val_split=0,
                      workers=1)
    assert man["clips"] == 0 and "offset of 5 frames" in man["skipped"][0]["reason"]
    # a real SyncNet checkpoint (protocol weights) through the CLI: every clip records its measurement
    assert main(["data", "prepare", str(clips), "-o", str(tmp_path / "real"), "--val-split", "0",
                 "--sync-expert", str(ckpt), "--max-offset", "15", "-j", "1"]) == 0
    info = json.loads((_only_clip(tmp_path / "real") / "clip.json").read_text())
    assert set(info["sync"]) == {"offset_frames", "confidence", "distance"}
    assert info["offset_frames"] == info["sync"]["offset_frames"] and abs(info["offset_frames"]) <= 15
