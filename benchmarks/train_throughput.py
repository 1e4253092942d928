"""Training throughput per model, data-loader rate, and whole-scene (950 x 950) inference time.

    python benchmarks/train_throughput.py [--models edcstfn ganstfm swinstfm] [--steps 5] [--device auto]

Prints one table: training samples/s (on the device named; bf16 autocast on CUDA), the loader's samples/s alone and
its ratio to the training rate (target: >= 5x, so loading is never the bottleneck), and seconds per 950 x 950
scene. Uses the real datamodule on synthetic_small for patches; the scene is random LST-like data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from stf_bench.models.prediction import predict_scene
from stf_bench.resolvers import register
from stf_bench.training.registry import lightning_module_class

CONF = Path(__file__).resolve().parents[1] / "conf"


def _batch_to(batch: dict, device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def measure(model_id: str, data_dir: str, steps: int, device: torch.device, batch_size: int, patch: int) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model_id}", f"paths.data_dir={data_dir}", "paths.root_dir=.",
                                          "logger=none", "pretrain_max_epochs=1"], return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = data_dir
    patch = int(cfg.model.fixed_size or patch)
    cfg.datamodule.patch_size = patch
    cfg.datamodule.batch_size = batch_size
    dm = instantiate(cfg.datamodule)
    dm.setup()
    loader = iter(dm.train_dataloader())
    started = time.perf_counter()
    batches = [next(loader) for _ in range(steps)]
    loader_rate = steps * batch_size / (time.perf_counter() - started)

    cls = lightning_module_class(cfg.model.lightning_module)
    module = cls(model_cfg=OmegaConf.to_container(cfg.model, resolve=True), norm=dm.norm.to_json(),
                 data_range_k=float(cfg.dataset.data_range_k), dataset_id={}).to(device)
    for piece in getattr(module.net, "pretrained_pieces", lambda: [])():
        module.net.load_pretrained(piece.name, piece.build_autoencoder().encoder.state_dict())
    net = module.net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)

    def step(batch):
        optimizer.zero_grad()
        with autocast:
            if hasattr(net, "compute_loss"):
                loss = net.compute_loss(batch, 0)["loss"]
            else:
                loss = module.loss_fn(net(batch), batch)["loss"]
        loss.backward()
        optimizer.step()

    step(_batch_to(batches[0], device))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        step(_batch_to(batch, device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_rate = steps * batch_size / (time.perf_counter() - started)

    net.eval()
    gen = torch.Generator().manual_seed(0)
    scene = {k: torch.rand((1, 1, 950, 950), generator=gen).to(device)
             for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")}
    started = time.perf_counter()
    with autocast:
        predict_scene(net, scene, cfg.model.size_multiple or 1, cfg.model.fixed_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"model": model_id, "batch": batch_size, "patch": patch, "train": train_rate, "loader": loader_rate,
            "scene_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["edcstfn", "ganstfm", "swinstfm"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=128, help="patch side (fixed-size models use their own)")
    args = parser.parse_args()
    register()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"training throughput and inference ({name}{', bf16' if device.type == 'cuda' else ''})")
    for col in ("model", "batch x patch", "train samples/s", "loader samples/s", "loader / train",
                "950² scene [s]"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for model_id in args.models:
            r = measure(model_id, tmp, args.steps, device, args.batch, args.patch)
            table.add_row(r["model"], f"{r['batch']} x {r['patch']}²", f"{r['train']:.2f}", f"{r['loader']:.1f}",
                          f"{r['loader'] / r['train']:.0f}x", f"{r['scene_s']:.2f}")
            Console().print(f"measured {model_id}")
    Console().print(table)


if __name__ == "__main__":
    main()
