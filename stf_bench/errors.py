"""User-facing errors: each message names the file or key, the bad value and the fix.

Entry points print these without a traceback and exit with status 2; anything else is a bug and keeps its traceback.
"""


class StfBenchError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class DataError(StfBenchError):
    """Input data that cannot be turned into a fusion dataset."""


class ConfigError(StfBenchError):
    """A configuration value that cannot work."""


def user_error(exc: BaseException) -> StfBenchError | None:
    """The user error behind `exc`, or None for a bug.

    Hydra's `instantiate` re-raises a constructor's error as an InstantiationException, so the cause chain is
    searched; a mandatory config value left at ??? is a user error too.
    """
    from omegaconf.errors import MissingMandatoryValue

    while exc is not None:
        if isinstance(exc, StfBenchError):
            return exc
        if isinstance(exc, MissingMandatoryValue):
            key = exc.full_key or "a ??? value"
            return ConfigError(f"{key} is required but not set (??? in the config). Add it to the command, "
                               f"e.g. {key}=<value>.")
        exc = exc.__cause__
    return None


def exit_on_user_error(func):
    """Run an entry point; a user error becomes a one-paragraph message on stderr and exit status 2."""
    import functools
    import sys

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            error = user_error(exc)
            if error is None:
                raise
            if _in_sweep():
                raise error from None  # the sweeper records the failed job (and Optuna its failure rate)
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
