"""The run folder: what ``train.py`` leaves behind and ``evaluate.py`` reads, and nothing else in between.

A run folder holds ``config_resolved.yaml`` (the composed config, readable without Hydra), ``checkpoints/`` (best and
last, weights plus plain hyper-parameters) and ``run.json`` (model, context, seed, status, scores, efficiency).
Training writes it; evaluation discovers runs by these files alone and treats them as data: a folder copied from
another machine or another person never runs code, it only names classes inside the packages the user trusts.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
RESOLVED_CONFIG = "config_resolved.yaml"
CHECKPOINT_DIR = "checkpoints"
# parts of a training config that describe where and how a job ran, not what it trained: never part of its recipe
NOT_RECIPE = {"seed", "paths", "hydra", "logger", "callbacks", "tags", "experiment_name", "task_name", "ckpt_path",
              "dataset", "preprocess", "split", "pairing"}


def _plain(value):
    """JSON for numpy scalars and arrays, paths and anything else with a str()."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_run_json(output_dir: Path, info: dict) -> None:
    """Atomically: a reader never sees half a file, whatever kills the writer."""
    tmp = Path(output_dir) / f".{RUN_JSON}.part"
    tmp.write_text(json.dumps(info, indent=1, default=_plain))
    os.replace(tmp, Path(output_dir) / RUN_JSON)


def load_checkpoint_file(path: str | Path) -> dict:
    """A checkpoint's tensors and plain values, never pickled code (``weights_only``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise DataError(f"checkpoint {path} does not exist: check the path.") from exc
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise DataError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). The file is corrupt, "
                        f"truncated or holds more than weights and plain values: use another checkpoint "
                        f"(e.g. last.ckpt) or retrain.") from exc


def recipe_hash(cfg: DictConfig | dict) -> str:
    """What a run trained, apart from its seed and its data context: runs pool into one leaderboard row only when
    their recipes (model config, datamodule, trainer settings, pre-training) are equal."""
    container = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    recipe = {k: v for k, v in container.items() if k not in NOT_RECIPE}
    if isinstance(recipe.get("model"), dict) and isinstance(recipe["model"].get("train"), dict):
        recipe["model"] = {**recipe["model"], "train": {k: v for k, v in recipe["model"]["train"].items()
                                                        if k != "seed"}}
    if isinstance(recipe.get("datamodule"), dict):
        recipe["datamodule"] = {k: v for k, v in recipe["datamodule"].items() if k not in NOT_RECIPE | {"data_dir"}}
    if isinstance(recipe.get("trainer"), dict):
        recipe["trainer"] = {k: v for k, v in recipe["trainer"].items() if k != "default_root_dir"}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:8]


def check_targets(node, trusted: list[str], where: str) -> None:
    """Every ``_target_`` in a config read from a run folder must name something inside a trusted package."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not any(str(target) == t or str(target).startswith(t.rstrip(".") + ".")
                                          for t in trusted):
            raise DataError(f"{where}: _target_ {target!r} is outside the trusted packages ({', '.join(trusted)}). "
                            f"A run folder is data, not code: if you trust it, add the package to evaluate's "
                            f"trusted_targets (e.g. 'trusted_targets=[stf_bench,mypackage]').")
        for value in node.values():
            check_targets(value, trusted, where)
    elif isinstance(node, list):
        for value in node:
            check_targets(value, trusted, where)


@dataclass
class RunFolder:
    """A finished run: its run.json, its resolved config and the checkpoint to score (None for classical runs)."""

    path: Path
    info: dict
    cfg: DictConfig
    checkpoint: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        return self.info["model"]


def _checkpoint(folder: Path, info: dict) -> tuple[Path | None, list[str]]:
    """The run's own checkpoint (best, else last); the recorded absolute path only when the folder has none, said."""
    recorded = info.get("checkpoints") or {}
    names = [Path(recorded[k]).name for k in ("best", "last") if recorded.get(k)]
    for name in names or ["best.ckpt", "last.ckpt"]:
        own = folder / CHECKPOINT_DIR / name
        if own.is_file():
            return own, []
    for key in ("best", "last"):
        path = Path(recorded[key]) if recorded.get(key) else None
        if path is not None and path.is_file():
            return path, [f"{folder}: no checkpoint in its own {CHECKPOINT_DIR}/; scoring the recorded {path} "
                          f"(the folder was copied from there)"]
    return None, []


def discover_runs(patterns: list[str]) -> tuple[list[RunFolder], list[str]]:
    """Finished runs under the given folders/globs, and a line for every run folder that was skipped and why."""
    roots = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise DataError(f"evaluate: {pattern} matches no folder. Give a run folder, a multirun folder or a glob "
                            f"(e.g. runs='outputs/train/multirun/*').")
        roots.extend(Path(m) for m in matches)
    runs, skipped = [], []
    for run_json in sorted({p for root in roots for p in ([root / RUN_JSON] if (root / RUN_JSON).is_file()
                                                         else root.rglob(RUN_JSON))}):
        folder = run_json.parent
        try:
            info = json.loads(run_json.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            skipped.append(f"{folder}: run.json is not valid JSON ({exc})")
            continue
        if not isinstance(info, dict) or "status" not in info:
            skipped.append(f"{folder}: its run.json has no status, it was not written by train.py")
            continue
        if info["status"] != "finished":
            skipped.append(f"{folder}: status {info.get('status')!r}" + (f" ({info['error']})" if "error" in info else ""))
            continue
        config = folder / RESOLVED_CONFIG
        if not config.is_file():
            skipped.append(f"{folder}: no {RESOLVED_CONFIG}")
            continue
        try:
            cfg = OmegaConf.load(config)
        except Exception as exc:  # a damaged YAML file is the folder's problem, not a reason to stop
            skipped.append(f"{folder}: {RESOLVED_CONFIG} cannot be read ({type(exc).__name__}: {exc})")
            continue
        checkpoint, notes = None, []
        if info.get("lightning_module") != "none":
            checkpoint, notes = _checkpoint(folder, info)
            if checkpoint is None:
                skipped.append(f"{folder}: no checkpoint (a fast_dev_run or an interrupted run)")
                continue
        for note in notes:
            log.warning(note)
        runs.append(RunFolder(folder, info, cfg, checkpoint, notes))
    return runs, skipped


def trusted_targets(value) -> list[str]:
    """The evaluate config's list of trusted packages, checked to be package names."""
    trusted = [str(t) for t in (value or [])]
    bad = [t for t in trusted if not t.replace(".", "").replace("_", "").isalnum()]
    if not trusted or bad:
        raise ConfigError(f"trusted_targets={list(value or [])}: give package names, e.g. [stf_bench].")
    return trusted


def restore_predictor(run: RunFolder, trusted: list[str], device: torch.device):
    """The run's network with its weights and normalization, as a Kelvin-in, Kelvin-out predictor.

    Only the checkpoint's tensors and plain hyper-parameters are read; the network is built from the model config
    it records, whose classes must lie in the trusted packages.
    """
    from hydra.utils import instantiate

    from stf_bench.data.normalization import AffineNorm
    from stf_bench.models.prediction import ScenePredictor

    if run.checkpoint is None:  # a classical method recorded as a run: its config is all there is
        model_cfg, norm, weights = OmegaConf.to_container(run.cfg.model, resolve=True), run.info["norm"], None
        where = run.path / RESOLVED_CONFIG
    else:
        state = load_checkpoint_file(run.checkpoint)
        hp = state.get("hyper_parameters") or {}
        if "model_cfg" not in hp or "norm" not in hp or "state_dict" not in state:
            raise DataError(f"checkpoint {run.checkpoint} has no model_cfg/norm hyper-parameters or weights: it was "
                            f"not written by stf_bench's train.py. Point runs= at stf_bench run folders.")
        model_cfg, norm, where = hp["model_cfg"], hp["norm"], run.checkpoint
        weights = {k[len("net."):]: v for k, v in state["state_dict"].items() if k.startswith("net.")}
    check_targets(model_cfg["net"], trusted, str(where))  # the only part evaluation instantiates
    net = instantiate(model_cfg["net"])
    if weights is not None:
        missing, unexpected = net.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise DataError(f"checkpoint {run.checkpoint} does not fit the network of its config "
                            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}): the folder mixes "
                            f"files of different runs. Retrain, or restore the folder's original checkpoint.")
    norm = AffineNorm.from_json(norm)
    net.norm = norm
    return ScenePredictor.from_model_cfg(net.to(device).eval(), norm, model_cfg), model_cfg
