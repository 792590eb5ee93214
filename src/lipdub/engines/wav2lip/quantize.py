"""int8 Wav2Lip on CPU: post-training static quantization (PyTorch FX, x86 backend) calibrated on the run's own input.

Each encoder/decoder block is quantized on its own (inputs and outputs stay float), so the engine's face-feature
cache and skip connections work unchanged. Activation ranges come from the frames and speech being rendered,
so no calibration data ships. An opt-in trade of fidelity for speed (LIPDUB_PRECISION=int8); fp32 stays exact.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from lipdub.engines.wav2lip.model import Wav2Lip


def _prepared(block: nn.Module, example: torch.Tensor) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    return prepare_fx(block, get_default_qconfig_mapping("x86"), example_inputs=(example,))


def quantize_int8(model: Wav2Lip, audio: torch.Tensor, faces: torch.Tensor) -> Wav2Lip:
    """An int8 copy of `model` (fp32, eval), its activation ranges observed on `audio` (N, 1, 80, 16) and
    `faces` (N, 6, 96, 96); the result takes and returns float tensors like `model`."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # FX quantization warns that it moves to torchao; it works as it is
        q = copy.deepcopy(model).eval()
        faces1 = faces[:1]  # one frame is enough to give each block an example input
        feats = model.encode_face(faces1)
        x = faces1
        for i, block in enumerate(model.face_encoder_blocks):
            q.face_encoder_blocks[i] = _prepared(q.face_encoder_blocks[i], x)
            x = block(x)
        x = model.audio_encoder(audio[:1])
        q.audio_encoder = _prepared(q.audio_encoder, audio[:1])
        for i, block in enumerate(model.face_decoder_blocks):
            q.face_decoder_blocks[i] = _prepared(q.face_decoder_blocks[i], x)
            x = torch.cat((block(x), feats[-1 - i]), dim=1)
        q.output_block = _prepared(q.output_block, x)
        q.forward_frames(audio, faces)  # the observers record the activation ranges
        for blocks in (q.face_encoder_blocks, q.face_decoder_blocks):
            for i, block in enumerate(blocks):
                blocks[i] = convert_fx(block)
        q.audio_encoder = convert_fx(q.audio_encoder)
        q.output_block = convert_fx(q.output_block)
    return q
