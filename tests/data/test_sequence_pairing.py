"""pairing=sequence (issue 12): the k nearest references stacked in K slots with a mask and days relative to the
target, on a real store; only training dates feed training targets; the context keeps K; the tiler carries the
stacks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch
from data_fixtures import compose, dates, make_raw

from stf_bench.data.context import evaluation_context
from stf_bench.data.datamodule import STFDataModule, build_sample
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.samples import ChronologicalSplit, Pairing, SampleSpec, make_samples
from stf_bench.errors import ConfigError
from stf_bench.models.prediction import ScenePredictor, predict_scene

# 0, 10, 14, 30, 31, 60, 100, 101, 130, 200 days
DAY_OFFSETS = (0, 10, 14, 30, 31, 60, 100, 101, 130, 200)
DATES = [dt.date(2020, 1, 1) + dt.timedelta(days=d) for d in DAY_OFFSETS]
EVERY = list(range(len(DATES)))


def pairs(k, targets, max_gap=None, side="both", candidates=EVERY):
    specs, skipped = Pairing("sequence", "sequence", max_gap_days=max_gap, k=k, side=side).pair(DATES, targets,
                                                                                                candidates)
    return [(s.target, s.refs, s.slots) for s in specs], [d for d, _ in skipped]


def test_sequence_pairing_known_answers_for_k_1_to_3_with_a_gap_limit():
    # target 2 (day 14): nearest 10 (4 d), 0 (14 d), 30 (16 d), 31 (17 d); earlier first in the sample
    assert pairs(1, [2])[0] == [(2, (1,), 1)]
    assert pairs(2, [2])[0] == [(2, (0, 1), 2)]
    assert pairs(3, [2])[0] == [(2, (0, 1, 3), 3)]
    assert pairs(3, [2], side="past")[0] == [(2, (0, 1), 3)]  # only two earlier dates: one slot stays empty
    # gap limit 15 days: day 14 keeps 10 and 0; day 60 has nothing within 15 days and is skipped
    specs, skipped = pairs(3, [2, 5, 7], max_gap=15)
    assert specs == [(2, (0, 1), 3), (7, (6,), 3)] and skipped == [DATES[5]]
    assert pairs(2, [4])[0] == [(4, (2, 3), 2)]  # day 31: 30 (1 d) and 14 (17 d), not 60 (29 d)
    # a tie takes the past: day 20 between 10 and 30
    tie = [dt.date(2020, 1, 1) + dt.timedelta(days=d) for d in (10, 20, 30, 45)]
    assert Pairing("s", "sequence", k=1).pair(tie, [1], [0, 1, 2, 3])[0][0].refs == (0,)


def test_sequence_pairing_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"pairing\.k=None.*pairing\.k=3"):
        Pairing("sequence", "sequence")
    with pytest.raises(ConfigError, match=r"pairing\.k=0"):
        Pairing("sequence", "sequence", k=0)
    with pytest.raises(ConfigError, match=r"pairing\.side='future'"):
        Pairing("sequence", "sequence", k=2, side="future")
    Pairing("two_refs", "two_refs", k=3, side="both")  # a sequence context's two_refs sibling keeps the keys


@pytest.mark.parametrize("k", [1, 2, 3])
def test_training_sequences_use_training_dates_only(k):
    many = [dt.date(2013, 4, 1) + dt.timedelta(days=37 * i) for i in range(30)]
    samples, info = make_samples(many, ChronologicalSplit("chronological"),
                                 Pairing("sequence", "sequence", max_gap_days=120, k=k))
    train = set(info["parts"]["train"])
    assert all(s.target in train and set(s.refs) <= train for s in samples["train"])
    for specs in samples.values():
        for s in specs:
            assert 1 <= len(s.refs) <= k == s.slots and list(s.refs) == sorted(s.refs) and s.target not in s.refs
            assert max(abs((many[r] - many[s.target]).days) for r in s.refs) <= 120


# --- samples on a real (folder) store ---------------------------------------------------------------------------

STORE_DAYS = dates(8)  # 16 days apart; chronological split: train 0-5, val 6, test 7


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"), STORE_DAYS)


@pytest.fixture(scope="module")
def dm(raw, tmp_path_factory):
    return datamodule(raw, tmp_path_factory.mktemp("data"), "pairing.k=3", "pairing.max_gap_days=40")


def datamodule(raw, data_dir, *overrides, preprocess="nofill"):
    cfg = compose("dataset=folder", f"dataset.source.root={raw}", f"preprocess={preprocess}", "+split=chronological",
                  "+pairing=sequence", "+model.train_reference=fixed", *overrides)
    dm = STFDataModule(cfg.dataset, cfg.preprocess, cfg.split, cfg.pairing, str(data_dir), patch_size=32,
                       batch_size=4, patches_per_epoch=8)
    dm.setup("fit")
    return dm


def kelvin(dm, x):
    return dm.norm.to_kelvin(np.asarray(x, dtype=np.float64))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sequence_sample_shapes_masks_and_days(dm, k):
    """Target 1 (day 16) within 40 days: 0 (-16), 2 (+16), 3 (+32); k=3 holds all, k=2 the two at 16 days."""
    window = (slice(10, 20), slice(5, 25))
    refs = {1: (0,), 2: (0, 2), 3: (0, 2, 3)}[k]
    sample = build_sample(dm.store, dm.norm, SampleSpec(1, refs, slots=3), window)
    assert sample["fine_refs"].shape == sample["coarse_refs"].shape == (3, 10, 20)
    assert sample["ref_mask"].tolist() == [True] * k + [False] * (3 - k)
    assert sample["meta"]["ref_days"].tolist() == [-16.0, 16.0, 32.0][:k] + [0.0] * (3 - k)
    assert sample["meta"]["dates"] == ",".join(str(STORE_DAYS[i]) for i in (1, *refs))
    for slot, ref in enumerate(refs):
        np.testing.assert_allclose(kelvin(dm, sample["fine_refs"][slot]), dm.store.values[ref, 0, 10:20, 5:25],
                                   atol=1e-3)
        np.testing.assert_allclose(kelvin(dm, sample["coarse_refs"][slot]), dm.store.values[ref, 1, 10:20, 5:25],
                                   atol=1e-3)
    assert not sample["fine_refs"][k:].any() and not sample["coarse_refs"][k:].any()
    # the standard one-reference keys repeat the nearest reference (a tie takes the past: date 0)
    np.testing.assert_array_equal(sample["fine_ref"][0], sample["fine_refs"][0])
    assert "fine_ref2" not in sample


def test_sequence_batches_from_the_datamodule(dm):
    assert {s.target: s.refs for s in dm.samples["train"]} == {0: (1, 2), 1: (0, 2, 3), 2: (0, 1, 3), 3: (1, 2, 4),
                                                                4: (2, 3, 5), 5: (3, 4)}
    assert [(s.target, s.refs) for s in dm.samples["test"]] == [(7, (5, 6))]
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["fine_refs"].shape == (4, 3, 32, 32) and batch["ref_mask"].shape == (4, 3)
    assert batch["meta"]["ref_days"].shape == (4, 3)
    for i in range(4):  # augmentation turns every image alike: the nearest slot equals fine_ref after it too
        mask, days = batch["ref_mask"][i], batch["meta"]["ref_days"][i]
        assert not batch["fine_refs"][i][~mask].any() and (days[~mask] == 0).all() and (days[mask] != 0).all()
        nearest = int(torch.where(mask, days.abs(), torch.inf).argmin())
        assert torch.equal(batch["fine_refs"][i, nearest], batch["fine_ref"][i, 0])
    (scene,) = list(dm.test_dataloader())
    assert scene["fine_refs"].shape == (1, 3, 66, 66) and scene["ref_mask"].tolist() == [[True, True, False]]


def test_heldout_target_fine_image_never_reaches_a_sequence_input(raw, tmp_path, monkeypatch):
    """The perturbation test of tests/data/test_no_leakage.py for sequences: +100 K on the test target's fine image,
    under the temporal variant (whose fill reaches 32 days, so its references' stored images change), and every
    input of its sample, every training batch and the norm stay bit-identical."""
    from stf_bench.data.sources.folder import FolderSource

    args = ("pairing.k=3", "pairing.max_gap_days=40")
    base = datamodule(raw, tmp_path / "a", *args, preprocess="temporal")
    (spec,) = base.samples["test"]
    load = FolderSource.load

    def hot_load(self, workdir):
        scenes = load(self, workdir)
        scenes[spec.target].fine = scenes[spec.target].fine + np.float32(100.0)
        return scenes

    monkeypatch.setattr(FolderSource, "load", hot_load)
    hot = datamodule(raw, tmp_path / "b", *args, preprocess="temporal")
    assert any((np.asarray(hot.store.values[r, 0]) != np.asarray(base.store.values[r, 0])).any() for r in spec.refs)
    a, b = base.scene_dataset("test")[0], hot.scene_dataset("test")[0]
    for key in ("fine_refs", "coarse_refs", "ref_mask", "fine_ref", "coarse_ref", "coarse_tgt"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["fine_tgt"], b["fine_tgt"])
    assert hot.norm == base.norm
    for dm_ in (base, hot):
        torch.manual_seed(0)
        dm_.batches = list(dm_.train_dataloader())
    for x, y in zip(base.batches, hot.batches):
        for key in ("fine_refs", "coarse_refs", "fine_ref", "coarse_tgt", "fine_tgt"):
            assert torch.equal(x[key], y[key]), key


def test_context_keeps_k_and_drops_it_for_other_modes():
    def ctx(**pairing):
        return evaluation_context("/d/reproject-abc1234", "yanco", "reproject", {"name": "chronological"},
                                  {"name": "x", "max_gap_days": None, "train_reference": "fixed", **pairing})

    k2, k3 = ctx(mode="sequence", k=2, side="both"), ctx(mode="sequence", k=3, side="both")
    assert k2["key"] != k3["key"] and k3["pairing"] == "sequence K=3" and k3["pairing_config"]["k"] == 3
    assert ctx(mode="sequence", k=3, side="past")["pairing"] == "sequence K=3, past only"
    assert ctx(mode="sequence", k=3, side="past")["key"] != k3["key"]
    # a sequence context's two_refs sibling is the plain two_refs context
    assert ctx(mode="two_refs", k=3, side="both")["key"] == ctx(mode="two_refs")["key"]


def test_tiler_and_predictor_carry_the_stacks():
    """Padding, tiling and normalization act on (B,K,H,W) stacks; absent slots are zero in network units."""
    seen = []

    def net(batch):
        seen.append({k: v.clone() for k, v in batch.items() if torch.is_tensor(v)})
        return batch["fine_refs"][:, :1] + batch["coarse_refs"][:, 1:2]

    g = torch.Generator().manual_seed(0)
    batch = {"coarse_tgt": 290 + torch.rand(1, 1, 30, 30, generator=g),
             "fine_refs": 290 + torch.rand(1, 3, 30, 30, generator=g),
             "coarse_refs": 290 + torch.rand(1, 3, 30, 30, generator=g),
             "ref_mask": torch.tensor([[True, True, False]])}
    norm = AffineNorm(offset=250.0, scale=60.0)
    out = ScenePredictor(net, norm, size_multiple=16)(batch)
    assert seen[-1]["fine_refs"].shape == (1, 3, 32, 32)  # padded once to the multiple, then cropped
    assert not seen[-1]["fine_refs"][:, 2].any() and not seen[-1]["coarse_refs"][:, 2].any()
    expect = norm.from_kelvin(batch["fine_refs"][:, :1]) + norm.from_kelvin(batch["coarse_refs"][:, 1:2])
    torch.testing.assert_close(out, norm.to_kelvin(expect))
    tiled = predict_scene(net, {k: (norm.from_kelvin(v) if k != "ref_mask" else v) for k, v in batch.items()},
                          fixed_size=16)
    torch.testing.assert_close(norm.to_kelvin(tiled), out, rtol=0, atol=1e-4)
    assert seen[-1]["fine_refs"].shape == (1, 3, 16, 16)
