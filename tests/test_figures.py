"""Scene figures, RMSE bars and the dataset quicklook: scales from the data, dates in titles, no empty panel."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from stf_bench.data.report import quicklook, quicklook_figure  # noqa: E402
from stf_bench.figures import bar_figure, comparison_figure, rmse_bar_chart, save_comparison  # noqa: E402

DATES = "2019-07-04,2019-06-18,2019-08-05"


def scene(mean=285.0, seed=0, size=48):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = mean + 4.0 * np.sin(xx / 7.0) + 3.0 * np.cos(yy / 9.0) + rng.normal(0, 0.5, (size, size))
    image[:5, :5] = np.nan  # an unobserved corner
    return image


def panels(fig):
    """The figure's axes less its colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def lst_norms(fig):
    return {(im.norm.vmin, im.norm.vmax) for ax in panels(fig) for im in ax.images if im.get_cmap().name == "inferno"}


def error_norms(fig):
    return {(im.norm.vmin, im.norm.vmax) for ax in panels(fig) for im in ax.images if im.get_cmap().name == "RdBu_r"}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_colour_scale_covers_a_biased_prediction():
    ref = scene()
    biased = ref + 10.0
    fig = comparison_figure(ref, {"good": ref + 0.3, "biased": biased}, dates=DATES)
    ((vmin, vmax),) = lst_norms(fig)  # one scale shared by the reference and every prediction
    assert vmin <= np.nanpercentile(ref, 1) + 1e-9 and vmax >= np.nanpercentile(biased, 99) - 1e-9
    # the old scale (the reference's 1-99 %) put most of the biased image above its top
    assert np.mean(biased > np.nanpercentile(ref, 99)) > 0.7
    assert np.mean(biased > vmax) <= 0.011


@pytest.mark.parametrize("bias, low, high", [(20.0, 15.0, 25.0), (0.5, 0.3, 1.0)])
def test_error_scale_grows_with_the_data(bias, low, high):
    ref = scene()
    fig = comparison_figure(ref, {"a": ref + bias, "b": ref - bias / 2}, dates=DATES)
    ((vmin, vmax),) = error_norms(fig)
    assert vmin == -vmax and low <= vmax <= high


def test_titles_have_the_dates_and_no_axis_is_empty():
    ref = scene()
    fig = comparison_figure(ref, {"a": ref + 1, "b": ref - 1, "c": ref}, title="yanco", dates=DATES,
                            coarse=scene(seed=1))
    titles = " ".join([fig._suptitle.get_text()] + [ax.get_title() for ax in fig.axes])
    for date in DATES.split(","):
        assert date in titles
    assert len(panels(fig)) == 2 * 4
    assert all(ax.images or ax.texts for ax in panels(fig))


def test_without_coarse_the_reference_error_cell_holds_the_dates_and_mask():
    ref = scene()
    fig = comparison_figure(ref, {"prediction": ref + 1}, dates=DATES)
    (text_axis,) = [ax for ax in panels(fig) if not ax.images]
    text = text_axis.texts[0].get_text()
    assert "2019-06-18" in text and f"{int(np.isfinite(ref).sum())} of {ref.size}" in text


def test_many_methods_wrap_without_empty_cells(tmp_path):
    ref = scene()
    preds = {f"m{k}": ref + k for k in range(8)}  # 9 panels: two blocks of up to 6 columns
    fig = comparison_figure(ref, preds, dates=DATES)
    assert len(panels(fig)) == 2 * 9 and all(ax.images or ax.texts for ax in panels(fig))
    image = save_comparison(tmp_path / "scene.png", ref, preds, "t", DATES)
    assert image.ndim == 3 and (tmp_path / "scene.png").stat().st_size > 1000


def test_bars_are_coloured_by_family_with_seed_spread(tmp_path):
    names, means, stds = ["edcstfn", "delta", "ganstfm", "starfm"], [2.0, 3.0, 2.5, 2.8], [0.2, np.nan, 0.1, np.nan]
    families = ["AE", "classical", "GAN", "classical"]
    fig = bar_figure(names, means, stds, families, "t")
    ax = fig.axes[0]
    colour = {label.get_text(): to_hex(bar.get_facecolor()) for label, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert colour["delta"] == colour["starfm"] != colour["edcstfn"] == colour["ganstfm"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["classical", "deep"]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    spread = {labels[round(segment[0, 1])]: np.ptp(segment[:, 0]) / 2
              for segment in bars.lines[2][0].get_segments() if segment.size}
    assert spread == pytest.approx({"edcstfn": 0.2, "ganstfm": 0.1})  # one seed: no bar
    assert rmse_bar_chart(tmp_path / "bars.png", names, means, stds, families, "t").ndim == 3


def test_quicklook_has_a_mask_legend_and_per_date_contrast(tmp_path):
    rng = np.random.default_rng(0)
    cold = 270.0 + rng.normal(0, 2, (2, 32, 32))
    hot = 315.0 + rng.normal(0, 2, (2, 32, 32))
    values = np.stack([cold, hot]).astype(np.float32)
    observed = rng.random(values.shape) > 0.3
    fig = quicklook_figure(["2019-01-10", "2019-07-10"], values, observed)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["neither", "fine only", "coarse only", "both"]
    for col, date_values in enumerate(values):
        lst = [ax.images[0] for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "inferno"
               and ax.get_title().startswith(["2019-01-10", "2019-07-10"][col])]
        assert len(lst) == 2
        for image in lst:
            low, high = np.percentile(image.get_array().compressed(), [5, 95])
            # most of this date's colour range is used (a shared 270-315 K scale would use about 15 % of it)
            assert (high - low) / (image.norm.vmax - image.norm.vmin) > 0.6
    quicklook(tmp_path / "q.png", ["2019-01-10", "2019-07-10"], values, observed)
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
