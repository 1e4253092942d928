"""Hybrid SRCNN + LSTM (reconstructed): super-resolved coarse images and a per-pixel LSTM over the date sequence.

Z. Yang, C. Diao, B. Li, "A Robust Hybrid Deep Learning Model for Spatiotemporal Image Fusion", Remote Sensing
13(24):5005, 2021, doi 10.3390/rs13245005 (not Remote Sens. 13(4):645). Label: reconstructed - the design is
models.md part 1 "hybrid_lstm", following the abstract: an SRCNN restores spatial detail in the coarse images, an
LSTM learns the temporal change pattern of each pixel.

The sequence is the references in time order, then the target; each step is [S_t, F_t (S_t at the target),
known-flag, dt] with dt = (t2 - t) in days / 365, read from ``meta["dates"]`` ("target,ref1[,ref2]" ISO dates per
sample; one string or, after collation, one per sample). One or two references work with the same layers.
"""

from __future__ import annotations

from datetime import date

import torch
import torch.nn as nn

from stf_bench.models.blocks.masked import masked_mse

REFS = (("fine_ref", "coarse_ref"), ("fine_ref2", "coarse_ref2"))


def date_offsets(meta: dict | None, n_refs: int, batch_size: int) -> torch.Tensor:
    """(B, n_refs) years from each reference date to the target date (positive for earlier references)."""
    if not meta or "dates" not in meta:
        raise ValueError("hybrid_lstm: the batch needs meta['dates'] ('target,ref1[,ref2]' ISO dates) to order and "
                         "space the sequence")
    dates = meta["dates"]
    dates = [dates] * batch_size if isinstance(dates, str) else list(dates)
    if len(dates) != batch_size:
        raise ValueError(f"hybrid_lstm: meta['dates'] has {len(dates)} entries for a batch of {batch_size}")
    rows = []
    for entry in dates:
        parts = [date.fromisoformat(d) for d in entry.split(",")]
        if len(parts) != 1 + n_refs:
            raise ValueError(f"hybrid_lstm: meta date string {entry!r} does not hold the target and {n_refs} "
                             f"reference date(s) of the batch's images")
        rows.append([(parts[0] - d).days / 365.0 for d in parts[1:]])
    return torch.tensor(rows, dtype=torch.float32)


class HybridLSTM(nn.Module):
    """S_t = C_t + SRCNN(C_t); a 2-layer LSTM (hidden 64) + linear head run per pixel over the dates gives F2.

    Reads `coarse_tgt`, `fine_ref`, `coarse_ref` and, when present, `fine_ref2`, `coarse_ref2`, plus `meta`.
    `end_to_end`: the LSTM loss also trains the SRCNN (else the SRCNN learns only from its own MSE).
    `pixel_chunk`: sequences per LSTM call, which bounds memory on whole scenes.
    """

    def __init__(self, hidden: int = 64, layers: int = 2, end_to_end: bool = False, pixel_chunk: int = 65536) -> None:
        super().__init__()
        self.end_to_end, self.pixel_chunk = end_to_end, pixel_chunk
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.srcnn = nn.Sequential(
            nn.Conv2d(1, 64, 9, padding=4), nn.ReLU(inplace=True),
            nn.Conv2d(64, 32, 1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 1, 5, padding=2),
        )
        self.lstm = nn.LSTM(4, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    @staticmethod
    def _references(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        second = [k in batch for k in REFS[1]]
        if any(second) and not all(second):
            raise ValueError("hybrid_lstm: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        return [(batch[f], batch[c]) for f, c in REFS[: 1 + all(second)]]

    def super_resolve(self, coarse: list[torch.Tensor]) -> list[torch.Tensor]:
        """S = C + SRCNN(C) for each image, in one pass."""
        x = torch.cat(coarse)
        return list((x + self.srcnn(x)).split(coarse[0].shape[0]))

    def _sequence(self, batch: dict, fine: list[torch.Tensor], sr: list[torch.Tensor]) -> torch.Tensor:
        """F2 from the references' (F_i, S_i) and the target's S_2 (the last of `sr`)."""
        b, _, h, w = sr[-1].shape
        dt = date_offsets(batch.get("meta"), len(fine), b).to(sr[-1])
        ones = sr[-1].new_ones(b, 1, h, w)
        steps = torch.stack([torch.cat([s, f, ones, dt[:, i, None, None, None].expand(b, 1, h, w)], 1)
                             for i, (f, s) in enumerate(zip(fine, sr))], 1)  # (B, R, 4, H, W)
        order = torch.argsort(-dt, dim=1, stable=True)  # earliest reference first
        steps = steps.gather(1, order[:, :, None, None, None].expand_as(steps))
        target = torch.cat([sr[-1], sr[-1], torch.zeros_like(ones), torch.zeros_like(ones)], 1)[:, None]
        seq = torch.cat([steps, target], 1)  # (B, T, 4, H, W)
        seq = seq.permute(0, 3, 4, 1, 2).reshape(b * h * w, seq.shape[1], 4)
        last = torch.cat([self.lstm(chunk)[0][:, -1] for chunk in seq.split(self.pixel_chunk)])
        return self.head(last).reshape(b, h, w, 1).permute(0, 3, 1, 2)

    def forward(self, batch: dict) -> torch.Tensor:
        refs = self._references(batch)
        sr = self.super_resolve([c for _, c in refs] + [batch["coarse_tgt"]])
        return self._sequence(batch, [f for f, _ in refs], sr)

    def compute_loss(self, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        """MSE(S, F) over the references (all pixels) and the target pair (observed pixels), averaged over pairs,
        trains the SRCNN; MSE(F2_hat, F2) trains the LSTM on S detached unless `end_to_end`."""
        refs = self._references(batch)
        fine = [f for f, _ in refs]
        sr = self.super_resolve([c for _, c in refs] + [batch["coarse_tgt"]])
        target, valid = batch["fine_tgt"], batch["valid_tgt"]
        pairs = [masked_mse(s, f) for s, f in zip(sr, fine)] + [masked_mse(sr[-1], target, valid)]
        sr_loss = torch.stack(pairs).mean()
        pred = self._sequence(batch, fine, sr if self.end_to_end else [s.detach() for s in sr])
        lstm_loss = masked_mse(pred, target, valid)
        return {"loss": sr_loss + lstm_loss, "srcnn_mse": sr_loss.detach(), "lstm_mse": lstm_loss.detach()}
