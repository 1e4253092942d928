"""Build the full `synthetic` dataset (51 dates x 950 x 950) end to end and report wall time and peak memory.

    python benchmarks/build_synthetic.py [--dataset synthetic] [--preprocess stf_lst] [--keep DIR]

Runs the real entry point (`prepare.py`, generation included) in a fresh temporary data dir, so nothing is a cache
hit. Exits 1 unless it finishes under 2 minutes and 4 GB peak RSS (the targets of issue 2, on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_SECONDS = 120.0
MAX_RSS_GB = 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--preprocess", default="stf_lst")
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temporary dir, removed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stf_bench_build_") as tmp:
        root = args.keep or Path(tmp)
        cmd = [sys.executable, str(REPO / "prepare.py"), f"dataset={args.dataset}", f"preprocess={args.preprocess}",
               f"paths.data_dir={root / 'data'}", f"hydra.run.dir={root / 'out'}"]
        print(" ".join(cmd), flush=True)
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=REPO, env={**os.environ, "NO_GCE_CHECK": "true"})
        seconds = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        size_gb = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file()) / 2**30
    print(f"\n{args.dataset} / {args.preprocess} on {os.cpu_count()} cores: exit {result.returncode}, "
          f"wall {seconds:.1f} s (target < {MAX_SECONDS:.0f} s), peak RSS {peak_gb:.2f} GB "
          f"(target < {MAX_RSS_GB:.0f} GB), {size_gb:.2f} GB on disk (raw exports + store)")
    ok = result.returncode == 0 and seconds < MAX_SECONDS and peak_gb < MAX_RSS_GB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
