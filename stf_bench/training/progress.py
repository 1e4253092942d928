"""Progress as log lines where no terminal shows a progress bar (a log file, SLURM), and the learning rate in the
experiment loggers. Both are callbacks in conf/callbacks/default.yaml."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor as _LearningRateMonitor
from lightning.pytorch.callbacks import Timer

from stf_bench.durations import format_duration

log = logging.getLogger(__name__)


def no_terminal() -> bool:
    return not sys.stdout.isatty()


class LogProgress(L.Callback):
    """One log line per epoch (metrics, time per epoch, ETA) and one every `every_n_steps` training batches.

    `only_without_terminal`: stay quiet when stdout is a terminal, where the progress bar already shows this.
    """

    def __init__(self, every_n_steps: int = 50, only_without_terminal: bool = True) -> None:
        self.every_n_steps, self.only_without_terminal = every_n_steps, only_without_terminal
        self.active, self.started, self.batches = False, 0.0, 0

    def on_train_start(self, trainer, pl_module) -> None:
        # one line per epoch for the whole run: under DDP only rank 0 writes it
        self.active = trainer.is_global_zero and not (self.only_without_terminal and not no_terminal())
        self.started, self.batches = time.time(), 0

    def _total_batches(self, trainer) -> float:
        per_epoch = trainer.num_training_batches
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else float("inf")
        total = per_epoch * epochs
        if trainer.max_steps and trainer.max_steps > 0:
            total = min(total, trainer.max_steps)
        return total

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        if not self.active or not self.every_n_steps or (batch_idx + 1) % self.every_n_steps:
            return
        metrics = _metrics(trainer, "train/")
        log.info("epoch %d/%s step %d/%d%s | elapsed %s, ETA %s", trainer.current_epoch + 1, _of(trainer.max_epochs),
                 batch_idx + 1, trainer.num_training_batches, metrics, format_duration(time.time() - self.started),
                 self._eta_text(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.active or trainer.sanity_checking:
            return
        per_epoch = (time.time() - self.started) / (trainer.current_epoch + 1)
        log.info("epoch %d/%s%s | %s/epoch, elapsed %s, ETA %s", trainer.current_epoch + 1, _of(trainer.max_epochs),
                 _metrics(trainer, ""), format_duration(per_epoch), format_duration(time.time() - self.started),
                 self._eta_text(trainer))

    def _eta_text(self, trainer) -> str:
        """Time left at the current pace, capped by trainer.max_time."""
        elapsed = time.time() - self.started
        total = self._total_batches(trainer)
        left = elapsed / self.batches * (total - self.batches) if self.batches and total != float("inf") \
            else float("inf")
        remaining = [c.time_remaining() for c in trainer.callbacks if isinstance(c, Timer)]
        if remaining and remaining[0] is not None:
            left = min(left, max(0.0, remaining[0]))
        return format_duration(left)


def _of(max_epochs) -> str:
    return str(max_epochs) if max_epochs and max_epochs > 0 else "?"


def _metrics(trainer, prefix: str) -> str:
    values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and v.numel() == 1}
    return (": " + " ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))) if values else ""


class LearningRateMonitor(_LearningRateMonitor):
    """Lightning's LearningRateMonitor, quiet (not an error) when the run has no logger (logger=none)."""

    def on_train_start(self, trainer, *args, **kwargs) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer, *args, **kwargs) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)
