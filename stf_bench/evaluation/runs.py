"""Finding finished runs by their files alone (``run.json``, the resolved config, a checkpoint) and restoring them."""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from stf_bench.errors import DataError
from stf_bench.training.pipeline import RESOLVED_CONFIG, RUN_JSON, load_checkpoint_file
from stf_bench.training.registry import lightning_module_class


@dataclass
class Run:
    """A finished run folder: its run.json, its composed config and the checkpoint to evaluate."""

    path: Path
    info: dict
    cfg: DictConfig
    checkpoint: Path | None

    @property
    def model_id(self) -> str:
        return self.info["model"]


def discover_runs(patterns: list[str]) -> tuple[list[Run], list[str]]:
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
        except json.JSONDecodeError as exc:
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
        cfg = OmegaConf.load(config)
        checkpoint = None
        if info.get("lightning_module") != "none":
            recorded = [Path(c) for c in (info.get("checkpoints") or {}).values() if c]
            # beside run.json first: a run folder copied from another machine keeps its checkpoints/ but not its paths
            candidates = [p for c in recorded for p in (folder / "checkpoints" / c.name, c) if p.is_file()]
            if not candidates:
                skipped.append(f"{folder}: no checkpoint (a fast_dev_run or an interrupted run)")
                continue
            checkpoint = Path(candidates[0])
        runs.append(Run(folder, info, cfg, checkpoint))
    return runs, skipped


def restore_module(run: Run, device: torch.device):
    """The run's LightningModule with its weights and its normalization, in eval mode on `device`."""
    cls = lightning_module_class(run.info["lightning_module"])
    if run.checkpoint is None:
        from stf_bench.data.normalization import AffineNorm

        module = cls(model_cfg=OmegaConf.to_container(run.cfg.model, resolve=True),
                     norm=AffineNorm.from_json(run.info["norm"]).to_json(),
                     data_range_k=float(run.cfg.dataset.data_range_k), dataset_id={})
    else:
        load_checkpoint_file(run.checkpoint)  # a clear error for a damaged file before Lightning's own
        module = cls.load_from_checkpoint(run.checkpoint, map_location=device, weights_only=False)
    return module.to(device).eval()
