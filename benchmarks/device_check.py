"""One-command device check (`make gpu-check`): training and inference speed of every model on this machine.

    python benchmarks/device_check.py                 # on a GPU: published batch and patch, ~8 minutes
    python benchmarks/device_check.py --tiny --out /tmp/check   # tiny settings (automatic without CUDA)

For every deep model in conf/model/: training steps at the published batch and patch in fp32 and bf16, bf16 with
torch.compile and bf16 with channels-last (samples/s, peak GPU memory, the data loader's samples/s against the step
rate); whole-scene inference s/scene for every deep model and classical baseline (warm-up, then the median of
repeats); a 2-GPU DDP step where more than one GPU is present. Each case stops after --steps steps or --case-s
seconds, whichever comes first, and cases past --budget-s are recorded as skipped; a failing case (out of memory,
a compile error) is recorded in the table, not fatal. Without CUDA the same code runs with tiny sizes, and the
GPU-only variants read "skipped (no GPU)". Writes <out>/<device>.json and <device>.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _speed import (CONF, autocast, batch_to, build_classical, build_module, compose_train,  # noqa: E402
                    model_ids, random_scene, timed, train_step)
from baselines_speed import COARSE_BLOCK, scene  # noqa: E402

from stf_bench.devices import device_name  # noqa: E402
from stf_bench.models.cpu_variants import SHRUNK, shrunk_overrides  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# (name, bf16, torch.compile, channels_last)
VARIANTS = [("fp32", False, False, False), ("bf16", True, False, False), ("bf16+compile", True, True, False),
            ("bf16+channels_last", True, False, True)]
FULL = {"tiny": False, "scene": 950, "steps": 30, "case_s": 10.0, "repeats": 5, "warmup": 3, "budget_s": 450.0,
        "data": ["dataset=synthetic", "dataset.source.n_dates=12"]}
TINY = {"tiny": True, "scene": 64, "steps": 1, "case_s": 2.0, "repeats": 1, "budget_s": 900.0, "warmup": 0,
        "batch": 2, "patch": 64,
        "data": ["dataset=synthetic_small"]}

def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().split(" (")[0]).strip("-")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def guarded(row: dict, device: torch.device, fn) -> dict:
    """Run one case; an exception (OOM, compile error) becomes the row's status instead of ending the check."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        row.update(fn())
        row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - every failure is a result here
        cause = err.__cause__ or err
        row["status"] = f"error: {type(cause).__name__}: {' '.join(str(cause).split())[:200]}"
    if device.type == "cuda":
        row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.empty_cache()
    return row


def model_overrides(model_id: str, s: dict) -> list[str]:
    """Published batch and patch on a GPU; tiny ones otherwise."""
    if "patch" not in s:
        return []
    if model_id in SHRUNK:  # tiny runs only: a fixed-size model shrunk as the contract test shrinks it
        patch = SHRUNK[model_id].get("fixed_size", s["patch"])
        return [f"model.train.batch_size={s['batch']}", f"model.train.patch_size={patch}", *shrunk_overrides(model_id)]
    fixed = OmegaConf.load(CONF / "model" / f"{model_id}.yaml").get("fixed_size")
    return [f"model.train.batch_size={1 if fixed else s['batch']}", f"model.train.patch_size={fixed or s['patch']}"]


def check_model(model_id: str, data_dir: str, device: torch.device, s: dict, budget: Budget) -> tuple[list, dict]:
    """Training rows (one per variant) and the whole-scene inference row of one deep model."""
    from hydra.utils import instantiate

    cfg = compose_train(model_id, data_dir, [*s["data"], *model_overrides(model_id, s)])
    dm = instantiate(cfg.datamodule)
    dm.setup()
    batch, patch = int(cfg.datamodule.batch_size), int(cfg.datamodule.patch_size)
    loader = iter(dm.train_dataloader())
    started, batches = time.perf_counter(), []
    while len(batches) < min(s["steps"], 8) and (not batches or time.perf_counter() - started < s["case_s"]):
        batches.append(next(loader))
    loader_rate = len(batches) * batch / (time.perf_counter() - started)
    rows = []
    for name, bf16, compiled, channels_last in VARIANTS:
        row = {"model": model_id, "variant": name, "batch": batch, "patch": patch,
               "loader_samples_per_s": loader_rate}
        rows.append(row)
        if (bf16 or compiled or channels_last) and device.type != "cuda":
            row["status"] = "skipped (no GPU)"
            continue
        if budget.left() <= 0:
            row["status"] = "skipped (time budget)"
            continue

        def case(bf16=bf16, compiled=compiled, channels_last=channels_last):
            module = build_module(cfg, dm, device)
            if channels_last:
                module.net.to(memory_format=torch.channels_last)
            if compiled:
                module.compile_network()
            step = train_step(module, bf16, device)
            r = timed(lambda i: step(batch_to(batches[i % len(batches)], device, channels_last)), device,
                      warmup=s["warmup"], repeats=s["steps"], max_s=min(s["case_s"], budget.left()))
            rate = batch / r["median_s"]
            return {"steps": r["repeats"], "step_s": r["median_s"], "warmup_s": r["warmup_s"],
                    "samples_per_s": rate, "loader_over_train": loader_rate / rate}

        guarded(row, device, case)

    inference = {"model": model_id, "kind": "deep", "size": s["scene"],
                 "precision": "bf16" if device.type == "cuda" else "fp32"}

    def infer():
        module = build_module(cfg, dm, device)
        net = module.net.eval()
        sc = random_scene(s["scene"], device)
        from stf_bench.models.prediction import predict_scene

        def once(_):
            with torch.no_grad(), autocast(device, device.type == "cuda"):
                predict_scene(net, sc, cfg.model.size_multiple or 1, cfg.model.fixed_size)
        return timed(once, device, warmup=min(1, s["warmup"]), repeats=s["repeats"],
                     max_s=min(s["case_s"], budget.left()))

    if budget.left() <= 0:
        inference["status"] = "skipped (time budget)"
    else:
        guarded(inference, device, infer)
    return rows, inference


def check_classical(method: str, device: torch.device, s: dict, budget: Budget) -> dict:
    row = {"model": method, "kind": "classical", "size": s["scene"], "precision": "fp32"}
    if budget.left() <= 0:
        row["status"] = "skipped (time budget)"
        return row

    def infer():
        model, n_refs = build_classical(method, COARSE_BLOCK, device=device.type)
        sc = scene(s["scene"])
        t = lambda a: torch.tensor(a, dtype=torch.float32, device=device)[None, None]  # noqa: E731
        sample = {"fine_ref": t(sc["F1"]), "coarse_ref": t(sc["C1"]), "coarse_tgt": t(sc["C2"])}
        if n_refs == 2:
            sample.update(fine_ref2=t(sc["F3"]), coarse_ref2=t(sc["C3"]))

        def once(_):
            with torch.no_grad():
                model(sample)
        return timed(once, device, warmup=min(1, s["warmup"]), repeats=s["repeats"],
                     max_s=min(s["case_s"], budget.left()))

    return guarded(row, device, infer)


def _ddp_worker(rank: int, world: int, model_id: str, data_dir: str, s: dict, backend: str, port: int,
                queue) -> None:
    """One rank of a DDP training step: the model's loss through DistributedDataParallel on random inputs."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        from hydra.utils import instantiate
        cfg = compose_train(model_id, data_dir, [*s["data"], *model_overrides(model_id, s)])
        dm = instantiate(cfg.datamodule)
        dm.setup()
        batch = next(iter(dm.train_dataloader()))
        module = build_module(cfg, dm, device)
        net = module.net.train()

        class Loss(torch.nn.Module):
            """The generator's loss as one forward, so DDP sees the whole step (GAN: G update only)."""

            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, b):
                if module.loss_fn is None:
                    return net.compute_loss(b, 0)["loss"]
                return module.loss_fn(net(b), b)["loss"]

        ddp = DDP(Loss(), device_ids=[rank] if device.type == "cuda" else None, find_unused_parameters=True)
        opt = torch.optim.Adam([p for p in ddp.parameters() if p.requires_grad], lr=1e-4)
        b = batch_to(batch, device)

        def step(_):
            with autocast(device, device.type == "cuda"):
                loss = ddp(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        r = timed(step, device, warmup=min(1, s["warmup"]), repeats=s["steps"], max_s=s["case_s"])
        if rank == 0:
            queue.put({"steps": r["repeats"], "step_s": r["median_s"],
                       "samples_per_s": world * int(cfg.datamodule.batch_size) / r["median_s"]})
    finally:
        dist.destroy_process_group()


def check_ddp(model_id: str, data_dir: str, device: torch.device, s: dict, budget: Budget) -> dict:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    row = {"model": model_id, "variant": "DDP x2 bf16"}
    if gpus < 2:
        row["status"] = "skipped (no GPU)" if gpus == 0 else "skipped (1 GPU)"
        return row
    if budget.left() <= 0:
        row["status"] = "skipped (time budget)"
        return row
    import torch.multiprocessing as mp

    def run():
        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        mp.spawn(_ddp_worker, args=(2, model_id, data_dir, s, "nccl", 29517, queue), nprocs=2, join=True)
        return queue.get()
    return guarded(row, device, run)


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict) -> str:
    lines = [f"# Device check: {result['device']}", "",
             f"torch {result['torch']}, {'tiny settings (CPU test)' if result['tiny'] else 'published settings'}, "
             f"{result['wall_s']:.0f} s in all, {result['date']}.", "",
             "## Training", "",
             "| model | variant | batch x patch | samples/s | step s | warm-up s | peak GPU MB | loader samples/s "
             "| loader / train | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["train"]:
        lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} x {r['patch']}² | "
                     f"{fmt(r.get('samples_per_s'), '.2f')} | {fmt(r.get('step_s'), '.3f')} | "
                     f"{fmt(r.get('warmup_s'), '.1f')} | {fmt(r.get('peak_mem_mb'), '.0f')} | "
                     f"{fmt(r.get('loader_samples_per_s'), '.1f')} | {fmt(r.get('loader_over_train'), '.1f')} | "
                     f"{r['status']} |")
    for r in result["ddp"]:
        lines.append(f"| {r['model']} | {r['variant']} | - | {fmt(r.get('samples_per_s'), '.2f')} | "
                     f"{fmt(r.get('step_s'), '.3f')} | - | {fmt(r.get('peak_mem_mb'), '.0f')} | - | - | {r['status']} |")
    lines += ["", f"## Whole-scene inference ({result['settings']['scene']}² px; warm-up, then the median of up to "
              f"{result['settings']['repeats']} repeats)", "",
              "| model | kind | precision | s/scene (median) | min s | repeats | peak GPU MB | status |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["inference"]:
        lines.append(f"| {r['model']} | {r['kind']} | {r['precision']} | {fmt(r.get('median_s'), '.3f')} | "
                     f"{fmt(r.get('min_s'), '.3f')} | {fmt(r.get('repeats'), 'd')} | "
                     f"{fmt(r.get('peak_mem_mb'), '.0f')} | {r['status']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (the default without CUDA)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for <device>.json and <device>.md")
    ap.add_argument("--models", nargs="+", help="subset of model ids (default: every model in conf/model/)")
    ap.add_argument("--budget-s", type=float, help="seconds for all cases; later cases are skipped")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = TINY if args.tiny or device.type != "cuda" else FULL
    if args.budget_s is not None:
        s = {**s, "budget_s": args.budget_s}
    deep, classical = model_ids()
    if args.models:
        deep, classical = [m for m in deep if m in args.models], [m for m in classical if m in args.models]
    budget, started = Budget(s["budget_s"]), time.perf_counter()
    name = device_name(device)
    result = {"device": name, "slug": slug(name) + ("-tiny" if s["tiny"] else ""), "tiny": s["tiny"],
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
              "settings": {k: v for k, v in s.items()}, "train": [], "inference": [], "ddp": []}
    with tempfile.TemporaryDirectory() as data_dir:
        for model_id in deep:
            rows, inference = check_model(model_id, data_dir, device, s, budget)
            result["train"] += rows
            result["inference"].append(inference)
            print(f"checked {model_id}", flush=True)
        for method in classical:
            result["inference"].append(check_classical(method, device, s, budget))
        print("checked the classical baselines", flush=True)
        for model_id in deep:
            result["ddp"].append(check_ddp(model_id, data_dir, device, s, budget))
    result["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / result["slug"]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
