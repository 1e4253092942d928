"""Which LightningModule trains a model, by the model config's ``lightning_module`` key."""

from __future__ import annotations

from stf_bench.errors import ConfigError

LIGHTNING_MODULES = {
    "supervised": "stf_bench.training.module:SupervisedModule",
    "adversarial": "stf_bench.training.adversarial:AdversarialModule",
    "diffusion": "stf_bench.training.diffusion:DiffusionModule",
    "none": "stf_bench.training.classical:ClassicalModule",
}
# Modes of a module, chosen by the model config's ``adversarial: {mode: ...}``
ADVERSARIAL_MODES = {"cycle": "stf_bench.training.cycle:CycleAdversarialModule"}


def lightning_module_class(name: str, adversarial: dict | None = None):
    """The class for ``lightning_module`` (and, for ``adversarial``, the config's ``adversarial.mode``)."""
    mode = (adversarial or {}).get("mode") if name == "adversarial" else None
    if mode is not None and mode not in ADVERSARIAL_MODES:
        raise ConfigError(f"adversarial.mode={mode!r} is not available; use one of {', '.join(ADVERSARIAL_MODES)} "
                          f"or leave it out (one generator, one discriminator).")
    if name not in LIGHTNING_MODULES:
        raise ConfigError(f"lightning_module={name!r} is not available; use one of {', '.join(LIGHTNING_MODULES)}.")
    module_path, cls = (ADVERSARIAL_MODES[mode] if mode else LIGHTNING_MODULES[name]).split(":")
    return getattr(__import__(module_path, fromlist=[cls]), cls)
