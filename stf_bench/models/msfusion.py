"""MSFusion (reconstructed): G. Yang, Y. Qian, H. Liu, B. Tang, R. Qi, Y. Lu, J. Geng, "MSFusion: Multistage for
Remote Sensing Image Spatiotemporal Fusion Based on Texture Transformer and Convolutional Neural Network", IEEE JSTARS
15, 4653-4666, 2022, doi 10.1109/JSTARS.2022.3179415. No code is public; this is the TTSR-style design of
specs/models.md part 2 §12, built from the abstract.

Light CNN encoders extract fine-reference (E_F), temporal-difference (E_D, on C2 - C1) and coarse (E_C, shared by C1
and C2) features at three stages. The texture transformer matches 3x3 patches of E_C(C2) (queries) against E_C(C1)
(keys) at H/4 by cosine similarity; the best match of every query (hard attention, idx) carries the fine reference's
texture (E_F patches at that place) to the query's position at every stage, weighted by the match confidence S. A
selective-kernel module (CSAFM) fuses the three stages, and a head adds the result to F1.

Memory: the relevance map R is (HW/16)^2 floats (64 MiB for a 256 px patch, 13 GB for a 952 px scene), so its
max/argmax is computed over chunks of ``query_chunk`` queries (identical results; only one chunk lives at a time).
Whole scenes in eval mode are, by default, predicted in ``eval_tile`` px tiles by the shared tiler (stride half a
tile, centres kept): the patch size the model trained on, so the texture search range and the CSAFM's global pooling
see what they saw in training, and 49 tiles of a 950 px scene cost a quarter of one pass's texture search
(49 x 4096^2 against 56644^2 query-key pairs). ``eval_tile: null`` predicts a scene in one pass (a scene-wide search).
Measured on CPU, one thread, batch 1: a 256 px training step (forward + backward) peaks at 981 MiB RSS (17 s), so
training fits 16 GB of GPU memory; a 950 px scene by tiling peaks at 611 MiB RSS (503 s on a loaded 2-core machine).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stf_bench.models.prediction import predict_scene

WIDTHS = (32, 64, 128)
# (kernel, stride, padding) of the texture patches at H, H/2, H/4: every stage's patch grid is the H/4 grid
PATCHES = ((12, 4, 4), (6, 2, 2), (3, 1, 1))
KEYS = ("fine_ref", "coarse_ref", "coarse_tgt")


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class StageEncoder(nn.Module):
    """Three stages at H, H/2, H/4 (widths 32/64/128): Conv3x3 (stride 1, 2, 2) -> LReLU -> Conv3x3 -> LReLU."""

    def __init__(self, in_ch: int = 1, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        chans = (in_ch, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1), _act(),
                          nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1), _act())
            for i in range(len(widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


def hard_attention(query: torch.Tensor, key: torch.Tensor, chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best key patch for every query patch: S = max_j <q_i, k_j> and idx = argmax_j over L2-normalised 3x3 patches.

    Queries are processed ``chunk`` at a time, so only a (B, chunk, L) slice of R exists at once; the result is the
    same as for the whole R. Returns S (B, L) and idx (B, L)."""
    q = F.normalize(F.unfold(query, 3, padding=1), dim=1).transpose(1, 2)  # B x L x C*9
    k = F.normalize(F.unfold(key, 3, padding=1), dim=1)  # B x C*9 x L
    step = chunk or q.shape[1]
    parts = [torch.bmm(q[:, i:i + step], k).max(dim=2) for i in range(0, q.shape[1], step)]
    return torch.cat([p.values for p in parts], dim=1), torch.cat([p.indices for p in parts], dim=1)


def transfer(value: torch.Tensor, idx: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """T: the value patch at idx[i] placed at position i, overlapping patches averaged (fold / fold of ones)."""
    size = value.shape[-2:]
    patches = F.unfold(value, kernel, padding=padding, stride=stride)  # B x C*k*k x L
    picked = patches.gather(2, idx[:, None, :].expand(-1, patches.shape[1], -1))
    ones = torch.ones(1, kernel * kernel, idx.shape[1], dtype=value.dtype, device=value.device)
    overlap = F.fold(ones, size, kernel, padding=padding, stride=stride)
    return F.fold(picked, size, kernel, padding=padding, stride=stride) / overlap


class StageFusion(nn.Module):
    """Y = Conv3x3([E_F, E_D]) + S * Conv3x3([T, E_D]): the reference's own features plus its transferred texture,
    trusted as far as the match is good."""

    def __init__(self, width: int):
        super().__init__()
        self.direct = nn.Conv2d(2 * width, width, 3, padding=1)
        self.texture = nn.Conv2d(2 * width, width, 3, padding=1)

    def forward(self, fine, diff, texture, confidence) -> torch.Tensor:
        return self.direct(torch.cat([fine, diff], 1)) + confidence * self.texture(torch.cat([texture, diff], 1))


class CSAFM(nn.Module):
    """Cross-stage adaptive fusion: Z_k = U(Conv1x1 (C_k -> out)(Y_k)); selective-kernel channel attention
    a = softmax_k(Linear_k(ReLU(Linear(GAP(sum Z))))), O = sum a_k Z_k."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, out: int = 32, reduced: int = 16):
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(w, out, 1) for w in widths)
        self.squeeze = nn.Linear(out, reduced)
        self.select = nn.ModuleList(nn.Linear(reduced, out) for _ in widths)

    def forward(self, stages: list[torch.Tensor], size) -> torch.Tensor:
        z = [p(y) for p, y in zip(self.project, stages)]
        z = torch.stack([v if v.shape[-2:] == size else F.interpolate(v, size=size, mode="bilinear",
                                                                        align_corners=False) for v in z], dim=1)
        s = F.relu(self.squeeze(z.sum(dim=1).mean(dim=(2, 3))))
        a = torch.softmax(torch.stack([fc(s) for fc in self.select], dim=1), dim=1)  # B x K x out
        return (a[..., None, None] * z).sum(dim=1)


class MSFusion(nn.Module):
    """F1, C1, C2 (normalized, B x in_ch x H x W, H and W multiples of 4) -> F2 = F1 + head(CSAFM(stages))."""

    size_multiple = 4

    def __init__(self, in_ch: int = 1, query_chunk: int | None = 2048, eval_tile: int | None = 256):
        super().__init__()
        if query_chunk is not None and query_chunk < 1:
            raise ValueError(f"MSFusion: query_chunk={query_chunk}; give a positive number of queries or null")
        if eval_tile is not None and (eval_tile < 4 or eval_tile % 4):
            raise ValueError(f"MSFusion: eval_tile={eval_tile} must be a multiple of 4 (the size multiple) or null")
        self.in_ch, self.query_chunk, self.eval_tile = in_ch, query_chunk, eval_tile
        self.norm = None  # AffineNorm, set by the training core; MSFusion needs no Kelvin quantity
        self.enc_fine = StageEncoder(in_ch)
        self.enc_diff = StageEncoder(in_ch)
        self.enc_coarse = StageEncoder(in_ch)  # shared by C1 and C2: their features must be comparable
        self.fusion = nn.ModuleList(StageFusion(w) for w in WIDTHS)
        self.csafm = CSAFM()
        self.head = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), _act(), nn.Conv2d(32, in_ch, 3, padding=1))

    def _check(self, batch: dict) -> None:
        missing = [k for k in KEYS if k not in batch]
        if missing:
            raise KeyError(f"MSFusion: batch lacks {missing}; it reads {list(KEYS)}")
        shapes = {tuple(batch[k].shape) for k in KEYS}
        shape = shapes.pop()
        if shapes or len(shape) != 4 or shape[1] != self.in_ch or shape[-2] % 4 or shape[-1] % 4:
            raise ValueError(f"MSFusion: {KEYS} must share one shape (B, {self.in_ch}, H, W) with H and W multiples "
                             f"of 4, got {sorted({tuple(batch[k].shape) for k in KEYS})}")

    def forward(self, batch: dict) -> torch.Tensor:
        self._check(batch)
        h, w = batch["coarse_tgt"].shape[-2:]
        if not self.training and self.eval_tile is not None and max(h, w) > self.eval_tile:
            return predict_scene(self._fuse, batch, self.size_multiple, self.eval_tile)
        return self._fuse(batch)

    def _fuse(self, batch: dict) -> torch.Tensor:
        f1, c1, c2 = (batch[k] for k in KEYS)
        fine, diff = self.enc_fine(f1), self.enc_diff(c2 - c1)
        confidence, idx = hard_attention(self.enc_coarse(c2)[-1], self.enc_coarse(c1)[-1], self.query_chunk)
        confidence = confidence.reshape(f1.shape[0], 1, *fine[-1].shape[-2:])  # S on the H/4 grid
        stages = []
        for level, (kernel, stride, padding) in enumerate(PATCHES):
            texture = transfer(fine[level], idx, kernel, stride, padding)
            conf = confidence if stride == 1 else F.interpolate(
                confidence, size=fine[level].shape[-2:], mode="bilinear", align_corners=False)
            stages.append(self.fusion[level](fine[level], diff[level], texture, conf))
        return f1 + self.head(self.csafm(stages, f1.shape[-2:]))
