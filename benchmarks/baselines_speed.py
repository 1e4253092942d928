"""Time and peak memory of every classical baseline on one 950 × 950 scene (run by hand, not by the tests).

    python benchmarks/baselines_speed.py                       # all methods, default windows, 2 threads
    python benchmarks/baselines_speed.py --methods starfm --threads 1

Each method runs in its own process, so the peak resident memory it reports is that method's alone (plus the ~0.4 GB
every torch process holds). The scene is synthetic: smooth random fields with texture for two Landsat-like
references and a target, MODIS-like coarse images as 33 px block means with a sensor offset and noise.
Targets (issue 5): STARFM with a 31 × 31 window under 30 s and 4 GB on 2 CPU cores; no method over 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METHODS = ["persistence", "delta", "coarse", "starfm", "estarfm", "ubestarfm", "fsdaf", "fitfc", "stnlffm", "ubdf"]
TWO_PAIR = {"estarfm", "ubestarfm"}
COARSE_BLOCK = 33
# extra runs beside the defaults: (method, net overrides, label)
EXTRA = [("starfm", {"half_window": 15}, "31x31 (target)")]


def smooth_field(rng: np.random.Generator, size: int, length: float) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length `length` pixels (FFT filtering)."""
    k = np.fft.fftfreq(size)
    kernel = np.exp(-0.5 * (2 * np.pi * length) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    f = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * kernel))
    return (f - f.mean()) / f.std()


def scene(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """F1, F3 and truth F2 with shared land-cover-like structure; C = block means + per-date offset + noise."""
    rng = np.random.default_rng(seed)
    land = 4.0 * smooth_field(rng, size, 40) + 2.0 * smooth_field(rng, size, 8)

    def fine(level, change_scale):
        return level + land * change_scale + 1.0 * smooth_field(rng, size, 2) + 0.3 * rng.normal(size=(size, size))

    def coarse(f, offset):
        s, n = COARSE_BLOCK, -(-size // COARSE_BLOCK)
        padded = np.full((n * s, n * s), np.nan)
        padded[:size, :size] = f
        blocks = np.nanmean(padded.reshape(n, s, n, s), axis=(1, 3))
        return np.kron(blocks, np.ones((s, s)))[:size, :size] + offset + 0.5 * rng.normal(size=(size, size))

    f1, f2, f3 = fine(295.0, 1.0), fine(303.0, 1.2), fine(299.0, 1.1)
    return {"F1": f1, "C1": coarse(f1, 0.3), "F2": f2, "C2": coarse(f2, -1.0), "F3": f3, "C3": coarse(f3, 0.5)}


def child(method: str, overrides: dict, size: int, threads: int) -> dict:
    """Build the method from its YAML, predict the scene once, report seconds and peak RSS of this process."""
    import torch
    from _speed import build_classical

    torch.set_num_threads(threads)
    model, _ = build_classical(method, COARSE_BLOCK, device="cpu", **overrides)
    s = scene(size)
    t = lambda a: torch.tensor(a, dtype=torch.float32)[None, None]  # noqa: E731
    sample = {"fine_ref": t(s["F1"]), "coarse_ref": t(s["C1"]), "coarse_tgt": t(s["C2"])}
    if method in TWO_PAIR:
        sample.update(fine_ref2=t(s["F3"]), coarse_ref2=t(s["C3"]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    with torch.no_grad():
        pred = model(sample)[0, 0].numpy().astype(np.float64)
    seconds = time.perf_counter() - start
    err = pred - s["F2"]
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "window": getattr(getattr(model, "window", None), "k", None),
        "rmse": float(np.sqrt(np.nanmean(err**2))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--size", type=int, default=950)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.overrides), args.size, args.threads)))
        return
    runs = [(m, {}, "default") for m in args.methods] + [e for e in EXTRA if e[0] in args.methods]
    print(f"{args.size} x {args.size} px, coarse block {COARSE_BLOCK} px, {args.threads} torch thread(s), CPU")
    print("| method | window | run | seconds | peak RSS MB | RMSE K |")
    print("|---|---|---|---|---|---|")
    for method, overrides, label in runs:
        cmd = [sys.executable, __file__, "--child", method, "--overrides", json.dumps(overrides),
               "--size", str(args.size), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        window = f"{r['window']}x{r['window']}" if r["window"] else "-"
        print(f"| {method} | {window} | {label} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['rmse']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
