"""MUSTFN (Qin et al., 2022): multi-scale CNN on two fine references and three coarse dates, with a pyramid-pooling
branch, a dilated-convolution branch and channel attention.

Paper: P. Qin, H. Huang, H. Tang, J. Wang, C. Liu, "MUSTFN: A spatiotemporal fusion method for multi-scale and
multi-sensor remote sensing images based on a convolutional neural network", Int. J. Appl. Earth Obs. Geoinf.
115:103113, 2022, doi 10.1016/j.jag.2022.103113. Label: official-code, read from GitHub qpyeah/MUSTFN @6456a6a
(`MUSTFN.py`, `my_train.py`; no licence, nothing copied). Widths are those of the official 6-band model; only the
stem inputs ([F1, F3] -> 2 channels, [C1, C2, C3] -> 3) and the output (1 band) change.

Fidelity: the official `MyNet` built for one band (stems Conv 2->12 and Conv 3->21, output 1x1 64->1; 8,655,928
parameters), BatchNorm statistics set by one training-mode pass, its weights copied into this module, a
2 x 256 x 256 input, outputs compared before the official sigmoid (std 0.39): max abs difference 8.9e-7 in eval
mode and 6.1e-7 in training mode (float32, CPU; the global pooling sums in another order); run from the worktree:
`PYTHONPATH=$PWD python /work/scratch/mustfn/fidelity.py`.

Deliberate deviations from the official code:
- The official module defines a second coarse Conv 21->21 (`deep_conv1_4`, 4,011 parameters) that its forward
  never calls. It is left out: a trainable parameter that never receives a gradient fails the model contract, so
  this module has 8,651,917 parameters against the catalogue's 8,655,928 (-0.05 %, within the 2 % rule).
- Pyramid pooling sizes follow the input (H/4, H/8, H/16, at least 1 px; the official code hard-codes 64, 32, 16
  and upsamples to 256), so 32 px patches work; at H = 256 the two are identical.
- Linear output: the official final sigmoid is removed (values are normalized LST and may leave [0, 1]).
- Loss for one band: MSE over `valid_tgt` (the official multiplies the output by a cloud mask and divides each
  band's MSE by beta_b^2; its NDVI term needs red and NIR) plus, from epoch 20, 0.1 (1 - SSIM) with SSIM one global
  statistic over the masked batch. The official computes that covariance in NumPy, which cuts its gradient, and uses
  the range 1.6384; here the covariance is differentiable and the range is the explicit `data_range`.
- Initialisation as in the official code: He-normal std sqrt(2 / (k^2 C_out)) and BatchNorm (1, 0) on the feature
  network (stems, f1, and the down-sampling convs and bottlenecks of g1 and h1); the pyramid, dilated branches,
  attention and head keep PyTorch's default, because the official `_initialize_weights` belongs to `Feature_net`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    """Official Conv / Dconv: replication pad d, 3x3 conv (dilation d, no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.ReplicationPad2d(dilation),
                         nn.Conv2d(cin, cout, 3, stride=stride, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


def conv1x1(cin: int, cout: int) -> nn.Sequential:
    """Official Conv1: 1x1 conv (no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def depthwise3x3(ch: int) -> nn.Sequential:
    """Official DSconv: replication pad 1, depthwise 3x3 (no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(ch, ch, 3, groups=ch, bias=False), nn.BatchNorm2d(ch),
                         nn.ReLU())


def bottleneck(ch: int) -> nn.Sequential:
    """1x1 ch->2ch, 3x3 2ch->2ch, 1x1 2ch->ch; the caller adds the input (residual)."""
    return nn.Sequential(conv1x1(ch, 2 * ch), conv3x3(2 * ch, 2 * ch), conv1x1(2 * ch, ch))


def he_init(module: nn.Module) -> None:
    """The official rule: conv weights N(0, 2 / (k^2 C_out)), BatchNorm weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class PyramidStage(nn.Module):
    """g1: stride-2 dilated conv to H/2 plus a residual bottleneck (feature2), then average pooling of feature2 to
    H/4, H/8 and H/16, a 1x1 conv each, bilinear back to H, concatenated and fused by a 1x1 conv."""

    def __init__(self, cin: int = 66, width: int = 132):
        super().__init__()
        self.down = conv3x3(cin, width, dilation=2, stride=2)
        self.bottleneck = bottleneck(width)
        self.branches = nn.ModuleList(conv1x1(width, 2 * width) for _ in range(3))
        self.fuse = conv1x1(6 * width, 2 * width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature2 at H/2, pyramid features at H)."""
        size = x.shape[-2:]
        x = self.down(x)
        feature = x + self.bottleneck(x)
        pooled = [upsample(branch(F.adaptive_avg_pool2d(feature, [max(1, s // div) for s in size])), size)
                  for branch, div in zip(self.branches, (4, 8, 16))]
        return feature, self.fuse(torch.cat(pooled, 1))


class DilatedStage(nn.Module):
    """h1: stride-2 dilated conv to H/4 plus a residual bottleneck, three parallel dilated convs (d 2, 4, 8),
    concatenated, fused by a 1x1 conv and upsampled bilinearly to H."""

    def __init__(self, cin: int = 132, width: int = 264, out: int = 396):
        super().__init__()
        self.down = conv3x3(cin, width, dilation=2, stride=2)
        self.bottleneck = bottleneck(width)
        self.branches = nn.ModuleList(conv3x3(width, out, dilation=d) for d in (2, 4, 8))
        self.fuse = conv1x1(3 * out, out)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.down(x)
        feature = x + self.bottleneck(x)
        return upsample(self.fuse(torch.cat([branch(feature) for branch in self.branches], 1)), size)


class ChannelAttention(nn.Module):
    """Global average pool -> 1x1 C->r, ReLU -> 1x1 r->r -> 1x1 r->C -> sigmoid; multiplies the features."""

    def __init__(self, ch: int = 726, hidden: int = 150):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Conv2d(ch, hidden, 1, bias=False), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1, bias=False),
            nn.Conv2d(hidden, ch, 1, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean((2, 3), keepdim=True))


def global_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM as one statistic over all given values (means, unbiased variances and covariance), as MUSTFN's loss."""
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)  # half loses (0.01 L)^2
    x, y = x.to(dtype).flatten(), y.to(dtype).flatten()
    n = x.numel()
    if n < 2:
        raise ValueError(f"global SSIM needs at least 2 observed target pixels, got {n}")
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).sum() / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (x.var() + y.var() + c2))


class MUSTFN(nn.Module):
    """F2 from fine [F1, F3] and coarse [C1, C2, C3] on the fine grid (all five inputs are required).

    `ssim_weight` and `ssim_from_epoch`: the loss is MSE + ssim_weight (1 - global SSIM) from that epoch on;
    `data_range` is the normalized span of the training data (1.0 under min-max).
    """

    def __init__(self, in_ch: int = 1, ssim_weight: float = 0.1, ssim_from_epoch: int = 20, data_range: float = 1.0):
        super().__init__()
        self.ssim_weight, self.ssim_from_epoch, self.data_range = ssim_weight, ssim_from_epoch, data_range
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.stem_fine = nn.Sequential(conv3x3(2 * in_ch, 12), conv3x3(12, 12))
        self.stem_coarse = conv3x3(3 * in_ch, 21)
        self.f1 = nn.Sequential(conv1x1(33, 66), depthwise3x3(66), conv1x1(66, 33))
        self.g1 = PyramidStage(66, 132)
        self.h1 = DilatedStage(132, 264, 396)
        self.attention = ChannelAttention(66 + 264 + 396, 150)
        self.head = nn.Sequential(conv3x3(726, 128), conv3x3(128, 64), nn.Conv2d(64, in_ch, 1, bias=False))
        for part in (self.stem_fine, self.stem_coarse, self.f1, self.g1.down, self.g1.bottleneck, self.h1.down,
                     self.h1.bottleneck):
            he_init(part)

    def forward(self, batch: dict) -> torch.Tensor:
        fine = torch.cat([batch["fine_ref"], batch["fine_ref2"]], 1)
        coarse = torch.cat([batch["coarse_ref"], batch["coarse_tgt"], batch["coarse_ref2"]], 1)
        x = torch.cat([self.stem_fine(fine), self.stem_coarse(coarse)], 1)
        feature1 = torch.cat([x, self.f1(x)], 1)
        feature2, pyramid = self.g1(feature1)
        dilated = self.h1(feature2, feature1.shape[-2:])
        return self.head(self.attention(torch.cat([feature1, pyramid, dilated], 1)))

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """MSE over observed target pixels, plus ssim_weight (1 - global SSIM over them) from `ssim_from_epoch`."""
        pred = self(batch) if pred is None else pred
        valid = batch["valid_tgt"].bool().expand_as(pred)
        x, y = pred[valid], batch["fine_tgt"][valid]
        mse = (x - y).pow(2).mean()
        ssim = global_ssim(x, y, self.data_range)
        loss = mse + self.ssim_weight * (1 - ssim) if epoch >= self.ssim_from_epoch else mse
        return {"loss": loss, "mse": mse.detach(), "ssim": ssim.detach()}
