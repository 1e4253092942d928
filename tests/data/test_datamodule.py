"""The datamodule on a tiny real store: patch samples, normalization from training dates only, masks, references,
whole scenes for validation and test."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import FINE_SHAPE, compose, dates, make_raw

from stf_bench.data.datamodule import PatchDataset, STFDataModule, build_sample
from stf_bench.data.normalization import AffineNorm
from stf_bench.data.samples import Pairing, SampleSpec
from stf_bench.data.store import MANIFEST
from stf_bench.errors import ConfigError

DAYS = dates(8)  # chronological split: train 0-5, val 6, test 7
TRAIN, VAL, TEST = list(range(6)), [6], [7]
SAMPLE_KEYS = {"fine_ref", "coarse_ref", "coarse_tgt", "fine_tgt", "valid_tgt", "meta"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"), DAYS)


def datamodule(raw, data_dir, pairing="previous", train_reference="fixed", patch_size=32, **kwargs):
    cfg = compose("dataset=folder", f"dataset.source.root={raw}", "preprocess=nofill", "+split=chronological",
                  f"+pairing={pairing}", f"+model.train_reference={train_reference}")
    dm = STFDataModule(cfg.dataset, cfg.preprocess, cfg.split, cfg.pairing, str(data_dir), patch_size=patch_size,
                       batch_size=4, patches_per_epoch=8, **kwargs)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm(raw, tmp_path_factory):
    return datamodule(raw, tmp_path_factory.mktemp("data"))


def kelvin(dm, x):
    return dm.norm.to_kelvin(np.asarray(x, dtype=np.float64))


def test_training_batches(dm):
    assert dm.train_dates == TRAIN and dm.split_info["parts"]["test"] == TEST
    torch.manual_seed(0)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    batch = batches[0]
    assert set(batch) == SAMPLE_KEYS
    for key in SAMPLE_KEYS - {"meta", "valid_tgt"}:
        assert batch[key].shape == (4, 1, 32, 32) and batch[key].dtype == torch.float32
        assert torch.isfinite(batch[key]).all()  # gaps of the unfilled variant never reach a model
    assert batch["valid_tgt"].dtype == torch.bool and batch["valid_tgt"].shape == (4, 1, 32, 32)
    assert batch["meta"]["offset"].shape == (4, 2)
    for names in batch["meta"]["dates"]:
        target, ref = (dt.date.fromisoformat(d) for d in names.split(","))
        assert DAYS.index(target) in TRAIN and DAYS.index(ref) == DAYS.index(target) - 1


def test_patches_are_crops_of_the_store_with_one_augmentation_for_all_keys(dm):
    dataset = PatchDataset(dm.store, dm.norm, dm.samples["train"], 24, 16, augment=True, random_reference=False,
                           train_dates=dm.train_dates)
    torch.manual_seed(1)
    for sample in (dataset[i] for i in range(16)):
        target, ref = (DAYS.index(dt.date.fromisoformat(d)) for d in sample["meta"]["dates"].split(","))
        r, c = sample["meta"]["offset"]
        crop = np.asarray(dm.store.values[:, :, r:r + 24, c:c + 24])
        fine = np.nan_to_num(crop[target, 0], nan=0.0)  # targets keep gaps as masked zeros
        views = [np.rot90(fine, k) for k in range(4)] + [np.rot90(fine, k)[:, ::-1] for k in range(4)]
        got = kelvin(dm, sample["fine_tgt"][0]) * sample["valid_tgt"][0]
        matches = [i for i, v in enumerate(views) if np.allclose(got, v * sample["valid_tgt"][0], atol=1e-3)]
        assert matches, "fine_tgt is no rotation/flip of the store crop at meta['offset']"
        k, flip = matches[0] % 4, matches[0] >= 4
        coarse = np.rot90(crop[ref, 1], k)
        coarse = coarse[:, ::-1] if flip else coarse
        observed = np.isfinite(coarse)
        np.testing.assert_allclose(kelvin(dm, sample["coarse_ref"][0])[observed], coarse[observed], atol=1e-3)


def test_normalization_comes_from_training_dates_only(raw, tmp_path):
    dm = datamodule(raw, tmp_path)
    train = np.asarray(dm.store.values[TRAIN])
    assert dm.norm == AffineNorm(float(np.nanmin(train)), float(np.nanmax(train) - np.nanmin(train)))
    assert dm.norm.offset + dm.norm.scale < np.nanmax(np.asarray(dm.store.values))  # later dates are warmer
    (saved,) = (dm.store.path / "normalization").glob("*.json")
    values = np.load(dm.store.path / "values.npy", mmap_mode="r+")
    values[TEST[0]] += 100.0  # a much hotter test date
    reseal(dm.store.path, values, saved.parent)
    assert datamodule(raw, tmp_path).norm == dm.norm
    values[TRAIN[0], 0, 0, 0] = 250.0  # a colder training pixel
    reseal(dm.store.path, values, saved.parent)
    assert datamodule(raw, tmp_path).norm.offset == 250.0


def reseal(store: Path, values: np.memmap, norm_cache: Path) -> None:
    """Record an in-place edit of values.npy in the manifest (a cache hit rebuilds a store that fails its checksum)
    and drop the cached normalization."""
    values.flush()
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["checksums"]["values.npy"] = hashlib.sha256((store / "values.npy").read_bytes()).hexdigest()
    (store / MANIFEST).write_text(json.dumps(manifest))
    shutil.rmtree(norm_cache)


def test_whole_scenes_for_validation_and_test(dm):
    (val,) = list(dm.val_dataloader())
    (test,) = list(dm.test_dataloader())
    assert set(test) == SAMPLE_KEYS and test["fine_tgt"].shape == (1, 1, *FINE_SHAPE)
    assert test["meta"]["dates"] == [f"{DAYS[7]},{DAYS[6]}"]  # a test target may take a validation reference
    assert val["meta"]["dates"] == [f"{DAYS[6]},{DAYS[5]}"]
    observed = np.asarray(dm.store.observed[7, 0])
    np.testing.assert_array_equal(test["valid_tgt"][0, 0].numpy(), observed)
    assert 0 < observed.mean() < 1
    np.testing.assert_allclose(kelvin(dm, test["fine_tgt"][0, 0])[observed], dm.store.values[7, 0][observed],
                               atol=1e-3)
    ref, ref_store = kelvin(dm, test["fine_ref"][0, 0]), np.asarray(dm.store.values[6, 0])
    gaps = np.isnan(ref_store)
    np.testing.assert_allclose(ref[~gaps], ref_store[~gaps], atol=1e-3)
    np.testing.assert_allclose(ref[gaps], np.nanmean(ref_store), atol=1e-3)  # unfilled gaps: the image mean
    assert gaps.sum() == 9 * 12


def test_random_reference_is_another_training_date(raw, dm):
    random_dm = datamodule(raw, dm.store.path.parent.parent, train_reference="random")
    dataset = PatchDataset(random_dm.store, random_dm.norm, random_dm.samples["train"], 16, 64, augment=False,
                           random_reference=True, train_dates=random_dm.train_dates)
    torch.manual_seed(2)
    pairs = {tuple(DAYS.index(dt.date.fromisoformat(d)) for d in dataset[i]["meta"]["dates"].split(","))
             for i in range(64)}
    assert all(ref in TRAIN and ref != target for target, ref in pairs)
    assert len({ref for _, ref in pairs}) == len(TRAIN)  # every training date serves as reference
    specs, _ = Pairing("two_refs", "two_refs").pair(DAYS, TRAIN, TRAIN)
    two = PatchDataset(random_dm.store, random_dm.norm, specs, 16, 32, augment=False, random_reference=True,
                       train_dates=TRAIN)
    for i in range(32):
        target, first, second = (DAYS.index(dt.date.fromisoformat(d)) for d in two[i]["meta"]["dates"].split(","))
        assert first < second and {first, second} <= set(TRAIN) - {target}  # earlier first, as fixed pairs


def test_two_reference_sample(dm):
    sample = build_sample(dm.store, dm.norm, SampleSpec(3, (2, 4)), (slice(10, 20), slice(5, 25)))
    assert set(sample) == SAMPLE_KEYS | {"fine_ref2", "coarse_ref2"}
    assert sample["meta"]["dates"] == f"{DAYS[3]},{DAYS[2]},{DAYS[4]}"
    assert list(sample["meta"]["offset"]) == [10, 5] and sample["fine_ref2"].shape == (1, 10, 20)
    np.testing.assert_allclose(kelvin(dm, sample["coarse_ref2"][0]), dm.store.values[4, 1, 10:20, 5:25], atol=1e-3)


def test_impossible_settings_are_config_errors(raw, dm):
    with pytest.raises(ConfigError, match=r"patch_size=128 is larger than the scene \(66x66\)"):
        PatchDataset(dm.store, dm.norm, dm.samples["train"], 128, 8, True, False, dm.train_dates)
    with pytest.raises(ConfigError, match="needs 2 reference pairs.*pairing=two_refs"):
        datamodule(raw, dm.store.path.parent.parent, min_refs=2)


def test_pinned_memory_follows_the_device_unless_set(raw, tmp_path, dm):
    """auto: page-locked batches only where a GPU will copy them; a bad value names the key and the choices."""
    assert dm.pin_memory is torch.cuda.is_available() and dm.train_dataloader().pin_memory is dm.pin_memory
    assert datamodule(raw, tmp_path, pin_memory=False).train_dataloader().pin_memory is False
    with pytest.raises(ConfigError, match=r"datamodule.pin_memory='yes'; use auto"):
        datamodule(raw, tmp_path, pin_memory="yes")
