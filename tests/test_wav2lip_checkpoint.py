"""Checkpoints load from every supported layout, and every broken file gives a one-line error naming it."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lipdub.engines.wav2lip.checkpoint import guess_kind, load_model, load_state_dict, save_checkpoint
from lipdub.engines.wav2lip.model import Wav2LipDiscQual
from lipdub.engines.wav2lip.protocol import protocol_state_dict, write_protocol_checkpoint
from lipdub.errors import CheckpointError


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {kind: write_protocol_checkpoint(root / f"{kind}.pth", kind) for kind in ("disc_qual", "syncnet")}


@pytest.fixture(scope="module")
def disc_weights() -> OrderedDict[str, torch.Tensor]:
    return protocol_state_dict(Wav2LipDiscQual())


def assert_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def check_error(path: Path, *fragments: str, kind: str = "disc_qual") -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(path, kind)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for fragment in fragments:
        assert fragment in msg
    return msg


def test_official_layout_with_module_prefix(ckpts, disc_weights):
    raw = torch.load(ckpts["disc_qual"], weights_only=True)
    assert set(raw) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    model = load_model(ckpts["disc_qual"], "disc_qual")
    assert not model.training
    assert_weights(model, disc_weights)


def test_plain_state_dict_and_every_module_occurrence_stripped(tmp_path, disc_weights):
    torch.save(dict(disc_weights), tmp_path / "plain.pt")
    assert_weights(load_model(tmp_path / "plain.pt", "disc_qual"), disc_weights)
    nested = {"state_dict": {"module.module." + k: v for k, v in disc_weights.items()}}
    torch.save(nested, tmp_path / "nested.pth")
    assert list(load_state_dict(tmp_path / "nested.pth")) == list(disc_weights)


def test_legacy_file_format_with_optimizer_state(tmp_path, disc_weights):
    # the 2020 release was written by torch 1.x: the pre-zip format, with the Adam state beside the weights
    model = Wav2LipDiscQual()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))
    model.perceptual_forward(torch.rand(1, 3, 96, 96)).backward()
    opt.step()
    ckpt = {"state_dict": {"module." + k: v for k, v in disc_weights.items()}, "optimizer": opt.state_dict(),
            "global_step": 123, "global_epoch": 4}
    torch.save(ckpt, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert_weights(load_model(tmp_path / "old.pth", "disc_qual"), disc_weights)


def test_safetensors(tmp_path, disc_weights):
    save_file({k: v.contiguous() for k, v in disc_weights.items()}, tmp_path / "disc.safetensors")
    assert_weights(load_model(tmp_path / "disc.safetensors", "disc_qual"), disc_weights)


def test_checkpoint_without_num_batches_tracked_loads(tmp_path):
    ckpt = load_state_dict(write_protocol_checkpoint(tmp_path / "s.pth", "syncnet"))
    trimmed = {k: v for k, v in ckpt.items() if not k.endswith("num_batches_tracked")}
    save_file(trimmed, tmp_path / "s.safetensors")
    model = load_model(tmp_path / "s.safetensors", "syncnet")
    assert torch.equal(model.state_dict()["audio_encoder.0.conv_block.0.weight"],
                       ckpt["audio_encoder.0.conv_block.0.weight"])
    counters = [v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(not v.is_meta and v.item() == 0 for v in counters)  # real zeros, as a fresh network


def test_half_precision_checkpoint_loads_as_a_float32_network(tmp_path, disc_weights):
    half = {k: v.half() if v.is_floating_point() else v for k, v in disc_weights.items()}
    save_file({k: v.contiguous() for k, v in half.items()}, tmp_path / "half.safetensors")
    model = load_model(tmp_path / "half.safetensors", "disc_qual")
    assert all(p.dtype == torch.float32 and not p.is_meta for p in model.parameters())
    assert_weights(model, {k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    assert model(torch.rand(1, 3, 96, 96)).shape == (1, 1)  # runs on float32 input


def test_save_checkpoint_with_optimizer_round_trips(tmp_path, disc_weights):
    model = Wav2LipDiscQual()
    model.load_state_dict(disc_weights)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.perceptual_forward(torch.rand(1, 3, 96, 96)).backward()
    opt.step()
    path = save_checkpoint(tmp_path / "sub" / "trained.pth", model, opt, step=7, epoch=2)
    raw = torch.load(path, weights_only=True)
    assert raw["global_step"] == 7 and raw["global_epoch"] == 2 and raw["optimizer"]["state"]
    assert [p.name for p in path.parent.iterdir()] == ["trained.pth"]  # no temp file left behind
    assert_weights(load_model(path, "disc_qual"), model.state_dict())  # the optimizer entry is ignored


def test_missing_file():
    check_error(Path("/nonexistent/wav2lip.pth"), "no such checkpoint file")


def test_truncated_file(tmp_path, ckpts):
    data = ckpts["disc_qual"].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    check_error(tmp_path / "cut.pth", "truncated or corrupt")


def test_garbage_and_corrupt_safetensors(tmp_path):
    (tmp_path / "notes.pth").write_bytes(b"this is a text file, not weights\n" * 20)
    check_error(tmp_path / "notes.pth", "cannot read checkpoint")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    check_error(tmp_path / "bad.safetensors", "corrupt .safetensors")


def test_nan_weights_rejected(tmp_path, disc_weights):
    broken = dict(disc_weights)
    broken["binary_pred.0.bias"] = torch.tensor([float("nan")])
    torch.save(broken, tmp_path / "nan.pth")
    check_error(tmp_path / "nan.pth", "NaN/inf", "binary_pred.0.bias")


def test_not_a_checkpoint(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    check_error(tmp_path / "list.pth", "not a checkpoint")
    torch.save({"global_step": 3}, tmp_path / "nostate.pth")
    check_error(tmp_path / "nostate.pth", "not a checkpoint")


def test_pickled_code_is_refused(tmp_path):
    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"state_dict": Path("x")}))
    check_error(tmp_path / "evil.pth", "refused for safety")


def test_wrong_model_kind_is_named(ckpts):
    check_error(ckpts["syncnet"], "looks like a lipsync_expert checkpoint, not wav2lip", kind="wav2lip")
    check_error(ckpts["disc_qual"], "looks like a visual_quality_disc checkpoint, not lipsync_expert",
                kind="syncnet")
    assert guess_kind(load_state_dict(ckpts["syncnet"])) == "syncnet"


def test_s3fd_is_recognised(tmp_path):
    s3fd = {k: torch.zeros(1) for k in ("conv1_1.weight", "conv3_3_norm.weight", "conv4_3_norm_mbox_conf.weight")}
    torch.save(s3fd, tmp_path / "s3fd.pth")
    check_error(tmp_path / "s3fd.pth", "s3fd face detector checkpoint, not wav2lip", kind="wav2lip")


def test_mismatch_lists_keys_and_counts(tmp_path, disc_weights):
    broken = OrderedDict(disc_weights)
    for key in list(broken)[:4]:
        del broken[key]
    broken["extra.weight"] = torch.zeros(2)
    broken["binary_pred.0.weight"] = torch.zeros(1, 512, 3, 3)
    torch.save({"state_dict": broken}, tmp_path / "broken.pth")
    msg = check_error(tmp_path / "broken.pth", "does not fit the visual_quality_disc network",
                      "4 missing keys", "face_encoder_blocks.0.0.conv_block.0.weight",
                      "1 unexpected keys (extra.weight)", "1 shape mismatches")
    assert "[1, 512, 3, 3] vs [1, 512, 1, 1]" in msg
