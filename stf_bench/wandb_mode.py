"""W&B offline unless the user configured a key: said once, never a hang on a missing network (environment.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def wandb_mode_default() -> None:
    if os.environ.get("WANDB_MODE"):
        return
    netrc = Path.home() / ".netrc"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    if not has_key:
        os.environ["WANDB_MODE"] = "offline"
        log.info("W&B: no API key configured, logging offline (upload later with `wandb sync <run folder>/wandb`).")
