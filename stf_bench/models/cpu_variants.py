"""Small CPU variants of the fixed-size and heaviest transformer models, for checks that run their training code.

A fixed-size model at its full width costs CPU minutes per training step at its size. The contract test's training
checks (tests/models/test_model_contract.py) and `benchmarks/device_check.py --tiny` run the same code with these
overrides of the model config instead: the same classes, narrower and at a smaller tile.
"""

from __future__ import annotations

SHRUNK = {"swinstfm": {"fixed_size": 64, "size_multiple": 64,
                       "net": {"window_size": 2, "embed_dim": 32, "depths": [1, 1, 1, 1], "fixed_size": 64}},
          # MSNet / EMSNet: the learned positions of a 2 x 2 token grid instead of 16 x 16
          "msnet": {"fixed_size": 32, "net": {"fixed_size": 32}},
          "emsnet": {"fixed_size": 32, "net": {"fixed_size": 32}},
          # THSTNet: narrow and shallow at 64 px. Its official texture transformers apply their first ResBlock and
          # discard the result (chain_resblocks: false, the default models.md asks for): those parameters count
          # but never train, so the training checks run the chained variant, where every parameter must learn.
          "thstnet": {"fixed_size": 64, "net": {"embed_dim": 16, "head_dim": 16, "depths": [1, 1, 1, 1],
                                                "fixed_size": 64, "chain_resblocks": True}},
          # SFT-GAN: a quarter of the widths at 64 px (its attention takes any number of keys)
          "sftgan": {"fixed_size": 64, "net": {"fixed_size": 64, "dims": [16, 32, 64, 128], "heads": [1, 1, 2, 2]}}}


def shrunk_overrides(model_id: str) -> list[str]:
    """SHRUNK[model_id] as Hydra overrides of `model.*` (empty for a model without a CPU variant)."""
    def flat(prefix: str, value) -> list[str]:
        if isinstance(value, dict):
            return [o for k, v in value.items() for o in flat(f"{prefix}.{k}", v)]
        text = "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        return [f"{prefix}={text}"]
    return flat("model", SHRUNK.get(model_id, {}))
