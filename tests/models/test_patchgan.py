"""The shared PatchGAN discriminator: the three variants the specs name, by parameter count and output map size."""

import pytest
import torch

from stf_bench.models.blocks.patchgan import PatchDiscriminator, section6_patchgan


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_section6_patchgan_matches_the_spec_count_and_map():
    d = section6_patchgan(2)
    assert n_params(d) == 2_765_505
    assert d(torch.zeros(1, 2, 256, 256)).shape == (1, 1, 35, 35)


def test_cyclegan_and_template_variants():
    assert n_params(PatchDiscriminator(1, padding=1, bias=True, norm="instance")) == 2_762_689
    d = PatchDiscriminator(2)
    assert n_params(d) == 2_764_609
    assert d(torch.zeros(1, 2, 256, 256)).shape == (1, 1, 30, 30)


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm='layer'"):
        PatchDiscriminator(1, norm="layer")
