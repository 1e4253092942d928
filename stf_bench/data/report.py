"""What a user looks at after building a dataset: a per-date table and a quicklook picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table
from rich.text import Text

from stf_bench.data.units import IMPLAUSIBLE_WARN

QUICKLOOK = "quicklook.png"


def summary_table(manifest: dict, path: Path, cache_hit: bool) -> Table:
    """Dates with observed and filled fractions of each sensor, the values dropped as implausible per file and, for
    the resize, how far it misplaces MODIS."""
    title = f"{manifest['dataset']['name']} / {manifest['variant']}  ({'cache hit' if cache_hit else 'built'})"
    caption = f"{path}\ngrid {manifest['grid']['height']}x{manifest['grid']['width']}, values in K, NaN = no data"
    block = manifest.get("coarse_block")
    if block:
        caption += f"\nMODIS pixel = {block['rows']:.2f} x {block['cols']:.2f} fine pixels (rows x cols)"
    shift = manifest.get("misregistration")
    if shift:
        caption += (f"\nMODIS misplaced by the resize vs its georeference: {1000 * shift['mean_km']:.0f} m on average, "
                    f"{1000 * shift['max_km']:.0f} m at most (preprocess=reproject places it by the georeference)")
    table = Table(title=title, caption=caption)
    fractions = ("fine_valid", "fine_filled", "coarse_valid", "coarse_filled")
    columns = ["date", "fine valid", "fine filled", "coarse valid", "coarse filled", "fine implausible",
               "coarse implausible"]
    if shift:
        columns += ["MODIS shift mean km", "max km"]
    for col in columns:
        table.add_column(col, justify="right")
    for d in manifest["dates"]:
        cells = [f"{100 * d[k]:.1f} %" for k in fractions]
        cells += [_implausible(d.get("implausible"), sensor) for sensor in ("fine", "coarse")]
        if shift:
            cells += [f"{d['misregistration_mean_km']:.2f}", f"{d['misregistration_max_km']:.2f}"]
        table.add_row(d["date"], *cells)
    return table


def _implausible(counts: dict | None, sensor: str) -> Text:
    """The count of values the source dropped as outside the plausible LST range; red above 1 % of the file."""
    if counts is None:  # a store built before the count was recorded
        return Text("-")
    n, fraction = counts[sensor], counts[f"{sensor}_fraction"]
    if fraction > IMPLAUSIBLE_WARN:
        return Text(f"{n} ({100 * fraction:.1f} %)", style="bold red")
    return Text(str(n))


MASK_CODES = (("neither", "#d9d9d9"), ("fine only", "#4daf4a"), ("coarse only", "#377eb8"), ("both", "#e41a1c"))


def quicklook_figure(dates: list, values: np.ndarray, observed: np.ndarray, n: int = 4):
    """Fine, coarse (on the fine grid) and the observed mask for `n` evenly spread dates. Each date has its own
    colour scale (its 1-99 % over both sensors), so a winter scene is not black on a summer scale; the mask codes
    have a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    picks = np.unique(np.linspace(0, len(dates) - 1, min(n, len(dates))).round().astype(int))
    mask_cmap = ListedColormap([colour for _, colour in MASK_CODES])
    lst_cmap = plt.get_cmap("inferno").with_extremes(bad="#9e9e9e")
    fig, axes = plt.subplots(3, len(picks), figsize=(3.2 * len(picks), 10), squeeze=False, layout="constrained")
    for col, k in enumerate(picks):
        finite = values[k][np.isfinite(values[k])]
        vmin, vmax = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        panels = (
            (values[k, 0], "fine (Landsat)", {"vmin": vmin, "vmax": vmax, "cmap": lst_cmap}),
            (values[k, 1], "coarse (MODIS)", {"vmin": vmin, "vmax": vmax, "cmap": lst_cmap}),
            (observed[k, 0].astype(int) + 2 * observed[k, 1], "observed",
             {"vmin": -0.5, "vmax": 3.5, "cmap": mask_cmap, "interpolation": "nearest"}),
        )
        for row, (img, title, style) in enumerate(panels):
            image = axes[row, col].imshow(img, **style)
            axes[row, col].set_title(f"{dates[k]}\n{title}", fontsize=8)
            axes[row, col].axis("off")
            if row == 1:
                fig.colorbar(image, ax=axes[1, col], shrink=0.8, orientation="horizontal",
                             label=f"LST [K], {dates[k]} (grey: no data)")
    fig.legend(handles=[Patch(color=colour, label=label) for label, colour in MASK_CODES], loc="outside lower center",
               ncol=len(MASK_CODES), fontsize=8, title="observed", title_fontsize=8)
    return fig


def quicklook(path: Path, dates: list, values: np.ndarray, observed: np.ndarray, n: int = 4) -> None:
    import matplotlib.pyplot as plt

    fig = quicklook_figure(dates, values, observed, n)
    fig.savefig(path, dpi=80)
    plt.close(fig)
