"""No input for a held-out target depends on that target's fine observation (architecture.md, "No leakage across
dates"), and classical baselines see the gaps their fallback chain is designed for (models.md part 3).

The perturbation test of issue 8: +100 K on the fine image of one date, rebuild the store, and every input of every
sample that targets the date (or every training sample, for held-out dates) is bit-identical while the store itself
changed (the old code's leak)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_fixtures import compose, dates, make_raw
from omegaconf import OmegaConf

from stf_bench.data.datamodule import STFDataModule
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.preprocess import Preprocessor
from stf_bench.data.refill import InputImages, cross_date_fill
from stf_bench.data.sources.folder import FolderSource
from stf_bench.training.classical import ClassicalModule

DAYS = dates(14)  # 16 days apart: the temporal fill (32 days) reaches two dates on each side
INPUT_KEYS = ("fine_ref", "coarse_ref", "fine_ref2", "coarse_ref2", "coarse_tgt")
KELVIN = AffineNorm(0.0, 1.0)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"), DAYS)


@pytest.fixture
def hotter(monkeypatch):
    """Make the folder source add +100 K to the observed fine pixels of the given dates (a fresh data_dir rebuilds)."""

    def patch(indices):
        load = FolderSource.load

        def hot_load(self, workdir):
            scenes = load(self, workdir)
            for k in indices:
                scenes[k].fine = scenes[k].fine + np.float32(100.0)  # NaN gaps stay NaN
            return scenes

        monkeypatch.setattr(FolderSource, "load", hot_load)

    return patch


def datamodule(raw: Path, data_dir: Path, preprocess="temporal", split="chronological", nan_inputs=False):
    cfg = compose("dataset=folder", f"dataset.source.root={raw}", f"preprocess={preprocess}", f"+split={split}",
                  "+pairing=two_refs", "+model.train_reference=fixed")
    dm = STFDataModule(cfg.dataset, cfg.preprocess, cfg.split, cfg.pairing, str(data_dir), patch_size=32,
                       batch_size=4, patches_per_epoch=16, nan_inputs=nan_inputs)
    dm.setup("fit")
    return dm


def scene(dm, split: str, target: int, nan_inputs=False) -> dict:
    from stf_bench.data.datamodule import SceneDataset

    (spec,) = [s for s in dm.samples[split] if s.target == target]
    return SceneDataset(dm.store, KELVIN, [spec], nan_inputs)[0]


@pytest.mark.parametrize("split", ["chronological", "random"])
def test_inputs_for_a_target_do_not_depend_on_its_fine_observation(raw, tmp_path, hotter, split):
    base = datamodule(raw, tmp_path / "a", split=split)
    target = base.samples["test"][0].target
    near = [s for part in ("val", "test") for s in base.samples[part] if s.target == target]
    hotter([target])
    hot = datamodule(raw, tmp_path / "b", split=split)
    # the store's temporal fill did take the target's observation into a reference (what the old inputs were)
    refs = {r for s in near for r in s.refs}
    assert any((np.asarray(hot.store.values[r, 0]) != np.asarray(base.store.values[r, 0])).any() for r in refs)
    for part in ("val", "test"):
        for spec in (s for s in base.samples[part] if s.target == target):
            for nan_inputs in (False, True):
                a, b = scene(base, part, target, nan_inputs), scene(hot, part, target, nan_inputs)
                for key in INPUT_KEYS:
                    np.testing.assert_array_equal(a[key], b[key], err_msg=f"{part} {key} nan_inputs={nan_inputs}")
                valid = a["valid_tgt"]
                np.testing.assert_allclose(b["fine_tgt"][valid] - a["fine_tgt"][valid], 100.0, atol=1e-3)


def test_training_samples_never_see_heldout_fine_observations(raw, tmp_path, hotter):
    base = datamodule(raw, tmp_path / "a", split="random")
    parts = base.split_info["parts"]
    held_out = parts["val"] + parts["test"]
    hotter(held_out)
    hot = datamodule(raw, tmp_path / "b", split="random")
    changed = [k for k in parts["train"]
               if (np.asarray(hot.store.values[k, 0]) != np.asarray(base.store.values[k, 0])).any()]
    assert changed, "some training date's temporal fill reaches a held-out date"
    assert hot.norm == base.norm
    batches = []
    for dm in (base, hot):
        torch.manual_seed(0)
        batches.append(list(dm.train_dataloader()))
    for a, b in zip(*batches):
        assert a["meta"]["dates"] == b["meta"]["dates"]
        for key in (*INPUT_KEYS, "fine_tgt", "valid_tgt"):
            assert torch.equal(a[key], b[key]), key
    # every training date's image as training sees it, including those whose fill reached a held-out date
    exclude = frozenset(held_out)
    for k in changed:
        np.testing.assert_array_equal(base.images.fine(k, exclude), hot.images.fine(k, exclude))


def test_refill_without_exclusions_reproduces_the_store(raw, tmp_path):
    dm = datamodule(raw, tmp_path)
    assert dm.store.manifest["cross_date_fill"] == {"band": "fine", "max_days": 32.0, "one_sided": True,
                                                    "fallback": "focal"}
    images = InputImages(dm.store)
    for k in range(len(DAYS)):
        np.testing.assert_array_equal(images._refill(k, frozenset()), dm.store.values[k, 0])
    far = frozenset({13})
    np.testing.assert_array_equal(images.fine(0, far), dm.store.values[0, 0])
    assert not images._cache  # nothing excluded in reach: the store as it is, nothing recomputed


def test_earth_engine_fill_is_a_gap_and_redone_without_the_excluded_date():
    """Dates 10 days apart; date 1's pixel (0, 0) was filled by Earth Engine (not observed). Without date 2 the local
    fill interpolates dates 0 and 3; without dates 2 and 3 there is no clear pixel after it, so (as Earth Engine) no
    temporal value and the focal fallback takes its neighbour."""
    values = np.full((4, 2, 1, 2), 300.0, np.float32)
    values[:, 0, 0, 0] = [290.0, 299.0, 310.0, 302.0]  # 299: Earth Engine's value, not to be trusted
    observed = np.ones(values.shape, bool)
    observed[1, 0, 0, 0] = False
    store = SimpleNamespace(values=values, observed=observed, dates=dates(4, step_days=10),
                            manifest={"cross_date_fill": {"band": "fine", "max_days": 32.0, "one_sided": False,
                                                          "fallback": "focal"}})
    images = InputImages(store)
    assert images.fine(1, frozenset({2}))[0, 0] == pytest.approx(294.0)
    assert images.fine(1, frozenset({2, 3}))[0, 0] == 300.0
    assert images.fine(1, frozenset())[0, 0] == 299.0  # nothing excluded: the store's value
    with pytest.raises(ValueError, match="excluded"):
        images.fine(2, frozenset({2}))
    gee = SimpleNamespace(fine_temporal_fill_days=32.0)
    reproject = Preprocessor("reproject", fine_fill="focal", coarse_fill="focal")
    assert cross_date_fill(reproject, gee) == {"band": "fine", "max_days": 32.0, "one_sided": False,
                                               "fallback": "focal"}
    assert cross_date_fill(Preprocessor("nofill"), gee)["fallback"] == "none"
    assert cross_date_fill(reproject, object()) is None  # spatial fill only: the store is read as it is
    assert cross_date_fill(Preprocessor("t", fine_fill="temporal", temporal_max_days=48), object())["max_days"] == 48


@pytest.mark.parametrize("preprocess", ["nofill", "temporal"])
def test_classical_baselines_get_nan_gaps_and_use_their_fallback(raw, tmp_path, preprocess):
    cfg = compose("model=delta", config_name="train")
    assert cfg.datamodule.nan_inputs is True and compose(config_name="train").datamodule.nan_inputs is False
    dm = datamodule(raw, tmp_path, preprocess=preprocess, nan_inputs=True)
    (batch,) = list(dm.test_dataloader())
    observed = dm.store.observed
    target, r1, r2 = (DAYS.index(dt.date.fromisoformat(d)) for d in batch["meta"]["dates"][0].split(","))
    for key, (date, band) in {"fine_ref": (r1, 0), "coarse_ref": (r1, 1), "fine_ref2": (r2, 0),
                              "coarse_ref2": (r2, 1), "coarse_tgt": (target, 1)}.items():
        np.testing.assert_array_equal(torch.isfinite(batch[key][0, 0]).numpy(), observed[date, band], err_msg=key)
    model = OmegaConf.to_container(OmegaConf.merge({"dataset": cfg.dataset}, {"model": cfg.model}).model,
                                   resolve=True)
    module = ClassicalModule(model_cfg=model, norm=dm.norm.to_json(), data_range_k=60.0, dataset_id={})
    with torch.no_grad():
        pred = module.predict_kelvin(batch)
    stats = module.net.last_stats
    both = observed[r1, 0] & observed[r1, 1] & observed[target, 1]
    assert stats["predicted"] == pytest.approx(both.mean()) and 0 < stats["coarse"] == pytest.approx(1 - both.mean())
    assert torch.isfinite(pred).all()
    deep = datamodule(raw, tmp_path, preprocess=preprocess)  # the same store, a deep model's samples
    (filled,) = list(deep.test_dataloader())
    assert all(torch.isfinite(filled[k]).all() for k in INPUT_KEYS)
    torch.manual_seed(0)
    assert all(torch.isfinite(b[k]).all() for b in deep.train_dataloader() for k in INPUT_KEYS)
