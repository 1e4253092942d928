"""What ``evaluate.py`` does: score every finished run and the classical baselines on whole test scenes.

Runs are grouped by evaluation context (dataset store, split, pairing); within a context every method sees the same
test scenes and the same mask (observed target pixels, metrics.md), and the temporal-delta prediction of the same
sample gives the Skill column.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from stf_bench.data.normalization import AffineNorm
from stf_bench.data.samples import make_samples
from stf_bench.data.store import build_dataset
from stf_bench.errors import DataError
from stf_bench.evaluation.efficiency import count_macs
from stf_bench.evaluation.metrics import scene_metrics
from stf_bench.evaluation.runs import Run, discover_runs, restore_module
from stf_bench.training.classical import ClassicalModule

log = logging.getLogger(__name__)
KELVIN = AffineNorm(0.0, 1.0)


@dataclass
class Context:
    """One (dataset store, split, pairing): its test samples in Kelvin and the methods scored on them."""

    cfg: DictConfig
    runs: list[Run] = field(default_factory=list)

    def setup(self, data_dir: str) -> None:
        self.store, _ = build_dataset(self.cfg.dataset, self.cfg.preprocess, data_dir)
        samples, _ = make_samples(self.store.dates, instantiate(self.cfg.split), instantiate(self.cfg.pairing))
        self.specs = samples["test"]

    def samples(self, nan_inputs: bool = False):
        """Test samples as batches of one, in Kelvin (each run re-normalizes with its own statistics); `nan_inputs`:
        unobserved inputs stay NaN (classical methods, models.md fallback chain)."""
        from stf_bench.data.datamodule import SceneDataset

        for sample in SceneDataset(self.store, KELVIN, self.specs, nan_inputs):
            yield {k: (torch.from_numpy(v)[None] if k != "meta" else v) for k, v in sample.items()}


def _normalize(batch: dict, norm: AffineNorm, device) -> dict:
    from stf_bench.evaluation.tiling import IMAGE_KEYS

    out = {}
    for key, value in batch.items():
        if key in IMAGE_KEYS or key == "fine_tgt":
            value = norm.from_kelvin(value)
        out[key] = value.to(device) if torch.is_tensor(value) else value
    return out


def score_method(name: str, module, context: Context, device, data_range: float, border: int,
                 optional: list[str]) -> tuple[list[dict], dict, dict]:
    """Per-scene metrics, efficiency figures and the prediction of the first test scene (for the figures)."""
    rows, predictions, seconds = [], {}, []
    nan_inputs = bool(module.model_cfg.get("nan_inputs"))
    batches = zip(context.samples(), context.samples(nan_inputs=True))
    for filled, observed in tqdm(batches, total=len(context.specs), desc=f"scoring {name}", unit="scene", leave=False):
        batch = observed if nan_inputs else filled
        ref = batch["fine_tgt"][0, 0].numpy().astype(np.float64)
        valid = batch["valid_tgt"][0, 0].numpy()
        # F1 + (C2 - C1) in float32 on observed inputs (NaN elsewhere, so Skill counts the pixels where it is defined),
        # the delta baseline's own arithmetic: its skill is exactly 0
        delta = (observed["fine_ref"] + (observed["coarse_tgt"] - observed["coarse_ref"]))[0, 0].numpy()
        delta = delta.astype(np.float64)
        started = time.perf_counter()
        with torch.no_grad():
            pred = module.predict_kelvin(_normalize(batch, module.norm, device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
        pred = pred[0, 0].float().cpu().numpy().astype(np.float64)
        scores = scene_metrics(pred, ref, valid, data_range, border=border, delta_pred=delta, optional=optional)
        date = batch["meta"]["dates"].split(",")[0]
        rows.append({"date": date, **scores, **{f"fallback_{k}": v for k, v in
                                                  (getattr(module.net, "last_stats", None) or {}).items()}})
        if not predictions:
            predictions[date] = pred
    efficiency = {"inference_s": float(np.mean(seconds)), "device": str(device)}
    return rows, efficiency, predictions


def build_contexts(runs: list[Run]) -> dict[tuple, Context]:
    contexts: dict[tuple, Context] = {}
    for run in runs:
        cfg = run.cfg
        key = (run.info["store"], run.info["split"], run.info["pairing"])
        if key not in contexts:
            contexts[key] = Context(OmegaConf.create({k: cfg[k] for k in ("dataset", "preprocess", "split",
                                                                          "pairing", "paths")}))
        contexts[key].runs.append(run)
    return contexts


def baseline_module(model_id: str, context: Context, conf_dir: Path, device) -> ClassicalModule:
    """A classical baseline, configured from conf/model/<id>.yaml against this context's dataset."""
    path = conf_dir / "model" / f"{model_id}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (conf_dir / "model").glob("*.yaml"))
        raise DataError(f"evaluate.baselines: no model config {path}; available: {', '.join(available)}.")
    model_cfg = OmegaConf.load(path)
    merged = OmegaConf.merge({"dataset": context.cfg.dataset}, {"model": model_cfg})
    model = OmegaConf.to_container(merged.model, resolve=True)
    module = ClassicalModule(model_cfg=model, norm=KELVIN.to_json(),
                             data_range_k=float(context.cfg.dataset.data_range_k), dataset_id={})
    return module.to(device).eval()


def evaluate(cfg: DictConfig, conf_dir: Path) -> dict:
    """Score everything; returns per-scene rows, per-run summaries and figure inputs for the leaderboard writer."""
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    patterns = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs)
    runs, skipped = discover_runs(patterns)
    for line in skipped:
        log.warning("skipped %s", line)
    if not runs:
        raise DataError(
            f"evaluate: no finished run with a checkpoint under {', '.join(patterns)}"
            + (f" ({len(skipped)} run folder(s) skipped: {'; '.join(skipped[:3])})" if skipped else
               " (no run.json found: is this a stf_bench output folder?)")
            + ". Train first (python train.py ...) or point runs= at a folder of finished runs."
        )
    per_scene, summaries, figures = [], [], defaultdict(dict)
    for context in build_contexts(runs).values():
        context.setup(cfg.paths.data_dir)
        ident = {"dataset": context.store.name, "variant": context.store.variant,
                 "split": context.cfg.split.name, "pairing": context.cfg.pairing.name}
        L = float(context.cfg.dataset.data_range_k)
        methods = [(run.model_id, run, None) for run in context.runs]
        # a baseline that train.py already recorded as a run is that run: scoring it again would count two seeds
        methods += [(b, None, b) for b in cfg.baselines if b not in {run.model_id for run in context.runs}]
        for name, run, baseline in tqdm(methods, desc=f"{ident['dataset']}/{ident['variant']}", unit="method"):
            if run is not None:
                module = restore_module(run, device)
                info = run.info
                meta = {"model": info["model"], "label": info["label"], "family": info["family"], "seed": info["seed"],
                        "run": str(run.path), "params": info.get("params"), "train_s": info.get("wall_time_s"),
                        "train_peak_mb": info.get("peak_memory_mb") or float("nan")}
            else:
                module = baseline_module(baseline, context, conf_dir, device)
                mc = module.model_cfg
                meta = {"model": mc["id"], "label": mc["label"], "family": mc["family"], "seed": None,
                        "run": "", "params": 0, "train_s": 0.0, "train_peak_mb": float("nan")}
            if run is not None and run.info.get("lightning_module") != "none":
                meta["macs_g"] = count_macs(module, device) / 1e9
            rows, eff, preds = score_method(name, module, context, device, L, cfg.border, list(cfg.optional_metrics))
            for row in rows:
                per_scene.append({**ident, **meta, **row})
            summaries.append({**ident, **meta, **eff, "data_range_k": L, "n_test_scenes": len(rows),
                              "rmse_run": float(np.mean([r["rmse"] for r in rows]))})
            fig_key = tuple(ident.values())
            best = figures[fig_key].get(meta["model"])
            if best is None or summaries[-1]["rmse_run"] < best["rmse_run"]:
                first = context.specs[0]
                ref = np.asarray(context.store.values[first.target, 0], dtype=np.float64)
                ref[~np.asarray(context.store.observed[first.target, 0])] = np.nan
                figures[fig_key][meta["model"]] = {"rmse_run": summaries[-1]["rmse_run"], "ref": ref,
                                                   "pred": preds[rows[0]["date"]], "date": rows[0]["date"],
                                                   "label": meta["label"]}
            del module
    return {"per_scene": pd.DataFrame(per_scene), "runs": pd.DataFrame(summaries), "figures": figures,
            "skipped": skipped, "device": str(device)}
