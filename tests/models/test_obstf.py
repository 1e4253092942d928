"""obstf (reconstructed, models.md part 2 §4): SLIC objects on F1, object-mean change, U-Net, §6 PatchGAN."""

import pytest
import torch
from hydra.utils import instantiate

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.slic import object_mean, slic
from stf_bench.models.obstf import OBSTF
from stf_bench.models.prediction import predict_scene
from tests.models.helpers import model_conf

CONF = model_conf("obstf")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture
def net(cfg) -> OBSTF:
    torch.manual_seed(0)
    return instantiate(cfg.net)


def batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(2, 1, size, size, generator=g) for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt")}
    out["valid_tgt"] = torch.rand(2, 1, size, size, generator=g) > 0.3
    return out


def test_config(cfg):
    assert (cfg.id, cfg.label, cfg.lightning_module, cfg.n_refs, cfg.size_multiple, cfg.fixed_size) == (
        "obstf", "reconstructed", "adversarial", 1, 8, None)
    assert set(cfg.inputs) == {"fine_ref", "coarse_ref", "coarse_tgt"}
    for opt in (cfg.optimizer, cfg.d_optimizer):
        assert (opt.lr, tuple(opt.betas)) == (2e-4, (0.5, 0.999))
    assert (cfg.train.batch_size, cfg.train.patch_size, cfg.train.max_epochs) == (8, 256, 200)
    assert (cfg.net.gan_mode, cfg.net.adv_weight) == ("lsgan", 0.02)  # 0.01 * MSE(D(G), 1) = 0.02 * lsgan's 0.5 MSE


def test_parameter_counts(cfg, net):
    g = net.generator
    assert count(g.encoder) == 1_172_544 and count(g.decoder) == 774_592 and count(g.head) == 33
    assert count(g) == cfg.params_target == 1_947_169
    assert count(net.discriminator) == 2_765_505


def test_slic_objects_follow_a_sharp_edge_and_run_without_gradient():
    torch.manual_seed(0)
    img = torch.full((1, 1, 64, 64), 0.2)
    img[..., 40:] = 0.8  # an edge off the 16 px seed grid
    img = (img + 0.01 * torch.randn_like(img)).requires_grad_()
    labels = slic(img)
    assert labels.shape == (1, 64, 64) and not labels.requires_grad
    assert int(labels.min()) >= 0 and int(labels.max()) < 16
    for lab in labels.unique():
        cols = (labels[0] == lab).nonzero()[:, 1]
        assert cols.max() < 40 or cols.min() >= 40, int(lab)  # no object straddles the edge
    # without the value term (huge value scale) the objects are the 16 px grid cells
    grid = slic(img.detach(), value_scale=1e6)
    cells = (torch.arange(64) // 16)[:, None] * 4 + (torch.arange(64) // 16)[None, :]
    assert torch.equal(grid[0], cells)


def test_object_mean_broadcasts_each_objects_mean():
    labels = torch.tensor([[[0, 0, 2], [1, 1, 2]]])
    values = torch.tensor([[[[1.0, 3.0, 5.0], [10.0, 20.0, 7.0]]]])
    expected = torch.tensor([[[[2.0, 2.0, 6.0], [15.0, 15.0, 6.0]]]])
    assert torch.equal(object_mean(values, labels), expected)


def test_output_is_f1_plus_object_change_plus_head(net):
    b = batch()
    labels = net.objects(b["fine_ref"])
    change = net.object_change(b)
    for i in range(2):
        for lab in labels[i].unique():
            obj = change[i, 0][labels[i] == lab]
            assert torch.allclose(obj, obj.mean().expand_as(obj), atol=1e-6)
            assert float(obj[0]) == pytest.approx(float((b["coarse_tgt"] - b["coarse_ref"])[i, 0][labels[i] == lab]
                                                        .mean()), abs=1e-6)
    torch.nn.init.zeros_(net.generator.head.weight)
    torch.nn.init.zeros_(net.generator.head.bias)
    with torch.no_grad():
        assert torch.allclose(net(b), b["fine_ref"] + change, atol=1e-6)


def test_whole_scene_is_segmented_in_one_pass(net):
    """No fixed size: the tiler hands the model the whole (padded) scene, so SLIC sees whole objects."""
    b = {k: v for k, v in batch(64).items() if k in ("fine_ref", "coarse_ref", "coarse_tgt")}
    b = {k: v[..., :60, :60] for k, v in b.items()}  # 60 -> padded to 64 (size_multiple 8)
    seen = []
    net.eval().register_forward_pre_hook(lambda m, args: seen.append(args[0]["fine_ref"].shape[-1]))
    out = predict_scene(net, b, size_multiple=8)
    assert out.shape == (2, 1, 60, 60) and seen == [64]


def test_pinned_forward_value(net):
    with torch.no_grad():
        out = net.eval()(batch())
    assert out.shape == (2, 1, 32, 32)
    assert float(out.mean()) == pytest.approx(0.35759667, abs=1e-5)
    assert float(out.std()) == pytest.approx(0.27952677, abs=1e-5)


def test_loss_ignores_unobserved_target_pixels_and_d_sees_c2(net):
    b = batch()
    pred = net(b).detach()
    before = net.compute_loss(b, 0, pred=pred)
    b2 = dict(b, fine_tgt=torch.where(b["valid_tgt"], b["fine_tgt"], 100.0))
    after = net.compute_loss(b2, 0, pred=pred)
    assert set(before) == {"loss", "l1", "msssim"}
    assert float(after["loss"]) == pytest.approx(float(before["loss"]), abs=1e-6)
    assert float(before["loss"]) == pytest.approx(float(before["l1"] + before["msssim"]), abs=1e-6)
    assert torch.equal(net.d_input(b, pred), torch.cat([pred, b["coarse_tgt"]], 1))


def test_bad_options_raise():
    with pytest.raises(ConfigError, match="gan_mode"):
        OBSTF(gan_mode="hinge")
    with pytest.raises(ConfigError, match="slic"):
        OBSTF(slic_grid=0)
