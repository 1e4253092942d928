"""The composed config printed at the start of a run (`print_config: true`), one branch per config group."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

FIRST = ("model", "dataset", "preprocess", "split", "pairing", "datamodule", "trainer", "callbacks", "logger")


def print_config_tree(cfg: DictConfig) -> None:
    """Groups first, then the top-level values, as YAML under a rich Tree on the terminal (not the log file)."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    groups = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST and isinstance(cfg[k], DictConfig)]
    for key in groups:
        text = OmegaConf.to_yaml(cfg[key], resolve=True) if cfg[key] is not None else "null\n"
        tree.add(key, style="bold").add(Syntax(text.rstrip() or "{}", "yaml", theme="ansi_dark"))
    rest = {k: cfg[k] for k in cfg if k not in groups}
    tree.add("other", style="bold").add(Syntax(OmegaConf.to_yaml(OmegaConf.create(rest), resolve=True).rstrip(),
                                                "yaml", theme="ansi_dark"))
    Console().print(tree)
