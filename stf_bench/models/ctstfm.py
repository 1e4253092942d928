"""CTSTFM: a CNN-Transformer combined spatiotemporal fusion model (reconstructed).

Paper: M. Jiang, H. Shao, "A CNN-Transformer Combined Remote Sensing Imagery Spatiotemporal Fusion Model", IEEE JSTARS
17, 13995-14009, 2024, doi 10.1109/JSTARS.2024.3435739. Label: reconstructed. No code; only "CNN + Transformer
hybrid" is known: the design is specs/models.md part 2 §15, a hybrid U-Net.

- Stem: Conv3x3 ([F1, C1, C2, C2 - C1] -> 32).
- Hybrid block(C): Conv1x1 (2C -> C) over two branches, a CNN branch x + Conv3x3 -> GELU -> Conv3x3 and a
  Transformer branch of 2 Swin blocks (window 8, regular then shifted, C/16 heads, MLP ratio 2, qkv bias, relative
  position bias; ``blocks/swin.py``).
- Encoder: hybrid blocks at 32, 64, 128, each followed by Conv2x2 s2 (C -> 2C); bottleneck hybrid block at 256 (H/8).
- Decoder: ConvTranspose2x2 s2 (2C -> C) -> cat(skip) -> Conv1x1 (2C -> C) -> hybrid block, at 128, 64, 32.
- Head: Conv3x3 (32 -> 1); output = F1 + head (linear). 4,334,425 parameters.
- Loss: the YAML's CompositeLoss, masked L1 + (1 - MS-SSIM, product variant) on the gap-filled target.

Deviation: models.md declares ``size_multiple: 64`` (the H/8 bottleneck must tile into 8x8 windows). The network
instead pads its input internally to the next multiple of 64 (reflect, replicate where reflection cannot reach) and
crops the output, so it also takes the benchmark's 32 px debug patches; the YAML declares ``size_multiple: 1``.
At the published 256 px patches nothing is padded.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.swin import SwinLayer


class HybridBlock(nn.Module):
    """Conv1x1 (2C -> C) over [CNN residual branch, Swin branch]."""

    def __init__(self, ch: int, window: int, swin_depth: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.swin = SwinLayer(ch, swin_depth, ch // head_dim, window, mlp_ratio, qkv_bias=True)
        self.merge = nn.Conv2d(2 * ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = x + self.cnn(x)
        glob = self.swin(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.merge(torch.cat([local, glob], 1))


class CTSTFM(nn.Module):
    """Hybrid CNN-Swin U-Net; reads ``fine_ref``, ``coarse_ref``, ``coarse_tgt``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), window: int = 8, swin_depth: int = 2,
                 head_dim: int = 16, mlp_ratio: float = 2.0):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if any(w % head_dim for w in widths):
            raise ConfigError(f"ctstfm: model.net.widths={list(widths)} must be multiples of model.net.head_dim="
                              f"{head_dim} (C/head_dim attention heads)")
        self.size_multiple = window * 2 ** (len(widths) - 1)
        self.norm = None  # set by the training core; no Kelvin quantity is needed
        block = lambda c: HybridBlock(c, window, swin_depth, head_dim, mlp_ratio)  # noqa: E731
        self.stem = nn.Conv2d(4, widths[0], 3, padding=1)
        self.encoder = nn.ModuleList(block(c) for c in widths[:-1])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.bottleneck = block(widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths[-2::-1], widths[:0:-1]))
        self.merge = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in widths[-2::-1])
        self.decoder = nn.ModuleList(block(c) for c in widths[-2::-1])
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad bottom/right to the next multiple of ``size_multiple``; reflect where the image is large enough."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.size_multiple, -w % self.size_multiple
        if not (ph or pw):
            return x
        return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")

    def forward(self, batch: dict) -> torch.Tensor:
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        h, w = f1.shape[-2:]
        x = self.stem(self._pad(torch.cat([f1, c1, c2, c2 - c1], 1)))
        skips = []
        for block, down in zip(self.encoder, self.down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, merge, block in zip(self.up, self.merge, self.decoder):
            x = block(merge(torch.cat([up(x), skips.pop()], 1)))
        return f1 + self.head(x)[..., :h, :w]
