"""The evaluation context: which store, which split and which pairing a score belongs to.

Two scores are comparable only when they come from the same test samples: the same store (its fingerprint, the hash
that names it, so two sites or two builds never meet under one dataset name), the complete split config (seeds and
fractions, so two random splits never meet) and the pairing's evaluation settings (for pairing=sequence also K and
the side, so rows with different K never pool). ``train_reference`` only changes
how training samples pick references, so models that differ in it still share a context.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

TRAINING_ONLY_PAIRING_KEYS = ("train_reference",)
SEQUENCE_ONLY_PAIRING_KEYS = ("k", "side")  # pairing=sequence's own: another mode's context never holds them


def _plain(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def store_fingerprint(store_path: str | Path) -> str:
    """The content hash in the store's folder name ``<variant>-<hash>``."""
    return Path(store_path).name.rsplit("-", 1)[-1]


def split_label(split: dict) -> str:
    seed = f", seed {split['seed']}" if split.get("seed") is not None else ""
    detail = {"seasonal": f" {split.get('test_season')}", "leave_year_out":
              f" {split.get('test_year') if split.get('test_year') is not None else 'last year'}"}
    return f"{split['name']}{detail.get(split['name'], '')}{seed}"


def pairing_label(pairing: dict) -> str:
    gap = f", ≤ {pairing['max_gap_days']:g} d" if pairing.get("max_gap_days") is not None else ""
    if pairing["mode"] == "sequence":
        past = ", past only" if pairing.get("side") == "past" else ""
        return f"sequence K={pairing['k']}{past}{gap}"
    return f"{pairing['mode']}{gap}"


def evaluation_context(store_path: str | Path, dataset: str, variant: str, split, pairing) -> dict:
    """Plain-JSON context of a run or a baseline: ``key`` identifies it; the rest is for people and for rebuilding."""
    split = _plain(split)
    pairing = {k: v for k, v in _plain(pairing).items() if k not in TRAINING_ONLY_PAIRING_KEYS}
    if pairing.get("mode") != "sequence":  # e.g. the two_refs sibling of a sequence context is plain two_refs
        pairing = {k: v for k, v in pairing.items() if k not in SEQUENCE_ONLY_PAIRING_KEYS}
    fingerprint = store_fingerprint(store_path)
    identity = {"store": fingerprint, "split": split, "pairing": {k: v for k, v in pairing.items() if k != "name"}}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return {"key": key, "dataset": dataset, "store_hash": fingerprint[:7], "variant": variant,
            "split": split_label(split), "pairing": pairing_label(pairing), "split_config": split,
            "pairing_config": pairing}
