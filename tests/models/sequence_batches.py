"""Tiny batches for the sequence models' tests: a standard two-reference batch and the same references as a
pairing=sequence batch (K slots, absent ones zero), in any slot order."""

from __future__ import annotations

import datetime as dt

import torch

TARGET = dt.date(2020, 6, 15)


def images(n: int, size: int = 32, seed: int = 0, batch: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 1, size, size, generator=g) for _ in range(n)]


def standard(days: tuple[int, ...] = (-16, 16), size: int = 32, seed: int = 0, batch: int = 2) -> dict:
    """fine_ref/coarse_ref (+ fine_ref2/coarse_ref2), coarse_tgt, fine_tgt, valid_tgt, meta dates."""
    x = images(2 * len(days) + 2, size, seed, batch)
    out = {"coarse_tgt": x[0], "fine_tgt": x[1], "valid_tgt": x[1] > 0.2}
    for i, suffix in enumerate(("", "2")[: len(days)]):
        out[f"fine_ref{suffix}"], out[f"coarse_ref{suffix}"] = x[2 + 2 * i], x[3 + 2 * i]
    dates = ",".join(str(TARGET + dt.timedelta(days=d)) for d in (0, *days))
    out["meta"] = {"dates": [dates] * batch}
    return out


def as_sequence(std: dict, slots: int, order: tuple[int, ...] | None = None) -> dict:
    """The standard batch's references in `slots` slots (in `order`, default as given), the rest absent."""
    keys = [("fine_ref", "coarse_ref")] + ([("fine_ref2", "coarse_ref2")] if "fine_ref2" in std else [])
    first = std["meta"]["dates"][0].split(",")
    days = [(dt.date.fromisoformat(d) - dt.date.fromisoformat(first[0])).days for d in first[1:]]
    order = order or tuple(range(len(keys)))
    b, _, h, w = std["coarse_tgt"].shape
    fine, coarse = torch.zeros(b, slots, h, w), torch.zeros(b, slots, h, w)
    ref_days, mask = torch.zeros(b, slots), torch.zeros(b, slots, dtype=torch.bool)
    for slot, i in enumerate(order):
        fine[:, slot], coarse[:, slot] = std[keys[i][0]][:, 0], std[keys[i][1]][:, 0]
        ref_days[:, slot], mask[:, slot] = days[i], True
    out = {k: v for k, v in std.items() if not k.startswith(("fine_ref", "coarse_ref"))}
    out.update(fine_refs=fine, coarse_refs=coarse, ref_mask=mask)
    out["meta"] = {"dates": std["meta"]["dates"], "ref_days": ref_days}
    return out
