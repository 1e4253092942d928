"""User-facing errors: each message names the file or key, the bad value and the fix.

Entry points print these without a traceback and exit with status 2; anything else is a bug and keeps its traceback.
"""


class StfBenchError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class DataError(StfBenchError):
    """Input data that cannot be turned into a fusion dataset."""


class ConfigError(StfBenchError):
    """A configuration value that cannot work."""


def exit_on_user_error(func):
    """Run an entry point; a StfBenchError becomes a one-paragraph message on stderr and exit status 2."""
    import functools
    import sys

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except StfBenchError as exc:
            from rich.console import Console
            from rich.panel import Panel

            Console(stderr=True).print(Panel(str(exc), title=f"[bold red]{type(exc).__name__}", expand=False))
            sys.exit(2)

    return wrapper
