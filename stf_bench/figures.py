"""Pictures people look at: reference / prediction / error panels and the RMSE-by-model bar chart."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def comparison_figure(ref: np.ndarray, preds: dict[str, np.ndarray], title: str = "", error_limit: float = 5.0):
    """One column per prediction plus the reference: LST on a shared scale (row 1) and error P - R (row 2)."""
    finite = ref[np.isfinite(ref)]
    vmin, vmax = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    cols = len(preds) + 1
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6.4), squeeze=False)
    axes[0, 0].imshow(ref, vmin=vmin, vmax=vmax, cmap="inferno")
    axes[0, 0].set_title("reference (Landsat)", fontsize=9)
    axes[1, 0].axis("off")
    for col, (name, pred) in enumerate(preds.items(), start=1):
        lst = axes[0, col].imshow(pred, vmin=vmin, vmax=vmax, cmap="inferno")
        axes[0, col].set_title(name, fontsize=9)
        err = axes[1, col].imshow(pred - ref, vmin=-error_limit, vmax=error_limit, cmap="RdBu_r")
        rmse = float(np.sqrt(np.nanmean((pred - ref) ** 2)))
        axes[1, col].set_title(f"error, RMSE {rmse:.2f} K", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if preds:
        fig.colorbar(lst, ax=axes[0].tolist(), shrink=0.8, label="LST [K]")
        fig.colorbar(err, ax=axes[1].tolist(), shrink=0.8, label="prediction - reference [K]")
    fig.suptitle(title, fontsize=10)
    return fig


def scene_panel(ref: np.ndarray, pred: np.ndarray, title: str = "") -> np.ndarray:
    """RGB array of reference, prediction and error for one scene (for W&B)."""
    return _to_rgb(comparison_figure(ref, {"prediction": pred}, title))


def save_comparison(path: Path, ref: np.ndarray, preds: dict[str, np.ndarray], title: str) -> np.ndarray:
    fig = comparison_figure(ref, preds, title)
    fig.savefig(path, dpi=90)
    return _to_rgb(fig)


def rmse_bar_chart(path: Path, names: list[str], means: list[float], stds: list[float], title: str) -> np.ndarray:
    """Horizontal bars, best at the top, with the seed spread as error bars."""
    order = np.argsort(means)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
    ax.barh([names[i] for i in order], [means[i] for i in order],
            xerr=[0 if not np.isfinite(stds[i]) else stds[i] for i in order], color="#c0504d")
    ax.set_xlabel("RMSE [K] (mean over test scenes; error bar: std over seeds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return _to_rgb(fig)
