"""The sweep objective: the best value over epochs of `optimized_metric` (conf/train.yaml), and its direction.

A metric's direction follows from its last name part, so any logged metric works (`val/rmse`, `val/ssim`,
`train/loss`): errors and losses are minimized, similarity and skill scores maximized, and a signed bias is scored
by its magnitude (minimized), as in metrics.md. The sweeper's `direction` must agree, or the study would optimize
the wrong way without a word.
"""

from __future__ import annotations

import math

import lightning as L
from omegaconf import DictConfig

from stf_bench.errors import ConfigError
from stf_bench.metrics import BEST

MAXIMIZED = {k for k, best in BEST.items() if best == "high"}
SIGNED = {k for k, best in BEST.items() if best == "zero"}  # best at zero: the objective is the magnitude


def direction(metric: str) -> str:
    """Optuna's direction for `metric`: maximize for similarity scores, minimize for everything else."""
    return "maximize" if metric.rsplit("/", 1)[-1] in MAXIMIZED else "minimize"


def check_direction(cfg: DictConfig, sweeper_direction) -> None:
    """Fail before training when the sweeper's `direction` contradicts `optimized_metric`'s."""
    if sweeper_direction is None:
        return
    metric = cfg.optimized_metric
    given = str(getattr(sweeper_direction, "name", sweeper_direction)).lower()
    if given != direction(metric):
        raise ConfigError(f"hydra.sweeper.direction={given} contradicts optimized_metric={metric}, which is "
                          f"{direction(metric)}d (stf_bench/training/objective.py). Set "
                          f"hydra.sweeper.direction={direction(metric)} or choose another optimized_metric.")


def sweeper_direction(cfg_hydra) -> object | None:
    """The running sweeper's `direction`, or None outside an Optuna sweep."""
    sweeper = cfg_hydra.get("sweeper") if cfg_hydra is not None else None
    return sweeper.get("direction") if sweeper is not None and "optuna" in str(sweeper.get("_target_", "")) else None


class MetricHistory(L.Callback):
    """Records `metric` once per epoch (after validation and after the training epoch), for its best value."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.values: dict[int, float] = {}

    def _record(self, trainer: L.Trainer) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is not None and not trainer.sanity_checking:
            self.values[trainer.current_epoch] = float(value)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._record(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record(trainer)

    def best(self, trainer: L.Trainer) -> float | None:
        """The best finite value over epochs (magnitude for a signed metric); None when never logged."""
        self._record(trainer)  # epoch-end metrics of the last epoch
        name = self.metric.rsplit("/", 1)[-1]
        values = [abs(v) if name in SIGNED else v for v in self.values.values() if math.isfinite(v)]
        if not values:
            return None
        return max(values) if direction(self.metric) == "maximize" else min(values)


def objective_value(value: float | None, metric: str) -> float:
    """What train() returns to the sweeper: a run without the metric is the worst value, never the best."""
    if value is not None:
        return value
    return -math.inf if direction(metric) == "maximize" else math.inf
