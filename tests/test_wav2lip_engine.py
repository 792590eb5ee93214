"""Wav2LipEngine reproduces the reference inference pixels and covers all of the speech."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from lipdub.engines.base import FrameJob
from lipdub.engines.wav2lip.engine import Wav2LipEngine, face_input, network_faces, to_patch
from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint
from lipdub.errors import LipdubError
from lipdub.faces.types import Face

DATA = Path(__file__).parent / "data" / "wav2lip"
BOX = (58, 183, 170, 281)  # (top, bottom, left, right) of the reference run: 125 x 111, odd and not square


def read_rgb(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(DATA / name))[..., ::-1])


def job(index: int, frame: np.ndarray, box=BOX) -> FrameJob:
    top, bottom, left, right = box
    return FrameJob(index=index, frame=frame, face=Face(box=np.array([left, top, right, bottom], float)), box=box)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    _, pcm = wavfile.read(DATA / "speech_16k.wav")
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_protocol_checkpoint(tmp_path_factory.mktemp("w2l") / "wav2lip.pth")


@pytest.fixture(scope="module")
def engine(checkpoint) -> Wav2LipEngine:
    return Wav2LipEngine(checkpoint, device="cpu", batch_size=32)


def test_reference_frames_reproduced(engine, speech):
    face = read_rgb("face.png")
    n = engine.prepare(speech, 25.0)
    assert n == 78  # ceil(49460 / 16000 * 25): all the audio, where the reference stops at 74
    patches = engine.render([job(i, face) for i in (0, 7, 73)])
    for i, patch in zip((0, 7, 73), patches, strict=True):
        assert patch.box == BOX and patch.mask is None
        assert patch.image.shape == (125, 111, 3) and patch.image.dtype == np.uint8
        out = face.copy()
        out[58:183, 170:281] = patch.image
        ref = read_rgb(f"e2e_frame_{i:04d}.png")
        diff = np.abs(out.astype(int) - ref)
        assert diff.mean() <= 0.5 and diff.max() <= 1 and (diff > 0).sum() <= 20, (i, diff.max(), (diff > 0).sum())


def test_audio_drives_the_mouth(engine, speech):
    face = read_rgb("face.png")
    engine.prepare(speech, 25.0)
    first, other = engine.render([job(0, face), job(40, face)])
    assert not np.array_equal(first.image, other.image)
    assert np.array_equal(first.image, engine.render([job(0, face)])[0].image)


def test_cached_face_features_match_fresh_encoding(checkpoint, speech):
    # a video: two different frames, alternating, rendered across batch boundaries (batches of 2)
    a = read_rgb("face.png")
    b = np.ascontiguousarray(np.roll(a, (5, -3), axis=(0, 1)))
    frames = [a, a, a, b, b, a]  # batches [a a] [a b] [b a]: cached features reused across batches
    engine = Wav2LipEngine(checkpoint, device="cpu", batch_size=2)
    engine.prepare(speech, 25.0)
    got = engine.render([job(i, f) for i, f in enumerate(frames)])
    # the same frames through the plain network: every face encoded, no cache
    top, bottom, left, right = BOX
    faces = np.stack([face_input(np.ascontiguousarray(f[top:bottom, left:right, ::-1])) for f in frames])
    audio = torch.from_numpy(engine.audio_windows(range(len(frames))))
    with torch.inference_mode():
        out = engine.model(audio, torch.from_numpy(network_faces(faces)))
    for patch, pred in zip(got, out.numpy().transpose(0, 2, 3, 1), strict=True):
        diff = np.abs(patch.image.astype(int) - to_patch(pred, BOX).image)
        assert diff.max() <= 1 and (diff > 0).sum() <= 5


def test_short_speech_and_frame_count(engine):
    assert engine.prepare(np.zeros(1000, np.float32), 25.0) == 2  # 62.5 ms still gets a mouth
    assert engine.prepare(np.zeros(16000, np.float32), 30.0) == 30
    with pytest.raises(LipdubError, match="empty"):
        engine.prepare(np.zeros(0, np.float32), 25.0)


def test_index_outside_prepared_audio(engine, speech):
    engine.prepare(speech, 25.0)
    with pytest.raises(ValueError, match="outside 0..77"):
        engine.render([job(78, read_rgb("face.png"))])


def test_box_over_the_frame_edge_is_clipped(engine, speech):
    engine.prepare(speech, 25.0)
    patch = engine.render([job(0, read_rgb("face.png"), box=(-10, 90, 450, 530))])[0]
    assert patch.box == (0, 90, 450, 512) and patch.image.shape == (90, 62, 3)
    with pytest.raises(LipdubError, match="outside"):
        engine.render([job(0, read_rgb("face.png"), box=(600, 700, 0, 50))])


def test_bfloat16_fast_path_stays_close(checkpoint, speech):
    face = read_rgb("face.png")
    fast = Wav2LipEngine(checkpoint, device="cpu", dtype="bfloat16")
    fast.prepare(speech, 25.0)
    out = face.copy()
    out[58:183, 170:281] = fast.render([job(7, face)])[0].image
    diff = np.abs(out.astype(int) - read_rgb("e2e_frame_0007.png"))
    assert diff.max() <= 3 and diff[58:183, 170:281].mean() <= 0.5
    with pytest.raises(LipdubError, match="unknown dtype"):
        Wav2LipEngine(checkpoint, device="cpu", dtype="int4")


def test_int8_opt_in_stays_close_to_the_reference(checkpoint, speech):
    face = read_rgb("face.png")
    int8 = Wav2LipEngine(checkpoint, device="cpu", dtype="int8")
    int8.prepare(speech, 25.0)
    patch = int8.render([job(7, face)])[0].image  # the first batch calibrates and quantizes the network
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in int8.model.modules())
    golden = read_rgb("e2e_frame_0007.png")[58:183, 170:281]
    diff = np.abs(patch.astype(int) - golden)
    print(f"int8 vs fp32 reference: mean abs {diff.mean():.3f}, max {diff.max()}")
    assert 0 < diff.mean() <= 2.0 and diff.max() <= 40  # close, but not the exact fp32 pixels


def test_precision_is_a_setting_and_fp32_stays_the_default(checkpoint, monkeypatch):
    from lipdub.settings import get_settings

    assert get_settings().precision == "fp32"
    monkeypatch.setenv("LIPDUB_PRECISION", "bf16")
    get_settings.cache_clear()
    try:
        opted = Wav2LipEngine(checkpoint, device="cpu")
    finally:
        monkeypatch.delenv("LIPDUB_PRECISION")
        get_settings.cache_clear()
    assert {p.dtype for p in opted.model.parameters()} == {torch.bfloat16}
