"""What ``train.py`` does: dataset, loss-network pre-training, fit, test, and the run folder's ``run.json``.

The run folder is the contract with ``evaluate.py``: the composed config (``.hydra/config.yaml``, and resolved in
``config_resolved.yaml`` so it can be read without Hydra's runtime), best and last
checkpoints, and ``run.json`` (model, dataset, variant, split, pairing, seed, status, best validation metric,
wall time, parameter count, normalization).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from stf_bench.data.context import evaluation_context
from stf_bench.data.gapfill import progressive_focal_mean
from stf_bench.errors import ConfigError, DataError
from stf_bench.models.param_table import inference_parameters
from stf_bench.run_folder import RESOLVED_CONFIG, load_checkpoint_file, recipe_hash, write_run_json
from stf_bench.training.config_tree import print_config_tree
from stf_bench.training.lifecycle import (PeakMemory, Signals, StopAtBatchEnd, check_optimizer_steps, check_trained,
                                          end_state, last_checkpoint_path, requeued_checkpoint, run_info)
from stf_bench.training.module import finite_or_none
from stf_bench.training.objective import (MetricHistory, check_direction, direction, objective_value,
                                          sweeper_direction)
from stf_bench.training.plan import announce_plan
from stf_bench.training.preflight import preflight, pretrained_cache_path
from stf_bench.training.registry import LIGHTNING_MODULES, lightning_module_class
from stf_bench.training.wandb_run import finish_wandb, make_loggers
from stf_bench.wandb_mode import wandb_mode_default

log = logging.getLogger(__name__)


def check_model_config(cfg: DictConfig) -> None:
    """Fail before any work on a patch size or module the model cannot take."""
    model = cfg.model
    if model.lightning_module not in LIGHTNING_MODULES:
        raise ConfigError(f"model {model.id}: lightning_module={model.lightning_module!r}; available: "
                          f"{', '.join(LIGHTNING_MODULES)}.")
    if model.lightning_module == "none":
        return  # classical baselines see whole scenes, never training patches
    patch = cfg.datamodule.patch_size
    if model.fixed_size and patch != model.fixed_size:
        raise ConfigError(f"model {model.id} accepts only {model.fixed_size}x{model.fixed_size} patches, got "
                          f"datamodule.patch_size={patch}. Set model.train.patch_size={model.fixed_size}.")
    multiple = model.size_multiple or 1
    if patch % multiple:
        fix = max(multiple, patch // multiple * multiple)
        raise ConfigError(f"model {model.id} needs patch sizes that are multiples of {multiple}, got "
                          f"datamodule.patch_size={patch}. Use model.train.patch_size={fix}.")


def dataset_id(datamodule, cfg: DictConfig) -> dict:
    """The run's store, its complete split and pairing (a resumed run must keep its test dates) and the evaluation
    context its scores belong to."""
    store = datamodule.store
    context = evaluation_context(store.path, store.name, store.variant, cfg.split, cfg.pairing)
    return {"name": store.name, "variant": store.variant, "store": store.path.name,
            "split": datamodule.split.name, "pairing": datamodule.pairing.name, "context": context,
            "split_config": {"class": type(datamodule.split).__name__, **vars(datamodule.split)},
            "pairing_config": vars(datamodule.pairing).copy()}


def pretrain_pieces(net: torch.nn.Module, datamodule, model_id: str, seed: int, max_epochs: int | None) -> None:
    """Train (or load from the dataset's cache) each frozen loss network the model declares, on training dates."""
    if not hasattr(net, "pretrained_pieces"):
        return
    from stf_bench.models.blocks.pretrained import train_piece

    for piece in net.pretrained_pieces():
        if piece.ckpt:
            state = load_checkpoint_file(piece.ckpt)
        else:
            train_dates = datamodule.train_dates
            path = pretrained_cache_path(piece, datamodule, model_id, seed, max_epochs)
            if path.is_file():
                log.info("loss network %s: cached %s", piece.name, path)
                state = load_checkpoint_file(path)
            else:
                log.info("loss network %s: training on %d training dates", piece.name, len(train_dates))
                images = [datamodule.norm.from_kelvin(progressive_focal_mean(np.asarray(datamodule.store.values[t, 0])))
                          for t in train_dates]
                path.parent.mkdir(exist_ok=True)
                # per-epoch progress: an interrupted pre-training continues in the next run with the same key
                state = train_piece(piece, images, seed=seed, max_epochs=max_epochs,
                                    resume_path=path.with_suffix(".progress"))
                tmp = path.with_suffix(".part")
                torch.save(state, tmp)
                os.replace(tmp, path)
        net.load_pretrained(piece.name, state)


def check_resume(ckpt_path: str, ids: dict, model_id: str) -> None:
    """A checkpoint must come from the same model and the same dataset store as this run."""
    ckpt = load_checkpoint_file(ckpt_path) if Path(ckpt_path).is_file() else None
    if ckpt is None:
        raise DataError(f"ckpt_path={ckpt_path} does not exist: give the path of a .ckpt file from a run folder.")
    hp = ckpt.get("hyper_parameters", {})
    theirs, their_model = hp.get("dataset_id", {}), hp.get("model_cfg", {}).get("id")
    if their_model != model_id:
        raise ConfigError(f"ckpt_path={ckpt_path} holds model {their_model!r}, this run trains {model_id!r}. "
                          f"Pass model={their_model} or another checkpoint.")
    if (theirs.get("name"), theirs.get("store")) != (ids["name"], ids["store"]):
        raise ConfigError(f"ckpt_path={ckpt_path} was trained on dataset {theirs.get('name')}/{theirs.get('store')}, "
                          f"this run uses {ids['name']}/{ids['store']}. Resume with the same dataset and "
                          f"preprocess options, or start a new run without ckpt_path.")
    for key in ("split", "pairing"):
        mine, old = ids[f"{key}_config"], theirs.get(f"{key}_config", {"name": theirs.get(key)})
        if any(old[k] != mine.get(k) for k in old):
            raise ConfigError(f"ckpt_path={ckpt_path} was trained with {key} {old}, this run uses {key} {mine}: "
                              f"resuming would move dates between training and test. Resume with the same "
                              f"{key}= options, or start a new run without ckpt_path.")


def quiet_libraries() -> None:
    """Lightning logs through its own handlers besides Hydra's (every line twice) and warns about a torch internal."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


def train(cfg: DictConfig) -> float:
    """Train and test one configuration; returns the best value of `optimized_metric` (the sweep objective)."""
    from hydra.core.hydra_config import HydraConfig

    started = time.time()
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    check_direction(cfg, sweeper_direction(hydra_cfg))
    lead = rank_zero_only.rank == 0  # under DDP every rank runs train(); rank 0 alone writes the run's files
    save = (lambda: write_run_json(output_dir, info)) if lead else (lambda: None)
    if lead and cfg.get("print_config") and (hydra_cfg is None or str(hydra_cfg.job.get("num", 0)) in ("0", "None")):
        print_config_tree(cfg)  # in a sweep, its first job only
    quiet_libraries()
    output_dir = Path(cfg.paths.output_dir)
    info = run_info(cfg)
    requeued = requeued_checkpoint(output_dir)
    if requeued and not cfg.ckpt_path:  # a preempted job that SLURM/submitit started again in its own folder
        cfg.ckpt_path, info["requeued"] = requeued
        info["resumed_from"] = cfg.ckpt_path
        log.info("requeued job: resuming from %s", cfg.ckpt_path)
    elif cfg.ckpt_path:
        info["resumed_from"] = str(cfg.ckpt_path)
    save()  # every job leaves a run.json, also one that fails while setting up
    with Signals() as signals, PeakMemory() as memory:
        try:
            datamodule, module, ids = _setup(cfg, output_dir, info, lead)
            save()
            result = _fit_and_test(cfg, datamodule, module, ids, output_dir, signals, memory)
        except BaseException as exc:
            info.update(end_state(exc, signals), wall_time_s=round(time.time() - started, 2),
                        **finish_wandb(exit_code=1))
            save()
            if signals.received is not None:
                signals.exit()
            raise
    info.update(result, status="finished", wall_time_s=round(time.time() - started, 2), **finish_wandb(exit_code=0))
    save()
    log.info("run finished: %s", output_dir)
    return objective_value(info["objective"]["value"], cfg.optimized_metric)


def _setup(cfg: DictConfig, output_dir: Path, info: dict, lead: bool = True):
    """Dataset (split, pairing, normalization) and LightningModule; fills run.json's dataset and model fields.
    `lead`: this process writes the run's files and announces the plan (rank 0; the only process without DDP)."""
    check_model_config(cfg)
    check_optimizer_steps(cfg)
    if lead:
        (output_dir / RESOLVED_CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup()
    ids = dataset_id(datamodule, cfg)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    module_cls = lightning_module_class(cfg.model.lightning_module, cfg.model.get("adversarial"))
    module = module_cls(model_cfg=model_cfg, norm=datamodule.norm.to_json(),
                        data_range_k=float(cfg.dataset.data_range_k), dataset_id=ids)
    preflight(cfg, datamodule, module)  # seconds, before any long work
    plan = announce_plan(cfg, datamodule, module) if lead else None
    info.update({
        "model": cfg.model.id, "title": cfg.model.title, "family": cfg.model.family, "label": cfg.model.label,
        "lightning_module": cfg.model.lightning_module, "dataset": ids["name"], "variant": ids["variant"],
        "store": str(datamodule.store.path), "split": ids["split"], "pairing": ids["pairing"], "seed": cfg.seed,
        "split_config": ids["split_config"], "pairing_config": ids["pairing_config"], "context": ids["context"],
        "recipe": recipe_hash(cfg), "plan": plan,
        "skipped_dates": {k: [f"{d}: {why}" for d, why in v] for k, v in datamodule.split_info["skipped"].items()},
        "params": inference_parameters(module.net), "params_target": cfg.model.get("params_target"),
        "norm": datamodule.norm.to_json(),
        **({"sampling": module.net.sampling} if hasattr(module.net, "sampling") else {}),  # diffusion: steps, draws, seed
    })
    return datamodule, module, ids


def _fit_and_test(cfg: DictConfig, datamodule, module, ids: dict, output_dir: Path, signals: Signals,
                  memory: PeakMemory) -> dict:
    if cfg.model.lightning_module == "none":
        if "wandb" in (cfg.get("logger") or {}):
            wandb_mode_default()
        trainer = instantiate(cfg.trainer, logger=make_loggers(cfg, ids) or False, callbacks=[], max_epochs=0)
        test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        return {"test": {k: finite_or_none(v) for k, v in test.items()}, "best_val_rmse": None, "checkpoints": {},
                "objective": _objective(cfg, None)}

    if cfg.ckpt_path:
        check_resume(cfg.ckpt_path, ids, cfg.model.id)  # before pre-training: a wrong checkpoint fails at once
    signals.stage = "loss-network pre-training"
    pretrain_pieces(module.net, datamodule, cfg.model.id, cfg.seed, cfg.pretrain_max_epochs)
    signals.stage = "setup"
    if cfg.compile:
        module.compile_network()
    if "wandb" in (cfg.get("logger") or {}):
        wandb_mode_default()
    loggers = make_loggers(cfg, ids)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    stop = StopAtBatchEnd(signals, last_checkpoint_path(callbacks))
    history = MetricHistory(cfg.optimized_metric)
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[*callbacks, stop, history])
    with signals.deferred("training"):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    check_trained(trainer)
    signals.stage = "testing"
    savers = [c for c in callbacks if isinstance(c, L.pytorch.callbacks.ModelCheckpoint)]
    checkpoint = next((c for c in savers if c.monitor), None)  # best by the monitored metric
    # read before testing: testing from best.ckpt restores the callbacks' state as it was when best.ckpt was saved
    best = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    last = next((c.best_model_path for c in savers if not c.monitor and c.best_model_path), None)  # latest epoch
    best_score, epochs = (checkpoint.best_model_score if checkpoint else None), trainer.current_epoch
    objective = _objective(cfg, history.best(trainer))
    test = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0] if best else \
        trainer.test(module, datamodule=datamodule, verbose=False)[0]
    _log_prediction_images(loggers, module, datamodule)
    return {
        "best_val_rmse": finite_or_none(best_score) if best_score is not None else None,
        "epochs": epochs,
        "test": {k: finite_or_none(v) for k, v in test.items()},
        "checkpoints": {"best": best, "last": last},
        "objective": objective,
        "world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__,
        **memory.result(module.device),
    }


def _objective(cfg: DictConfig, value: float | None) -> dict:
    """run.json's record of what the sweep optimizes and this run's best value of it."""
    return {"metric": cfg.optimized_metric, "direction": direction(cfg.optimized_metric),
            "value": finite_or_none(value) if value is not None else None}


def _log_prediction_images(loggers, module, datamodule) -> None:
    """At the end of training: reference, prediction and error of the first test scene, to W&B."""
    wandb_loggers = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    if not wandb_loggers:
        return
    from stf_bench.figures import scene_panel

    sample = datamodule.scene_dataset("test")[0]
    batch = {k: (torch.from_numpy(v)[None] if isinstance(v, np.ndarray) and k != "meta" else v)
             for k, v in sample.items()}
    module.eval()
    pred = module.predict_kelvin({k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()})
    ref = module.norm.to_kelvin(batch["fine_tgt"][0, 0].numpy())
    ref[~batch["valid_tgt"][0, 0].numpy()] = np.nan
    image = scene_panel(ref, pred[0, 0].cpu().numpy(), title=module.model_cfg["id"],
                        dates=sample["meta"]["dates"])
    for lg in wandb_loggers:
        lg.log_image(key="test/prediction", images=[image])
