"""What every classical baseline shares: the sample in, one scene at a time, the fallback chain, the prediction out.

A method only implements `predict(FusionInputs) -> (H, W)` in Kelvin with NaN where it cannot predict. This class
checks the sample, moves it to the compute device, fills NaN pixels by the fallback chain of models.md §2
(`delta`, then `coarse`, then NaN), records the share of each in `last_stats`, and returns (B, 1, H, W) float32 on the
input's device, so the evaluator treats a baseline exactly like a deep model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from stf_bench.errors import ConfigError

from .blocks import BlockGrid, block_size, coarse_image

STAT_KEYS = ("predicted", "delta", "coarse", "none")  # shares of pixels: the method, each fallback, no value


@dataclass
class FusionInputs:
    """One scene's inputs as (H, W) float32 Kelvin tensors on the compute device, NaN = no data."""

    coarse_tgt: torch.Tensor
    fine_ref: torch.Tensor | None = None
    coarse_ref: torch.Tensor | None = None
    fine_ref2: torch.Tensor | None = None
    coarse_ref2: torch.Tensor | None = None
    offset: tuple[int, int] = (0, 0)
    coarse_block: tuple[float, float] = (1.0, 1.0)  # (rows, cols) fine pixels per coarse pixel

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.coarse_tgt.shape)

    @property
    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The reference pairs (F_k, C_k) present: one or two."""
        pairs = [(self.fine_ref, self.coarse_ref)]
        if self.fine_ref2 is not None:
            pairs.append((self.fine_ref2, self.coarse_ref2))
        return pairs

    @cached_property
    def reference(self) -> float:
        """Median of the valid C2: window arithmetic runs on values minus this, so float32 keeps its precision."""
        c2 = self.coarse_tgt[torch.isfinite(self.coarse_tgt)]
        return float(c2.median()) if c2.numel() else 0.0

    def block_grid(self) -> BlockGrid:
        return BlockGrid(self.coarse_block, *self.shape, self.offset)


def finite_std(x: torch.Tensor) -> float:
    """Population standard deviation of the finite pixels, in float64 (0 when there are none)."""
    v = x[torch.isfinite(x)].to(torch.float64)
    return float(v.std(correction=0)) if v.numel() else 0.0


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _per_sample(meta, key: str, batch: int) -> list[tuple[float, float]] | None:
    """Per-sample pairs from `meta[key]`: one pair for all, one per sample, or the [firsts, seconds] pair of tensors
    that torch's default collate makes of per-sample tuples; None when the key is absent."""
    value = (meta or {}).get(key)
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(torch.is_tensor(v) for v in value):
        value = torch.stack([v.reshape(-1) for v in value], dim=-1)  # collated: firsts tensor, seconds tensor
    rows = torch.as_tensor(value, dtype=torch.float64).reshape(-1, 2).tolist()
    if len(rows) == 1:
        rows = rows * batch
    if len(rows) != batch:
        raise ValueError(f"meta[{key!r}] must be one pair or one pair per sample (batch {batch}); got {value!r}")
    return [(a, b) for a, b in rows]


class ClassicalBaseline(nn.Module):
    """A fusion method without trainable parameters: Kelvin in, Kelvin out, whole scenes, one at a time."""

    pairs_required = 1
    units = "K"
    whole_scene = True

    def __init__(self, *, coarse_block, device: str, mem_budget_mb: float, tile_rows: int | None):
        """`coarse_block`: fine pixels per coarse pixel, one number or (rows, cols), overriding the store's value
        that each sample carries in `meta["coarse_block"]`; None (the default, dataset.coarse_block: null) uses it."""
        super().__init__()
        if coarse_block is not None:
            try:
                block_size(coarse_block)
            except ValueError:
                raise ValueError(f"coarse_block = {coarse_block!r}: must be a number >= 1 or a [rows, cols] pair of "
                                 "them, the fine pixels per coarse pixel; set dataset.coarse_block in the dataset "
                                 "config, or null to take the store's measured value") from None
        if mem_budget_mb <= 0:
            raise ValueError(f"mem_budget_mb = {mem_budget_mb!r}: must be > 0 (MB of working memory per tile)")
        if tile_rows is not None and tile_rows < 1:
            raise ValueError(f"tile_rows = {tile_rows!r}: must be >= 1, or null to derive it from mem_budget_mb")
        self.coarse_block = coarse_block
        self.device_name = device
        self.mem_budget_mb = float(mem_budget_mb)
        self.tile_rows = tile_rows
        self.last_stats: dict[str, float] = {}

    @property
    def compute_device(self) -> torch.device:
        return resolve_device(self.device_name)

    def predict(self, x: FusionInputs) -> torch.Tensor:
        """(H, W) float32 Kelvin prediction, NaN where the method cannot predict."""
        raise NotImplementedError

    def rows_per_tile(self, bytes_per_row: float, height: int) -> int:
        """Output rows per tile: `tile_rows` if set, else as many as fit `mem_budget_mb`. Large tiles matter on a
        CPU too: every torch op is a parallel region, and on a busy machine each one waits for a descheduled thread
        (STARFM 31 × 31 on 950 × 950 px, 2 threads, shared CPU: 84 s with 64-row tiles, 3 s with one tile)."""
        if self.tile_rows is not None:
            return int(self.tile_rows)
        return max(1, min(int(self.mem_budget_mb * 2**20 // max(bytes_per_row, 1.0)), height))

    def forward(self, sample: dict) -> torch.Tensor:
        ref = self._check(sample)
        device = self.compute_device
        batch = ref.shape[0]
        offsets = _per_sample(sample.get("meta"), "offset", batch) or [(0, 0)] * batch
        blocks = self._coarse_blocks(sample.get("meta"), batch)
        counts = dict.fromkeys(STAT_KEYS, 0)
        out = []
        for b in range(batch):
            scene = {
                k: (sample[k][b, 0].to(device=device, dtype=torch.float32) if sample.get(k) is not None else None)
                for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")
            }
            x = FusionInputs(**scene, offset=tuple(int(v) for v in offsets[b]), coarse_block=blocks[b])
            pred = self.predict(x)
            out.append(self._fallback(pred, x, counts))
        total = max(sum(counts.values()), 1)
        self.last_stats = {k: v / total for k, v in counts.items()}
        return torch.stack(out)[:, None].to(device=ref.device, dtype=torch.float32)

    def _coarse_blocks(self, meta, batch: int) -> list[tuple[float, float]]:
        """The block size per sample: the configured override, else the store's `meta["coarse_block"]`."""
        if self.coarse_block is not None:
            return [block_size(self.coarse_block)] * batch
        blocks = _per_sample(meta, "coarse_block", batch)
        if blocks is None:
            raise ConfigError(
                f"{type(self).__name__}: dataset.coarse_block is null (take it from the store) but the sample has no "
                "meta['coarse_block']: the store predates it. Rebuild it (python prepare.py ... force=true) or set "
                "dataset.coarse_block=<fine pixels per coarse pixel>."
            )
        return [block_size(b) for b in blocks]

    def _fallback(self, pred: torch.Tensor, x: FusionInputs, counts: dict) -> torch.Tensor:
        """models.md §2: unpredicted pixels take `delta`, else `coarse`, else stay NaN."""
        done = torch.isfinite(pred)
        counts["predicted"] += int(done.sum())
        pred = torch.where(done, pred, float("nan"))
        if not done.all() and x.fine_ref is not None and x.coarse_ref is not None:
            delta = x.fine_ref + (x.coarse_tgt - x.coarse_ref)
            use = ~done & torch.isfinite(delta)
            pred = torch.where(use, delta, pred)
            counts["delta"] += int(use.sum())
            done |= use
        if not done.all():
            coarse = coarse_image(x.coarse_tgt, x.block_grid())
            use = ~done & torch.isfinite(coarse)
            pred = torch.where(use, coarse, pred)
            counts["coarse"] += int(use.sum())
            done |= use
        counts["none"] += int((~done).sum())
        return pred.to(torch.float32)

    def _check(self, sample: dict) -> torch.Tensor:
        """Fail early, naming the key, on a sample this method cannot use; returns C2."""
        name = type(self).__name__
        needed = ["coarse_tgt"] + (["fine_ref", "coarse_ref"] if self.pairs_required >= 1 else [])
        if self.pairs_required == 2:
            missing = [k for k in ("fine_ref2", "coarse_ref2") if sample.get(k) is None]
            if missing:
                raise ValueError(
                    f"{name} needs two reference pairs but the sample has no {', '.join(missing)}; "
                    "use pairing=two_refs"
                )
            needed += ["fine_ref2", "coarse_ref2"]
        missing = [k for k in needed if sample.get(k) is None]
        if missing:
            raise KeyError(f"{name}: the sample has no {', '.join(missing)} (keys present: {sorted(sample)})")
        if (sample.get("fine_ref2") is None) != (sample.get("coarse_ref2") is None):
            raise ValueError(f"{name}: a second pair needs both fine_ref2 and coarse_ref2")
        ref = sample["coarse_tgt"]
        if ref.dim() != 4 or ref.shape[1] != 1:
            raise ValueError(f"{name}: coarse_tgt must be (B, 1, H, W), got shape {tuple(ref.shape)}")
        for k in needed + [k for k in ("fine_ref2", "coarse_ref2") if sample.get(k) is not None]:
            if tuple(sample[k].shape) != tuple(ref.shape):
                raise ValueError(f"{name}: {k} has shape {tuple(sample[k].shape)}, coarse_tgt {tuple(ref.shape)}")
        return ref
