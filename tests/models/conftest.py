"""Per-model test fixtures: a test module names its model's YAML as ``CONF`` (tests.models.helpers.model_conf)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def cfg(request):
    """The model config as `model=<id>` composes it (absolute interpolations such as ${model.train.max_epochs})."""
    return OmegaConf.merge({"model": OmegaConf.load(request.module.CONF)}).model


@pytest.fixture
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.net)
