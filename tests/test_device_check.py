"""`make gpu-check` on a CPU: the same script end to end with tiny settings, so it cannot rot between GPU runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]


def test_device_check_tiny_covers_every_model(tmp_path):
    models = {p.stem: OmegaConf.load(p).lightning_module for p in (REPO / "conf" / "model").glob("*.yaml")}
    deep = {m for m, kind in models.items() if kind != "none"}
    assert {"edcstfn", "ganstfm", "swinstfm"} <= deep and len(models) > len(deep)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "device_check.py"), "--tiny", "--out", str(tmp_path)],
                   check=True, env=env, cwd=tmp_path, capture_output=True, timeout=1200)
    [result_file] = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["tiny"] and result["slug"].startswith("cpu-")
    fp32 = {r["model"]: r for r in result["train"] if r["variant"] == "fp32"}
    assert set(fp32) == deep
    for r in fp32.values():
        assert r["status"] == "ok", r
        assert r["samples_per_s"] > 0 and r["loader_samples_per_s"] > 0 and r["loader_over_train"] > 0
        assert r["steps"] >= 1 and r["step_s"] > 0
    gpu_only = [r for r in result["train"] + result["ddp"] if r not in fp32.values()]
    assert len(gpu_only) == 3 * len(deep) + len(deep) and all(r["status"] == "skipped (no GPU)" for r in gpu_only)
    inference = {r["model"]: r for r in result["inference"]}
    assert set(inference) == set(models)
    for r in inference.values():
        assert r["status"] == "ok", r
        assert r["median_s"] >= 0 and r["repeats"] >= 1 and r["size"] == result["settings"]["scene"]
    table = result_file.with_suffix(".md").read_text()
    assert all(f"| {m} |" in table for m in models) and "skipped (no GPU)" in table


def test_train_throughput_reports_rates_and_peak_memory(tmp_path):
    """benchmarks/train_throughput.py on one model, one step: every column measured, memory in MB."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--models", "edcstfn",
                          "--steps", "1", "--batch", "2", "--patch", "32"],
                         check=True, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300).stdout
    assert "train peak MB" in out and "scene peak MB" in out
    [row] = [line for line in out.splitlines() if "edcstfn" in line and "│" in line]
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1] == "2 x 32²"
    train, loader, ratio, train_mb, scene_s, scene_mb = cells[2:]
    assert float(train) > 0 and float(loader) > 0 and ratio.endswith("x")
    assert 100 < float(train_mb) < 24_000 and 100 < float(scene_mb) < 24_000 and float(scene_s) > 0
