"""Hybrid SRCNN + LSTM (reconstructed): design counts, the date sequence (order, dt from meta, one or two
references), chunked per-pixel LSTM, the two losses with S detached unless end_to_end, and the SRCNN's own rate."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.models.blocks.masked import masked_mse
from stf_bench.models.hybrid_lstm import date_offsets
from tests.models.helpers import model_conf, n_trainable

CONF = model_conf("hybrid_lstm")
DATES = ["2020-06-15,2020-05-30,2020-07-01", "2020-06-15,2020-08-02,2020-06-07"]


def _model(cfg, **over):
    torch.manual_seed(0)
    return instantiate(cfg.net, **over)


@pytest.fixture
def model(cfg):
    return _model(cfg)


def _batch(two_refs=True, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in keys}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    batch["meta"] = {"dates": DATES if two_refs else [d.rsplit(",", 1)[0] for d in DATES]}
    return batch


def _swap(batch):
    dates = [",".join([d.split(",")[0], d.split(",")[2], d.split(",")[1]]) for d in batch["meta"]["dates"]]
    return dict(batch, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"], fine_ref2=batch["fine_ref"],
                coarse_ref2=batch["coarse_ref"], meta={"dates": dates})


def test_config_and_design_counts(cfg, model):
    assert (cfg.id, cfg.label, cfg.family, cfg.n_refs, cfg.min_refs, cfg.size_multiple) == (
        "hybrid_lstm", "reconstructed", "RNN", 2, 1, 1)
    assert (cfg.optimizer.lr, cfg.train.max_epochs, cfg.train.batch_size, cfg.train.patch_size) == (1e-3, 100, 4, 64)
    assert OmegaConf.to_container(cfg.optimizer_groups) == [{"prefix": "srcnn.", "lr": 1e-4}]
    assert n_trainable(model.srcnn) == 8_129
    assert n_trainable(model.lstm) + n_trainable(model.head) == 51_265
    assert n_trainable(model) == cfg.params_target == 59_394


def test_srcnn_and_lstm_get_their_own_learning_rates(cfg):
    from stf_bench.training.module import SupervisedModule

    module = SupervisedModule(OmegaConf.to_container(cfg, resolve=True), {"offset": 250.0, "scale": 60.0}, 60.0, {})
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert [(g["lr"], sum(p.numel() for p in g["params"])) for g in opt.param_groups] == [(1e-4, 8_129),
                                                                                          (1e-3, 51_265)]


def test_date_offsets_in_years_to_the_target():
    dt = date_offsets({"dates": DATES}, 2, 2)
    torch.testing.assert_close(dt, torch.tensor([[16 / 365, -16 / 365], [-48 / 365, 8 / 365]]))
    # an uncollated sample (evaluation, efficiency) carries one string for the whole batch
    torch.testing.assert_close(date_offsets({"dates": DATES[0]}, 2, 3), dt[:1].expand(3, 2))
    with pytest.raises(ValueError, match="meta"):
        date_offsets(None, 2, 2)
    with pytest.raises(ValueError, match="1 reference"):
        date_offsets({"dates": DATES}, 1, 2)
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        date_offsets({"dates": DATES + DATES[:1]}, 2, 2)


def test_pinned_forward_value(model):
    with torch.no_grad():
        out = model(_batch())
    assert out.shape == (2, 1, 16, 16)
    assert out.mean().item() == pytest.approx(0.032688, abs=1e-5)
    assert out.std().item() == pytest.approx(0.000418, abs=1e-6)  # per-pixel LSTM at init: nearly flat
    terms = model.compute_loss(_batch(), epoch=0)
    assert (terms["srcnn_mse"].item(), terms["lstm_mse"].item()) == pytest.approx((0.165175, 0.287212), abs=1e-5)


def test_sequence_is_in_time_order_and_uses_dt(model):
    """The reference keys' order does not matter (sorted by date); the dates themselves do."""
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        torch.testing.assert_close(model(_swap(batch)), out)
        later = dict(batch, meta={"dates": ["2020-06-15,2020-04-30,2020-07-01"] * 2})
        assert (model(later)[0] - out[0]).abs().max() > 1e-5


def test_one_reference_and_chunking(cfg, model):
    one = _batch(two_refs=False, size=17)
    with torch.no_grad():
        out = model(one)
        assert out.shape == (2, 1, 17, 17) and torch.isfinite(out).all()
        chunked = _model(cfg, pixel_chunk=100)(one)  # 578 sequences in 6 LSTM calls
    torch.testing.assert_close(chunked, out)
    with pytest.raises(ValueError, match="coarse_ref2"):
        model(dict(one, fine_ref2=one["fine_ref"]))
    with pytest.raises(ValueError, match="meta"):
        model({k: v for k, v in one.items() if k != "meta"})


@pytest.mark.parametrize("two_refs", (False, True))
def test_loss_terms_and_masking(model, two_refs):
    batch = _batch(two_refs)
    terms = model.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "srcnn_mse", "lstm_mse"}
    refs = [("fine_ref", "coarse_ref")] + ([("fine_ref2", "coarse_ref2")] if two_refs else [])
    with torch.no_grad():
        sr = model.super_resolve([batch[c] for _, c in refs] + [batch["coarse_tgt"]])
        pairs = [masked_mse(s, batch[f]) for s, (f, _) in zip(sr, refs)]
        pairs.append(masked_mse(sr[-1], batch["fine_tgt"], batch["valid_tgt"]))
        torch.testing.assert_close(terms["srcnn_mse"], torch.stack(pairs).mean())
        torch.testing.assert_close(terms["lstm_mse"], masked_mse(model(batch), batch["fine_tgt"], batch["valid_tgt"]))
    torch.testing.assert_close(terms["loss"], terms["srcnn_mse"] + terms["lstm_mse"])
    changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], 9.0))
    torch.testing.assert_close(model.compute_loss(changed, epoch=0)["loss"], terms["loss"])


def _srcnn_grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.srcnn.parameters()]


@pytest.mark.parametrize("end_to_end", (False, True))
def test_lstm_loss_reaches_the_srcnn_only_end_to_end(cfg, end_to_end):
    model = _model(cfg, end_to_end=end_to_end)
    batch = _batch()
    total = _srcnn_grads(model, model.compute_loss(batch, epoch=0)["loss"])
    assert all(p.grad is not None for p in model.lstm.parameters())
    sr = model.super_resolve([batch["coarse_ref"], batch["coarse_ref2"], batch["coarse_tgt"]])
    own = torch.stack([masked_mse(sr[0], batch["fine_ref"]), masked_mse(sr[1], batch["fine_ref2"]),
                       masked_mse(sr[2], batch["fine_tgt"], batch["valid_tgt"])]).mean()
    alone = _srcnn_grads(model, own)
    same = all(torch.allclose(a, b) for a, b in zip(total, alone))
    assert same != end_to_end
