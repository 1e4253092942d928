"""Efficiency columns: multiply-accumulates of one 256 x 256 prediction (metrics.md says MACs, not FLOPs)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

MAC_SIZE = 256


def count_macs(net: torch.nn.Module, device: torch.device, meta: dict | None = None, size: int = MAC_SIZE) -> float:
    """MACs of one forward pass of the network on a (1,1,size,size) sample (matmul/conv FLOPs / 2).

    `meta`: a real test sample's (dates, store block size, offset), for networks that read it (CycleGAN-STF's FSDAF
    step needs the coarse block); without it, placeholder dates and offset."""
    shape = (1, 1, size, size)
    gen = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(shape, generator=gen).to(device) for k in
             ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2", "fine_tgt")}
    batch["valid_tgt"] = torch.ones(shape, dtype=torch.bool, device=device)
    batch["meta"] = meta or {"dates": "2020-01-01,2019-12-31,2020-01-02", "offset": torch.zeros(1, 2)}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(batch)
    return counter.get_total_flops() / 2
