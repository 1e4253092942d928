"""GAN-STFM: exact 1-band counts of G, D and the feature autoencoder, the adversarial hooks, and the feature loss."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.pretrained import train_piece
from stf_bench.models.blocks.switchnorm import SwitchNorm2d
from stf_bench.models.ganstfm import GANSTFM
from tests.models.helpers import model_conf, n_params

CONF = model_conf("ganstfm")
TOP_KEYS = {"id", "title", "family", "label", "source", "lightning_module", "n_refs", "size_multiple", "fixed_size",
            "inputs", "train_reference", "params_target", "net", "optimizer", "d_optimizer", "scheduler",
            "scheduler_monitor", "loss", "train"}


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    model = instantiate(cfg.net)
    torch.manual_seed(1)
    model.load_pretrained("feature_encoder", model.pretrained_pieces()[0].build_autoencoder().encoder.state_dict())
    return model


def _batch(size=32, seed=0):
    """Only what GAN-STFM reads (no coarse_ref), plus the target and its mask."""
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_tgt", "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_declares_the_contract(cfg, model):
    assert set(cfg) == TOP_KEYS
    assert (cfg.id, cfg.lightning_module, cfg.n_refs, cfg.train_reference, list(cfg.inputs)) == (
        "ganstfm", "adversarial", 1, "random", ["fine_ref", "coarse_tgt"])
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs, cfg.train.seed) == (36, 256, 500, 2020)
    assert cfg.optimizer.lr == cfg.d_optimizer.lr == 2e-4 and cfg.scheduler is None
    assert (model.adv_weight, model.gan_mode, model.d_reduce) == (1e-3, "lsgan", "batch")
    assert n_params(model.generator) == cfg.params_target == 577_225


def test_parameter_counts_per_part(model):
    g = model.generator
    assert [n_params(b) for b in g.encoder] == [100, 5_804, 22_860, 90_764]
    assert [n_params(b) for b in g.decoder] == [344_448, 86_208, 21_600, 5_424]
    assert n_params(g.head) == 17
    assert sum(isinstance(m, SwitchNorm2d) for m in g.modules()) == 8
    d = model.discriminator
    assert (n_params(d), n_params(d.d1), n_params(d.d2), n_params(d.d3)) == (3_660_109, 1_242_863, 1_231_375, 1_185_871)
    assert n_params(model.feature_encoder) == 97_152
    assert not any(p.requires_grad for p in model.feature_encoder.parameters())
    ae = model.pretrained_pieces()[0].build_autoencoder()
    assert (n_params(ae), n_params(ae.encoder), ae.size_multiple) == (217_105, 97_152, 8)


def test_forward_reads_only_fine_ref_and_coarse_tgt(model):
    batch = {k: v for k, v in _batch(64).items() if k in ("fine_ref", "coarse_tgt")}
    out = model(batch)
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()
    assert model(_batch(37)).shape == (2, 1, 37, 37)  # no size constraint


def test_discriminator_heads_and_reductions(model):
    batch = _batch(256)
    x = model.d_input(batch, batch["fine_tgt"])
    assert x.shape == (2, 2, 256, 256) and torch.equal(x[:, 1:], batch["coarse_tgt"])
    with torch.no_grad():
        model.train()  # batch-norm statistics over a batch of 2 at the 1x1 end of each head
        assert [h.shape for h in model.discriminator.heads(x)] == [(2, 1)] * 3  # one score per sample and head
        model.eval()  # no power iteration: repeated calls agree
        heads = model.discriminator.heads(x)
        torch.testing.assert_close(model.discriminator(x), torch.cat(heads, 1).mean(1))
        model.d_reduce = "sample"
        torch.testing.assert_close(model.discriminate(x), torch.cat(heads, 1).mean(1))
        model.d_reduce = "batch"
        torch.testing.assert_close(model.discriminate(x), torch.cat(heads).mean())
    model.train()


def test_bad_gan_options_are_config_errors(cfg):
    with pytest.raises(ConfigError, match="gan_mode"):
        GANSTFM(cfg.net.feature_encoder, gan_mode="hinge")
    with pytest.raises(ConfigError, match="d_reduce"):
        GANSTFM(cfg.net.feature_encoder, d_reduce="mean")


def test_loss_needs_the_loaded_feature_encoder(cfg):
    with pytest.raises(RuntimeError, match="load_pretrained"):
        instantiate(cfg.net).compute_loss(_batch(), epoch=0)


def test_loss_terms_ignore_unobserved_target_pixels(model):
    batch = _batch()
    terms = model.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "feature", "cosine", "visual"} and torch.isfinite(terms["loss"])
    torch.testing.assert_close(terms["loss"], terms["feature"] + terms["cosine"] + terms["visual"])
    for fill in (torch.nan, 7.0):
        changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], fill))
        torch.testing.assert_close(model.compute_loss(changed, epoch=0)["loss"], terms["loss"])
    everything = dict(batch, valid_tgt=torch.ones_like(batch["valid_tgt"]))
    assert not torch.allclose(model.compute_loss(everything, epoch=0)["loss"], terms["loss"])


def test_loss_of_a_perfect_prediction_is_zero_and_pred_is_reused(model):
    batch = _batch()
    with torch.no_grad():
        pred = model(batch)
    assert model.compute_loss(dict(batch, fine_tgt=pred), 0)["loss"].item() == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(model.compute_loss(batch, 0, pred=pred)["loss"], model.compute_loss(batch, 0)["loss"])


def test_loss_trains_the_generator_only(model):
    model.zero_grad(set_to_none=True)
    model.compute_loss(_batch(), 0)["loss"].backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.grad is None for p in model.feature_encoder.parameters())
    model.zero_grad(set_to_none=True)


def test_feature_autoencoder_pretraining_and_strict_loading(cfg):
    model = instantiate(cfg.net)
    g = np.random.default_rng(0)
    images = [g.random((64, 64), dtype=np.float32) for _ in range(2)]
    piece = model.pretrained_pieces()[0]
    piece.recipe.update(patch=36, stride=28, batch_size=4)
    with pytest.raises(ConfigError, match="multiple of 8"):
        train_piece(piece, images, seed=0, max_epochs=1, progress=False)
    piece.recipe.update(patch=32, stride=32)  # the published 256 px patches do not fit 64 px
    state = train_piece(piece, images, seed=0, max_epochs=1, progress=False)
    model.load_pretrained("feature_encoder", state)
    assert torch.isfinite(model.compute_loss(_batch(), 0)["loss"])
    with pytest.raises(ConfigError, match="prefix 'encoder\\.'"):
        model.load_pretrained("feature_encoder", piece.build_autoencoder().state_dict())  # 'encoder.'-prefixed
