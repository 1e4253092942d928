"""Learning-rate factors for ``torch.optim.lr_scheduler.LambdaLR``, configured from a model's YAML.

The training core steps epoch-interval schedulers once per epoch, so ``epoch`` counts epochs from 0::

    scheduler:
      _target_: torch.optim.lr_scheduler.LambdaLR
      _partial_: true
      lr_lambda: {_target_: stf_bench.models.blocks.schedule.warmup_cosine, _partial_: true,
                  warmup_epochs: 10, max_epochs: ${model.train.max_epochs}}
"""

from __future__ import annotations

import math


def warmup_cosine(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Linear warm-up (1/w, 2/w, ..., 1 over the first w epochs, so the first epoch already learns), then a cosine
    decay from 1 towards 0 at ``max_epochs``; past it the factor stays 0. A run shorter than the warm-up never leaves
    it."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    progress = min(1.0, (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs))
    return 0.5 * (1.0 + math.cos(math.pi * progress))
