"""Checks of `evaluate.py`'s own settings, run before any run is restored or any scene scored."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig

from stf_bench.data.store import MANIFEST
from stf_bench.errors import ConfigError


def check_evaluate_config(cfg: DictConfig, runs: list) -> None:
    """A device that is not there, or a border that leaves no pixel of the test scenes, is refused up front."""
    check_device(cfg.device)
    check_border(cfg.border, runs)


def check_device(device) -> None:
    if device in ("auto", "cpu"):
        return
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not a device: use device=auto (CUDA when present), cpu or cuda.")
    if wanted.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is visible on this machine: use device=cpu, or device=auto "
                          f"(CUDA when present).")
    if wanted.index is not None and wanted.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device} but this machine has {torch.cuda.device_count()} CUDA GPU(s): use "
                          f"device=cuda:0, or device=auto.")


def check_border(border, runs: list) -> None:
    """`border` pixels are dropped on each edge, so 2 * border must stay below the smaller side of every scene."""
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise ConfigError(f"border={border!r} is not a number of pixels: use a whole number >= 0, e.g. border=0.")
    if border == 0:
        return
    for store in sorted({Path(run.info["store"]) for run in runs}):
        if not (store / MANIFEST).is_file():
            continue  # rebuilt later from the run's config; scoring checks the border again
        grid = json.loads((store / MANIFEST).read_text())["grid"]
        side = min(grid["height"], grid["width"])
        if 2 * border >= side:
            raise ConfigError(
                f"border={border} drops {border} pixels on each edge, which leaves nothing of the "
                f"{grid['height']}x{grid['width']} test scenes of {store}. Use border={(side - 1) // 2} at most "
                f"(border=0 scores the whole scene)."
            )
