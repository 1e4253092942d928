"""MAC counting runs the network on a sample that carries the test scene's meta (CycleGAN-STF's FSDAF reads it)."""

import pytest
import torch

from stf_bench.evaluation.efficiency import count_macs


class NeedsBlock(torch.nn.Module):
    """A 3x3 conv whose forward, like a pipeline that runs a classical step, needs the store's coarse block."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)

    def forward(self, batch):
        assert batch["meta"]["coarse_block"] is not None
        return self.conv(batch["coarse_tgt"])


def test_macs_with_the_scene_meta():
    meta = {"dates": "2020-06-15,2020-05-30", "offset": torch.zeros(2), "coarse_block": torch.tensor([33.0, 33.0])}
    assert count_macs(NeedsBlock(), torch.device("cpu"), meta, size=16) == 9 * 16 * 16
    with pytest.raises(KeyError):
        count_macs(NeedsBlock(), torch.device("cpu"), size=16)
