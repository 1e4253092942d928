"""Training throughput per model, data-loader rate, peak memory, and whole-scene (950 x 950) inference time.

    python benchmarks/train_throughput.py [--models edcstfn ganstfm] [--steps 5] [--device auto]

Prints one table for every deep model in conf/model/ (or those named): training samples/s (on the device named; bf16
autocast on CUDA), the loader's samples/s alone and its ratio to the training rate (target: >= 5x, so loading is
never the bottleneck), peak memory of the training steps and of the scene inference (CPU: the job's resident-set
high-water mark; GPU: the allocator's peak), and seconds per 950 x 950 scene. Uses the real datamodule on
synthetic_small for patches; the scene is random LST-like data.
`benchmarks/device_check.py` (`make gpu-check`) measures the same at the published settings, with variants.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _speed import (autocast, batch_to, build_module, compose_train, model_ids, random_scene, sync,  # noqa: E402
                    train_step)

from stf_bench.devices import device_name  # noqa: E402
from stf_bench.models.prediction import predict_scene  # noqa: E402
from stf_bench.training.lifecycle import PeakMemory  # noqa: E402


def measure(model_id: str, data_dir: str, steps: int, device: torch.device, batch_size: int, patch: int) -> dict:
    cfg = compose_train(model_id, data_dir)
    patch = int(cfg.model.fixed_size or patch)
    cfg.datamodule.patch_size = patch
    cfg.datamodule.batch_size = batch_size
    dm = instantiate(cfg.datamodule)
    dm.setup()
    loader = iter(dm.train_dataloader())
    started = time.perf_counter()
    batches = [next(loader) for _ in range(steps)]
    loader_rate = steps * batch_size / (time.perf_counter() - started)

    with PeakMemory() as train_peak:
        module = build_module(cfg, dm, device)
        bf16 = device.type == "cuda"
        step = train_step(module, bf16, device)
        step(batch_to(batches[0], device))  # warm-up
        sync(device)
        started = time.perf_counter()
        for batch in batches:
            step(batch_to(batch, device))
        sync(device)
        train_rate = steps * batch_size / (time.perf_counter() - started)

    net = module.net.eval()
    scene = random_scene(950, device)
    with PeakMemory() as scene_peak:
        started = time.perf_counter()
        with torch.no_grad(), autocast(device, bf16):
            predict_scene(net, scene, cfg.model.size_multiple or 1, cfg.model.fixed_size)
        sync(device)
        scene_s = time.perf_counter() - started
    return {"model": model_id, "label": cfg.model.label, "batch": batch_size, "patch": patch, "train": train_rate,
            "loader": loader_rate, "train_mb": train_peak.result(device)["peak_memory_mb"],
            "scene_mb": scene_peak.result(device)["peak_memory_mb"], "scene_s": scene_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="model ids (default: every deep model in conf/model/)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=128, help="patch side (fixed-size models use their own)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    name = device_name(device)
    table = Table(title=f"training throughput and inference ({name}{', bf16' if device.type == 'cuda' else ''})")
    for col in ("model", "batch x patch", "train samples/s", "loader samples/s", "loader / train",
                "train peak MB", "950² scene [s]", "scene peak MB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for model_id in args.models or model_ids()[0]:
            r = measure(model_id, tmp, args.steps, device, args.batch, args.patch)
            name = f"{r['model']} (reconstructed)" if r["label"] == "reconstructed" else r["model"]
            table.add_row(name, f"{r['batch']} x {r['patch']}²", f"{r['train']:.2f}", f"{r['loader']:.1f}",
                          f"{r['loader'] / r['train']:.0f}x", f"{r['train_mb']:.0f}", f"{r['scene_s']:.2f}",
                          f"{r['scene_mb']:.0f}")
            Console().print(f"measured {model_id}")
    Console().print(table)


if __name__ == "__main__":
    main()
