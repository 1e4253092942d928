"""The name of the device a figure was measured on, for plans, leaderboard headers and benchmark tables."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU AMD EPYC 7B13 (2 threads)': timings mean nothing without it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {_cpu_model()} ({torch.get_num_threads()} threads)"
