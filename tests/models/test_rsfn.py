"""RSFN: exact 1-band counts of G, D and the feature autoencoder, the attention-weighted references, the adversarial
hooks, the loss terms and their mask, and the Sobel magnitude."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.pretrained import train_piece
from stf_bench.models.rsfn import RSFN
from tests.models.helpers import model_conf, n_params

CONF = model_conf("rsfn")


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    model = instantiate(cfg.net)
    torch.manual_seed(1)
    model.load_pretrained("feature_encoder", model.pretrained_pieces()[0].build_autoencoder().encoder.state_dict())
    return model


def _batch(size=32, seed=0):
    """What RSFN reads (no coarse references), plus the target and its mask."""
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "fine_ref2", "coarse_tgt", "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_declares_the_contract(cfg, model):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple) == (
        "rsfn", "official-code", "adversarial", 2, 8)
    assert list(cfg.inputs) == ["fine_ref", "fine_ref2", "coarse_tgt"]
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (28, 256, 200)
    assert cfg.optimizer.lr == cfg.d_optimizer.lr == 1e-4 and cfg.scheduler.gamma == 0.99
    assert (model.adv_weight, model.gan_mode, model.spectral_weight) == (5e-3, "lsgan", 0.0)
    assert model.piece["ssim_weight"] == 0.8
    assert n_params(model.generator) == cfg.params_target == 281_855


def test_parameter_counts_per_part(model):
    g = model.generator
    assert (n_params(g.fine_encoder), n_params(g.coarse_encoder), n_params(g.attention), n_params(g.merge),
            n_params(g.decoder)) == (16_954, 16_954, 89_450, 45_248, 113_249)
    d = model.discriminator
    assert n_params(d) == 1_217_967
    assert [n_params(b) for b in list(d)[:6]] == [430, 45_504, 53_824, 181_120, 214_144, 722_688]
    ae = model.pretrained_pieces()[0].build_autoencoder()
    assert (n_params(ae), n_params(ae.encoder), ae.size_multiple) == (209_387, 70_522, 8)
    assert n_params(model.feature_encoder) == 70_522
    assert not any(p.requires_grad for p in model.feature_encoder.parameters())


MEAN, STD = 0.2222135, 0.0049031


def test_forward_value_is_pinned(model):
    """Recorded after the official-code comparison (max abs diff 0.0, see the module docstring)."""
    model.eval()
    with torch.no_grad():
        out = model({k: v for k, v in _batch(64).items() if k in ("fine_ref", "fine_ref2", "coarse_tgt")})
    model.train()
    assert out.shape == (2, 1, 64, 64)
    assert out.mean().item() == pytest.approx(MEAN, abs=1e-5)
    assert out.std().item() == pytest.approx(STD, abs=1e-5)


def test_attention_weights_each_reference_by_its_own_map(model):
    """Swapping F1 and F3 gives the same prediction (one shared encoder and attention net), and each reference's
    weight map lies in (0, 1) at twice the input resolution."""
    batch = _batch(32)
    with torch.no_grad():
        model.eval()
        swapped = dict(batch, fine_ref=batch["fine_ref2"], fine_ref2=batch["fine_ref"])
        torch.testing.assert_close(model(swapped), model(batch))
        att = model.generator.attention(torch.cat([batch["fine_ref"], batch["coarse_tgt"]], 1))
        model.train()
    assert att.shape == (2, 1, 64, 64) and 0 < att.min() and att.max() < 1
    assert model(_batch(40)).shape == (2, 1, 40, 40)  # multiples of 8 other than powers of two


def test_discriminator_scores_and_small_patches(model):
    batch = _batch(256)
    x = model.d_input(batch, batch["fine_tgt"])
    assert x.shape == (2, 2, 256, 256) and torch.equal(x[:, 1:], batch["coarse_tgt"])
    with torch.no_grad():
        assert model.discriminate(x).shape == (2, 16)  # the 4x4 map at 256 px
        small = _batch(32)
        assert model.discriminate(model.d_input(small, small["fine_tgt"])).shape == (2, 1)  # ceil-mode pooling


def test_bad_options_are_config_errors(cfg):
    with pytest.raises(ConfigError, match="gan_mode"):
        RSFN(cfg.net.feature_encoder, gan_mode="wgan_clip")
    with pytest.raises(ConfigError, match="spectral_weight"):
        RSFN(cfg.net.feature_encoder, spectral_weight=1.0)


def test_loss_needs_the_loaded_feature_encoder(cfg):
    with pytest.raises(RuntimeError, match="load_pretrained"):
        instantiate(cfg.net).compute_loss(_batch(), epoch=0)


def test_loss_terms_ignore_unobserved_target_pixels(model):
    batch = _batch()
    terms = model.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "sobel", "feature", "visual"} and torch.isfinite(terms["loss"])
    torch.testing.assert_close(terms["loss"], terms["sobel"] + terms["feature"] + terms["visual"])
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


def test_spectral_angle_term_with_several_bands(cfg):
    model = RSFN(cfg.net.feature_encoder, in_ch=3, spectral_weight=0.5)
    model.load_pretrained("feature_encoder", model.pretrained_pieces()[0].build_autoencoder().encoder.state_dict())
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, 16, 16, generator=g) for k in ("fine_ref", "fine_ref2", "coarse_tgt", "fine_tgt")}
    batch["valid_tgt"] = torch.ones(1, 3, 16, 16, dtype=torch.bool)
    pred = 2 * batch["fine_tgt"]  # the same direction in band space: angle 0 (up to the acos clamp)
    terms = model.compute_loss(batch, 0, pred=pred)
    assert terms["spectral"].item() == pytest.approx(0.5 * np.arccos(1 - 1e-6), abs=1e-5)
    torch.testing.assert_close(terms["loss"], terms["sobel"] + terms["feature"] + terms["visual"] + terms["spectral"])


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
    piece = model.pretrained_pieces()[0]
    piece.recipe.update(patch=32, stride=32, batch_size=4)
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    recon = x + 0.5  # L1 0.5 (SmoothL1 would give 0.125)
    expected = 0.5 + 0.8 * (1 - ms_ssim(recon, x, 1.0, variant="product"))
    assert piece.loss(recon, x).item() == pytest.approx(expected.item(), abs=1e-6)
    state = train_piece(piece, [g.random((64, 64), dtype=np.float32) for _ in range(2)], seed=0, max_epochs=1,
                        progress=False)
    model.load_pretrained("feature_encoder", state)
    assert torch.isfinite(model.compute_loss(_batch(), 0)["loss"])
    with pytest.raises(ConfigError, match="prefix 'encoder\\.'"):
        model.load_pretrained("feature_encoder", piece.build_autoencoder().state_dict())
