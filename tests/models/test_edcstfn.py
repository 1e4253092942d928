"""EDCSTFN: exact 1-band parameter counts, one/two-reference paths, the masked compound loss and its loss network."""

import numpy as np
import pytest
import torch

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.pretrained import train_piece
from tests.models.helpers import model_conf

CONF = model_conf("edcstfn")
TOP_KEYS = {"id", "title", "family", "label", "source", "lightning_module", "n_refs", "size_multiple", "fixed_size",
            "inputs", "train_reference", "params_target", "net", "optimizer", "d_optimizer", "scheduler",
            "scheduler_monitor", "loss", "train"}


def _count(module, trainable=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


@pytest.fixture
def loaded(model):
    torch.manual_seed(1)
    model.load_pretrained("feature_encoder", model.pretrained_pieces()[0].build_autoencoder().encoder.state_dict())
    return model


def _batch(two_refs=True, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = ["fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt"] + (["fine_ref2", "coarse_ref2"] if two_refs else [])
    batch = {k: torch.rand(2, 1, size, size, generator=g) for k in keys}
    batch["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return batch


def test_config_declares_the_contract(cfg, model):
    assert set(cfg) == TOP_KEYS | {"min_refs"}  # accepts one reference, defaults to two
    assert (cfg.id, cfg.lightning_module, cfg.n_refs, cfg.size_multiple, cfg.label) == (
        "edcstfn", "supervised", 2, 1, "official-code")
    assert _count(model, trainable=True) == cfg.params_target == 278_209
    assert (cfg.train.batch_size, cfg.train.max_epochs, cfg.train.seed, cfg.optimizer.lr) == (4, 60, 2019, 1e-3)


def test_parameter_counts_per_part(model):
    assert _count(model.fine_encoder) == 92_672
    assert _count(model.residual_encoder) == 93_248
    assert _count(model.decoder) == 92_289
    assert _count(model.feature_encoder) == 240_256
    assert _count(model.feature_encoder, trainable=True) == 0
    piece = model.pretrained_pieces()[0]
    assert (piece.name, piece.ckpt) == ("feature_encoder", None)
    assert _count(piece.build_autoencoder()) == 480_129


def test_forward_shapes_one_and_two_references(model):
    for two_refs in (False, True):
        out = model(_batch(two_refs, size=64))
        assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()
    assert model(_batch(size=37)).shape == (2, 1, 37, 37)  # no size constraint


def test_two_reference_prediction_weights_the_references(model):
    batch = _batch()
    model.eval()
    with torch.no_grad():
        same = dict(batch, fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
        one = {k: v for k, v in batch.items() if not k.endswith("2")}
        torch.testing.assert_close(model(same), model(one))  # identical references: weights sum to one
        swapped = dict(batch, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"],
                       fine_ref2=batch["fine_ref"], coarse_ref2=batch["coarse_ref"])
        torch.testing.assert_close(model(swapped), model(batch))
        ref2_only = dict(one, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"])
        both = model(batch)
        assert not torch.allclose(both, model(one)) and not torch.allclose(both, model(ref2_only))


def test_incomplete_second_reference_is_rejected(model):
    batch = _batch()
    del batch["coarse_ref2"]
    with pytest.raises(ValueError, match="coarse_ref2"):
        model(batch)


def test_loss_needs_the_loaded_feature_encoder(model):
    with pytest.raises(RuntimeError, match="load_pretrained"):
        model.compute_loss(_batch(), epoch=0)


@pytest.mark.parametrize("two_refs", (False, True))
def test_loss_ignores_unobserved_target_pixels(loaded, two_refs):
    batch = _batch(two_refs)
    terms = loaded.compute_loss(batch, epoch=0)
    assert set(terms) == {"loss", "mse", "feature", "ms_ssim"} and torch.isfinite(terms["loss"])
    changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], torch.nan))
    torch.testing.assert_close(loaded.compute_loss(changed, epoch=0)["loss"], terms["loss"])
    changed = dict(batch, fine_tgt=torch.where(batch["valid_tgt"], batch["fine_tgt"], 5.0))
    torch.testing.assert_close(loaded.compute_loss(changed, epoch=0)["loss"], terms["loss"])


def test_two_reference_loss_is_the_mean_of_the_single_reference_losses(loaded):
    batch = _batch()
    one = {k: v for k, v in batch.items() if not k.endswith("2")}
    other = dict(one, fine_ref=batch["fine_ref2"], coarse_ref=batch["coarse_ref2"])
    expected = (loaded.compute_loss(one, 0)["loss"] + loaded.compute_loss(other, 0)["loss"]) / 2
    torch.testing.assert_close(loaded.compute_loss(batch, 0)["loss"], expected)


def test_loss_of_a_perfect_prediction_is_zero_and_pred_is_reused(loaded):
    batch = _batch(two_refs=False)
    with torch.no_grad():
        pred = loaded(batch)
    perfect = loaded.compute_loss(dict(batch, fine_tgt=pred), 0)
    assert perfect["loss"].item() == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(loaded.compute_loss(batch, 0, pred=pred)["loss"], loaded.compute_loss(batch, 0)["loss"])


def test_loss_trains_the_fusion_network_not_the_loss_network(loaded):
    loaded.compute_loss(_batch(), 0)["loss"].backward()
    assert all(p.grad is not None for p in loaded.decoder.parameters())
    assert all(p.grad is None for p in loaded.feature_encoder.parameters())


def test_feature_encoder_pretraining_and_strict_loading(model):
    g = np.random.default_rng(0)
    images = [g.random((64, 64), dtype=np.float32) for _ in range(2)]
    piece = model.pretrained_pieces()[0]
    piece.recipe.update(patch=32, stride=32, batch_size=4)  # the published 256 px patches do not fit 64 px
    state = train_piece(piece, images, seed=0, max_epochs=1, progress=False)
    model.load_pretrained("feature_encoder", state)
    assert torch.isfinite(model.compute_loss(_batch(), 0)["loss"])
    with pytest.raises(ConfigError, match="prefix 'encoder\\.'"):
        model.load_pretrained("feature_encoder", piece.build_autoencoder().state_dict())  # 'encoder.'-prefixed
    with pytest.raises(KeyError):
        model.load_pretrained("vgg", state)
