"""SSIM and the MS-SSIM loss variants of the official STF repositories, with an explicit data range.

All official repositories copy one file (jorge-pessoa/pytorch-msssim): Gaussian window 11, sigma 1.5, no padding,
window shrunk to min(11, H, W), 2x2 average pooling between 5 levels, and each level reduced to one number by
averaging over the whole batch. They differ only in how the per-level values are combined:

- ``product`` (GAN-STFM, EDCSTFN, MLFF-GAN, RSFN, AMS-STF, SFT-GAN): ssim and cs mapped to (v + 1) / 2, then
  prod_{i=1..4} (cs_i^w_i * ssim_5^w_5), so level 5 enters with exponent 4 * w_5 (a quirk kept on purpose).
  ``edcstfn`` names the same computation: EDCSTFN ships the identical file and calls it with ``normalize=True``.
- ``relu`` (SwinSTFM, THSTNet): ssim and cs become relu(v) + 0.01, then prod_{i=1..4} cs_i^w_i * ssim_5^w_5 and
  min(result + 0.05, 1), as SwinSTFM's ``pytorch_ssim.py`` does.

The official code guesses the data range from the values (and switches to 2 when any value is below -0.5); here it
is always given, because a range inferred per batch makes the loss depend on the batch content.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
SIGMA = 1.5
_VARIANTS = ("product", "relu", "edcstfn")


def _gaussian_window(size: int, channels: int, device, dtype) -> torch.Tensor:
    """Separable Gaussian centred on size // 2 (as the official code; off-centre for even sizes), one per channel."""
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _check(x: torch.Tensor, y: torch.Tensor, data_range: float) -> None:
    if data_range is None or not float(data_range) > 0:
        raise ValueError(
            f"data_range must be a positive number (the normalized span of the training data, 1.0 under min-max), "
            f"got {data_range!r}; it is never inferred from the data"
        )
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"expected two tensors of equal shape (B,C,H,W), got {tuple(x.shape)} and {tuple(y.shape)}")


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term over all valid (unpadded) window positions of the batch."""
    c = x.shape[1]
    size = min(WINDOW_SIZE, x.shape[-2], x.shape[-1])
    window = _gaussian_window(size, 5 * c, x.device, x.dtype)
    moments = F.conv2d(torch.cat([x, y, x * x, y * y, x * y], 1), window, groups=5 * c)
    mu_x, mu_y, exx, eyy, exy = moments.split(c, 1)
    var_x, var_y, cov = exx - mu_x**2, eyy - mu_y**2, exy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(), cs_map.mean()


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half precision would lose the stability constants (0.01 L)^2; float64 input stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Single-scale SSIM (Gaussian 11, sigma 1.5, unpadded), averaged over the batch."""
    _check(x, y, data_range)
    return _ssim_cs(_at_least_float32(x), _at_least_float32(y), float(data_range))[0]


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, variant: str = "product") -> torch.Tensor:
    """Five-level MS-SSIM of two (B,C,H,W) batches as one scalar (see the module docstring for the variants).

    H and W must be at least 16 so that the fifth level has a pixel. Computed in float32 or float64.
    """
    _check(x, y, data_range)
    if variant not in _VARIANTS:
        raise ValueError(f"unknown MS-SSIM variant {variant!r}; choose one of {_VARIANTS}")
    levels = len(MS_SSIM_WEIGHTS)
    if min(x.shape[-2:]) < 2 ** (levels - 1):
        raise ValueError(f"MS-SSIM needs H and W >= {2 ** (levels - 1)} for {levels} levels, got {tuple(x.shape[-2:])}")
    x, y = _at_least_float32(x), _at_least_float32(y)
    ssims, css = [], []
    for level in range(levels):
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        s, cs = _ssim_cs(x, y, float(data_range))
        ssims.append(s)
        css.append(cs)
    s, cs = torch.stack(ssims), torch.stack(css)
    w = torch.tensor(MS_SSIM_WEIGHTS, device=s.device, dtype=s.dtype)
    if variant == "relu":
        s, cs = torch.relu(s) + 0.01, torch.relu(cs) + 0.01
        out = torch.prod(cs[:-1] ** w[:-1]) * s[-1] ** w[-1]
        return torch.clamp(out + 0.05, max=1.0)
    s, cs = (s + 1) / 2, (cs + 1) / 2
    return torch.prod(cs[:-1] ** w[:-1] * s[-1] ** w[-1])
