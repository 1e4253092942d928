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


def test_training_only_modules_and_discriminator_are_not_counted():
    import torch.nn as nn

    from stf_bench.models.param_table import inference_parameters

    class Net(nn.Module):
        training_only_modules = ("posterior",)

        def __init__(self):
            super().__init__()
            self.body, self.posterior, self.discriminator = nn.Linear(3, 2), nn.Linear(5, 5), nn.Linear(7, 7)
            self.frozen = nn.Linear(4, 4).requires_grad_(False)

    assert inference_parameters(Net()) == 8
    Net.training_only_modules = ("posterior_typo",)
    with pytest.raises(AttributeError, match="posterior_typo"):
        inference_parameters(Net())
