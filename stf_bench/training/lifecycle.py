"""How a training job ends: signals (Ctrl-C, SLURM preemption), requeue, zero-step runs, and per-job peak memory.

A signal never kills a job half-way through an optimizer step: during `trainer.fit` the first SIGINT/SIGTERM/SIGUSR2
only raises a flag, the job stops at the next batch boundary, writes `last.ckpt` and ends `interrupted` (SIGINT) or
`preempted` (SIGTERM; SIGUSR2 is what submitit's SLURM jobs receive before a time limit or preemption). Outside `fit`
(dataset build, loss-network pre-training, testing) it stops at once; pre-training keeps its per-epoch progress. A
handler installed before (submitit's requeue) still runs afterwards, so a requeued job finds its folder with
`run.json` "preempted" and resumes from its `last.ckpt`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from stf_bench.errors import ConfigError, user_error
from stf_bench.run_folder import RUN_JSON

log = logging.getLogger(__name__)
STOP_STATUS = {signal.SIGINT: "interrupted", signal.SIGTERM: "preempted", signal.SIGUSR2: "preempted"}


class Stopped(BaseException):
    """A signal ended the job (BaseException, so no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Context manager: SIGINT, SIGTERM and SIGUSR2 end the job cleanly; `deferred()` delays the stop to a safe point."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.forced = False  # a second signal: stop at once, no checkpoint
        self.checkpoint: str | None = None  # what the stop saved
        self.stage = "setup"
        self._deferring = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_STATUS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
            log.warning("received %s: stopping %s", signal.Signals(signum).name,
                        "after this batch" if self._deferring else "now")
            if self._deferring:
                return
        else:
            self.forced = True
        raise Stopped(self.received)

    @contextmanager
    def deferred(self, stage: str):
        """Inside, the first signal only sets `received`; `StopAtBatchEnd` acts on it."""
        self.stage, self._deferring = stage, True
        try:
            yield
        finally:
            self._deferring = False

    @property
    def status(self) -> str | None:
        return STOP_STATUS[self.received] if self.received is not None else None

    def reason(self) -> str:
        name = signal.Signals(self.received).name
        what = {"interrupted": "Ctrl-C", "preempted": "preemption, scancel or time limit"}[self.status]
        return f"{name} ({what}) during {self.stage}"

    def exit(self) -> None:
        """After run.json is written: one line for the user, a handler installed before us (submitit), exit 128+n."""
        overrides = _task_overrides()
        if self.checkpoint:
            how = (f"checkpoint {self.checkpoint}; resume with: python train.py {overrides} "
                   f"ckpt_path={self.checkpoint}")
        else:
            how = "no training checkpoint yet; rerun to start again (dataset and loss-network progress are cached)"
        log.warning("run %s by %s: %s", self.status, self.reason(), how)
        previous = self._previous.get(self.received)
        self.__exit__()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.received, None)  # submitit: dumps the job and requeues it (exits itself)
        sys.exit(128 + self.received)


def _task_overrides() -> str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "<same overrides>"
    return " ".join(a for a in HydraConfig.get().overrides.task if not a.startswith("ckpt_path="))


class StopAtBatchEnd(L.Callback):
    """Stops `fit` at the batch boundary after a signal and saves `last.ckpt` there (nothing half-stepped)."""

    def __init__(self, signals: Signals, last_path: str | None) -> None:
        self.signals, self.last_path = signals, last_path

    def _check(self) -> None:
        if self.signals.received is not None:
            raise Stopped(self.signals.received)

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self._check()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self._check()

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        fitting = trainer.state.fn == "fit"
        if self.signals.received is not None and not self.signals.forced and fitting and self.last_path:
            trainer.save_checkpoint(self.last_path)
            self.signals.checkpoint = self.last_path
            self.signals.stage = f"training (epoch {trainer.current_epoch}, step {trainer.global_step})"


def last_checkpoint_path(callbacks: list) -> str | None:
    """Where the config's last-epoch ModelCheckpoint (the one with no monitor) writes `last.ckpt`."""
    savers = [c for c in callbacks if isinstance(c, L.pytorch.callbacks.ModelCheckpoint) and not c.monitor]
    return savers[0].format_checkpoint_name({}) if savers and savers[0].dirpath else None


def end_state(exc: BaseException, signals: Signals) -> dict:
    """run.json fields of a job that did not finish: interrupted/preempted (with the signal) or failed."""
    if signals.received is not None:
        out = {"status": signals.status, "reason": signals.reason()}
        if signals.checkpoint:
            out["checkpoints"] = {"last": signals.checkpoint}
        return out
    exc = user_error(exc) or exc  # the ConfigError, not the InstantiationException around it
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def requeued_checkpoint(output_dir: Path) -> tuple[str, int] | None:
    """(last.ckpt, requeue count) when this folder's previous job was preempted after saving a checkpoint.

    A requeued SLURM/submitit job runs again in the same output folder; it continues where it stopped.
    """
    path = output_dir / RUN_JSON
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    last = (info.get("checkpoints") or {}).get("last")
    if info.get("status") == "preempted" and last and Path(last).is_file():
        return last, int(info.get("requeued", 0)) + 1
    return None


def check_optimizer_steps(cfg: DictConfig) -> None:
    """An epoch drops its last incomplete batch, so fewer patches than a batch means no training at all."""
    patches, batch = cfg.datamodule.get("patches_per_epoch"), cfg.datamodule.get("batch_size")
    if cfg.model.lightning_module != "none" and patches is not None and batch and patches < batch:
        raise ConfigError(f"datamodule.patches_per_epoch={patches} is smaller than model.train.batch_size={batch}: "
                          f"every epoch would make zero optimizer steps. Set datamodule.patches_per_epoch to at "
                          f"least {batch} or model.train.batch_size to at most {patches}.")


def check_trained(trainer: L.Trainer) -> None:
    """Refuse to test (and report as finished) a network that was never updated."""
    if trainer.global_step == 0:
        raise ConfigError(
            f"training made zero optimizer steps ({trainer.current_epoch} epoch(s), "
            f"{trainer.num_training_batches} batch(es) per epoch), so the test would score an untrained network. "
            f"Check trainer.max_epochs (>= 1), trainer.limit_train_batches, and that datamodule.patches_per_epoch "
            f"is at least model.train.batch_size.")


class PeakMemory:
    """Peak memory of one job, not of the process: a multirun runs several jobs in one process.

    CPU: the kernel's resident-set high-water mark (VmHWM), reset at the start by writing 5 to /proc/self/clear_refs;
    where that is not permitted, a thread samples VmRSS every 20 ms. GPU: the allocator's peak, reset at the start.
    """

    def __enter__(self) -> PeakMemory:
        self._stop, self._sampled, self._thread = threading.Event(), 0, None
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.kind = "CPU job peak RSS"
        except OSError:
            if _status_kb("VmRSS") is None:  # no /proc: only the process lifetime peak is known
                self.kind = "CPU process peak RSS"
            else:
                self.kind = "CPU job peak RSS (sampled)"
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, _status_kb("VmRSS") or 0)

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def result(self, device: torch.device) -> dict:
        if device.type == "cuda":
            return {"peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                    "peak_memory_kind": f"GPU allocated ({torch.cuda.get_device_name(device)})"}
        if self.kind == "CPU job peak RSS":
            kb = _status_kb("VmHWM")
        elif self._thread is not None:
            kb = max(self._sampled, _status_kb("VmRSS") or 0)
        else:
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_memory_mb": round(kb / 1024, 1), "peak_memory_kind": self.kind}


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_info(cfg: DictConfig) -> dict:
    """What run.json says before anything can fail: enough to tell which sweep point this folder is."""
    def pick(key):
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    return {"model": pick("model.id"), "title": pick("model.title"), "family": pick("model.family"),
            "label": pick("model.label"), "lightning_module": pick("model.lightning_module"),
            "dataset": pick("dataset.name"), "split": pick("split.name"), "pairing": pick("pairing.name"),
            "seed": pick("seed"), "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "host": os.uname().nodename, "pid": os.getpid()}
