"""THSTNet: parameter counts, the window mapping, the chunked texture search, stage schedule, loss mask, sizes."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from stf_bench.data.normalization import AffineNorm
from stf_bench.models.prediction import predict_scene
from stf_bench.models.thstnet import THSTNet, TextureTransformer, texture_search, window_mapping

YAML = Path(__file__).parents[2] / "conf" / "model" / "thstnet.yaml"
KEYS = ("coarse_ref", "fine_ref", "coarse_tgt")


def batch(size=64, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(b, 1, size, size, generator=g) for k in (*KEYS, "fine_tgt")}
    out["valid_tgt"] = torch.ones(b, 1, size, size, dtype=torch.bool)
    return out


def tiny(**kw):
    """The published topology at width 16 and depth 1 (64 px: the 4x4 level runs the clamped window)."""
    torch.manual_seed(0)
    net = THSTNet(**{"max_epochs": 4, "embed_dim": 16, "head_dim": 16, "depths": (1, 1, 1, 1), "fixed_size": 64,
                     **kw})
    net.norm = AffineNorm(offset=250.0, scale=60.0)
    return net


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_yaml_declarations():
    cfg = OmegaConf.load(YAML)
    assert (cfg.fixed_size, cfg.size_multiple, cfg.train_reference, cfg.n_refs) == (256, 16, "random", 1)
    assert cfg.loss is None and cfg.scheduler_monitor == "val/ssim" and cfg.net.chain_resblocks is False
    assert (cfg.train.max_epochs, cfg.train.seed, cfg.optimizer.lr, cfg.net.stage1_fraction) == (160, 2023, 1e-4, 0.5)


def test_parameter_counts_match_official():
    net = THSTNet(max_epochs=160)
    assert count(net.stage1) == 5_543_815 and count(net.stage2) == 29_452_277
    assert count(net) == OmegaConf.load(YAML).params_target == 34_996_092
    assert count(net.stage1.encoder) == 1_901_134 and count(net.stage2.coarse_encoder) == 1_901_006
    assert [count(b) for b in net.stage1.up_blocks] == [2_626_952, 760_780, 165_218, 52_450]
    assert count(net.stage2.bottleneck) == 8_914_688  # "8.9 M"
    assert [count(b) for b in net.stage2.up_blocks] == [11_574_408, 2_998_092, 724_770, 192_962]
    assert [count(b) for b in net.stage2.cross_fusion] == [885_120, 221_376, 55_392, 46_176]
    assert count(net.stage1.head) == count(net.stage2.head) == 37_281
    assert net.stage1_epochs == 80


def test_window_mapping_recovers_a_linear_map_per_window():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64)
    apply_to = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64)
    maps = torch.randn(2, 2, 16, 16, generator=g, dtype=torch.float64)  # one M per 16x16 window

    def per_window(m, x):
        w = x.view(2, 16, 2, 16).permute(0, 2, 1, 3)
        return (m @ w).permute(0, 2, 1, 3).reshape(1, 1, 32, 32)

    out = window_mapping(src, per_window(maps, src), apply_to, 16)
    assert torch.allclose(out, per_window(maps, apply_to), atol=1e-8)
    flat = window_mapping(torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.7), torch.rand(1, 1, 16, 16),
                          16)
    assert torch.isfinite(flat).all()  # singular (uniform) window: pinv, no NaN


def test_texture_search_equals_the_full_correlation_and_its_gradient():
    g = torch.Generator().manual_seed(1)
    c_ref, f_ref, c_tgt = (torch.randn(2, 4, 8, 8, generator=g, requires_grad=True) for _ in range(3))
    t, s = texture_search(c_ref, f_ref, c_tgt, chunk=5)  # chunks that do not divide 64
    # reference: the official full R matrix, max over C_ref positions
    q = F.normalize(F.unfold(c_tgt, 3, padding=1), dim=1)
    k = F.normalize(F.unfold(c_ref, 3, padding=1), dim=1)
    r_star, idx = torch.bmm(k.transpose(1, 2), q).max(dim=1)
    t_ref = F.fold(torch.gather(F.unfold(f_ref, 3, padding=1), 2, idx.unsqueeze(1).expand(-1, 36, -1)), (8, 8), 3,
                   padding=1) / 9
    assert torch.allclose(s.flatten(1), r_star, atol=1e-6) and torch.allclose(t, t_ref, atol=1e-6)
    w = torch.randn(2, 1, 8, 8, generator=g)
    grads = torch.autograd.grad((s * w).sum() + t.sum(), (c_ref, c_tgt, f_ref))
    grads_ref = torch.autograd.grad((r_star.view(2, 1, 8, 8) * w).sum() + t_ref.sum(), (c_ref, c_tgt, f_ref))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, grads_ref))


def test_unchained_resblocks_keep_only_the_last():
    torch.manual_seed(0)
    maps = [torch.randn(1, 8, 8, 4) for _ in range(3)]
    tt = TextureTransformer(4, res_blocks=2, chain_resblocks=False)
    before = tt(*maps)
    with torch.no_grad():
        tt.res_blocks[0].conv1.weight.add_(1.0)
    assert torch.equal(tt(*maps), before)  # official: the first ResBlock's result is discarded
    tt.chain_resblocks = True
    assert not torch.allclose(tt(*maps), before)


def test_stages_train_in_turn_and_forward_follows():
    net = tiny().train()
    b = batch()
    assert net.stage(0) == net.stage(1) == 1 and net.stage(2) == 2
    for epoch, trained, frozen in ((0, "stage1.", "stage2."), (3, "stage2.", "stage1.")):
        net.zero_grad(set_to_none=True)
        parts = net.compute_loss(b, epoch)
        parts["loss"].backward()
        assert float(parts["stage"]) == (1 if trained == "stage1." else 2)
        assert all(p.grad is None for n, p in net.named_parameters() if n.startswith(frozen)), epoch
        assert any(p.grad is not None for n, p in net.named_parameters() if n.startswith(trained)), epoch
        assert net.stage1.training  # stage 1 ran in eval mode inside stage 2 and was restored
    net.eval()
    with torch.no_grad():
        internal = [t * 0.8 + 0.1 for t in (b[k] for k in KEYS)]
        assert int(net.active_stage) == 2
        assert torch.allclose(net(b), (net.run_stage2(*internal) - 0.1) / 0.8)
        assert "active_stage" in net.state_dict()  # a checkpoint predicts with the stage it was saved in


def test_pinned_forward_values():
    net = tiny().eval()
    b = batch()
    with torch.no_grad():
        y1 = net(b)
        net.active_stage.fill_(2)
        y2 = net(b)
    assert y1.shape == y2.shape == (2, 1, 64, 64)
    assert (y1.mean().item(), y1.std().item()) == pytest.approx((-0.181552, 0.244907), abs=1e-5)
    assert (y2.mean().item(), y2.std().item()) == pytest.approx((-0.092664, 0.158702), abs=1e-5)


def test_loss_mask_drops_reference_mismatch_above_8k():
    net = tiny()
    b = batch()
    b["fine_ref"] = b["coarse_ref"].clone()
    b["fine_ref"][..., :8, :] += 9.0 / 60.0   # 9 K apart: dropped
    b["fine_ref"][..., 8:16, :] += 7.0 / 60.0  # 7 K apart: kept
    b["valid_tgt"][..., :, :4] = False
    mask = net.loss_mask(b)
    assert not mask[..., :8, :].any() and mask[..., 8:, 4:].all() and not mask[..., :, :4].any()
    # the pixels it drops do not move the Charbonnier term
    moved = dict(b, fine_tgt=b["fine_tgt"].clone())
    moved["fine_tgt"][..., :8, :] += 5.0
    torch.manual_seed(0)
    a = net.compute_loss(b, 0)["charbonnier"]
    torch.manual_seed(0)
    assert torch.allclose(net.compute_loss(moved, 0)["charbonnier"], a)
    net.norm = None
    with pytest.raises(RuntimeError, match="norm is None"):
        net.loss_mask(b)


def test_sizes_fail_clearly():
    with pytest.raises(ValueError, match=r"32x32 but the model's fixed_size is 64"):
        tiny()(batch(32))
    free = tiny(fixed_size=None).eval()
    with pytest.raises(ValueError, match=r"96x96.*64, 128, 256, 512 work"):
        free(batch(96))  # 96 / 8 = 12: neither <= 8 nor a multiple of the window
    with torch.no_grad():
        assert free(batch(32, b=1)).shape == (1, 1, 32, 32)  # every Swin map at most one window
    with pytest.raises(KeyError, match="fine_ref"):
        free({k: v for k, v in batch().items() if k != "fine_ref"})
    with pytest.raises(ValueError, match="output_activation='relu'"):
        THSTNet(max_epochs=2, output_activation="relu")


def test_tiled_equals_untiled_at_the_fixed_size_and_small_scenes_are_padded():
    net = tiny().eval()
    b = {k: v[:1] for k, v in batch().items()}
    with torch.no_grad():
        assert (predict_scene(net, b, 16, 64) - net(b)).abs().max() < 1e-4
        scene = {k: v[:1, :, :50, :100] for k, v in batch(128).items()}  # shorter than fixed_size, and wider
        out = predict_scene(net, scene, 16, 64)
        assert out.shape == (1, 1, 50, 100) and torch.isfinite(out).all()
