"""The documentation stays true to the code: the config reference is regenerated from conf/, every model is citable."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stf_bench import config_reference

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = {"persistence", "coarse", "delta"}  # baselines with nothing to cite


def test_config_reference_is_current():
    committed = (REPO / "docs" / "config.md").read_text()
    assert committed == config_reference.render(), (
        f"docs/config.md is stale: run `{config_reference.COMMAND}` and commit the result")


def test_config_reference_lists_every_option_key_and_comment():
    text = config_reference.render()
    for path in (REPO / "conf").rglob("*.yaml"):
        assert f"### `{path.relative_to(REPO).as_posix()}`" in text
    folder = text.split("### `conf/dataset/folder.yaml`")[1].split("###")[0]
    assert "| `coarse_block` | `null` | fine pixels per coarse pixel" in folder
    assert "| `source.date_regex` | `(\\d{8})` | first group is the date in the file name |" in folder
    assert "| `source.layout` | `auto` | auto \\| raw \\| paired \\| glob |" in folder


def test_line_comments_follow_nesting_and_ignore_hashes_in_quotes():
    text = "a:\n  b: 1   # one\n  c: '#x' # two\nd: 2\n# loose\ne:\n  b: 3  # three\n"
    assert config_reference.line_comments(text) == {"a.b": "one", "a.c": "two", "e.b": "three"}


def test_every_model_has_a_bibtex_entry():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (REPO / "docs" / "references.bib").read_text(), re.M))
    assert "stf_lst_survey" in keys
    ids = {yaml.safe_load(p.read_text())["id"] for p in (REPO / "conf" / "model").glob("*.yaml")}
    # the survey's generic family templates cite the survey itself
    missing = {i for i in ids - TRIVIAL if not i.endswith("_generic")} - keys
    assert not missing, f"docs/references.bib lacks an entry for {sorted(missing)}"


def test_bibtex_entries_are_unique_and_closed():
    """The file merges as a union (.gitattributes), which can append a second copy of an entry or cut one open."""
    text = (REPO / "docs" / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,]+),", text, re.M)
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []
    for entry in re.split(r"^(?=@)", text, flags=re.M)[1:]:
        body = entry.split("\n%")[0]
        assert body.count("{") == body.count("}") and body.rstrip().endswith("}"), body[:80]


def test_citation_cff_has_the_required_keys():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "version", "license"):
        assert cff[key], key
    assert cff["license"] == "MIT"
    assert "2412.16631" in cff["preferred-citation"]["identifiers"][0]["value"]


def test_readme_model_table_is_the_generated_parameter_table():
    """README's "Models" table is `python -m stf_bench.models.param_table`: a new model or count cannot go stale."""
    from stf_bench.models.param_table import markdown, rows

    assert markdown(rows()) in (REPO / "README.md").read_text()
