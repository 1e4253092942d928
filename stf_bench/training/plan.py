"""The plan printed before any long work: what will run, on what, for how long, in how much memory.

Time per step and peak memory come from a short probe: a few real training steps (the run's own LightningModule,
trainer precision and a real batch) and a few loss-network pre-training steps, after which the weights and the
random state are put back. On CPU the probe runs `plan.cpu_probe_batch` samples of the batch and scales time and
memory linearly to the full batch, so that a batch which would exhaust the memory is announced, not attempted.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from contextlib import contextmanager

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from stf_bench.data.datamodule import PatchDataset
from stf_bench.devices import device_name
from stf_bench.durations import format_duration
from stf_bench.models.blocks.pretrained import FrozenEncoder, patch_offsets
from stf_bench.training.preflight import pending_pieces

log = logging.getLogger(__name__)
GB = 2**30


def announce_plan(cfg: DictConfig, datamodule, module) -> dict:
    """Log the plan (and warnings when it exceeds the machine's memory or `plan.warn_hours`); return it.

    The random state is put back, so that a run draws the same patches with or without the plan."""
    if cfg.model.lightning_module == "none":
        return {}
    cuda = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    with torch.random.fork_rng(devices=cuda):
        return _plan(cfg, datamodule, module)


def _plan(cfg: DictConfig, datamodule, module) -> dict:
    opts, device = cfg.plan, run_device(cfg.trainer)
    batch, patch = int(cfg.datamodule.batch_size), int(cfg.datamodule.patch_size)
    probe_batch = batch if device.type == "cuda" else min(batch, int(opts.cpu_probe_batch))
    base = _memory_now(device)
    lines, peaks, total = [], [], 0.0

    for piece, _ in pending_pieces(module.net, datamodule, cfg.model.id, cfg.seed, cfg.pretrain_max_epochs):
        est = _pretraining_estimate(piece, datamodule, cfg.pretrain_max_epochs, device, opts)
        total += est["seconds"]
        peaks.append(est["peak_bytes"])
        lines.append(f"  pre-training {piece.name}: {est['epochs']} epochs x {est['steps']} steps (batch "
                     f"{est['batch']} x {est['patch']}²) at {est['step_s']:.3g} s/step -> "
                     f"{format_duration(est['seconds'])}")

    steps_per_epoch = cfg.datamodule.patches_per_epoch // batch
    fast = cfg.trainer.get("fast_dev_run")
    epochs = 1 if fast else cfg.trainer.max_epochs
    train_steps = (int(fast) if fast else steps_per_epoch * epochs) if epochs else math.inf
    if cfg.trainer.get("max_steps") not in (None, -1) and not fast:
        train_steps = min(train_steps, cfg.trainer.max_steps)
    step_s, peak = _probe_training(cfg, datamodule, module, probe_batch, device, int(opts.probe_steps))
    step_s *= batch / probe_batch
    peaks.append(base + (peak - base) * batch / probe_batch)
    scene_s = _scene_seconds(module, datamodule, device)
    n_val, n_test = len(datamodule.samples["val"]), len(datamodule.samples["test"])
    val_epochs = 1 if fast else (epochs or 0) // int(cfg.trainer.get("check_val_every_n_epoch") or 1)
    fit_s = train_steps * step_s + val_epochs * n_val * scene_s
    max_time = _max_time_s(cfg.trainer.get("max_time"))
    capped = max_time is not None and fit_s > max_time
    fit_s = min(fit_s, max_time) if capped else fit_s
    total += fit_s + n_test * scene_s
    probe_note = (f"probe: {opts.probe_steps} steps on {probe_batch} of {batch} samples"
                  + (", scaled linearly" if probe_batch < batch else ""))
    lines.append(f"  training: {'fast_dev_run, ' if fast else ''}{epochs} epochs x {steps_per_epoch} steps at "
                 f"{step_s:.3g} s/step ({probe_note}) + validation {n_val} scenes x {scene_s:.2g} s per epoch -> "
                 f"{format_duration(fit_s)}{' (capped by trainer.max_time)' if capped else ''}")
    lines.append(f"  test: {n_test} scenes -> {format_duration(n_test * scene_s)}")

    memory, peak_bytes = machine_memory(device), max(peaks)
    kind = "GPU memory allocated" if device.type == "cuda" else "process RSS"
    header = (f"plan: {cfg.model.id} on {device_name(device)}, batch {batch} x {patch}² patches, "
              f"{cfg.datamodule.patches_per_epoch} patches per epoch")
    footer = (f"  total ≈ {format_duration(total)}; peak memory ≈ {peak_bytes / GB:.1f} GB of "
              f"{memory / GB:.1f} GB ({kind})")
    log.info("\n".join([header, *lines, footer]))
    if peak_bytes > memory:
        log.warning("plan: the estimated peak memory %.1f GB exceeds this machine's %.1f GB: the run will likely be "
                    "killed. Lower model.train.batch_size (now %d) or model.train.patch_size (now %d).",
                    peak_bytes / GB, memory / GB, batch, patch)
    if total > float(opts.warn_hours) * 3600:
        log.warning("plan: the estimated %s exceed plan.warn_hours=%s. Check the device (trainer=gpu), or shorten "
                    "with trainer=debug, pretrain_max_epochs=<n>, model.train.max_epochs=<n> or trainer.max_time.",
                    format_duration(total), opts.warn_hours)
    return {"device": device_name(device), "total_s": round(total, 1), "train_step_s": round(step_s, 4),
            "peak_memory_gb": round(peak_bytes / GB, 2), "machine_memory_gb": round(memory / GB, 1)}


def run_device(trainer: DictConfig) -> torch.device:
    """The device Lightning will train on (preflight already refused a GPU accelerator without a GPU)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    use_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda", 0) if use_cuda else torch.device("cpu")


def machine_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _memory_now(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.memory_allocated(device))
    with open("/proc/self/statm") as f:
        return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))


@contextmanager
def _peak_memory(device: torch.device, out: list):
    """Append the peak memory of the block: the CUDA allocator's peak, or the process's peak RSS (VmHWM, reset
    through /proc/self/clear_refs where Linux allows it, else the lifetime peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    yield
    if device.type == "cuda":
        out.append(float(torch.cuda.max_memory_allocated(device)))
    else:
        out.append(float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


class _StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self.times.append(time.perf_counter() - self._t)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe_training(cfg, datamodule, module, probe_batch: int, device, steps: int) -> tuple[float, float]:
    """Seconds per training step (after one warm-up step) and peak memory, on real patches; weights put back."""
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for frozen in module.modules():  # the loss network is trained later; its random weights time the same
        if isinstance(frozen, FrozenEncoder):
            frozen.loaded.fill_(True)
    dataset = PatchDataset(datamodule.store, datamodule.norm, datamodule.samples["train"], datamodule.patch_size,
                           probe_batch * (steps + 1), datamodule.augment,
                           datamodule.pairing.train_reference == "random", datamodule.train_dates)
    timer, peak = _StepTimer(), []
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[timer], max_steps=steps + 1, max_epochs=1,
                          max_time=None, fast_dev_run=False, devices=1, strategy="auto", enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, limit_train_batches=1.0,
                          limit_val_batches=0, num_sanity_val_steps=0)
    # schedulers step on validation metrics, which the probe does not compute
    module.configure_optimizers = lambda: _optimizers_only(type(module).configure_optimizers(module))
    try:
        with _peak_memory(device, peak):
            trainer.fit(module, train_dataloaders=DataLoader(dataset, batch_size=probe_batch, drop_last=True))
    finally:
        del module.configure_optimizers
        module.load_state_dict(state)
    module.cpu()
    times = timer.times[1:] or timer.times
    return sum(times) / len(times), peak[0]


def _optimizers_only(configured):
    """The optimizer(s) of a `configure_optimizers` result: an optimizer, {"optimizer": ...} or ([opts], [scheds])."""
    if isinstance(configured, dict):
        return configured["optimizer"]
    if isinstance(configured, (list, tuple)) and len(configured) == 2 and isinstance(configured[1], (list, tuple)):
        return configured[0]
    return configured


def _pretraining_estimate(piece, datamodule, max_epochs, device, opts) -> dict:
    """Epochs, steps and duration of one loss network's pre-training, timed on random patches of its recipe."""
    recipe = piece.recipe
    h, w = datamodule.store.grid.shape
    n = len(datamodule.train_dates) * len(patch_offsets(h, recipe["patch"], recipe["stride"])) \
        * len(patch_offsets(w, recipe["patch"], recipe["stride"]))
    n_val = math.ceil(n * recipe["val_fraction"])
    batch = int(recipe["batch_size"])
    probe_batch = batch if device.type == "cuda" else min(batch, int(opts.cpu_probe_batch))
    base = _memory_now(device)
    ae = piece.build_autoencoder().to(device)
    optimizer = torch.optim.Adam(ae.parameters(), lr=recipe["lr"])
    x = torch.rand(probe_batch, 1, recipe["patch"], recipe["patch"], device=device)
    times, peak = [], []
    with _peak_memory(device, peak):
        for _ in range(int(opts.probe_steps) + 1):
            _sync(device)
            start = time.perf_counter()
            loss = piece.loss(ae(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            _sync(device)
            times.append(time.perf_counter() - start)
    del ae, optimizer, x
    step_s = sum(times[1:] or times) / len(times[1:] or times) * batch / probe_batch
    steps = math.ceil((n - n_val) / batch)
    epochs = int(recipe["max_epochs"] if max_epochs is None else max_epochs)
    epoch_s = steps * step_s + math.ceil(n_val / batch) * step_s / 3  # validation: forward only
    return {"epochs": epochs, "steps": steps, "batch": batch, "patch": recipe["patch"], "step_s": step_s,
            "seconds": epochs * epoch_s, "peak_bytes": base + (peak[0] - base) * batch / probe_batch}


def _scene_seconds(module, datamodule, device) -> float:
    """Seconds to predict one whole validation scene (the tiler included)."""
    scenes = datamodule.scene_dataset("val")
    if not len(scenes):
        return 0.0
    batch = next(iter(DataLoader(scenes, batch_size=1)))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    module.to(device).eval()
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        module.predict_kelvin(batch)
        _sync(device)
        seconds = time.perf_counter() - start
    module.cpu().train()
    return seconds


def _max_time_s(value) -> float | None:
    """trainer.max_time as seconds: "DD:HH:MM:SS" or a mapping of days/hours/minutes/seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        d, h, m, s = (int(x) for x in value.split(":"))
        return ((d * 24 + h) * 60 + m) * 60 + s
    return sum(float(value.get(k, 0)) * f for k, f in (("days", 86400), ("hours", 3600), ("minutes", 60),
                                                          ("seconds", 1)))
