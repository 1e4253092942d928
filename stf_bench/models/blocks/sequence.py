"""Reference sequences for the time-series models (TSSTFN, the RNN template), from either kind of sample.

A `pairing=sequence` batch stacks K references (`fine_refs`, `coarse_refs` (B,K,H,W), `ref_mask` (B,K),
`meta.ref_days` (B,K) in days relative to the target; README "Sequence pairing"). The standard samples
(`fine_ref`/`coarse_ref`, optionally `fine_ref2`/`coarse_ref2`, `meta.dates` "target,ref1[,ref2]") are read as a
sequence of 1 or 2 present references, so the same models train with the default pairing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import torch


@dataclass
class ReferenceSequence:
    """K reference pairs in processing order: absent slots first, then present ones from farthest to nearest
    (|days| descending; at equal distance the later date first, so that a tie leaves the past one nearest, as the
    pairings do). The last slot is always the nearest present reference."""

    fine: torch.Tensor    # (B,K,H,W) normalized; absent slots are zero
    coarse: torch.Tensor  # (B,K,H,W)
    mask: torch.Tensor    # (B,K) bool: the slot holds a reference
    days: torch.Tensor    # (B,K) float: reference date minus target date in days; 0 where absent

    @property
    def length(self) -> int:
        return self.fine.shape[1]

    def step(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Slot i as (B,1,H,W) fine, coarse, a (B,1,1,1) present flag and (B,1,1,1) days, ready to broadcast."""
        b = self.fine.shape[0]
        return (self.fine[:, i:i + 1], self.coarse[:, i:i + 1], self.mask[:, i].view(b, 1, 1, 1),
                self.days[:, i].view(b, 1, 1, 1))


def _days_from_dates(dates, n_refs: int, batch: int) -> list[list[float]]:
    """Days of each reference relative to the target from meta "target,ref1[,ref2]" (one string, or one per sample)."""
    rows = [dates] * batch if isinstance(dates, str) else list(dates)
    out = []
    for row in rows:
        target, *refs = (dt.date.fromisoformat(d) for d in row.split(","))
        out.append([float((r - target).days) for r in refs[:n_refs]])
    return out


def reference_sequence(batch: dict) -> ReferenceSequence:
    """The batch's references as a `ReferenceSequence` in processing order (farthest first, nearest last)."""
    if "fine_refs" in batch:
        fine, coarse, mask = batch["fine_refs"], batch["coarse_refs"], batch["ref_mask"].to(torch.bool)
        days = torch.as_tensor(batch["meta"]["ref_days"], dtype=fine.dtype, device=fine.device)
    else:
        keys = [("fine_ref", "coarse_ref")] + ([("fine_ref2", "coarse_ref2")] if "fine_ref2" in batch else [])
        fine = torch.cat([batch[f] for f, _ in keys], dim=1)
        coarse = torch.cat([batch[c] for _, c in keys], dim=1)
        if "dates" not in batch.get("meta", {}):
            raise ValueError("a sequence model needs meta['dates'] ('target,ref1[,ref2]') to order its references")
        days = torch.tensor(_days_from_dates(batch["meta"]["dates"], len(keys), fine.shape[0]), dtype=fine.dtype,
                            device=fine.device)
        mask = torch.ones(days.shape, dtype=torch.bool, device=fine.device)
    b, k = fine.shape[:2]
    days = days.reshape(b, k)  # an evaluation batch of one carries meta ref_days as (K,)
    mask = mask.reshape(b, k)
    rank = torch.where(mask, 2 * days.abs() + (days > 0).to(days.dtype), torch.full_like(days, float("inf")))
    order = torch.argsort(rank, dim=1, descending=True, stable=True)
    pick = order[:, :, None, None].expand_as(fine)
    return ReferenceSequence(fine.gather(1, pick), coarse.gather(1, pick), mask.gather(1, order),
                             torch.where(mask, days, 0.0).gather(1, order))
