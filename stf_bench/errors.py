"""User-facing errors: each message names the file or key, the bad value and the fix.

Entry points print these without a traceback and exit with status 2; anything else is a bug and keeps its traceback.
"""

import re

from hydra.errors import CompactHydraException


class StfBenchError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class DataError(StfBenchError):
    """Input data that cannot be turned into a fusion dataset."""


class ConfigError(StfBenchError):
    """A configuration value that cannot work."""


class TrainingDiverged(StfBenchError, FloatingPointError):
    """The loss became NaN or infinite: a setting to change (learning rate, clipping), told without a traceback."""


class SweepJobError(CompactHydraException):
    """A user error inside a --multirun job: it fails the job, and Hydra prints its message without a traceback."""


def user_error(exc: BaseException, cfg=None) -> StfBenchError | None:
    """The user error behind `exc`, or None for a bug.

    Hydra's `instantiate` re-raises a constructor's error as an InstantiationException, so the cause chain is
    searched; a mandatory config value left at ??? is a user error too, and so is a key added with + that the
    target does not take (Hydra's own hint for a key it does not know), named with its look-alikes in `cfg`.
    """
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    while exc is not None:
        if isinstance(exc, StfBenchError):
            return exc
        if isinstance(exc, InstantiationException) and isinstance(exc.__cause__, TypeError):
            unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc.__cause__))
            if unknown:
                return _unknown_key(str(exc), unknown.group(1), cfg)
        if isinstance(exc, MissingMandatoryValue):
            key = exc.full_key or "a ??? value"
            return ConfigError(f"{key} is required but not set (??? in the config). Add it to the command, "
                               f"e.g. {key}=<value>.")
        exc = exc.__cause__
    return None


def _unknown_key(message: str, name: str, cfg) -> ConfigError:
    """`<section>.<name>` is no setting of the section's class: say so, and where a key of that name lives."""
    from omegaconf import OmegaConf

    section = re.search(r"full_key: (\S+)", message)
    target = re.search(r"target '([^']+)'", message)
    key = f"{section.group(1)}.{name}" if section else name
    elsewhere = [k for k in _keys(OmegaConf.to_container(cfg, resolve=False) if cfg is not None else {})
                 if k.rsplit(".", 1)[-1] == name and k != key]
    hint = (f" The key {name} is {' or '.join(elsewhere)}: set it there (e.g. {elsewhere[0]}=<value>)."
            if elsewhere else "")
    return ConfigError(f"{key} is not a setting of {target.group(1) if target else 'its section'}: remove it from "
                       f"the command or config.{hint}")


def _keys(node, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    return [k for key, value in node.items() for k in [f"{prefix}{key}", *_keys(value, f"{prefix}{key}.")]]


def exit_on_user_error(func):
    """Run an entry point; a user error becomes a one-paragraph message on stderr and exit status 2."""
    import functools
    import sys

    from omegaconf import DictConfig

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            error = user_error(exc, args[0] if args and isinstance(args[0], DictConfig) else None)
            if error is None:
                raise
            if _in_sweep():
                # the sweeper records the failed job (and Optuna its failure rate); Hydra prints a compact
                # exception as its message alone, without a traceback
                raise SweepJobError(f"{type(error).__name__}: {error}") from None
            from rich.console import Console
            from rich.panel import Panel
            from rich.text import Text

            # Text, not markup: a path such as /data/[2024]/x.tif must print as it is
            Console(stderr=True).print(Panel(Text(str(error)), title=f"[bold red]{type(error).__name__}", expand=False))
            sys.exit(2)

    return wrapper


def _in_sweep() -> bool:
    """True inside a --multirun job, where exiting would end the whole sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
