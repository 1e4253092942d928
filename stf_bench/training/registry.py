"""Which LightningModule trains a model, by the model config's ``lightning_module`` key."""

from __future__ import annotations

from stf_bench.errors import ConfigError

LIGHTNING_MODULES = {
    "supervised": "stf_bench.training.module:SupervisedModule",
    "adversarial": "stf_bench.training.adversarial:AdversarialModule",
    "diffusion": "stf_bench.training.diffusion:DiffusionModule",
    "none": "stf_bench.training.classical:ClassicalModule",
}


def lightning_module_class(name: str):
    if name not in LIGHTNING_MODULES:
        raise ConfigError(f"lightning_module={name!r} is not available; use one of {', '.join(LIGHTNING_MODULES)}.")
    module_path, cls = LIGHTNING_MODULES[name].split(":")
    return getattr(__import__(module_path, fromlist=[cls]), cls)
