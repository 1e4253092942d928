"""Writes docs/config.md, the reference of every config group, option and key, from conf/ itself.

`python -m stf_bench.config_reference` regenerates it; tests/test_docs.py fails when the committed file is stale, so
the reference cannot drift from the YAML. Values come from PyYAML (as written, before Hydra composes or resolves
them); comments come from a line reader, since YAML parsers drop them: the comment lines opening a file describe the
option, a comment after `key: value` describes that key.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
OUTPUT = REPO / "docs" / "config.md"
COMMAND = "python -m stf_bench.config_reference"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_@/][\w@/.-]*)\s*:(?P<rest>.*)$")


def _split_comment(rest: str) -> str:
    """The comment after a value, skipping '#' inside quotes."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[i + 1:].strip()
    return ""


def line_comments(text: str) -> dict[str, str]:
    """Dotted key path -> the comment on that key's line."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = _KEY.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        comment = _split_comment(m["rest"])
        if comment:
            comments[".".join(k for _, k in stack)] = comment
    return comments


def header(text: str) -> list[str]:
    """The comment lines opening a file, without Hydra's `# @package` directive."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        if not body.startswith("@package"):
            lines.append(line[1:].rstrip().removeprefix(" "))
    return lines


def _flatten(node, prefix: str = ""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _show(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_file(path: Path) -> list[str]:
    text = path.read_text()
    rel = path.relative_to(REPO).as_posix()
    out = [f"### `{rel}`", ""]
    described = header(text)
    if described:
        out += ["```text", *described, "```", ""]
    data = yaml.safe_load(text) or {}
    comments = line_comments(text)
    rows = [(key, value) for key, value in _flatten(data) if key]
    if rows:
        out += ["| key | default | comment |", "|---|---|---|"]
        out += [f"| `{_cell(key)}` | `{_cell(_show(value))}` | {_cell(comments.get(key, ''))} |" for key, value in rows]
        out.append("")
    return out


def render() -> str:
    """The whole reference as one string, deterministic (files in sorted order, keys in file order)."""
    top = sorted(p for p in CONF.glob("*.yaml"))
    groups = sorted({p.parent for p in CONF.rglob("*.yaml")} - {CONF})
    out = [
        "# Configuration reference",
        "",
        f"Generated from `conf/` by `{COMMAND}`; do not edit by hand (tests/test_docs.py fails when it is stale).",
        "Defaults are shown as written in the YAML, before Hydra composes and resolves them (`${...}` are",
        "interpolations, `???` must be given). Pick an option with `group=option` (`dataset=folder`), set a key with",
        "its dotted path from the group (`dataset.source.root=/data/tifs`, `model.train.max_epochs=5`).",
        "",
        "## Entry points",
        "",
    ]
    out += [f"- [`{p.name}`](#conf{p.stem}yaml)" for p in top] + [""]
    out += ["## Groups", ""]
    for group in groups:
        name = group.relative_to(CONF).as_posix()
        options = ", ".join(f"`{p.stem}`" for p in sorted(group.glob("*.yaml")))
        out.append(f"- `{name}`: {options}")
    out.append("")
    for path in top:
        out += render_file(path)
    for group in groups:
        out += [f"## `{group.relative_to(CONF).as_posix()}`", ""]
        for path in sorted(group.glob("*.yaml")):
            out += render_file(path)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
