"""prepare -> train (2-job joblib sweep) -> evaluate on tiny synthetic data: the run folders, the leaderboard files,
and the temporal-delta baseline's scores recomputed with numpy from the store's own arrays."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stf_bench.baselines.blocks import BlockGrid, coarse_image

METHODS = {"edcstfn", "persistence", "coarse", "delta"}


def test_joblib_sweep_left_two_finished_runs(pipeline):
    sweep = pipeline["sweep"]
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/run.json")}
    assert sorted(runs) == ["0", "1"]
    assert sorted(r["seed"] for r in runs.values()) == [1, 2]
    for name, run in runs.items():
        assert run["status"] == "finished" and run["pairing"] == "previous"
        assert (sweep / name / "checkpoints" / "best.ckpt").is_file()
        assert (sweep / name / "checkpoints" / "last.ckpt").is_file()
    assert "JoblibLauncher" in (sweep / "multirun.yaml").read_text()


def test_leaderboard_files(pipeline):
    board = pipeline["leaderboard"]
    table = pd.read_csv(board / "leaderboard.csv")
    assert set(table["model"]) == METHODS and len(table) == 4
    assert (table[["dataset", "variant", "split", "pairing"]].drop_duplicates().values.tolist()
            == [["synthetic_small", "reproject", "chronological", "previous"]])
    rows = table.set_index("model")
    assert rows.loc["edcstfn", "n_runs"] == 2 and np.isfinite(rows.loc["edcstfn", "rmse_std"])
    assert (rows.loc[["persistence", "coarse", "delta"], "n_runs"] == 1).all()
    assert (rows["data_range_k"] == 60.0).all() and (rows["n_test_scenes"] == 2).all()
    assert rows.loc["edcstfn", "params"] == 278209 and rows.loc["delta", "params"] == 0
    assert rows.loc["delta", "skill_mean"] == 0.0  # delta against itself
    assert table["rmse_mean"].is_monotonic_increasing  # ranked

    md = (board / "leaderboard.md").read_text()
    assert "synthetic_small: L = 60 K" in md and "Mask: observed (not gap-filled) target pixels" in md
    assert md.count("| edcstfn ") == 1 and " ± " in md  # mean ± std over the two seeds
    tex, html = (board / "leaderboard.tex").read_text(), (board / "leaderboard.html").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "L = 60 K" in tex
    assert html.count('<tr class="row">') == 4 and html.count('<tr class="context">') == 1 and "L = 60 K" in html
    (context,) = set(table["context"])
    for kind in ("rmse", "scene"):
        (figure,) = (board / "figures").glob(f"{kind}_synthetic_small_reproject_*_{context}.png")
        assert figure.stat().st_size > 1000
    assert list((board / "wandb").glob("offline-run-*"))


def test_per_scene_rows(pipeline):
    per_scene = pd.read_csv(pipeline["leaderboard"] / "per_scene.csv")
    # 2 EDCSTFN runs + 3 baselines, each on the 2 test dates
    assert len(per_scene) == 5 * 2
    assert per_scene.groupby("model").size().to_dict() == {"coarse": 2, "delta": 2, "edcstfn": 4, "persistence": 2}
    for col in ("dataset", "variant", "split", "pairing", "seed", "run", "date", "rmse", "mae", "bias", "ubrmse",
                "r", "r2", "ssim", "psnr", "edge", "lbp", "skill", "n_pixels", "sse"):
        assert col in per_scene.columns, col
    assert per_scene["rmse"].between(0.0, 30.0).all()


def test_delta_rmse_equals_numpy_on_the_store(pipeline):
    store = Path(json.loads((pipeline["sweep"] / "0" / "run.json").read_text())["store"])
    manifest = json.loads((store / "manifest.json").read_text())
    values, observed = np.load(store / "values.npy"), np.load(store / "observed.npy")
    dates = [dt.date.fromisoformat(d["date"]) for d in manifest["dates"]]
    per_scene = pd.read_csv(pipeline["leaderboard"] / "per_scene.csv")
    delta = per_scene[per_scene["model"] == "delta"].set_index("date")["rmse"]
    # the chronological split tests the last 2 of the 12 dates; pairing=previous takes the date before each
    assert sorted(delta.index) == [d.isoformat() for d in dates[-2:]]
    inputs = np.where(observed, values, np.float32(np.nan))  # classical methods see their inputs' gaps
    block = (manifest["coarse_block"]["rows"], manifest["coarse_block"]["cols"])  # measured on the store's grid
    n_gaps = 0
    for t in (len(dates) - 2, len(dates) - 1):
        f1, c1, c2 = inputs[t - 1, 0], inputs[t - 1, 1], inputs[t, 1]
        pred = f1 + (c2 - c1)  # float32 arithmetic, as the baseline does
        gaps = np.isnan(pred)
        n_gaps += gaps.sum()
        assert gaps.mean() < 1  # the fallback chain (models.md part 3) serves the gaps: the coarse image
        fallback = coarse_image(torch.from_numpy(c2), BlockGrid(block, *c2.shape))
        pred = np.where(gaps, fallback.numpy(), pred).astype(np.float64)
        ref = values[t, 0].astype(np.float64)
        mask = observed[t, 0] & np.isfinite(ref) & np.isfinite(pred)
        assert 0 < mask.sum() < mask.size  # the mask matters: some target pixels are gap-filled
        expected = np.sqrt(np.mean((pred[mask] - ref[mask]) ** 2))
        assert delta[dates[t].isoformat()] == pytest.approx(expected, abs=1e-6)
    assert n_gaps > 0  # some input pixel of the two scenes is unobserved, so the fallback was checked


def test_classical_run_and_the_same_baseline_count_once(cli, pipeline, tmp_path):
    train = cli("train.py", "model=delta", *pipeline["tiny"], "logger=csv", f"paths.data_dir={pipeline['data']}")
    assert train.returncode == 0, train.stderr[-3000:]
    board = tmp_path / "board"
    proc = cli("evaluate.py", f"runs={tmp_path / 'outputs' / 'train'}", "baselines=[persistence,delta]",
               "wandb.enabled=false", f"paths.data_dir={pipeline['data']}", f"hydra.run.dir={board}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(board / "leaderboard.csv").set_index("model")
    assert sorted(table.index) == ["delta", "persistence"] and (table["n_runs"] == 1).all()
    # the same scenes as in the sweep's context, so the same numbers
    reference = pd.read_csv(pipeline["leaderboard"] / "leaderboard.csv").set_index("model")
    assert table.loc["delta", "rmse_mean"] == reference.loc["delta", "rmse_mean"]
