"""The leaderboard metrics of shared/specs/metrics.md: one fixed definition per column, in float64 Kelvin.

Published STF numbers disagree mostly because SSIM/PSNR conventions differ (data range, window, border, units), so
every choice is a named constant here and stated in the docstring that uses it.

Masks. Ω_eval = observed target pixels ∧ finite reference (∖ border, ∩ region) is what *should* be scored. A
prediction that is not finite inside Ω_eval is a model failure: it is counted in `n_pred_nonfinite` (the leaderboard
shows it) and the metrics are computed over the finite part Ω = Ω_eval ∧ finite prediction. Every metric, SSIM, EDGE
and LBP windows included, reads pixel values inside Ω only, so whatever lies outside Ω (NaN, filled gaps, the
border, pixels outside the region) cannot change any number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# SSIM (Wang et al. 2004) with the spec's fixed parameters.
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# A window centre is scored only if valid pixels carry at least this share of its Gaussian weight: a window of a few
# scattered pixels has no structure to compare and would score ≈ 1 on its luminance term alone (issue 8).
SSIM_MIN_WEIGHT = 0.5
# APA metrics (Zhu et al. 2022, RSE 274:113002), as in the authors' reference code (optimal_accuracy_metrics.pro).
EDGE_TOP_FRACTION = 0.10
APA_EPS = 1e-5
LBP_TOLERANCE_K = 0.2
# ERGAS resolution ratio h/l: Landsat 30 m over MODIS 1000 m.
ERGAS_RATIO = 30.0 / 1000.0
OPTIONAL_METRICS = ("psnr_scene_range", "ergas", "within_1k", "within_2k")
# Per-scene counts that aggregate sums instead of averaging.
_COUNT_KEYS = ("n_pixels", "n_pred_nonfinite", "sse", "ssim_centres")


# which value of each leaderboard metric is best (metrics.md): lowest, highest, or closest to zero (signed metrics)
BEST = {"rmse": "low", "mae": "low", "bias": "zero", "ubrmse": "low", "r": "high", "r2": "high", "ssim": "high",
        "psnr": "high", "edge": "zero", "lbp": "zero", "skill": "high"}

def _image(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image (H, W) in Kelvin, got shape {a.shape}; pass one band")
    return a


def _bool_mask(name: str, m, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype != bool:
        raise ValueError(f"{name}: expected a bool mask, got dtype {m.dtype}; pass {name}.astype(bool)")
    if m.shape != shape:
        raise ValueError(f"{name}: mask shape {m.shape} != image shape {shape}")
    return m


def evaluation_mask(ref, observed, border: int = 0, region=None) -> np.ndarray:
    """Ω_eval: the pixels that should be scored, whatever the prediction holds there.

    `observed` marks observed (not gap-filled) target pixels; `border` drops b pixels on each image edge (tile-edge
    artefacts); `region` (bool) keeps only pixels inside it, e.g. a city outline.
    """
    ref = _image("ref", ref)
    mask = _bool_mask("observed", observed, ref.shape) & np.isfinite(ref)
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border: expected a non-negative int number of pixels, got {border!r}")
    if border:
        if 2 * border >= min(ref.shape):
            raise ValueError(f"border: {border} px leaves nothing of a {ref.shape} image; use a smaller border")
        mask[:border] = mask[-border:] = False
        mask[:, :border] = mask[:, -border:] = False
    if region is not None:
        mask &= _bool_mask("region", region, ref.shape)
    return mask


def scoring_mask(ref, pred, observed, border: int = 0, region=None) -> np.ndarray:
    """Ω = Ω_eval ∧ finite prediction: the pixels every metric is computed on (see the module docstring)."""
    pred = _image("pred", pred)
    mask = evaluation_mask(ref, observed, border, region)
    if pred.shape != mask.shape:
        raise ValueError(f"pred: shape {pred.shape} != ref shape {mask.shape}")
    return mask & np.isfinite(pred)


def _gaussian_kernel() -> np.ndarray:
    """The 11-tap Gaussian (σ = 1.5) normalised to sum 1, as scikit-image and torchmetrics build it."""
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    k = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return k / k.sum()


def _local_mean_valid(a: np.ndarray) -> np.ndarray:
    """Gaussian-weighted sums over every 11×11 window that lies inside the image, shape (H-10, W-10)."""
    k, r = _gaussian_kernel(), SSIM_WINDOW // 2
    out = ndimage.correlate1d(a, k, axis=0, mode="constant")[r:-r]
    return ndimage.correlate1d(out, k, axis=1, mode="constant")[:, r:-r]


def _check_ssim_shape(shape) -> None:
    if min(shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(shape)}")


def _check_data_range(data_range) -> float:
    L = float(data_range)
    if not math.isfinite(L) or L <= 0:
        raise ValueError(
            f"data_range: expected a finite positive temperature range in K (config data_range_k), got {data_range!r}"
        )
    return L


def ssim(pred, ref, data_range: float, mask=None, min_weight: float = SSIM_MIN_WEIGHT) -> float:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window σ = 1.5 (11×11), K1 = 0.01, K2 = 0.03, fixed range L.

    Border: the map is averaged over window centres whose whole 11×11 window lies inside the image (the (H-10)×(W-10)
    interior), the scikit-image convention; it equals `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)`. torchmetrics' SSIM map (return_full_image=True) agrees on those
    centres, but its scalar also averages the reflect-padded edge centres, so its scalar differs by O(1e-3).

    Invalid pixels: local statistics use only pixels in `mask` (default: both finite), by normalised convolution
    (μ = G*(w·x) / G*w with population moments), so a gap neither enters a window nor is filled with invented
    values. The map is averaged over centres in `mask` whose window has at least `min_weight` of its Gaussian weight
    on valid pixels (metrics.md), so sparse masks cannot inflate the score. On a fully valid image this is exactly the
    standard SSIM. Returns NaN if no centre qualifies (`ssim_centres` of `scene_metrics` then reads 0).
    Not offset-invariant: pass Kelvin, as the leaderboard does.
    """
    return _ssim_and_centres(pred, ref, data_range, mask, min_weight)[0]


def _ssim_and_centres(pred, ref, data_range, mask, min_weight) -> tuple[float, int]:
    """`ssim` and the number of window centres it averaged."""
    pred, ref = _image("pred", pred), _image("ref", ref)
    L = _check_data_range(data_range)
    _check_ssim_shape(ref.shape)
    valid = np.isfinite(pred) & np.isfinite(ref)
    if mask is not None:
        valid &= _bool_mask("mask", mask, ref.shape)
    w = valid.astype(np.float64)
    x, y = np.where(valid, pred, 0.0), np.where(valid, ref, 0.0)
    gw = _local_mean_valid(w)
    r = SSIM_WINDOW // 2
    centres = valid[r:-r, r:-r] & (gw >= min_weight)
    n_centres = int(centres.sum())
    if not n_centres:
        return float("nan"), 0
    gw = np.where(centres, gw, 1.0)  # non-centres are discarded below; avoid 0/0 there
    mx, my = _local_mean_valid(w * x) / gw, _local_mean_valid(w * y) / gw
    vx = _local_mean_valid(w * x * x) / gw - mx * mx
    vy = _local_mean_valid(w * y * y) / gw - my * my
    cxy = _local_mean_valid(w * x * y) / gw - mx * my
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[centres].mean()), n_centres


def ssim_torch(pred: torch.Tensor, ref: torch.Tensor, data_range: float, valid: torch.Tensor | None = None,
               min_weight: float = SSIM_MIN_WEIGHT):
    """Batched SSIM for validation loops: the same definition as `ssim`, for (B,1,H,W) tensors, on any device.

    Each image is scored on its own (mean over its qualifying interior centres: valid, with at least `min_weight` of
    the window's Gaussian weight on valid pixels), then images are averaged, so the value does not depend on how a set
    of images is split into batches; images without a qualifying centre are skipped (NaN if none has one). `valid`
    (bool, optional) restricts the pixels used, like `mask` in `ssim`.

    SSIM's luminance term is not invariant to an offset: to reproduce the leaderboard value from normalised model
    outputs, convert both to Kelvin first (`norm.to_kelvin`) and pass `data_range_k`. Moments are computed after
    subtracting each image's mean reference value, so float32 Kelvin (~300) does not lose the variance to rounding.
    """
    if pred.shape != ref.shape or pred.ndim != 4 or pred.shape[1] != 1:
        raise ValueError(
            f"ssim_torch: expected pred and ref of equal shape (B,1,H,W), got {tuple(pred.shape)}, {tuple(ref.shape)}"
        )
    _check_ssim_shape(ref.shape)
    L = _check_data_range(data_range)
    ok = torch.isfinite(pred) & torch.isfinite(ref)
    if valid is not None:
        if valid.shape != ref.shape or valid.dtype != torch.bool:
            raise ValueError(f"ssim_torch: valid must be a bool tensor of shape {tuple(ref.shape)}")
        ok = ok & valid
    w = ok.to(ref.dtype)
    n = w.sum(dim=(1, 2, 3), keepdim=True)
    centre = (torch.where(ok, ref, 0.0).sum(dim=(1, 2, 3), keepdim=True) / n.clamp_min(1)).detach()
    x, y = torch.where(ok, pred - centre, 0.0), torch.where(ok, ref - centre, 0.0)

    k = torch.as_tensor(_gaussian_kernel(), dtype=ref.dtype, device=ref.device)
    b = ref.shape[0]
    stack = torch.cat([w, w * x, w * y, w * x * x, w * y * y, w * x * y])
    g = F.conv2d(F.conv2d(stack, k.view(1, 1, -1, 1)), k.view(1, 1, 1, -1))
    gw, sx, sy, sxx, syy, sxy = g.split(b)
    r = SSIM_WINDOW // 2
    cm = (ok[..., r:-r, r:-r] & (gw >= min_weight)).to(ref.dtype)
    gw = gw.clamp_min(1e-12)  # windows without valid pixels are never centres; keeps gradients finite
    mx, my = sx / gw, sy / gw
    vx, vy, cxy = sxx / gw - mx * mx, syy / gw - my * my, sxy / gw - mx * my
    mx, my = mx + centre, my + centre
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    n_centres = cm.sum(dim=(1, 2, 3))
    per_image = (s * cm).sum(dim=(1, 2, 3)) / n_centres.clamp_min(1)
    return per_image[n_centres > 0].mean()


def roberts_edge(img) -> np.ndarray:
    """APA's Roberts-cross edge strength |I(r,c) − I(r+1,c+1)| + |I(r,c+1) − I(r+1,c)|, anchored at (r,c).

    APA uses the sum of absolute differences (not the Euclidean magnitude). Shape (H-1, W-1).
    """
    a = np.asarray(img, dtype=np.float64)
    return np.abs(a[:-1, :-1] - a[1:, 1:]) + np.abs(a[:-1, 1:] - a[1:, :-1])


# LBP neighbours clockwise from the top-left, with APA's bit weights (top-left is the most significant bit).
_LBP_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
_LBP_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def lbp_codes(img, tolerance: float = LBP_TOLERANCE_K) -> np.ndarray:
    """APA's 8-neighbour local binary pattern of every interior pixel, shape (H-2, W-2), values 0..255.

    A neighbour sets its bit when it exceeds the centre by more than `tolerance` (neighbour > centre + tol, strict),
    so differences within the sensor noise (0.2 K for LST) do not count as texture.
    """
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape
    centre = a[1:-1, 1:-1]
    code = np.zeros(centre.shape, dtype=np.int64)
    for (dr, dc), weight in zip(_LBP_NEIGHBOURS, _LBP_WEIGHTS):
        code += weight * (a[1 + dr : h - 1 + dr, 1 + dc : w - 1 + dc] > centre + tolerance)
    return code


def _interior_support(mask: np.ndarray, offsets) -> np.ndarray:
    """Interior pixels (1..H-2, 1..W-2) that are in `mask` and whose neighbours at `offsets` are all in `mask`."""
    h, w = mask.shape
    ok = mask[1:-1, 1:-1].copy()
    for dr, dc in offsets:
        ok &= mask[1 + dr : h - 1 + dr, 1 + dc : w - 1 + dc]
    return ok


def _normalized_difference(p: np.ndarray, r: np.ndarray) -> float:
    return float(np.mean((p - r) / (np.abs(p + r) + APA_EPS)))


def edge_metric(pred, ref, mask) -> float:
    """APA EDGE: mean of (P_e − R_e)/(|P_e + R_e| + 1e-5) over the top 10 % reference edge pixels.

    < 0: edges weaker than the reference (blurred); > 0: over-sharpened. As in APA, edges are scored at interior
    anchors (rows/cols 1..H-2, 1..W-2), here only where the 2×2 Roberts support lies in `mask`. The threshold is APA's:
    the value at rank floor(0.9 n) of the sorted reference edges, keeping every edge ≥ it (ties included).
    """
    pred, ref = _image("pred", pred), _image("ref", ref)
    use = _interior_support(_bool_mask("mask", mask, ref.shape), ((0, 1), (1, 0), (1, 1)))
    if not use.any():
        return float("nan")
    r_e = roberts_edge(ref)[1:, 1:][use]
    p_e = roberts_edge(pred)[1:, 1:][use]
    threshold = np.sort(r_e)[(r_e.size * 9) // 10]
    top = r_e >= threshold
    return _normalized_difference(p_e[top], r_e[top])


def lbp_metric(pred, ref, mask, tolerance: float = LBP_TOLERANCE_K) -> float:
    """APA LBP texture metric: mean of (P − R)/(|P + R| + 1e-5) over LBP codes scaled to [0, 1] (code/255).

    0 is best; > 0 means more texture than the reference (noise), < 0 less (smoothing). Scored at interior pixels
    whose whole 3×3 neighbourhood lies in `mask`.
    """
    pred, ref = _image("pred", pred), _image("ref", ref)
    use = _interior_support(_bool_mask("mask", mask, ref.shape), _LBP_NEIGHBOURS)
    if not use.any():
        return float("nan")
    r = lbp_codes(ref, tolerance)[use] / 255.0
    p = lbp_codes(pred, tolerance)[use] / 255.0
    return _normalized_difference(p, r)


def _pearson(p: np.ndarray, r: np.ndarray) -> float:
    dp, dr = p - p.mean(), r - r.mean()
    denom = math.sqrt(float(np.sum(dp * dp)) * float(np.sum(dr * dr)))
    return float(np.sum(dp * dr)) / denom if denom > 0 else float("nan")


def _ratio_db(L: float, rmse: float) -> float:
    """20·log10(L / RMSE) in dB; +inf for a perfect prediction, -inf for a zero range."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(20.0 * np.log10(np.float64(L) / np.float64(rmse)))


def scene_metrics(
    pred,
    ref,
    observed,
    data_range: float,
    *,
    border: int = 0,
    region=None,
    delta_pred=None,
    optional: Sequence[str] = (),
) -> dict[str, float]:
    """All leaderboard columns for one scene (2-D arrays in Kelvin; `data_range` = the dataset's data_range_k).

    Keys: rmse, mae, bias, ubrmse, r, r2, ssim, psnr, edge, lbp, skill, n_pixels, n_pred_nonfinite, sse,
    ssim_centres, plus the `optional` ones (OPTIONAL_METRICS). n_pixels = |Ω|; n_pred_nonfinite = pixels of Ω_eval
    where the prediction is NaN/inf (reported, not hidden: the metrics then cover only the finite part). sse = Σe²
    lets `aggregate` pool RMSE. ssim_centres = the window centres SSIM averaged (0: too sparse a mask, SSIM is NaN).
    r2 is the coefficient of determination (can be negative). skill = 1 − RMSE_model / RMSE_delta with both RMSEs on
    Ω ∧ finite(delta_pred) (NaN without `delta_pred`). Optional: psnr_scene_range uses L = max − min of the reference
    over Ω; ergas = 100·(h/l)·RMSE/μ with μ the mean reference in K; within_1k/2k = % of pixels with |e| ≤ 1/2 K.
    """
    pred, ref = _image("pred", pred), _image("ref", ref)
    L = _check_data_range(data_range)
    unknown = [k for k in optional if k not in OPTIONAL_METRICS]
    if unknown:
        raise ValueError(f"optional: unknown metric(s) {unknown}; choose from {list(OPTIONAL_METRICS)}")
    omega_eval = evaluation_mask(ref, observed, border, region)
    if not omega_eval.any():
        raise ValueError(
            f"no observed, finite reference pixel to score (shape {ref.shape}, border={border}); "
            "drop target dates without observations from the test split or relax border/region"
        )
    omega = scoring_mask(ref, pred, observed, border, region)
    n = int(omega.sum())
    out = {key: float("nan") for key in ("rmse", "mae", "bias", "ubrmse", "r", "r2", "ssim", "psnr", "edge", "lbp")}
    out.update(skill=float("nan"), n_pixels=n, n_pred_nonfinite=int((omega_eval & ~omega).sum()), sse=0.0,
               ssim_centres=0)
    out.update({k: float("nan") for k in optional})
    if n == 0:
        return out

    p, r = pred[omega], ref[omega]
    e = p - r
    sse = float(np.sum(e * e))
    bias = float(np.mean(e))
    rmse = math.sqrt(sse / n)
    sst = float(np.sum((r - r.mean()) ** 2))
    ssim_value, ssim_centres = _ssim_and_centres(pred, ref, L, omega, SSIM_MIN_WEIGHT)
    out.update(
        rmse=rmse,
        mae=float(np.mean(np.abs(e))),
        bias=bias,
        ubrmse=math.sqrt(float(np.mean((e - bias) ** 2))),
        r=_pearson(p, r),
        r2=1.0 - sse / sst if sst > 0 else float("nan"),
        ssim=ssim_value,
        ssim_centres=ssim_centres,
        psnr=_ratio_db(L, rmse),
        edge=edge_metric(pred, ref, omega),
        lbp=lbp_metric(pred, ref, omega),
        sse=sse,
    )
    if delta_pred is not None:
        delta = _image("delta_pred", delta_pred)
        if delta.shape != ref.shape:
            raise ValueError(f"delta_pred: shape {delta.shape} != ref shape {ref.shape}")
        both = omega & np.isfinite(delta)
        if both.any():
            rmse_model = math.sqrt(float(np.mean((pred[both] - ref[both]) ** 2)))
            rmse_delta = math.sqrt(float(np.mean((delta[both] - ref[both]) ** 2)))
            with np.errstate(divide="ignore", invalid="ignore"):
                out["skill"] = float(1.0 - np.float64(rmse_model) / np.float64(rmse_delta))
    if "psnr_scene_range" in optional:
        out["psnr_scene_range"] = _ratio_db(float(r.max() - r.min()), rmse)
    if "ergas" in optional:
        out["ergas"] = 100.0 * ERGAS_RATIO * rmse / float(r.mean())
    if "within_1k" in optional:
        out["within_1k"] = 100.0 * float(np.mean(np.abs(e) <= 1.0))
    if "within_2k" in optional:
        out["within_2k"] = 100.0 * float(np.mean(np.abs(e) <= 2.0))
    return out


def aggregate(per_scene: list[dict]) -> dict[str, float]:
    """Leaderboard row from per-scene results: unweighted mean, median and std (ddof = 1) over scenes per metric.

    Also rmse_pooled = √(Σ sse / Σ n) over all scored pixels, n_scenes, the summed n_pixels / n_pred_nonfinite /
    ssim_centres, and n_scenes_without_ssim (scenes whose mask is too sparse for SSIM, which is then NaN).
    No scene is dropped and NaN is not skipped: a NaN or inf in any scene shows in the aggregate. std is NaN for a
    single scene (a spread over one sample is undefined).
    """
    if not per_scene:
        raise ValueError("aggregate: per_scene is empty; score at least one test scene")
    keys = set(per_scene[0])
    for i, row in enumerate(per_scene):
        if set(row) != keys:
            raise ValueError(
                f"aggregate: scene {i} has keys {sorted(row)} but scene 0 has {sorted(keys)}; "
                "score all scenes with the same `optional` and `delta_pred` settings"
            )
    missing = [k for k in _COUNT_KEYS if k not in keys]
    if missing:
        raise ValueError(f"aggregate: per-scene results lack {missing}; pass the dicts returned by scene_metrics")
    out: dict[str, float] = {"n_scenes": len(per_scene)}
    for key in sorted(keys - set(_COUNT_KEYS)):
        v = np.array([row[key] for row in per_scene], dtype=np.float64)
        out[f"{key}_mean"] = float(np.mean(v))
        out[f"{key}_median"] = float(np.median(v))
        out[f"{key}_std"] = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    n_total = sum(int(row["n_pixels"]) for row in per_scene)
    sse_total = sum(float(row["sse"]) for row in per_scene)
    out["rmse_pooled"] = math.sqrt(sse_total / n_total) if n_total else float("nan")
    out["n_pixels"] = n_total
    out["n_pred_nonfinite"] = sum(int(row["n_pred_nonfinite"]) for row in per_scene)
    out["ssim_centres"] = sum(int(row["ssim_centres"]) for row in per_scene)
    out["n_scenes_without_ssim"] = sum(int(row["ssim_centres"]) == 0 for row in per_scene)
    return out
