"""TSSTFN (reconstructed): exact design counts, the reference order (farthest first, nearest last), absent slots,
the standard and sequence samples agreeing, the nearest delta baseline, the masked loss; and the shared
`reference_sequence` block it reads its references with."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from sequence_batches import as_sequence, standard

from stf_bench.models.blocks.fusion import delta_baseline
from stf_bench.models.blocks.sequence import reference_sequence
from tests.models.helpers import model_conf, n_params

CONF = model_conf("tsstfn")


@pytest.fixture
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.net).eval()


def test_config_and_parameter_counts_per_block(cfg, model):
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.min_refs, cfg.size_multiple, cfg.params_target) == (
        "tsstfn", "reconstructed", 2, 1, 2, 465_153)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs, cfg.optimizer.lr) == (8, 128, 200, 1e-4)
    assert n_params(model.ref_encoder) == 56_320 and n_params(model.lstm) == 297_472  # 65 input channels (Delta-t)
    assert n_params(model.target_encoder) == 18_816
    assert n_params(model.decoder_low) + n_params(model.decoder_high) == 92_545
    assert n_params(model) == 465_153


def test_pinned_forward_value(model):
    with torch.no_grad():
        out = model(standard(seed=3))
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(PINNED_MEAN, abs=1e-5)
    assert float(out.std()) == pytest.approx(PINNED_STD, abs=1e-5)


def test_sequence_sample_equals_the_standard_one_in_any_slot_order_and_absent_slots_change_nothing(model):
    std = standard(seed=1)
    with torch.no_grad():
        expected = model(std)
        for slots, order in ((2, (0, 1)), (2, (1, 0)), (3, (1, 0)), (4, (0, 1))):
            torch.testing.assert_close(model(as_sequence(std, slots, order)), expected, rtol=0, atol=1e-6)
        # garbage in an absent slot is ignored
        seq = as_sequence(std, 3)
        seq["fine_refs"][:, 2], seq["coarse_refs"][:, 2] = 5.0, -5.0
        torch.testing.assert_close(model(seq), expected, rtol=0, atol=1e-6)


def test_references_are_read_farthest_first_and_the_residual_is_on_the_nearest_delta(model):
    """Swapping which date is nearer changes the output; a zero decoder leaves the nearest reference's delta."""
    near_first, near_second = standard((-8, 40), seed=2), standard((-40, 8), seed=2)
    with torch.no_grad():
        assert not torch.allclose(model(near_first), model(near_second))
        torch.nn.init.zeros_(model.decoder_high[-1].weight)
        torch.nn.init.zeros_(model.decoder_high[-1].bias)
        for batch, (f, c) in ((near_first, ("fine_ref", "coarse_ref")), (near_second, ("fine_ref2", "coarse_ref2"))):
            torch.testing.assert_close(model(batch), delta_baseline(batch[f], batch[c], batch["coarse_tgt"]))
        one = standard((-16,), seed=4)  # one reference: its own delta
        torch.testing.assert_close(model(one), delta_baseline(one["fine_ref"], one["coarse_ref"], one["coarse_tgt"]))


def test_loss_is_l1_plus_gradient_l1_over_valid_target_pixels(model):
    batch = standard(seed=5)
    parts = model.compute_loss(batch, 0)
    assert float(parts["loss"].detach()) == pytest.approx(float(parts["l1"] + 0.1 * parts["grad"]), rel=1e-6)
    changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], 100.0))
    assert float(model.compute_loss(changed, 0)["loss"].detach()) == pytest.approx(float(parts["loss"].detach()), rel=1e-6)


def test_reference_sequence_orders_absent_then_farthest_to_nearest():
    std = standard((-10, 10), batch=1)  # a tie: the past one is nearest (last)
    seq = reference_sequence(std)
    assert seq.days.tolist() == [[10.0, -10.0]] and torch.equal(seq.fine[:, 1:], std["fine_ref"])
    batch = as_sequence(standard((-30, 5), batch=1), 3, (1, 0))
    batch["meta"]["ref_days"] = np.asarray(batch["meta"]["ref_days"][0])  # an evaluation batch of one: (K,)
    seq = reference_sequence(batch)
    assert seq.mask.tolist() == [[False, True, True]] and seq.days.tolist() == [[0.0, -30.0, 5.0]]
    one = dict(std, meta={"dates": std["meta"]["dates"][0]})  # meta as one string
    assert reference_sequence(one).days.tolist() == [[10.0, -10.0]]
    with pytest.raises(ValueError, match="meta\\['dates'\\]"):
        reference_sequence({k: v for k, v in std.items() if k != "meta"})


PINNED_MEAN, PINNED_STD = 0.455418, 0.498238  # recorded from this implementation (torch 2, CPU)
