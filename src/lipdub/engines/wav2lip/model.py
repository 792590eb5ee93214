"""The Wav2Lip networks (generator, lip-sync expert, quality discriminator) with the official state-dict keys.

Prajwal et al., "A Lip Sync Expert Is All You Need for Speech to Lip Generation In the Wild" (ACM MM 2020).
Faces are BGR in [0, 1], 96x96; audio is an 80x16 normalised mel window (see lipdub.audio.mel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Size = int | tuple[int, int]


def conv_norm(conv_block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`conv_block(x)` (a convolution, then a BatchNorm2d in eval mode). In inference mode the normalisation is
    written into the convolution's output (the same ATen kernel, bit-identical), so one new tensor is alive instead
    of two: at batch 8 the decoder's 96x96 units hold ~19 MB less at their peak. Elsewhere (training, FX tracing
    for int8) the modules run as they are."""
    conv, norm = conv_block
    if not torch.is_inference_mode_enabled() or norm.training or not isinstance(norm, nn.BatchNorm2d):
        return conv_block(x)
    out = conv(x)
    empty = out.new_empty(0)
    torch.ops.aten.native_batch_norm.out(out, norm.weight, norm.bias, norm.running_mean, norm.running_var, False,
                                         0.0, norm.eps, out=out, save_mean=empty, save_invstd=empty.clone())
    return out


def run_units(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`block(x)`, a Sequential's units one by one with `x` rebound after each, so that the block's input is freed
    as soon as the first unit has used it (a caller's `x = block(x)` keeps it alive to the end of the block)."""
    if not isinstance(block, nn.Sequential):  # e.g. an int8 block (an FX GraphModule)
        return block(x)
    for unit in block:
        x = unit(x)
    return x


class Conv2dUnit(nn.Module):
    """Conv2d -> BatchNorm2d -> (+ input if residual) -> ReLU; keys conv_block.0/1 = conv/norm."""

    def __init__(self, cin: int, cout: int, kernel: Size, stride: Size, padding: Size,
                 residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = conv_norm(self.conv_block, x)
        if not torch.is_grad_enabled():  # inference: the same sums, in the normalised output's own memory
            if self.residual:
                out += x
            return out.relu_()
        if self.residual:
            out = out + x
        return F.relu(out)


class ConvTranspose2dUnit(nn.Module):
    """ConvTranspose2d -> BatchNorm2d -> ReLU (the decoder's upsampling step)."""

    def __init__(self, cin: int, cout: int, kernel: Size, stride: Size, padding: Size,
                 output_padding: Size = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = conv_norm(self.conv_block, x)
        return out.relu_() if not torch.is_grad_enabled() else F.relu(out)


class LeakyConvUnit(nn.Module):
    """Conv2d -> LeakyReLU(0.01), no normalisation (the discriminator's unit)."""

    def __init__(self, cin: int, cout: int, kernel: Size, stride: Size, padding: Size) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv_block(x), 0.01)


def _res(channels: int, n: int) -> list[nn.Module]:
    """n residual 3x3 units that keep the shape."""
    return [Conv2dUnit(channels, channels, 3, 1, 1, residual=True) for _ in range(n)]


def _audio_encoder(last_res: int) -> nn.Sequential:
    """(N, 1, 80, 16) mel window -> (N, 512, 1, 1) embedding; `last_res` residual units at 256 channels."""
    return nn.Sequential(
        Conv2dUnit(1, 32, 3, 1, 1), *_res(32, 2),              # 32 x 80 x 16
        Conv2dUnit(32, 64, 3, (3, 1), 1), *_res(64, 2),        # 64 x 27 x 16
        Conv2dUnit(64, 128, 3, 3, 1), *_res(128, 2),           # 128 x 9 x 6
        Conv2dUnit(128, 256, 3, (3, 2), 1), *_res(256, last_res),  # 256 x 3 x 3
        Conv2dUnit(256, 512, 3, 1, 0),                         # 512 x 1 x 1
        Conv2dUnit(512, 512, 1, 1, 0),
    )


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (T*B, C, H, W), time-major (all B items of t=0 first), as the reference does."""
    return torch.cat([x[:, :, t] for t in range(x.size(2))], dim=0)


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(T*B, C, H, W) time-major -> (B, C, T, H, W)."""
    return torch.stack(torch.split(x, batch, dim=0), dim=2)


class Wav2Lip(nn.Module):
    """Generator: a masked + reference face (6 x 96 x 96) and a mel window -> the face with a synced mouth."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2dUnit(6, 16, 7, 1, 3)),                             # 16 x 96 x 96
            nn.Sequential(Conv2dUnit(16, 32, 3, 2, 1), *_res(32, 2)),              # 32 x 48 x 48
            nn.Sequential(Conv2dUnit(32, 64, 3, 2, 1), *_res(64, 3)),              # 64 x 24 x 24
            nn.Sequential(Conv2dUnit(64, 128, 3, 2, 1), *_res(128, 2)),            # 128 x 12 x 12
            nn.Sequential(Conv2dUnit(128, 256, 3, 2, 1), *_res(256, 2)),           # 256 x 6 x 6
            nn.Sequential(Conv2dUnit(256, 512, 3, 2, 1), *_res(512, 1)),           # 512 x 3 x 3
            nn.Sequential(Conv2dUnit(512, 512, 3, 1, 0), Conv2dUnit(512, 512, 1, 1, 0)),  # 512 x 1 x 1
        ])
        self.audio_encoder = _audio_encoder(last_res=1)
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2dUnit(512, 512, 1, 1, 0)),                                # 512 x 1 x 1
            nn.Sequential(ConvTranspose2dUnit(1024, 512, 3, 1, 0), *_res(512, 1)),       # 512 x 3 x 3
            nn.Sequential(ConvTranspose2dUnit(1024, 512, 3, 2, 1, 1), *_res(512, 2)),    # 512 x 6 x 6
            nn.Sequential(ConvTranspose2dUnit(768, 384, 3, 2, 1, 1), *_res(384, 2)),     # 384 x 12 x 12
            nn.Sequential(ConvTranspose2dUnit(512, 256, 3, 2, 1, 1), *_res(256, 2)),     # 256 x 24 x 24
            nn.Sequential(ConvTranspose2dUnit(320, 128, 3, 2, 1, 1), *_res(128, 2)),     # 128 x 48 x 48
            nn.Sequential(ConvTranspose2dUnit(160, 64, 3, 2, 1, 1), *_res(64, 2)),       # 64 x 96 x 96
        ])
        self.output_block = nn.Sequential(
            Conv2dUnit(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid()  # 3 x 96 x 96 in [0, 1]
        )

    def encode_face(self, faces: torch.Tensor) -> list[torch.Tensor]:
        """(N, 6, 96, 96) -> the 7 skip features, block 0 (16 x 96 x 96) to block 6 (512 x 1 x 1)."""
        feats = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        return feats

    def decode(self, audio_embedding: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """Audio embedding (N, 512, 1, 1) + skip features -> face (N, 3, 96, 96) in [0, 1]."""
        x = audio_embedding
        for block, skip in zip(self.face_decoder_blocks, reversed(feats), strict=True):
            x = run_units(block, x)  # the last block's 48x48 input (~12 MB at batch 8) is freed after its first unit
            x = torch.cat([x, skip], dim=1)  # channels double (or grow by the skip's)
        return run_units(self.output_block, x)

    def forward_frames(self, audio: torch.Tensor, faces: torch.Tensor,
                       feats: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(N, 1, 80, 16) + (N, 6, 96, 96) -> (N, 3, 96, 96); `feats`: precomputed encode_face(faces)."""
        return self.decode(self.audio_encoder(audio), self.encode_face(faces) if feats is None else feats)

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """Inference: (B,1,80,16) + (B,6,96,96) -> (B,3,96,96).

        Training: (B,T,1,80,16) + (B,6,T,96,96) -> (B,3,T,96,96), time folded into the batch time-major.
        """
        if faces.dim() == 4:
            return self.forward_frames(audio, faces)
        batch = audio.size(0)
        audio = torch.cat([audio[:, t] for t in range(audio.size(1))], dim=0)  # (T*B, 1, 80, 16), time-major
        out = self.forward_frames(audio, fold_time(faces))
        return unfold_time(out, batch)


class SyncNet(nn.Module):
    """Lip-sync expert (SyncNet_color): 5 lower-half faces (15 x 48 x 96) + a mel window -> 2 embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.Sequential(
            Conv2dUnit(15, 32, 7, 1, 3),                           # 32 x 48 x 96
            Conv2dUnit(32, 64, 5, (1, 2), 1), *_res(64, 2),        # 64 x 46 x 47
            Conv2dUnit(64, 128, 3, 2, 1), *_res(128, 3),           # 128 x 23 x 24
            Conv2dUnit(128, 256, 3, 2, 1), *_res(256, 2),          # 256 x 12 x 12
            Conv2dUnit(256, 512, 3, 2, 1), *_res(512, 2),          # 512 x 6 x 6
            Conv2dUnit(512, 512, 3, 2, 1),                         # 512 x 3 x 3
            Conv2dUnit(512, 512, 3, 1, 0),                         # 512 x 1 x 1
            Conv2dUnit(512, 512, 1, 1, 0),
        )
        self.audio_encoder = _audio_encoder(last_res=2)

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 80, 16) + (N, 15, 48, 96) -> (audio_emb, face_emb), each (N, 512) with unit L2 norm."""
        audio_emb = self.audio_encoder(audio).flatten(1)
        face_emb = self.face_encoder(faces).flatten(1)
        return F.normalize(audio_emb, p=2, dim=1), F.normalize(face_emb, p=2, dim=1)


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the two unit embeddings, (N,) (the expert's 'in sync' probability)."""
    return F.cosine_similarity(audio_emb, face_emb)


class Wav2LipDiscQual(nn.Module):
    """Visual-quality discriminator on the lower half of generated or real faces (Wav2Lip_disc_qual)."""

    def __init__(self) -> None:
        super().__init__()
        cl = LeakyConvUnit
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(cl(3, 32, 7, 1, 3)),                                # 32 x 48 x 96
            nn.Sequential(cl(32, 64, 5, (1, 2), 2), cl(64, 64, 5, 1, 2)),     # 64 x 48 x 48
            nn.Sequential(cl(64, 128, 5, 2, 2), cl(128, 128, 5, 1, 2)),       # 128 x 24 x 24
            nn.Sequential(cl(128, 256, 5, 2, 2), cl(256, 256, 5, 1, 2)),      # 256 x 12 x 12
            nn.Sequential(cl(256, 512, 3, 2, 1), cl(512, 512, 3, 1, 1)),      # 512 x 6 x 6
            nn.Sequential(cl(512, 512, 3, 2, 1), cl(512, 512, 3, 1, 1)),      # 512 x 3 x 3
            nn.Sequential(cl(512, 512, 3, 1, 0), cl(512, 512, 1, 1, 0)),      # 512 x 1 x 1
        ])
        self.binary_pred = nn.Sequential(nn.Conv2d(512, 1, 1, 1, 0), nn.Sigmoid())

    @staticmethod
    def lower_half(faces: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 96, 96) -> time-major (T*B, 3, 48, 96) lower halves; 4-D input counts as folded."""
        if faces.dim() == 5:
            faces = fold_time(faces)
        return faces[:, :, faces.size(2) // 2:]

    def logits(self, faces: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, (N, 1, 1, 1)."""
        x = self.lower_half(faces)
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred[0](x)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """Probability that each face is real, (T*B, 1), row t*B + b."""
        return torch.sigmoid(self.logits(faces)).flatten(1)

    def perceptual_forward(self, fake_faces: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss: BCE(D(fake), 1), a scalar, on the input's device."""
        pred = self.forward(fake_faces)
        return F.binary_cross_entropy(pred, torch.ones_like(pred))


MODELS: dict[str, type[nn.Module]] = {"wav2lip": Wav2Lip, "syncnet": SyncNet, "disc_qual": Wav2LipDiscQual}


def build_model(kind: str) -> nn.Module:
    """A fresh network of `kind` ('wav2lip', 'syncnet' or 'disc_qual')."""
    try:
        return MODELS[kind]()
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} (use one of {', '.join(MODELS)})") from None
