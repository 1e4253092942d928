"""STF-Trans (reconstructed): a two-stream Swin-Unet fusion transformer.

Label: reconstructed. Paper: T. Benzenati, A. Kallel, Y. Kessentini, "STF-Trans: A two-stream spatiotemporal fusion
transformer for very high resolution satellites images", Neurocomputing, 126868, 2024, doi
10.1016/j.neucom.2023.126868. No code and no readable abstract; the design is ours, specs/models.md part 2 §16,
after the same authors' STA-Net: a temporal-difference stream and a sensor-difference stream merged by a learned
per-pixel weight.

- Stream = Swin-Unet: Conv4x4/4 + LN; Swin stages 64/128/256 (depth 2, heads 2/4/8, window 8, MLP ratio 4) joined
  by PatchMerging; decoder: patch expanding (Linear C->2C without bias, PixelShuffle 2, LN), concatenate the skip,
  Linear 2C->C, Swin stage, at 128 then 64; final x4 expanding (Linear 64->1024 without bias, PixelShuffle 4, LN)
  and Conv1x1 64->1.
- Temporal stream on [F1, C1, C2]: A = F1 + dT. Sensor stream on [C2, F1 - C1]: B = C2 + dS.
- Merge: w = sigmoid(Conv3x3 16->1 (GELU (Conv3x3 4->16 [A, B, F1, C2]))); F2_hat = w A + (1 - w) B.
- Loss (compute_loss): L1(F2_hat) + 0.5 [L1(A) + L1(B)], all masked by valid_tgt.

The deepest map (H/16) must tile into 8x8 windows, so the network works on sides that are multiples of 128. Other
sides (the 32 px patches of the debug runs, 950 px scenes) are replicate-padded inside `forward` up to the next
multiple and cropped back; at the published 256 px patches nothing is padded. Design count 6,042,291 (streams
3,021,289 and 3,020,265; merge 737).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.swin import PatchEmbed, PatchMerging, SwinLayer


class PatchExpand(nn.Module):
    """(B, H, W, C) -> (B, sH, sW, out_dim): Linear C -> out_dim * s^2 (no bias), PixelShuffle(s), LayerNorm."""

    def __init__(self, dim: int, out_dim: int, scale: int):
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, out_dim * scale ** 2, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(self.expand(x).permute(0, 3, 1, 2), self.scale)
        return self.norm(y.permute(0, 2, 3, 1))


class SwinUnet(nn.Module):
    """(B, in_ch, H, W) -> (B, 1, H, W): patch embed /4, Swin encoder with merging, Swin decoder with skips, x4."""

    def __init__(self, in_ch: int, dims=(64, 128, 256), depths=(2, 2, 2), heads=(2, 4, 8), patch: int = 4,
                 window: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        n = len(dims)
        self.embed = PatchEmbed(in_ch, dims[0], patch)
        self.encoder = nn.ModuleList(SwinLayer(dims[i], depths[i], heads[i], window, mlp_ratio) for i in range(n))
        self.merges = nn.ModuleList(PatchMerging(dims[i], dims[i + 1]) for i in range(n - 1))
        self.expands = nn.ModuleList(PatchExpand(dims[i + 1], dims[i], 2) for i in reversed(range(n - 1)))
        self.fuse = nn.ModuleList(nn.Linear(2 * dims[i], dims[i]) for i in reversed(range(n - 1)))
        self.decoder = nn.ModuleList(SwinLayer(dims[i], depths[i], heads[i], window, mlp_ratio)
                                     for i in reversed(range(n - 1)))
        self.final = PatchExpand(dims[0], dims[0], patch)
        self.head = nn.Conv2d(dims[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        skips = []
        for i, stage in enumerate(self.encoder):
            if i > 0:
                skips.append(x)
                x = self.merges[i - 1](x)
            x = stage(x)
        for expand, fuse, stage, skip in zip(self.expands, self.fuse, self.decoder, reversed(skips)):
            x = stage(fuse(torch.cat([expand(x), skip], dim=-1)))
        return self.head(self.final(x).permute(0, 3, 1, 2))


class STFTrans(nn.Module):
    """F1, C1, C2 (normalized, B x 1 x H x W) -> F2: temporal and sensor Swin-Unet streams, learned merge."""

    def __init__(self, dims=(64, 128, 256), depths=(2, 2, 2), heads=(2, 4, 8), patch: int = 4, window: int = 8,
                 mlp_ratio: float = 4.0, merge_width: int = 16, stream_weight: float = 0.5):
        super().__init__()
        self.multiple = patch * 2 ** (len(dims) - 1) * window
        self.stream_weight = stream_weight
        self.temporal = SwinUnet(3, dims, depths, heads, patch, window, mlp_ratio)
        self.sensor = SwinUnet(2, dims, depths, heads, patch, window, mlp_ratio)
        self.merge = nn.Sequential(nn.Conv2d(4, merge_width, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(merge_width, 1, 3, padding=1))
        self.norm = None  # AffineNorm, set by the training core; this model needs no Kelvin quantity

    def streams(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F2_hat, A, B)."""
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        h, w = c2.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:  # replicate: a pad may exceed the input side (32 px -> 128), which reflect cannot
            f1, c1, c2 = (F.pad(t, (0, pad_w, 0, pad_h), mode="replicate") for t in (f1, c1, c2))
        a = f1 + self.temporal(torch.cat([f1, c1, c2], dim=1))
        b = c2 + self.sensor(torch.cat([c2, f1 - c1], dim=1))
        wt = torch.sigmoid(self.merge(torch.cat([a, b, f1, c2], dim=1)))
        out = wt * a + (1 - wt) * b
        return out[..., :h, :w], a[..., :h, :w], b[..., :h, :w]

    def forward(self, batch: dict) -> torch.Tensor:
        return self.streams(batch)[0]

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L1(F2_hat) + stream_weight * [L1(A) + L1(B)], over observed target pixels."""
        out, a, b = self.streams(batch)
        target, valid = batch["fine_tgt"], batch["valid_tgt"]
        l1, la, lb = (masked_l1(x, target, valid) for x in (out, a, b))
        return {"loss": l1 + self.stream_weight * (la + lb), "l1": l1.detach(), "l1_temporal": la.detach(),
                "l1_sensor": lb.detach()}
