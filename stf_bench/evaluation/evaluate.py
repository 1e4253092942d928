"""What ``evaluate.py`` does: score every finished run and the classical baselines on whole test scenes.

Runs are grouped by evaluation context (store fingerprint, complete split, pairing; ``stf_bench.data.context``):
each run is scored on the test samples of its own context, and every method in a context sees the same scenes and
the same mask (observed target pixels, metrics.md); the temporal-delta prediction of the same sample gives the Skill
column. A method that needs two reference pairs is scored in the two-reference sibling of a one-reference context.
One method that fails is reported and never costs the others their scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from stf_bench.data.context import evaluation_context, store_fingerprint
from stf_bench.data.datamodule import SceneDataset
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.samples import Pairing, make_samples
from stf_bench.data.store import build_dataset
from stf_bench.devices import device_name
from stf_bench.errors import ConfigError, DataError, user_error
from stf_bench.evaluation.checks import check_device, check_evaluate_config
from stf_bench.evaluation.efficiency import count_macs
from stf_bench.metrics import scene_metrics
from stf_bench.models.prediction import ScenePredictor
from stf_bench.run_folder import (RunFolder, check_targets, discover_runs, recipe_hash, restore_predictor,
                                  trusted_targets)

log = logging.getLogger(__name__)
KELVIN = AffineNorm(0.0, 1.0)
CONTEXT_KEYS = ("dataset", "preprocess", "split", "pairing", "paths")


@dataclass
class Method:
    """One thing to score in a context: a finished run, or a classical baseline by its model id."""

    name: str
    run: RunFolder | None = None
    baseline: str | None = None


@dataclass
class Context:
    """One evaluation context: its configs (from the run that trained in it), its test samples, its methods."""

    cfg: DictConfig
    ident: dict
    recorded_store: Path | None = None
    methods: list[Method] = field(default_factory=list)

    @classmethod
    def of_run(cls, run: RunFolder) -> Context:
        cfg = OmegaConf.create({k: run.cfg[k] for k in CONTEXT_KEYS})
        store = Path(run.info["store"])
        ident = run.info.get("context") or evaluation_context(store, run.info["dataset"], run.info["variant"],
                                                              cfg.split, cfg.pairing)
        return cls(cfg, ident, store)

    def with_pairing_mode(self, mode: str) -> Context:
        """The sibling context with the same store and split and another pairing mode."""
        cfg = self.cfg.copy()
        cfg.pairing.mode = mode
        cfg.pairing.name = mode
        ident = evaluation_context(self.recorded_store, self.ident["dataset"], self.ident["variant"], cfg.split,
                                   cfg.pairing)
        return Context(cfg, ident, self.recorded_store)

    @property
    def n_refs(self) -> int:
        return Pairing.MODES.get(self.cfg.pairing.mode, 1)

    @property
    def label(self) -> str:
        i = self.ident
        return f"{i['dataset']} [{i['store_hash']}] {i['variant']}, split {i['split']}, pairing {i['pairing']}"

    def setup(self, data_dir: Path) -> None:
        """Open the store this context was trained on: where the run recorded it, the same folder (same hash, so the
        same content) under evaluate's data folder, or rebuilt from the recorded config in the run's own data
        folder. A store whose fingerprint changed (the source data changed) is not scorable."""
        candidates = [self.recorded_store] if self.recorded_store else []
        if self.recorded_store:
            candidates.append(Path(data_dir) / self.recorded_store.parent.name / self.recorded_store.name)
        found = next((p for p in candidates if (p / "manifest.json").is_file()), None)
        run_data_dir = Path(self.cfg.paths.data_dir) if found is None else found.parent.parent
        if found is None:
            log.info("%s: store %s is missing; rebuilding it from the run's config under %s", self.label,
                     self.recorded_store, run_data_dir)
        self.store, _ = build_dataset(self.cfg.dataset, self.cfg.preprocess, run_data_dir)
        expected = self.ident["store_hash"]
        if not store_fingerprint(self.store.path).startswith(expected):
            raise DataError(f"{self.label}: the store rebuilt from the run's config is {self.store.path}, not the "
                            f"{expected}... the run was trained on: the source data or the code changed since. "
                            f"Restore the original data, or retrain on the new store.")
        samples, info = make_samples(self.store.dates, instantiate(self.cfg.split), instantiate(self.cfg.pairing))
        self.specs = samples["test"]
        for date, reason in info["skipped"]["test"]:
            log.warning("%s: test date %s cannot be paired (%s): not scored", self.label, date, reason)

    def samples(self, nan_inputs: bool = False):
        """Test samples as batches of one, in Kelvin (each method normalizes as it was trained); `nan_inputs`:
        unobserved inputs stay NaN (classical methods, models.md fallback chain)."""
        for sample in SceneDataset(self.store, KELVIN, self.specs, nan_inputs):
            yield {k: (torch.from_numpy(v)[None] if k != "meta" else v) for k, v in sample.items()}


TIMING_REPEATS = 3  # at least this many timed predictions per method, after one untimed warm-up


def _timed(predictor: ScenePredictor, inputs: dict, device) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    pred = predictor(inputs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return pred, time.perf_counter() - started


def score_method(name: str, predictor: ScenePredictor, context: Context, device, data_range: float, border: int,
                 optional: list[str]) -> tuple[list[dict], dict, dict]:
    """Per-scene metrics, efficiency figures and the prediction of the first test scene (for the figures).

    Inference time is the median over the scenes (the first one repeated up to TIMING_REPEATS timings), after one
    untimed warm-up prediction, so lazy initialisation, JIT compilation and one slow moment do not count."""
    rows, predictions, seconds, first = [], {}, [], None
    batches = zip(context.samples(), context.samples(nan_inputs=True))
    for filled, observed in tqdm(batches, total=len(context.specs), desc=f"scoring {name}", unit="scene", leave=False):
        batch = observed if predictor.nan_inputs else filled
        ref = batch["fine_tgt"][0, 0].numpy().astype(np.float64)
        valid = batch["valid_tgt"][0, 0].numpy()
        # F1 + (C2 - C1) in float32 on observed inputs (NaN elsewhere, so Skill counts the pixels where it is defined),
        # the delta baseline's own arithmetic: its skill is exactly 0
        delta = (observed["fine_ref"] + (observed["coarse_tgt"] - observed["coarse_ref"]))[0, 0].numpy()
        delta = delta.astype(np.float64)
        inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "fine_tgt"}
        if first is None:
            first = inputs
            _timed(predictor, inputs, device)  # warm-up
        pred, elapsed = _timed(predictor, inputs, device)
        seconds.append(elapsed)
        pred = pred[0, 0].float().cpu().numpy().astype(np.float64)
        scores = scene_metrics(pred, ref, valid, data_range, border=border, delta_pred=delta, optional=optional)
        date = batch["meta"]["dates"].split(",")[0]
        rows.append({"date": date, **scores, **{f"fallback_{k}": v for k, v in
                                                  (getattr(predictor.net, "last_stats", None) or {}).items()}})
        if not predictions:
            predictions[date] = pred
    while first is not None and len(seconds) < TIMING_REPEATS:
        seconds.append(_timed(predictor, first, device)[1])
    efficiency = {"inference_s": float(np.median(seconds)) if seconds else float("nan"),
                  "inference_timings": len(seconds), "device": device_name(device)}
    return rows, efficiency, predictions


def baseline_config(model_id: str, conf_dir: Path) -> DictConfig:
    path = conf_dir / "model" / f"{model_id}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (conf_dir / "model").glob("*.yaml")
                           if OmegaConf.load(p).get("lightning_module") == "none")
        raise ConfigError(f"evaluate.baselines: {model_id!r} has no model config {path}; classical methods: "
                          f"{', '.join(available)}.")
    cfg = OmegaConf.load(path)
    if cfg.get("lightning_module") != "none":
        raise ConfigError(f"evaluate.baselines: {model_id!r} is a deep model (lightning_module={cfg.lightning_module})"
                          f": train it with `python train.py model={model_id}` and evaluate its run folder instead.")
    return cfg


def baseline_predictor(model_cfg: DictConfig, context: Context, device, trusted: list[str]):
    """A classical method configured from conf/model/<id>.yaml against this context's dataset."""
    merged = OmegaConf.merge({"dataset": context.cfg.dataset}, {"model": model_cfg})
    model = OmegaConf.to_container(merged.model, resolve=True)
    check_targets(model["net"], trusted, f"conf/model/{model['id']}.yaml")
    predictor = ScenePredictor.from_model_cfg(instantiate(model["net"]), KELVIN, model)
    predictor.net.to(device).eval()
    return predictor, model


def plan_contexts(runs: list[RunFolder], baselines: list[str], conf_dir: Path) -> tuple[list[Context], list[str]]:
    """Every run in its own context; every baseline in each context, or in its sibling with enough references."""
    contexts: dict[str, Context] = {}
    for run in runs:
        context = Context.of_run(run)
        contexts.setdefault(context.ident["key"], context).methods.append(Method(run.model_id, run=run))
    notes = []
    baseline_cfgs = {b: baseline_config(b, conf_dir) for b in baselines}
    for context in list(contexts.values()):
        for name, bcfg in baseline_cfgs.items():
            target = context
            if int(bcfg.n_refs) > context.n_refs:
                sibling = context.with_pairing_mode("two_refs")
                target = contexts.setdefault(sibling.ident["key"], sibling)
                if target is sibling and not sibling.methods:
                    notes.append(f"{name} needs {bcfg.n_refs} reference pairs: scored in {sibling.label} "
                                 f"(the two-reference sibling of {context.label})")
            if any((m.run.model_id if m.run else m.baseline) == name for m in target.methods):
                continue  # a baseline that train.py recorded as a run is that run: scoring it twice counts two seeds
            target.methods.append(Method(name, baseline=name))
    return list(contexts.values()), notes


def _describe(exc: BaseException) -> str:
    error = user_error(exc)
    return str(error) if error is not None else f"{type(exc).__name__}: {exc}"


def evaluate(cfg: DictConfig, conf_dir: Path) -> dict:
    """Score everything; returns per-scene rows, per-run summaries, figure inputs and what could not be scored."""
    check_device(cfg.device)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    trusted = trusted_targets(cfg.trusted_targets)
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
    check_evaluate_config(cfg, runs)
    contexts, notes = plan_contexts(runs, list(cfg.baselines), conf_dir)
    for note in notes:
        log.info(note)
    per_scene, summaries, figures, failed = [], [], {}, []
    for context in contexts:
        try:
            context.setup(Path(cfg.paths.data_dir))
        except Exception as exc:  # a context that cannot be opened costs only its own methods
            reason = _describe(exc)
            failed += [{"method": m.name, "run": str(m.run.path) if m.run else "", "context": context.label,
                        "reason": reason} for m in context.methods]
            log.warning("not scorable: %s: %s", context.label, reason, exc_info=user_error(exc) is None)
            continue
        L = float(context.cfg.dataset.data_range_k)
        ident = {k: context.ident[k] for k in ("dataset", "store_hash", "variant", "split", "pairing")}
        ident["context"] = context.ident["key"]
        for method in tqdm(context.methods, desc=context.label, unit="method"):
            try:
                predictor, meta = _prepare(method, context, device, trusted, conf_dir)
                rows, eff, preds = score_method(method.name, predictor, context, device, L, cfg.border,
                                                list(cfg.optional_metrics))
            except Exception as exc:  # noqa: BLE001 - reported, and the other methods keep their scores
                reason = _describe(exc)
                failed.append({"method": method.name, "run": str(method.run.path) if method.run else "",
                               "context": context.label, "reason": reason})
                log.warning("not scored: %s in %s: %s", method.name, context.label, reason,
                            exc_info=user_error(exc) is None)
                continue
            per_scene += [{**ident, **meta, **row} for row in rows]
            summary = {**ident, **meta, **eff, "data_range_k": L, "n_test_scenes": len(rows),
                       "rmse_run": float(np.mean([r["rmse"] for r in rows]))}
            summaries.append(summary)
            best = figures.setdefault(ident["context"], {"ident": ident, "models": {}})["models"].get(meta["model"])
            if best is None or summary["rmse_run"] < best["rmse_run"]:
                first = context.specs[0]
                ref = np.asarray(context.store.values[first.target, 0], dtype=np.float64)
                ref[~np.asarray(context.store.observed[first.target, 0])] = np.nan
                coarse = np.asarray(context.store.values[first.target, 1], dtype=np.float64)
                coarse[~np.asarray(context.store.observed[first.target, 1])] = np.nan
                figures[ident["context"]]["models"][meta["model"]] = {
                    "rmse_run": summary["rmse_run"], "ref": ref, "pred": preds[rows[0]["date"]],
                    "label": meta["label"], "coarse": coarse,
                    "dates": ",".join(context.store.dates[i].isoformat() for i in (first.target, *first.refs))}
    if not summaries:
        raise DataError("evaluate: nothing could be scored: " + "; ".join(
            f"{f['method']} ({f['context']}): {f['reason']}" for f in failed[:5]))
    configs = {str(run.path): OmegaConf.to_container(run.cfg, resolve=True) for run in runs}
    return {"per_scene": pd.DataFrame(per_scene), "runs": pd.DataFrame(summaries), "figures": figures,
            "skipped": skipped, "failed": failed, "notes": notes, "device": device_name(device), "configs": configs}


def _prepare(method: Method, context: Context, device, trusted: list[str],
             conf_dir: Path) -> tuple[ScenePredictor, dict]:
    """The method's predictor and the leaderboard's bookkeeping columns for it."""
    if method.run is not None:
        run, info = method.run, method.run.info
        predictor, model_cfg = restore_predictor(run, trusted, device)
        meta = {"model": info["model"], "label": info["label"], "family": info["family"], "seed": info["seed"],
                "recipe": info.get("recipe") or recipe_hash(run.cfg), "run": str(run.path),
                "checkpoint": str(run.checkpoint or ""), "wandb_run_id": info.get("wandb_run_id") or "",
                "params": info.get("params"), "train_s": info.get("wall_time_s"),
                "train_peak_mb": info.get("peak_memory_mb") or float("nan")}
        if model_cfg.get("lightning_module") != "none":
            meta["macs_g"] = count_macs(predictor.net, device, next(context.samples())["meta"]) / 1e9
        return predictor, meta
    predictor, model_cfg = baseline_predictor(baseline_config(method.baseline, conf_dir), context,
                                              device, trusted)
    meta = {"model": model_cfg["id"], "label": model_cfg["label"], "family": model_cfg["family"], "seed": None,
            "recipe": recipe_hash({"model": model_cfg}), "run": "", "checkpoint": "", "wandb_run_id": "",
            "params": 0, "train_s": 0.0, "train_peak_mb": float("nan")}
    return predictor, meta
