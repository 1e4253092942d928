"""Shared helpers of the baseline tests: build a method from its YAML config, make samples, read Yanco, score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
YANCO = REPO.parent / "shared" / "data" / "yanco"
ONE_PAIR = ["persistence", "delta", "coarse", "starfm", "fsdaf", "fitfc", "stnlffm", "ubdf"]
TWO_PAIR = ["estarfm", "ubestarfm"]
ALL = ONE_PAIR + TWO_PAIR


def make(model_id: str, coarse_block: int = 8, **overrides):
    """The method as `conf/model/<id>.yaml` builds it, CPU, with `overrides` on its `net` block."""
    cfg = OmegaConf.load(REPO / "conf" / "model" / f"{model_id}.yaml")
    root = OmegaConf.create({"dataset": {"coarse_block": coarse_block}, "model": cfg})
    net = OmegaConf.to_container(root.model.net, resolve=True)
    net.update(device="cpu", **overrides)
    return instantiate(net)


def sample(f1, c1, c2, f3=None, c3=None, offset=(0, 0)) -> dict:
    """A one-scene sample dict from (H, W) arrays in kelvin."""
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))[None, None]  # noqa: E731
    s = {"fine_ref": t(f1), "coarse_ref": t(c1), "coarse_tgt": t(c2), "meta": {"offset": torch.tensor([offset])}}
    if f3 is not None:
        s.update(fine_ref2=t(f3), coarse_ref2=t(c3))
    return s


def block_means(x: np.ndarray, s: int) -> np.ndarray:
    """Each pixel replaced by the mean of its s × s block anchored at the origin (partial edge blocks kept)."""
    out = np.empty_like(x, dtype=np.float64)
    for r in range(0, x.shape[0], s):
        for c in range(0, x.shape[1], s):
            out[r : r + s, c : c + s] = x[r : r + s, c : c + s].mean()
    return out


def scores(pred, truth) -> dict:
    """RMSE, bias and ubRMSE in K over pixels finite in both (float64)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(t)
    e = p[ok] - t[ok]
    rmse, bias = float(np.sqrt(np.mean(e**2))), float(np.mean(e))
    return {"rmse": rmse, "bias": bias, "ubrmse": float(np.sqrt(max(rmse**2 - bias**2, 0.0))), "n": int(ok.sum())}


def read_yanco(name: str) -> np.ndarray:
    import rasterio

    with rasterio.open(YANCO / f"{name}.tif") as ds:
        a = ds.read(1).astype(np.float32)
    a[a < -1e30] = np.nan  # nodata −3.4e38
    return a


@pytest.fixture(scope="session")
def yanco() -> dict:
    if not YANCO.is_dir():
        pytest.skip(f"Yanco sample not found at {YANCO} (shared/data/yanco next to the repository)")
    names = {
        "F1": "Landsat_LST_cloudrm_20160205",
        "F3": "Landsat_LST_cloudrm_20160308",
        "C1": "MOD11A1_LST_cloudrm_20160205",
        "C0": "MOD11A1_LST_cloudrm_20160218",
        "C3": "MOD11A1_LST_cloudrm_20160308",
        "U": "ubESTARFM_result_20160218",
    }
    return {k: read_yanco(v) for k, v in names.items()}



@pytest.fixture(autouse=True)
def one_thread():
    """These tests run one torch thread: the offset loops issue thousands of small ops, and on a shared CPU every
    multi-threaded op can wait for a descheduled thread (the whole folder: 35 s to 3 min with 2 threads, depending
    on the load; about 1 min with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
