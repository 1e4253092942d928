"""The adversarial module with staged networks (explicit_stepwise) and its cycle mode (cyclegan_stf): optimizers,
the GAN term held back outside the adversarial stage, and one cycle step (both G, both D, pool, snapshot)."""

from pathlib import Path

import torch
from omegaconf import OmegaConf

from stf_bench.training.adversarial import AdversarialModule
from stf_bench.training.cycle import CycleAdversarialModule

REPO = Path(__file__).resolve().parents[2]
NORM = {"offset": 250.0, "scale": 60.0}


def model_cfg(model_id: str, **net) -> dict:
    yaml = OmegaConf.load(REPO / "conf" / "model" / f"{model_id}.yaml")
    cfg = OmegaConf.merge({"dataset": {"coarse_block": 33}}, {"model": yaml}, {"model": {"net": net}})
    return OmegaConf.to_container(cfg.model, resolve=True)


def without_trainer(module, opts) -> None:
    """Step the module by hand: its optimizers, a plain backward, no logging."""
    module.optimizers = lambda: opts
    module.manual_backward = lambda loss: loss.backward()
    module.log_dict = lambda *a, **k: None


def batch(size=32, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {k: 0.3 + 0.4 * torch.rand(n, 1, size, size, generator=g)
           for k in ("fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt", "fine_ref2", "coarse_ref2")}
    out["valid_tgt"] = torch.ones(n, 1, size, size, dtype=torch.bool)
    return out


def test_staged_model_groups_and_gan_term_only_in_its_stage():
    module = AdversarialModule(model_cfg("explicit_stepwise"), NORM, 60.0, {})
    (g_opt, d_opt), _ = module.configure_optimizers()
    # optimizer_groups name generator parameters: D's optimizer is one plain group (it used to fail on them)
    assert [g["lr"] for g in g_opt.param_groups] == [1e-4, 1e-4, 2e-4]
    (d_group,) = d_opt.param_groups
    assert (d_group["lr"], sum(p.numel() for p in d_group["params"])) == (2e-4, 2_765_505)
    without_trainer(module, (g_opt, d_opt))
    net = module.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module.training_step(batch(), 0)  # epoch 0: S's stage
    changed = {k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"spatial"}  # no GAN before T's stage (D rests, BatchNorm statistics included); N waits its turn


def test_cycle_step_updates_both_generators_and_discriminators_and_snapshots():
    cfg = model_cfg("cyclegan_stf", width=8, n_blocks=1, d_widths=[8, 16, 16, 16], max_epochs=10)
    module = CycleAdversarialModule(cfg, NORM, 60.0, {})
    (g_opt, d_opt), schedulers = module.configure_optimizers()
    assert len(schedulers) == 2  # G and D decay alike
    without_trainer(module, (g_opt, d_opt))
    net = module.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module.training_step(batch(), 0)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert {k.split(".")[0] for k in changed} == {"g_ab", "g_ba", "discriminator"}
    assert {k.split(".")[1] for k in changed if k.startswith("discriminator.")} == {"a", "b"}
    assert [len(p.images) for p in module.pools.values()] == [2, 2]
    module.on_train_epoch_end()  # max_epochs 10: a snapshot after every epoch but the last
    assert len(net.snapshots) == 1
