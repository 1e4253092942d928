"""The leaderboard: one row per (evaluation context, model, recipe), mean ± std over seeds, in four formats.

Each run is first reduced to its mean over test scenes; a row then aggregates runs whose context (store fingerprint,
complete split, pairing) and recipe are identical, so they differ in the model seed alone. Every file states the
data range L and the mask policy, since SSIM and PSNR mean nothing without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stf_bench.figures import rmse_bar_chart, save_comparison
from stf_bench.metrics import SSIM_MIN_WEIGHT

CONTEXT = ["context", "dataset", "store_hash", "variant", "split", "pairing"]
GROUP = CONTEXT + ["model", "recipe"]
METRICS = {"rmse": "RMSE [K]", "mae": "MAE [K]", "bias": "Bias [K]", "ubrmse": "ubRMSE [K]", "r": "r",
           "r2": "R² (can be < 0)", "ssim": "SSIM", "psnr": "PSNR [dB]", "edge": "EDGE", "lbp": "LBP",
           "skill": "Skill vs delta"}
DECIMALS = {"r": 4, "r2": 3, "ssim": 4, "edge": 3, "lbp": 3, "skill": 3}


def display_name(model: str, label: str) -> str:
    """Reconstructed designs are never shown as the published model."""
    return f"{model} (reconstructed)" if label == "reconstructed" else model


def leaderboard_table(per_scene: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Numeric leaderboard: <metric>_mean / <metric>_std over seeds, plus efficiency and bookkeeping columns."""
    per_run = per_scene.groupby(GROUP + ["run", "seed"], dropna=False)[list(METRICS)].mean().reset_index()
    pooled = (per_scene.groupby(GROUP + ["run", "seed"], dropna=False)[["sse", "n_pixels"]].sum().reset_index())
    per_run["rmse_pooled"] = np.sqrt(pooled["sse"] / pooled["n_pixels"])
    stats = per_run.groupby(GROUP, dropna=False)[list(METRICS) + ["rmse_pooled"]].agg(["mean", "std"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["n_runs"] = per_run.groupby(GROUP, dropna=False).size()
    eff = runs.groupby(GROUP, dropna=False).agg(
        label=("label", "first"), family=("family", "first"), params=("params", "first"),
        macs_g=("macs_g", "mean") if "macs_g" in runs else ("params", lambda s: np.nan),
        inference_s=("inference_s", "mean"), train_s=("train_s", "mean"),
        train_peak_mb=("train_peak_mb", "max"), device=("device", "first"),
        n_test_scenes=("n_test_scenes", "first"), data_range_k=("data_range_k", "first"))
    table = stats.join(eff).reset_index()
    table["name"] = [display_name(m, lab) for m, lab in zip(table["model"], table["label"])]
    # one model trained with two recipes in one context: two rows, told apart by their recipe hash
    twice = table.duplicated(["context", "model"], keep=False)
    table.loc[twice, "name"] = table.loc[twice, "name"] + " · recipe " + table.loc[twice, "recipe"]
    return table.sort_values(["dataset", "store_hash", "variant", "split", "pairing", "rmse_mean"]).reset_index(drop=True)


def _fmt(mean: float, std: float, decimals: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{decimals}f}" + (f" ± {std:.{decimals}f}" if np.isfinite(std) else "")


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable columns: 'mean ± std' strings and rounded efficiency figures."""
    shown = pd.DataFrame({"Model": table["name"], "Family": table["family"], "Source": table["label"],
                          "Dataset": table["dataset"], "Store": table["store_hash"], "Variant": table["variant"],
                          "Split": table["split"], "Pairing": table["pairing"], "Seeds": table["n_runs"]})
    for key, title in METRICS.items():
        shown[title] = [_fmt(m, s, DECIMALS.get(key, 2)) for m, s in zip(table[f"{key}_mean"], table[f"{key}_std"])]
    shown["Params"] = [f"{int(p):,}" if pd.notna(p) else "n/a" for p in table["params"]]
    shown["MACs/256² [G]"] = [f"{m:.2f}" if pd.notna(m) else "—" for m in table["macs_g"]]
    shown["Inference [s/scene]"] = [f"{s:.2f}" for s in table["inference_s"]]
    shown["Train [min]"] = [f"{s / 60:.1f}" if pd.notna(s) and s else "—" for s in table["train_s"]]
    shown["Train peak [MB]"] = [f"{m:,.0f}" if pd.notna(m) else "—" for m in table["train_peak_mb"]]
    return shown


def header_lines(table: pd.DataFrame, border: int, device: str, failed: list[dict] = ()) -> list[str]:
    ranges = ", ".join(f"{d}: L = {r:g} K" for d, r in table.groupby("dataset")["data_range_k"].first().items())
    scenes = ", ".join(f"{d}: {n}" for d, n in table.groupby("dataset")["n_test_scenes"].first().items())
    return [
        f"Data range for SSIM/PSNR (fixed per dataset): {ranges}.",
        "Mask: observed (not gap-filled) target pixels with a finite prediction"
        + (f", minus a {border}-px border" if border else "") + "; SSIM averages the window centres with at least "
        f"{SSIM_MIN_WEIGHT:.0%} of their Gaussian weight on such pixels (per_scene.csv: ssim_centres; 0 means NaN).",
        f"Each run is averaged over its whole test scenes ({scenes}); ± is the std over seeds. "
        f"Skill = 1 − RMSE/RMSE(delta) on the same scenes. Inference [s/scene]: the median of timed whole-scene "
        f"predictions after one untimed warm-up, on {device}.",
        "Rows pool only runs of one evaluation context (the store named by its hash, the complete split with its "
        "seed, the pairing) and one recipe: they differ in the model seed alone.",
        "Models labelled (reconstructed) are our designs from the paper's abstract, not the published networks.",
    ] + [f"Not scored: {f['method']}" + (f" ({f['run']})" if f["run"] else "") + f" in {f['context']}: {f['reason']}"
         for f in failed]


def write_leaderboard(result: dict, out_dir: Path, border: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """leaderboard.md/.csv/.tex/.html, per_scene.csv and figures/; returns the numeric and the displayed table and
    the figure images."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = leaderboard_table(result["per_scene"], result["runs"])
    shown = display_table(table)
    header = header_lines(table, border, result["device"], result.get("failed", []))
    result["per_scene"].to_csv(out_dir / "per_scene.csv", index=False)
    table.to_csv(out_dir / "leaderboard.csv", index=False)
    (out_dir / "leaderboard.md").write_text(
        "# stf_bench leaderboard\n\n" + "\n".join(f"- {h}" for h in header) + "\n\n"
        + shown.to_markdown(index=False, disable_numparse=True) + "\n")  # a hash such as 72660e3 stays text
    latex = shown.to_latex(index=False, caption=" ".join(header), label="tab:stf_bench", escape=True)
    (out_dir / "leaderboard.tex").write_text(latex.replace("±", r"$\pm$").replace("²", r"$^2$"))
    from stf_bench.evaluation.html_page import leaderboard_page  # it imports METRICS from here

    (out_dir / "leaderboard.html").write_text(leaderboard_page(table, shown, header), encoding="utf-8")
    images = {}
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    for context, entry in result["figures"].items():
        ident, by_model = entry["ident"], entry["models"]
        stem = f"{ident['dataset']}_{ident['variant']}_{ident['store_hash']}_{context}"
        title = (f"{ident['dataset']} [{ident['store_hash']}] {ident['variant']}, split {ident['split']}, "
                 f"pairing {ident['pairing']}")
        sub = table[table.context == context]
        images[f"rmse_{stem}"] = rmse_bar_chart(fig_dir / f"rmse_{stem}.png", list(sub["name"]),
                                                list(sub["rmse_mean"]), list(sub["rmse_std"]), list(sub["family"]),
                                                title)
        first = next(iter(by_model.values()))
        preds = {display_name(m, f["label"]): f["pred"] for m, f in
                 sorted(by_model.items(), key=lambda kv: kv[1]["rmse_run"])}
        images[f"scene_{stem}"] = save_comparison(fig_dir / f"scene_{stem}.png", first["ref"], preds,
                                                  f"{title}\nbest run of each model", first["dates"], first["coarse"])
    return table, shown, images
