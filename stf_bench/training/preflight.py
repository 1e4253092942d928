"""Checks that run in seconds before any long work (loss-network pre-training, training).

Everything that used to fail only after pre-training (minutes to hours with the published recipes) is tried here
first: the trainer's accelerator against the machine, the optimizers and the scheduler on the real parameters,
write access to the run folder and to the store's `pretrained/` cache, and patch and batch sizes against the data.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import uuid
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from stf_bench.errors import ConfigError


def preflight(cfg: DictConfig, datamodule, module) -> None:
    """Raise ConfigError naming the key, the value and the fix for anything that would fail later."""
    check_accelerator(cfg.trainer)
    check_writable(Path(cfg.paths.output_dir), "paths.output_dir (hydra.run.dir)", "run the command from a writable "
                   "folder or set hydra.run.dir=<writable folder>")
    if cfg.model.lightning_module == "none":
        return
    check_sizes(cfg, datamodule)
    check_optimizers(cfg, module)
    for piece, path in pending_pieces(module.net, datamodule, cfg.model.id, cfg.seed, cfg.pretrain_max_epochs):
        check_writable(path.parent, f"the pre-trained loss network cache of paths.data_dir={cfg.paths.data_dir}",
                       f"make that folder writable, set paths.data_dir=<writable folder>, or give trained weights "
                       f"with model.net.{piece.name}.ckpt=<path>")


def check_accelerator(trainer: DictConfig) -> None:
    accelerator, devices = str(trainer.get("accelerator", "auto")), trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda"):
        present = torch.cuda.device_count()
        if present == 0:
            raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU (torch "
                              f"{torch.__version__}, CUDA {'built' if torch.version.cuda else 'not built'}). Use "
                              f"trainer=cpu (or trainer=default, which takes a GPU only when one is present).")
        wanted = _device_count(devices)
        if wanted is not None and wanted > present:
            raise ConfigError(f"trainer.devices={devices} but this machine has {present} GPU(s). Use "
                              f"trainer.devices={present} (or trainer.devices=auto).")
    elif accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps but MPS is not available here. Use trainer=cpu.")


def _device_count(devices) -> int | None:
    """The number of devices a `trainer.devices` value asks for; None when Lightning decides (auto, -1)."""
    if isinstance(devices, int):
        return None if devices == -1 else devices
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        return max(int(d) for d in devices) + 1 if len(devices) else 0
    return None


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Create `folder` if needed and write and remove a probe file in it."""
    probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write to {folder} ({exc.strerror or exc}). Training results would be "
                          f"lost after the long work; {fix}.") from None


def check_sizes(cfg: DictConfig, datamodule) -> None:
    """Patches against the scene, with advice the model accepts: a multiple of its size_multiple, and for a
    fixed-size model (which takes no other patch) a larger region or another model, since no patch would do."""
    h, w = datamodule.store.grid.shape
    patch = cfg.datamodule.patch_size  # (batch against patches_per_epoch: lifecycle.check_optimizer_steps)
    model = cfg.model
    if patch > min(h, w) and model.fixed_size:
        raise ConfigError(f"model {model.id} takes only {model.fixed_size}x{model.fixed_size} patches "
                          f"(model.fixed_size), but the scenes of {datamodule.store.path} are {h}x{w}: no patch "
                          f"size can train it there. Prepare the dataset over a region of at least "
                          f"{model.fixed_size}x{model.fixed_size} fine pixels, or choose a model without a fixed "
                          f"size (e.g. model=dcstfn). Whole-scene prediction of a trained {model.id} pads smaller "
                          f"scenes and scores only the real pixels.")
    if patch > min(h, w):
        multiple = int(model.size_multiple or 1)
        fit = min(h, w) // max(2, multiple) * max(2, multiple)
        raise ConfigError(f"datamodule.patch_size={patch} (model.train.patch_size) is larger than the scene "
                          f"({h}x{w}) of {datamodule.store.path}. Use model.train.patch_size={fit} or smaller"
                          f"{f' (a multiple of {multiple}, model {model.id} needs it)' if multiple > 1 else ''}.")
    for name, block in (cfg.model.net or {}).items():
        recipe = block.get("recipe") if isinstance(block, DictConfig) else None
        if recipe is not None and block.get("ckpt") is None and recipe.patch > min(h, w):
            raise ConfigError(f"model.net.{name}.recipe.patch={recipe.patch} (loss-network pre-training) is larger "
                              f"than the scene ({h}x{w}) of {datamodule.store.path}. Set "
                              f"model.net.{name}.recipe.patch={min(h, w) // 2 * 2} (and recipe.stride at most that).")


def check_optimizers(cfg: DictConfig, module) -> None:
    """Build the optimizer(s) and the scheduler on the real parameters, as `configure_optimizers` will."""
    try:
        module.configure_optimizers()
    except Exception as exc:
        raise ConfigError(_optimizer_message(cfg.model, exc)) from None


def _optimizer_message(model: DictConfig, exc: Exception) -> str:
    """Name the value that cannot work: a number-typed argument given something else, else the whole block."""
    suspects, blocks = [], []
    for key in ("optimizer", "d_optimizer", "scheduler"):
        block = model.get(key)
        if not block:
            continue
        blocks.append(f"model.{key}: {OmegaConf.to_container(block)}")
        try:
            params = inspect.signature(get_class(block._target_)).parameters
        except Exception:
            suspects.append(f"model.{key}._target_={block.get('_target_')!r} (not an importable class)")
            continue
        for name, value in block.items():
            default = params[name].default if name in params else None
            if isinstance(default, (int, float)) and not isinstance(default, bool) and \
                    not isinstance(value, (int, float)):
                suspects.append(f"model.{key}.{name}={value!r} (a number is expected, e.g. "
                                f"model.{key}.{name}={default})")
    what = "; ".join(suspects) if suspects else " | ".join(blocks)
    return (f"the optimizer or scheduler cannot be built on the model's parameters ({type(exc).__name__}: {exc}). "
            f"Check {what}.")


def pretrained_cache_path(piece, datamodule, model_id: str, seed: int, max_epochs: int | None) -> Path:
    """Where the trained loss network is cached in the store: keyed by recipe, training dates, seed and norm."""
    key = json.dumps({"piece": piece.name, "recipe": piece.recipe, "dates": datamodule.train_dates, "seed": seed,
                      "max_epochs": max_epochs, "norm": datamodule.norm.to_json()}, sort_keys=True)
    return (Path(datamodule.store.path) / "pretrained"
            / f"{model_id}_{piece.name}_{hashlib.sha256(key.encode()).hexdigest()[:10]}.ckpt")


def pending_pieces(net, datamodule, model_id: str, seed: int, max_epochs: int | None) -> list:
    """(piece, cache path) of each loss network this run will have to pre-train (no ckpt, not cached)."""
    if not hasattr(net, "pretrained_pieces"):
        return []
    out = []
    for piece in net.pretrained_pieces():
        if not piece.ckpt:
            path = pretrained_cache_path(piece, datamodule, model_id, seed, max_epochs)
            if not path.is_file():
                out.append((piece, path))
    return out

