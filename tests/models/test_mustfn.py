"""MUSTFN: 1-band parameter counts per block, input-following pyramid pooling, linear head, the official init scope,
and the masked MSE + global-SSIM loss that switches on at epoch 20."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from stf_bench.models.mustfn import global_ssim
from tests.models.helpers import model_conf, n_params

CONF = model_conf("mustfn")
INPUTS = ("fine_ref", "coarse_ref", "coarse_tgt", "fine_ref2", "coarse_ref2")
TOP_KEYS = {"id", "title", "family", "label", "source", "lightning_module", "n_refs", "size_multiple", "fixed_size",
            "inputs", "train_reference", "params_target", "net", "optimizer", "d_optimizer", "scheduler",
            "scheduler_monitor", "loss", "train"}
UNUSED_OFFICIAL_CONV = 21 * 21 * 9 + 2 * 21  # deep_conv1_4: defined by the official module, never called


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.net)


def _batch(h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(2, 1, h, w, generator=g) for k in (*INPUTS, "fine_tgt")}
    batch["valid_tgt"] = torch.rand(2, 1, h, w, generator=g) > 0.3
    return batch


def test_config_declares_the_contract(cfg, model):
    assert set(cfg) == TOP_KEYS
    assert (cfg.id, cfg.label, cfg.n_refs, cfg.size_multiple, cfg.fixed_size) == ("mustfn", "official-code", 2, 4, None)
    assert cfg.params_target == 8_655_928 == n_params(model) + UNUSED_OFFICIAL_CONV
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.scheduler.gamma) == (1e-4, 5e-4, 0.92)
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (6, 256, 360)


def test_parameter_counts_per_block(model):
    assert n_params(model.stem_fine) + n_params(model.stem_coarse) == 1_560 + 609
    assert n_params(model.f1) == 5_280
    assert n_params(model.g1) == 1_092_696
    assert n_params(model.h1) == 6_400_944
    assert n_params(model.attention) + n_params(model.head) == 240_300 + 910_528
    assert n_params(model) == 8_651_917
    assert not any(isinstance(m, torch.nn.Conv2d) and m.bias is not None for m in model.modules())


@pytest.mark.parametrize("size", [(32, 32), (64, 32)])
def test_pyramid_pooling_follows_the_input_size(model, size):
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:]))) for b in model.g1.branches]
    try:
        with torch.no_grad():
            out = model.eval()(_batch(*size))
    finally:
        for h in hooks:
            h.remove()
    assert out.shape == (2, 1, *size) and torch.isfinite(out).all()
    h, w = size
    assert seen == [(h // 4, w // 4), (h // 8, w // 8), (h // 16, w // 16)]  # 64, 32, 16 at 256 px, as official


def test_pinned_output_and_linear_head(cfg):
    torch.manual_seed(0)
    model = instantiate(cfg.net).train()  # batch statistics: fresh running statistics would shrink the output
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        assert (out.mean().item(), out.std().item()) == pytest.approx((-0.373230, 0.301379), abs=1e-5)
        model.head[-1].weight.neg_()
        torch.testing.assert_close(model(batch), -out)  # nothing after the last 1x1 conv: no sigmoid, no clamp


def test_official_initialisation_scope(model):
    """He-normal on the feature network (as the official Feature_net), PyTorch's default elsewhere."""
    w = model.h1.bottleneck[1][1].weight  # 3x3 528->528
    assert w.std().item() == pytest.approx((2 / (9 * 528)) ** 0.5, rel=0.02)
    assert model.f1[0][1].weight.eq(1).all() and model.f1[0][1].bias.eq(0).all()
    assert model.head[-1].weight.abs().max() <= 1 / 64**0.5  # default kaiming-uniform bound, not N(0, 2)


def test_global_ssim_matches_the_official_formula():
    g = np.random.default_rng(0)
    x, y = g.random(500), g.random(500) * 0.5 + 0.2 * g.random(500)
    c1, c2 = (0.01 * 1.6384) ** 2, (0.03 * 1.6384) ** 2
    cov = np.cov(y, x)[0][1]
    expected = ((2 * x.mean() * y.mean() + c1) * (2 * cov + c2)
                / ((x.mean() ** 2 + y.mean() ** 2 + c1) * (np.var(x, ddof=1) + np.var(y, ddof=1) + c2)))
    got = global_ssim(torch.tensor(x), torch.tensor(y), 1.6384)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert global_ssim(torch.tensor(x), torch.tensor(x), 1.0).item() == pytest.approx(1.0)


def test_global_ssim_gradient_includes_the_covariance():
    """The official NumPy covariance cut part of the gradient; here it matches finite differences."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.rand(40, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: global_ssim(v, y, 1.0), (x,))


def test_loss_masks_the_target_and_adds_ssim_from_epoch_20(model):
    batch = _batch()
    with torch.no_grad():
        pred = model.eval()(batch)  # eval: the shared fixture's running statistics stay untouched
    valid = batch["valid_tgt"]
    early, late = model.compute_loss(batch, 19, pred=pred), model.compute_loss(batch, 20, pred=pred)
    assert set(late) == {"loss", "mse", "ssim"}
    expected_mse = (pred - batch["fine_tgt"])[valid].pow(2).mean()
    torch.testing.assert_close(early["loss"], expected_mse)
    torch.testing.assert_close(late["loss"], expected_mse + 0.1 * (1 - late["ssim"]))
    for fill in (torch.nan, 5.0):  # unobserved target pixels change nothing
        changed = dict(batch, fine_tgt=torch.where(valid, batch["fine_tgt"], fill))
        torch.testing.assert_close(model.compute_loss(changed, 20, pred=pred)["loss"], late["loss"])
    perfect = model.compute_loss(dict(batch, fine_tgt=pred), 20, pred=pred)
    assert perfect["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_both_references_are_required(model):
    batch = _batch()
    del batch["fine_ref2"]
    with pytest.raises(KeyError, match="fine_ref2"):
        model(batch)
