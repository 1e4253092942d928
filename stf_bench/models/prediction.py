"""Whole-scene prediction: one tiler for every size constraint, and the network-plus-normalization predictor that
validation, evaluation and the figures share (Kelvin in, Kelvin out).

- No fixed size: reflect-pad to the model's size multiple and predict in one pass (as the official tests do; models
  with instance statistics, such as GAN-STFM's SwitchNorm, give different results when tiled).
- Fixed size P: tiles of P with stride P/2 and an edge-flush last tile; each tile contributes its central P/2
  (its full extent toward the scene border), so every pixel comes from exactly one tile, away from tile edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stf_bench.data.normalization import AffineNorm

# (B,C,H,W) inputs that are normalized, padded and tiled; the sequence pairing's (B,K,H,W) stacks ride along
IMAGE_KEYS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2", "fine_refs", "coarse_refs")
SEQUENCE_KEYS = ("fine_refs", "coarse_refs")


def tile_offsets(length: int, tile: int) -> list[int]:
    """0, P/2, P, ... and a last offset flush with the edge (e.g. 950, 256 -> 0, 128, ..., 640, 694)."""
    if length <= tile:
        return [0]
    stride = tile // 2
    offsets = list(range(0, length - tile + 1, stride))
    if offsets[-1] != length - tile:
        offsets.append(length - tile)
    return offsets


def _inner(offsets: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """For each tile, the [start, stop) of scene pixels it owns: its central half, split at midpoints."""
    if len(offsets) == 1:
        return [(0, length)]
    quarter = tile // 4
    bounds = []
    for k, off in enumerate(offsets):
        start = 0 if k == 0 else bounds[-1][1]
        stop = length if k == len(offsets) - 1 else min(off + tile - quarter, (off + tile + offsets[k + 1]) // 2)
        bounds.append((start, stop))
    return bounds


def _pad_to(batch: dict, multiple: int, min_size: int = 0) -> tuple[dict, tuple[int, int]]:
    h, w = batch["coarse_tgt"].shape[-2:]
    target_h = max(min_size, -(-h // multiple) * multiple)
    target_w = max(min_size, -(-w // multiple) * multiple)
    if (target_h, target_w) == (h, w):
        return batch, (h, w)
    padded = dict(batch)
    for key in IMAGE_KEYS:
        if key in batch:
            x = batch[key]
            # reflection cannot exceed the input size; repeat it for tiny scenes
            while x.shape[-2] < target_h or x.shape[-1] < target_w:
                ph, pw = min(target_h - x.shape[-2], x.shape[-2] - 1), min(target_w - x.shape[-1], x.shape[-1] - 1)
                x = F.pad(x, (0, pw, 0, ph), mode="reflect")
            padded[key] = x
    return padded, (h, w)


@torch.no_grad()
def predict_scene(model, batch: dict, size_multiple: int = 1, fixed_size: int | None = None) -> torch.Tensor:
    """Predict a whole scene (B,1,H,W) with `model(batch)`, honouring the model's size constraints."""
    if fixed_size is None:
        padded, (h, w) = _pad_to(batch, max(1, size_multiple))
        return model(padded)[..., :h, :w]
    padded, (h, w) = _pad_to(batch, 1, min_size=fixed_size)
    H, W = padded["coarse_tgt"].shape[-2:]
    rows, cols = tile_offsets(H, fixed_size), tile_offsets(W, fixed_size)
    row_own, col_own = _inner(rows, fixed_size, H), _inner(cols, fixed_size, W)
    out = torch.full_like(padded["coarse_tgt"], float("nan"))
    for r, (r0, r1) in zip(rows, row_own):
        for c, (c0, c1) in zip(cols, col_own):
            tile = {k: (v[..., r:r + fixed_size, c:c + fixed_size] if k in IMAGE_KEYS else v)
                    for k, v in padded.items()}
            pred = model(tile)
            out[..., r0:r1, c0:c1] = pred[..., r0 - r:r1 - r, c0 - c:c1 - c]
    return out[..., :h, :w]


@dataclass
class ScenePredictor:
    """A network with the normalization it was trained with and its size constraints.

    Deep networks see normalized inputs and predict normalized values; classical methods (``kelvin_inputs``) work in
    Kelvin on the whole scene. Either way the caller gives a batch in Kelvin and gets Kelvin back. ``nan_inputs``:
    the method wants unobserved input pixels as NaN (its own fallback chain) rather than gap-filled.
    """

    net: torch.nn.Module
    norm: AffineNorm
    size_multiple: int = 1
    fixed_size: int | None = None
    kelvin_inputs: bool = False
    nan_inputs: bool = False

    @classmethod
    def from_model_cfg(cls, net: torch.nn.Module, norm: AffineNorm, model_cfg: dict) -> ScenePredictor:
        return cls(net, norm, model_cfg.get("size_multiple") or 1, model_cfg.get("fixed_size"),
                   model_cfg.get("lightning_module") == "none", bool(model_cfg.get("nan_inputs")))

    @torch.no_grad()
    def __call__(self, batch: dict) -> torch.Tensor:
        if self.kelvin_inputs:
            return self.net(batch)
        normalized = {k: (self.norm.from_kelvin(v) if k in IMAGE_KEYS else v) for k, v in batch.items()}
        if "ref_mask" in batch:  # absent sequence slots stay zero in the network's units, as in training samples
            keep = batch["ref_mask"][..., None, None].to(torch.bool)
            normalized.update({k: torch.where(keep, normalized[k], 0.0) for k in SEQUENCE_KEYS if k in batch})
        return self.predict_normalized(normalized)

    def predict_normalized(self, batch: dict) -> torch.Tensor:
        """Kelvin from a batch already in the network's normalized units (the datamodule's samples)."""
        if self.kelvin_inputs:
            return self.net({k: (self.norm.to_kelvin(v.float()) if k in IMAGE_KEYS else v) for k, v in batch.items()})
        return self.norm.to_kelvin(predict_scene(self.net, batch, self.size_multiple, self.fixed_size).float())
