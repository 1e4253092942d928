"""LightningDataModule over a dataset store: random training patches, whole validation and test scenes.

Reads the store's stacks through memory maps, so workers share one copy and a patch costs only its own bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from stf_bench.data.normalization import AffineNorm
from stf_bench.data.refill import InputImages
from stf_bench.data.samples import SampleSpec, make_samples
from stf_bench.data.store import DatasetStore, build_dataset
from stf_bench.errors import ConfigError

log = logging.getLogger(__name__)

FINE, COARSE = 0, 1
REF_KEYS = (("fine_ref", "coarse_ref"), ("fine_ref2", "coarse_ref2"))


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Model inputs cannot hold NaN (unfilled variants): use the image's mean; the loss masks targets separately."""
    bad = ~np.isfinite(x)
    if bad.any():
        x = x.copy()
        x[bad] = np.nanmean(x) if (~bad).any() else 0.0
    return x


def build_sample(store: DatasetStore, norm: AffineNorm, spec: SampleSpec, window: tuple[slice, slice],
                 refs: tuple[int, ...] | None = None, exclude: frozenset[int] | None = None,
                 images: InputImages | None = None) -> dict:
    """One sample (normalized float32 arrays (1,h,w)) for `spec`, cut to `window` of the scene.

    No input depends on the fine observation of a date in `exclude` (default: the target's own date; training
    passes every non-training date). `images` carries the refill cache and the NaN-inputs choice of classical methods.
    """
    rows, cols = window
    refs = spec.refs if refs is None else refs
    exclude = frozenset({spec.target}) if exclude is None else frozenset(exclude)
    images = InputImages(store) if images is None else images
    prepare = (lambda x: x) if images.nan_inputs else _fill_nan
    if spec.target in exclude:
        fine = np.asarray(store.values[spec.target, FINE, rows, cols], dtype=np.float32)
    else:  # a training target: its filled pixels may not come from held-out dates either
        fine = images.image(spec.target, FINE, exclude, window)
    valid = np.asarray(store.observed[spec.target, FINE, rows, cols]) & np.isfinite(fine)
    sample = {
        "coarse_tgt": prepare(norm.from_kelvin(images.image(spec.target, COARSE, exclude, window)))[None],
        "fine_tgt": np.nan_to_num(norm.from_kelvin(fine), nan=0.0)[None],
        "valid_tgt": valid[None],
    }
    dates = store.dates
    pairs = {ref: tuple(prepare(norm.from_kelvin(images.image(ref, band, exclude, window))) for band in (FINE, COARSE))
             for ref in refs}
    if spec.slots:
        sample.update(_sequence(pairs, refs, spec, dates))
    else:
        for (fine_key, coarse_key), ref in zip(REF_KEYS, refs):
            sample[fine_key], sample[coarse_key] = pairs[ref][0][None], pairs[ref][1][None]
    sample["meta"] = {
        "dates": ",".join(dates[i].isoformat() for i in (spec.target, *refs)),
        "offset": np.array([rows.start or 0, cols.start or 0]),
    }
    if spec.slots:
        sample["meta"]["ref_days"] = np.array([(dates[r] - dates[spec.target]).days for r in refs]
                                              + [0] * (spec.slots - len(refs)), dtype=np.float32)
    if store.coarse_block is not None:  # the baselines' block size unless dataset.coarse_block overrides it
        sample["meta"]["coarse_block"] = np.array(store.coarse_block)
    return sample


def _sequence(pairs: dict, refs: tuple[int, ...], spec: SampleSpec, dates) -> dict:
    """Sequence keys (README "Sequence pairing"): the references stacked earlier first in `spec.slots` slots
    (K,h,w), absent slots zero with `ref_mask` false; `fine_ref`/`coarse_ref` repeat the nearest reference (a tie
    takes the past), so one-reference models, the evaluation's delta and the classical baselines read the sample too."""
    h, w = pairs[refs[0]][0].shape
    fine, coarse = (np.zeros((spec.slots, h, w), np.float32) for _ in range(2))
    for slot, ref in enumerate(refs):
        fine[slot], coarse[slot] = pairs[ref]
    nearest = min(refs, key=lambda r: (abs((dates[r] - dates[spec.target]).days), dates[r]))
    return {"fine_refs": fine, "coarse_refs": coarse, "ref_mask": np.arange(spec.slots) < len(refs),
            "fine_ref": pairs[nearest][0][None], "coarse_ref": pairs[nearest][1][None]}


class PatchDataset(Dataset):
    """`length` random patches per epoch with flips/rot90; optionally a random other training date as reference.

    No input or target depends on the fine observation of a non-training date (their cross-date fills are redone).
    """

    def __init__(self, store: DatasetStore, norm: AffineNorm, specs: list[SampleSpec], patch_size: int, length: int,
                 augment: bool, random_reference: bool, train_dates: list[int],
                 images: InputImages | None = None) -> None:
        h, w = store.grid.shape
        if patch_size > min(h, w):
            raise ConfigError(
                f"datamodule.patch_size={patch_size} is larger than the scene ({h}x{w}) of {store.path}. "
                f"Use a smaller patch (e.g. datamodule.patch_size={min(h, w) // 2 * 2})."
            )
        self.store, self.norm, self.specs = store, norm, specs
        self.patch, self.length, self.augment = patch_size, length, augment
        self.random_reference, self.train_dates = random_reference, train_dates
        self.exclude = frozenset(range(len(store.dates))) - frozenset(train_dates)
        self.images = InputImages(store) if images is None else images

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        gen = np.random.default_rng(torch.randint(0, 2**62, ()).item())
        spec = self.specs[gen.integers(len(self.specs))]
        refs = None
        if self.random_reference:
            others = [d for d in self.train_dates if d != spec.target]
            picks = gen.choice(others, size=len(spec.refs), replace=False)
            refs = tuple(sorted(int(r) for r in picks))  # earlier first, as SampleSpec promises
        h, w = self.store.grid.shape
        r, c = gen.integers(0, h - self.patch + 1), gen.integers(0, w - self.patch + 1)
        sample = build_sample(self.store, self.norm, spec, (slice(r, r + self.patch), slice(c, c + self.patch)), refs,
                              self.exclude, self.images)
        if self.augment:
            k, flip = int(gen.integers(4)), bool(gen.integers(2))
            for key, arr in sample.items():
                if key != "meta" and arr.ndim == 3:  # images (C,h,w); not ref_mask (K,)
                    arr = np.rot90(arr, k, axes=(1, 2))
                    sample[key] = np.ascontiguousarray(arr[:, :, ::-1] if flip else arr)
        return sample


class SceneDataset(Dataset):
    """Whole scenes, one per sample spec (validation, test, evaluation); no input depends on the target's fine
    observation. `nan_inputs`: NaN where an input is unobserved, for methods with their own fallback (classical)."""

    def __init__(self, store: DatasetStore, norm: AffineNorm, specs: list[SampleSpec],
                 nan_inputs: bool = False) -> None:
        self.store, self.norm, self.specs = store, norm, specs
        self.images = InputImages(store, nan_inputs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, index: int) -> dict:
        return build_sample(self.store, self.norm, self.specs[index], (slice(None), slice(None)), images=self.images)


class STFDataModule(L.LightningDataModule):
    """Builds (or finds) the dataset store, splits and pairs its dates, fits the normalization on training dates."""

    def __init__(self, dataset: DictConfig, preprocess: DictConfig, split: DictConfig, pairing: DictConfig,
                 data_dir: str, patch_size: int, batch_size: int, patches_per_epoch: int = 512,
                 num_workers: int = 0, augment: bool = True, min_refs: int = 1, nan_inputs: bool = False,
                 pin_memory: bool | str = "auto") -> None:
        super().__init__()
        self.dataset_cfg, self.preprocess_cfg = dataset, preprocess
        self.split, self.pairing = instantiate(split), instantiate(pairing)
        self.data_dir, self.patch_size, self.batch_size = data_dir, patch_size, batch_size
        self.patches_per_epoch, self.num_workers, self.augment = patches_per_epoch, num_workers, augment
        self.nan_inputs = nan_inputs
        if pin_memory not in ("auto", True, False):
            raise ConfigError(f"datamodule.pin_memory={pin_memory!r}; use auto (on when CUDA is present), true or false.")
        # page-locked batches copy to the GPU asynchronously; on a CPU-only machine they only cost memory
        self.pin_memory = torch.cuda.is_available() if pin_memory == "auto" else pin_memory
        if min_refs > self.pairing.n_refs:
            raise ConfigError(
                f"the model needs {min_refs} reference pairs but pairing={self.pairing.name} gives "
                f"{self.pairing.n_refs}. Add pairing=two_refs to the command."
            )
        self.store: DatasetStore | None = None
        self.norm: AffineNorm | None = None

    def prepare_data(self) -> None:
        build_dataset(self.dataset_cfg, self.preprocess_cfg, self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        self.store, _ = build_dataset(self.dataset_cfg, self.preprocess_cfg, self.data_dir)
        self.images = InputImages(self.store)
        self.samples, self.split_info = make_samples(self.store.dates, self.split, self.pairing)
        fitted = self._fit_norm()
        self.norm = self.norm or fitted  # a norm restored from a checkpoint wins
        log.info("samples: %s", {k: len(v) for k, v in self.samples.items()})

    def _fit_norm(self) -> AffineNorm:
        """Min-max over the training dates' fine and coarse values, cached beside the store."""
        train = self.split_info["parts"]["train"]
        key = f"{self.split.name}-" + "-".join(map(str, train))
        path = Path(self.store.path) / "normalization" / f"{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"
        if path.is_file() and json.loads(path.read_text())["key"] == key:
            return AffineNorm.from_json(json.loads(path.read_text())["norm"])
        exclude = frozenset(range(len(self.store.dates))) - frozenset(train)
        norm = AffineNorm.fit_minmax(a for i in train for a in (self.images.fine(i, exclude),
                                                                self.store.values[i, COARSE]))
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.part")  # parallel sweep jobs may fit the same split at once
        tmp.write_text(json.dumps({"key": key, "norm": norm.to_json()}))
        os.replace(tmp, path)
        return norm

    @property
    def train_dates(self) -> list[int]:
        return self.split_info["parts"]["train"]

    def train_dataloader(self) -> DataLoader:
        dataset = PatchDataset(self.store, self.norm, self.samples["train"], self.patch_size, self.patches_per_epoch,
                               self.augment, self.pairing.train_reference == "random", self.train_dates, self.images)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=True, pin_memory=self.pin_memory)

    def scene_dataset(self, split: str) -> SceneDataset:
        return SceneDataset(self.store, self.norm, self.samples[split], self.nan_inputs)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.scene_dataset("val"), batch_size=1, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.scene_dataset("test"), batch_size=1, num_workers=self.num_workers)
