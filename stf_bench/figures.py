"""Pictures people look at: reference / prediction / error panels and the RMSE-by-model bar chart."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

MAX_COLUMNS = 6  # wider figures are unreadable: more methods wrap onto further row pairs
FAMILY_COLOURS = {"classical": "#7f7f7f", "deep": "#1f77b4"}
# no data in grey: white would read as zero error
LST_CMAP = plt.get_cmap("inferno").with_extremes(bad="#9e9e9e")
ERROR_CMAP = plt.get_cmap("RdBu_r").with_extremes(bad="#9e9e9e")


def _to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def lst_limits(images: list[np.ndarray]) -> tuple[float, float]:
    """The union of each image's 1-99 % range: a biased prediction stays inside the scale instead of saturating."""
    lows, highs = [], []
    for image in images:
        finite = image[np.isfinite(image)]
        if finite.size:
            low, high = np.percentile(finite, [1, 99])
            lows.append(low)
            highs.append(high)
    if not lows:
        return 0.0, 1.0
    vmin, vmax = float(min(lows)), float(max(highs))
    return (vmin, vmax) if vmax > vmin else (vmin - 0.5, vmax + 0.5)


def error_limit(errors: list[np.ndarray]) -> float:
    """Symmetric error scale: the 99th percentile of |error| pooled over all methods (0.1 K at least)."""
    pooled = np.concatenate([np.abs(e[np.isfinite(e)]).ravel() for e in errors]) if errors else np.empty(0)
    return max(float(np.percentile(pooled, 99)), 0.1) if pooled.size else 1.0


def _date_text(dates: str) -> tuple[str, str]:
    """('target T', 'references R1, R2') from the sample's 'target,ref1[,ref2]' string."""
    target, *refs = [d for d in dates.split(",") if d]
    return f"target {target}", ("references " + ", ".join(refs)) if refs else "no reference dates"


def comparison_figure(ref: np.ndarray, preds: dict[str, np.ndarray], title: str = "", dates: str = "",
                      coarse: np.ndarray | None = None):
    """Reference plus one column per prediction: LST on one scale covering all of them (upper row) and the error
    P - R on a symmetric scale from the data (lower row). Below the reference sits the target-date MODIS image
    when given, else the dates and the mask summary, so no panel is empty. `dates`: 'target,ref1[,ref2]'."""
    target, references = _date_text(dates) if dates else ("", "")
    shown = [ref, *preds.values()] + ([coarse] if coarse is not None else [])
    vmin, vmax = lst_limits(shown)
    errors = {name: pred - ref for name, pred in preds.items()}
    elim = error_limit(list(errors.values()))
    panels = 1 + len(preds)
    cols = min(panels, MAX_COLUMNS)
    blocks = math.ceil(panels / cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(2.9 * cols + 1.0, 5.4 * blocks + 0.9), squeeze=False,
                             layout="constrained")
    cells = [(axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]) for k in range(panels)]
    for k in range(panels, blocks * cols):  # the last block's unused columns: removed, never left blank
        fig.delaxes(axes[2 * (k // cols), k % cols])
        fig.delaxes(axes[2 * (k // cols) + 1, k % cols])

    top, bottom = cells[0]
    lst = top.imshow(ref, vmin=vmin, vmax=vmax, cmap=LST_CMAP)
    top.set_title(f"reference (Landsat)\n{target}".strip(), fontsize=9)
    if coarse is not None:
        bottom.imshow(coarse, vmin=vmin, vmax=vmax, cmap=LST_CMAP)
        bottom.set_title(f"MODIS on the target date\n{target} (LST scale)".strip(), fontsize=9)
    else:
        valid = np.isfinite(ref)
        bottom.text(0.5, 0.5, f"{target}\n{references}\n\nobserved reference pixels\n"
                    f"{valid.sum()} of {valid.size} ({100 * valid.mean():.1f} %)",
                    ha="center", va="center", fontsize=9, transform=bottom.transAxes)
        bottom.set_title("dates and mask", fontsize=9)
    err = None
    for (name, pred), (top, bottom) in zip(preds.items(), cells[1:]):
        top.imshow(pred, vmin=vmin, vmax=vmax, cmap=LST_CMAP)
        top.set_title(name, fontsize=9)
        err = bottom.imshow(errors[name], vmin=-elim, vmax=elim, cmap=ERROR_CMAP)
        rmse = float(np.sqrt(np.nanmean(errors[name] ** 2)))
        bias = float(np.nanmean(errors[name]))
        bottom.set_title(f"error: RMSE {rmse:.2f} K, bias {bias:+.2f} K", fontsize=8)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_frame_on(False)
    # one bar per scale, beside the first block's rows (the blocks below share both scales): bars spanning
    # interleaved rows would overlap
    fig.colorbar(lst, ax=list(axes[0, :cols]), shrink=0.9, label="LST [K]")
    if err is not None:
        fig.colorbar(err, ax=list(axes[1, :cols]), shrink=0.9,
                     label=f"prediction - reference [K]\n(±{elim:.1f} K: 99 % of |error|)")
    fig.suptitle("\n".join(t for t in (title, f"{target}, {references}" if dates else "") if t), fontsize=10)
    return fig


def scene_panel(ref: np.ndarray, pred: np.ndarray, title: str = "", dates: str = "") -> np.ndarray:
    """RGB array of reference, prediction and error for one scene (for W&B)."""
    return _to_rgb(comparison_figure(ref, {"prediction": pred}, title, dates))


def save_comparison(path: Path, ref: np.ndarray, preds: dict[str, np.ndarray], title: str, dates: str = "",
                    coarse: np.ndarray | None = None) -> np.ndarray:
    fig = comparison_figure(ref, preds, title, dates, coarse)
    fig.savefig(path, dpi=90)
    return _to_rgb(fig)


def family_group(family: str) -> str:
    """'classical' for the baselines (trivial ones included), 'deep' for every learned family (AE, GAN, ViT...)."""
    return "classical" if str(family).lower() == "classical" else "deep"


def bar_figure(names: list[str], means: list[float], stds: list[float], families: list[str], title: str):
    """Horizontal bars, best at the top, coloured by family, with the seed spread as error bars."""
    order = np.argsort(means)[::-1]
    groups = [family_group(families[i]) for i in order]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.8))
    ax.barh([names[i] for i in order], [means[i] for i in order],
            xerr=[stds[i] for i in order],  # NaN (a single seed) draws no bar
            color=[FAMILY_COLOURS[g] for g in groups], capsize=3, ecolor="black")
    ax.legend(handles=[Patch(color=FAMILY_COLOURS[g], label=g) for g in FAMILY_COLOURS if g in groups],
              loc="best", fontsize=8)
    ax.set_xlabel("RMSE [K] (mean over test scenes; error bar: std over seeds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def rmse_bar_chart(path: Path, names: list[str], means: list[float], stds: list[float], families: list[str],
                   title: str) -> np.ndarray:
    fig = bar_figure(names, means, stds, families, title)
    fig.savefig(path, dpi=90)
    return _to_rgb(fig)
