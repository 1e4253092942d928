"""Helpers shared by the per-model tests (fixtures `cfg` and `model` live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

MODEL_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"


def model_conf(model_id: str) -> Path:
    return MODEL_DIR / f"{model_id}.yaml"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def n_trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
