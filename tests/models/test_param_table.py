"""Every deep model config instantiates and matches its catalogue parameter target (models.md)."""

import pytest

from stf_bench.models.param_table import markdown, rows

ROWS = rows()


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_parameter_count_within_tolerance(row):
    assert row["ok"], f"{row['id']}: {row['params']:,} parameters vs target {row['target']:,} ({row['diff']:+.2%})"


def test_table_lists_every_model():
    table = markdown(ROWS)
    assert {"edcstfn", "ganstfm", "swinstfm"} <= {r["id"] for r in ROWS}
    assert table.count("\n") == len(ROWS) + 1
