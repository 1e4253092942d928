"""Pieces shared by the speed benchmarks (train_throughput.py, device_check.py, baselines_speed.py).

One place builds a model the way train.py does (composed config, real datamodule, the model's LightningModule),
one place defines a training step (the supervised loss, or the GAN's D then G update), and one place times code on a
device (warm-up, then the median of repeats, stopped by a step count or a time limit, whichever comes first).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from stf_bench.resolvers import register

CONF = Path(__file__).resolve().parents[1] / "conf"
SCENE_KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")


def model_ids() -> tuple[list[str], list[str]]:
    """(deep, classical) model ids from conf/model/, so a new zoo model is benchmarked without editing a list."""
    deep, classical = [], []
    for path in sorted((CONF / "model").glob("*.yaml")):
        kind = OmegaConf.load(path).get("lightning_module")
        (classical if kind == "none" else deep).append(path.stem)
    return deep, classical


def compose_train(model_id: str, data_dir: str, overrides: list[str] = ()) -> OmegaConf:
    """The train.py config of `model_id` with its data under `data_dir` and no logger."""
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model_id}", f"paths.data_dir={data_dir}", "paths.root_dir=.",
                                          "logger=none", "pretrain_max_epochs=1", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = data_dir
    return cfg


def build_module(cfg, dm, device: torch.device):
    """The model's LightningModule on `device`; frozen pre-trained pieces get random weights (speed only)."""
    from stf_bench.training.registry import lightning_module_class  # here: baselines_speed measures RSS without it

    cls = lightning_module_class(cfg.model.lightning_module, cfg.model.get("adversarial"))
    module = cls(model_cfg=OmegaConf.to_container(cfg.model, resolve=True), norm=dm.norm.to_json(),
                 data_range_k=float(cfg.dataset.data_range_k), dataset_id={}).to(device)
    for piece in getattr(module.net, "pretrained_pieces", lambda: [])():
        module.net.load_pretrained(piece.name, piece.build_autoencoder().encoder.state_dict())
    return module


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def batch_to(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: (v.to(device, non_blocking=True, memory_format=fmt) if torch.is_tensor(v) and v.dim() == 4 else
                v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def train_step(module, bf16: bool, device: torch.device):
    """One optimizer step as training does it: the supervised loss, or for a GAN the D update then the G update."""
    from stf_bench.training.adversarial import d_loss, g_loss

    net = module.net.train()
    adversarial = hasattr(module, "generator_parameters")
    g_params = module.generator_parameters() if adversarial else [p for p in net.parameters() if p.requires_grad]
    g_opt = torch.optim.Adam(g_params, lr=1e-4)
    d_opt = torch.optim.Adam(net.discriminator.parameters(), lr=1e-4) if adversarial else None

    def step(batch: dict) -> None:
        with autocast(device, bf16):
            if adversarial:
                mode = net.gan_mode
                pred = net(batch)
                loss = d_loss(mode, net.discriminate(net.d_input(batch, batch["fine_tgt"])),
                              net.discriminate(net.d_input(batch, pred.detach())))
                d_opt.zero_grad()
                loss.backward()
                d_opt.step()
                loss = (net.compute_loss(batch, 0, pred=pred)["loss"]
                        + net.adv_weight * g_loss(mode, net.discriminate(net.d_input(batch, pred))))
            elif getattr(module, "loss_fn", None) is None:  # the model's own loss (diffusion: its objective)
                loss = net.compute_loss(batch, 0)["loss"]
            else:
                loss = module.loss_fn(net(batch), batch)["loss"]
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, repeats: int, max_s: float) -> dict:
    """Run `fn(i)` `warmup` times, then time it up to `repeats` times or until `max_s` seconds have passed (at least
    once); returns the median and minimum seconds per call, the count and the warm-up seconds (compile time)."""
    started = time.perf_counter()
    for i in range(warmup):
        fn(i)
    sync(device)
    warmup_s = time.perf_counter() - started
    times: list[float] = []
    deadline = time.perf_counter() + max_s
    while len(times) < max(1, repeats) and (not times or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn(warmup + len(times))
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times), "warmup_s": warmup_s}


def random_scene(size: int, device: torch.device, keys=SCENE_KEYS) -> dict:
    """Normalized inputs (uniform in [0, 1]) for a deep model's whole-scene prediction, with the dates a sequence
    model reads (target, then the references 16 days before and after, as an evaluation batch carries them) and the
    store's coarse block (a MODIS pixel on the 30 m grid) that CycleGAN-STF's FSDAF step reads."""
    gen = torch.Generator().manual_seed(0)
    scene = {k: torch.rand((1, 1, size, size), generator=gen).to(device) for k in keys}
    scene["meta"] = {"dates": "2020-07-17,2020-07-01,2020-08-02", "offset": torch.zeros(2),
                     "coarse_block": torch.tensor([33.3, 33.3])}
    return scene


def build_classical(method: str, coarse_block: int, **net_overrides):
    """A classical baseline from its conf/model YAML (dataset.coarse_block filled in)."""
    cfg = OmegaConf.load(CONF / "model" / f"{method}.yaml")
    root = OmegaConf.create({"dataset": {"coarse_block": coarse_block}, "model": cfg})
    net = OmegaConf.to_container(root.model.net, resolve=True)
    net.update(net_overrides)
    return instantiate(net), int(cfg.n_refs)
