"""Blocks of the multi-stream fusion networks MSNet and EMSNet (models.md part 2 §11 and §14).

Per reference k, a Transformer stream T reads the coarse change dC_k = C2 - C_k and a CNN stream E (the "Extract
Net") reads [F_k, C_k, C2]; the two are blended into one prediction P_k = F_k + a T_k + (1 - a) E_k, a = sigmoid(s).
Both references share the weights. EMSNet differs only in options: dilated Extract Net branches, a LeFF MLP (a
depthwise conv on the token grid) and its own weighting of the P_k, which lives in its model module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TokenMlp(nn.Module):
    """Linear -> GELU -> Linear; with ``leff`` a depthwise Conv3x3 + GELU on the token grid sits between them (LeFF)."""

    def __init__(self, dim: int, hidden: int, grid: int, leff: bool = False):
        super().__init__()
        self.grid = grid
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if leff else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.fc1(x))
        if self.dw is not None:
            b, n, c = x.shape
            g = x.transpose(1, 2).reshape(b, c, self.grid, self.grid)
            x = F.gelu(self.dw(g)).flatten(2).transpose(1, 2)
        return self.fc2(x)


class PreNormBlock(nn.Module):
    """Pre-LN Transformer block: x + MSA(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, grid: int, leff: bool = False):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), grid, leff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class DeltaTransformer(nn.Module):
    """T(dC): Conv p x p stride p (1 -> dim) + learned positions -> pre-LN blocks -> LN -> Linear (dim -> p^2) per
    token, folded back to 1 x H x W. The learned positions tie it to one input size (``size``)."""

    def __init__(self, in_ch: int = 1, size: int = 256, patch: int = 16, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, leff: bool = False):
        super().__init__()
        if size % patch:
            raise ValueError(f"DeltaTransformer: size {size} is not a multiple of the patch {patch}")
        self.size, self.patch, self.in_ch = size, patch, in_ch
        grid = size // patch
        self.embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(PreNormBlock(dim, heads, mlp_ratio, grid, leff) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, in_ch * patch * patch)

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        x = self.embed(delta).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        b, n, _ = x.shape
        grid = self.size // self.patch
        pixels = self.out(self.norm(x)).transpose(1, 2).reshape(b, -1, grid, grid)
        return F.pixel_shuffle(pixels, self.patch)  # token (i, j) fills pixels [16i, 16i+16) x [16j, 16j+16)


class ExtractNet(nn.Module):
    """E([F_k, C_k, C2]): three parallel branches (3x3, 5x5, 7x7; or 3x3 dilated 1, 2, 3) with ReLU, concatenated,
    then Conv3x3 (3*width -> 64, dilation ``mid_dilation``) -> ReLU -> Conv3x3 (64 -> 32) -> ReLU -> Conv3x3 (-> 1)."""

    def __init__(self, in_ch: int = 1, width: int = 32, dilated: bool = False):
        super().__init__()
        shapes = [(3, 1), (3, 2), (3, 3)] if dilated else [(3, 1), (5, 1), (7, 1)]  # (kernel, dilation)
        self.branches = nn.ModuleList(
            nn.Conv2d(3 * in_ch, width, k, padding=d * (k // 2), dilation=d) for k, d in shapes)
        mid = 2 if dilated else 1
        self.body = nn.Sequential(
            nn.Conv2d(3 * width, 64, 3, padding=mid, dilation=mid), nn.ReLU(),
            nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, in_ch, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([F.relu(b(x)) for b in self.branches], dim=1))


class MultiStream(nn.Module):
    """One intermediate prediction per reference: P_k = F_k + a T(C2 - C_k) + (1 - a) E([F_k, C_k, C2]),
    a = sigmoid(s) with s = 0 at the start (an even blend)."""

    def __init__(self, in_ch: int = 1, size: int = 256, patch: int = 16, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, dilated: bool = False, leff: bool = False):
        super().__init__()
        self.transformer = DeltaTransformer(in_ch, size, patch, dim, depth, heads, mlp_ratio, leff)
        self.extract = ExtractNet(in_ch, dilated=dilated)
        self.blend = nn.Parameter(torch.zeros(()))

    def forward(self, fine_ref: torch.Tensor, coarse_ref: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.blend)
        t = self.transformer(coarse_tgt - coarse_ref)
        e = self.extract(torch.cat([fine_ref, coarse_ref, coarse_tgt], dim=1))
        return fine_ref + a * t + (1 - a) * e


REF_KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")


def check_two_refs(name: str, batch: dict, size: int, in_ch: int) -> None:
    """Both references present, one shape, and the fixed size the learned positions were made for."""
    missing = [k for k in REF_KEYS if k not in batch]
    if missing:
        raise KeyError(f"{name}: batch lacks {missing}; it reads two references (pairing two_refs): {list(REF_KEYS)}")
    shapes = {tuple(batch[k].shape) for k in REF_KEYS}
    if len(shapes) != 1:
        raise ValueError(f"{name}: inputs {REF_KEYS} must share one shape, got {sorted(shapes)}")
    shape = shapes.pop()
    if len(shape) != 4 or shape[1] != in_ch or shape[-2:] != (size, size):
        raise ValueError(f"{name}: input is {shape} but the model takes (B, {in_ch}, {size}, {size}) (its fixed_size, "
                         f"set by the learned positions); cut {size} px patches (the evaluation tiler does this)")
