"""Splits by target date and reference pairing: known answers, and no val/test target ever inside training."""

from __future__ import annotations

import datetime as dt

import pytest
from data_fixtures import REPO
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stf_bench.data.samples import (ChronologicalSplit, LeaveYearOutSplit, Pairing, RandomSplit, SeasonalSplit,
                                    make_samples)
from stf_bench.errors import ConfigError

# 40 dates, 100 days apart: April 2013 to mid 2024, every season
DATES = [dt.date(2013, 4, 1) + dt.timedelta(days=100 * k) for k in range(40)]
SPLITS = sorted((REPO / "conf" / "split").glob("*.yaml"))


def split_from_conf(path, **overrides):
    return instantiate(OmegaConf.merge(OmegaConf.load(path), overrides))


@pytest.mark.parametrize("path", SPLITS, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode,max_gap", [("previous", None), ("nearest", None), ("two_refs", None),
                                          ("previous", 250), ("two_refs", 250)])
def test_val_and_test_targets_never_enter_training(path, mode, max_gap):
    split = split_from_conf(path)
    samples, info = make_samples(DATES, split, Pairing(mode, mode, max_gap_days=max_gap))
    parts = info["parts"]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(len(DATES)))
    held_out = set(parts["val"]) | set(parts["test"])
    for spec in samples["train"]:
        assert spec.target in parts["train"] and set(spec.refs) <= set(parts["train"])
        assert not ({spec.target, *spec.refs} & held_out)
    for name in ("val", "test"):
        assert {s.target for s in samples[name]} <= set(parts[name])
    for specs in samples.values():
        for spec in specs:
            assert len(spec.refs) == (2 if mode == "two_refs" else 1) and spec.target not in spec.refs
            assert list(spec.refs) == sorted(spec.refs)
            gaps = [abs((DATES[r] - DATES[spec.target]).days) for r in spec.refs]
            assert max_gap is None or max(gaps) <= max_gap


def test_chronological_split_and_previous_pairing_known_answer():
    dates = DATES[:20]
    samples, info = make_samples(dates, ChronologicalSplit("chronological"), Pairing("previous"))
    assert info["parts"] == {"train": list(range(14)), "val": [14, 15, 16], "test": [17, 18, 19]}
    assert [(s.target, s.refs) for s in samples["train"]] == [(t, (t - 1,)) for t in range(1, 14)]
    assert info["skipped"]["train"][0][0] == dates[0]  # the first date has no earlier one
    # validation and test take the previous date whatever its split
    assert [(s.target, s.refs) for s in samples["test"]] == [(17, (16,)), (18, (17,)), (19, (18,))]


def test_random_split_is_seeded():
    a, b = RandomSplit("random", seed=3)(DATES), RandomSplit("random", seed=3)(DATES)
    assert a == b and [len(a[k]) for k in ("train", "val", "test")] == [28, 6, 6]
    assert RandomSplit("random", seed=4)(DATES) != a


def test_seasonal_and_leave_year_out_splits():
    parts = split_from_conf(REPO / "conf" / "split" / "seasonal.yaml", test_season="DJF")(DATES)
    assert parts["test"] == [i for i, d in enumerate(DATES) if d.month in (12, 1, 2)] != []
    assert len(parts["val"]) == 6  # 15 % of all dates
    parts = split_from_conf(REPO / "conf" / "split" / "leave_year_out.yaml")(DATES)
    assert {DATES[i].year for i in parts["test"]} == {DATES[-1].year}
    parts = LeaveYearOutSplit("leave_year_out", test_year=2016)(DATES)
    assert parts["test"] == [i for i, d in enumerate(DATES) if d.year == 2016]
    with pytest.raises(ConfigError, match="leaves no test dates"):
        LeaveYearOutSplit("leave_year_out", test_year=2030)(DATES)
    with pytest.raises(ConfigError, match=r"split\.test_season='winter'"):
        SeasonalSplit("seasonal", test_season="winter")


def test_nearest_and_two_refs_pairing_known_answers():
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=d) for d in (0, 10, 14, 30, 31, 60)]
    every = list(range(len(dates)))
    nearest, _ = Pairing("nearest", "nearest").pair(dates, [1, 2, 3, 5], every)
    assert [(s.target, s.refs) for s in nearest] == [(1, (2,)), (2, (1,)), (3, (4,)), (5, (4,))]
    tie = [dt.date(2020, 1, 1), dt.date(2020, 1, 11), dt.date(2020, 1, 21)]
    assert Pairing("nearest", "nearest").pair(tie, [1], [0, 1, 2])[0][0].refs == (0,)  # a tie takes the past
    two, skipped = Pairing("two_refs", "two_refs").pair(dates, [0, 2, 5], every)
    assert [(s.target, s.refs) for s in two] == [(2, (1, 3))] and len(skipped) == 2


def test_max_gap_and_unpairable_splits():
    pairing = Pairing("previous", max_gap_days=50)
    specs, skipped = pairing.pair(DATES, [5], list(range(40)))  # dates are 100 days apart
    assert specs == [] and skipped[0][0] == DATES[5]
    with pytest.raises(ConfigError, match=r"no train sample can be paired.*max_gap_days=50.*pairing=nearest"):
        make_samples(DATES, ChronologicalSplit("chronological"), pairing)
    with pytest.raises(ConfigError, match=r"pairing\.mode='closest'"):
        Pairing("closest", "closest")
    with pytest.raises(ConfigError, match="leaves no train dates"):
        ChronologicalSplit("chronological", val_fraction=0.5, test_fraction=0.5)(DATES[:2])
