"""The Wav2Lip networks keep the official state-dict layout and compute the reference function."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lipdub.engines.wav2lip.model import build_model, sync_probability
from lipdub.engines.wav2lip.protocol import protocol_input, protocol_model, protocol_state_dict

DATA = Path(__file__).parent / "data" / "wav2lip"
KINDS = ["wav2lip", "syncnet", "disc_qual"]
LAYOUT = json.loads((DATA / "state_dicts.json").read_text())
SHAS = json.loads((DATA / "protocol_sha256.json").read_text())


@pytest.fixture(scope="module")
def golden():
    with np.load(DATA / "forward_golden_small.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # the goldens were made with 1 thread; keep the numbers comparable and the shared machine calm
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def close(actual: torch.Tensor, expected: np.ndarray, intermediate: bool = False) -> None:
    rtol = 1e-4 if intermediate else 0.0
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=rtol, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_layout_is_the_official_one(kind):
    sd = build_model(kind).state_dict()
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()]
    assert got == [[k, list(s), d] for k, s, d in LAYOUT[kind]["state_dict"]]
    params = sum(p.numel() for p in build_model(kind).parameters())
    assert params == LAYOUT[kind]["parameter_count"]


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_weights_are_bit_exact(kind):
    sd = protocol_state_dict(build_model(kind))
    shas = [hashlib.sha256(v.numpy().tobytes()).hexdigest() for v in sd.values()]  # little-endian on x86/arm
    bad = [k for k, a, b in zip(sd, shas, SHAS[kind], strict=True) if a != b]
    assert not bad, f"{len(bad)} tensors differ, first: {bad[:3]}"


def test_protocol_input_kinds():
    face = protocol_input((2, 3, 4), 1001, "face")
    mel = protocol_input((2, 3, 4), 1000, "mel")
    assert face.dtype == mel.dtype == np.float32
    assert face.min() >= 0.0 and face.max() < 1.0 and mel.min() >= -4.0 and mel.max() < 4.0
    with pytest.raises(ValueError):
        protocol_input((2,), 0, "noise")


@pytest.fixture(scope="module")
def generator():
    return protocol_model("wav2lip")


def test_wav2lip_inference_layout_matches_golden(generator, golden):
    audio = torch.from_numpy(protocol_input((4, 1, 80, 16), 1000, "mel"))
    faces = torch.from_numpy(protocol_input((4, 6, 96, 96), 1001, "face"))
    with torch.inference_mode():
        out = generator(audio, faces)
        feats = generator.encode_face(faces)
        audio_emb = generator.audio_encoder(audio)
        dec0 = generator.face_decoder_blocks[0](audio_emb)
        dec1 = generator.face_decoder_blocks[1](torch.cat([dec0, feats[6]], 1))
    assert out.shape == (4, 3, 96, 96)
    close(out, golden["wav2lip_infer__out"])
    # under protocol weights the audio barely moves the output: check the audio path on its own
    close(audio_emb, golden["wav2lip_infer__intermediate_audio_encoder"], True)
    close(dec0, golden["wav2lip_infer__intermediate_face_decoder_block0"], True)
    close(dec1, golden["wav2lip_infer__intermediate_face_decoder_block1"], True)
    close(feats[3][:1], golden["wav2lip_infer__intermediate_face_encoder_block3__sample0"], True)
    close(feats[5], golden["wav2lip_infer__intermediate_face_encoder_block5"], True)
    close(feats[6], golden["wav2lip_infer__intermediate_face_encoder_block6"], True)


def test_wav2lip_cached_face_features_give_the_same_output(generator):
    audio = torch.from_numpy(protocol_input((2, 1, 80, 16), 1000, "mel"))
    faces = torch.from_numpy(protocol_input((2, 6, 96, 96), 1001, "face"))
    with torch.inference_mode():
        one = generator.encode_face(faces[:1])
        cached = generator.forward_frames(audio, faces[:1].expand(2, -1, -1, -1),
                                          feats=[f.expand(2, -1, -1, -1) for f in one])
        plain = generator(audio, faces[:1].expand(2, -1, -1, -1))
    torch.testing.assert_close(cached, plain, rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_wav2lip_inference_in_place_norm_is_bit_identical(channels_last):
    """In inference mode each batch norm writes into its convolution's output (less memory at the peak): the same
    kernel as the modules' own path (taken under no_grad), so the same bits, with non-trivial running statistics."""
    model = protocol_model("wav2lip")
    assert not model.training  # eval: the running statistics are used
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=gen) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    model = model.to(memory_format=fmt)
    audio = torch.from_numpy(protocol_input((3, 1, 80, 16), 1000, "mel"))
    faces = torch.from_numpy(protocol_input((3, 6, 96, 96), 1001, "face")).contiguous(memory_format=fmt)
    with torch.no_grad():
        modules = model(audio, faces)
    with torch.inference_mode():
        in_place = model(audio, faces)
    assert torch.equal(in_place, modules)


def test_wav2lip_training_layout_matches_golden(generator, golden):
    audio = torch.from_numpy(protocol_input((2, 5, 1, 80, 16), 1002, "mel"))
    faces = torch.from_numpy(protocol_input((2, 6, 5, 96, 96), 1003, "face"))
    with torch.inference_mode():
        out = generator(audio, faces)
    assert out.shape == (2, 3, 5, 96, 96)
    close(out, golden["wav2lip_train__out"])


def test_disc_qual_matches_golden(golden):
    disc = protocol_model("disc_qual")
    faces = torch.from_numpy(protocol_input((2, 3, 5, 96, 96), 1004, "face"))
    with torch.no_grad():
        out = disc(faces)
        logits = disc.logits(faces)
        perceptual = disc.perceptual_forward(faces)
        x = disc.lower_half(faces)
        blocks = []
        for block in disc.face_encoder_blocks:
            x = block(x)
            blocks.append(x)
    assert out.shape == (10, 1) and perceptual.shape == ()
    close(out, golden["disc_qual__forward_out"])
    close(logits, golden["disc_qual__forward_logits"])
    close(perceptual, golden["disc_qual__perceptual_forward_out"])
    close(blocks[3][:1], golden["disc_qual__intermediate_block3__image0"], True)
    close(blocks[6], golden["disc_qual__intermediate_block6"], True)


def test_syncnet_matches_golden(golden):
    net = protocol_model("syncnet")
    audio = torch.from_numpy(protocol_input((3, 1, 80, 16), 1005, "mel"))
    faces = torch.from_numpy(protocol_input((3, 15, 48, 96), 1006, "face"))
    with torch.no_grad():
        a, v = net(audio, faces)
        raw_a, raw_v = net.audio_encoder(audio), net.face_encoder(faces)
    close(a, golden["syncnet__out_audio_embedding"])
    close(v, golden["syncnet__out_face_embedding"])
    close(raw_a, golden["syncnet__intermediate_audio_encoder_raw"], True)
    close(raw_v, golden["syncnet__intermediate_face_encoder_raw"], True)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(3))
    expected = (golden["syncnet__out_audio_embedding"] * golden["syncnet__out_face_embedding"]).sum(1)
    np.testing.assert_allclose(sync_probability(a, v).numpy(), expected, atol=1e-5)


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("gan")
