"""Which dates are targets of which split, and which reference dates each target is paired with.

Splits are by *target* date. A training sample uses only training dates (target and references), so no fine image
of a validation or test date is ever seen in training; validation and test targets may take references from any
other date, as a user predicting a new day would.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from stf_bench.errors import ConfigError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SampleSpec:
    """A target date index and its reference date indices (earlier first).

    `slots` is K for a sequence sample (pairing=sequence): its 1..K references are stacked in K slots
    (`fine_refs`, `coarse_refs`, `ref_mask`); 0 for the standard keys (`fine_ref`, ..., `fine_ref2`).
    """

    target: int
    refs: tuple[int, ...]
    slots: int = 0


def _number(key: str, value, example, integer: bool = False, below_one: bool = False):
    """`value` of config key `key` as a non-negative number (an int if `integer`, < 1 if `below_one`), else a
    ConfigError naming the key, the value and an `example`. Hydra passes a non-numeric override on as a string."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or (below_one and value >= 1):
        what = "a whole number" if integer else ("a fraction from 0 to below 1" if below_one else "a number >= 0")
        raise ConfigError(f"{key}={value!r} is not {what}: set it like {key}={example}.")
    return value


class _Split:
    def __init__(self, name: str, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0):
        self.name = name
        self.val_fraction = _number("split.val_fraction", val_fraction, 0.15, below_one=True)
        self.test_fraction = _number("split.test_fraction", test_fraction, 0.15, below_one=True)
        self.seed = _number("split.seed", seed, 0, integer=True)

    def __call__(self, dates: list[dt.date]) -> dict[str, list[int]]:
        parts = self.assign(list(dates))
        for split in SPLITS:
            if not parts[split]:
                raise ConfigError(
                    f"split={self.name} leaves no {split} dates out of {len(dates)} "
                    f"({dates[0]} to {dates[-1]}). Use a dataset with more dates or change the split fractions/"
                    f"season/year (e.g. split.val_fraction, split.test_fraction)."
                )
        return {k: sorted(v) for k, v in parts.items()}

    def _count(self, n: int, fraction: float) -> int:
        return max(1, int(round(n * fraction)))

    def _random_val(self, candidates: list[int], n_total: int) -> tuple[list[int], list[int]]:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(candidates).tolist()  # plain ints: indices end up in JSON (cache keys, run.json)
        n_val = self._count(n_total, self.val_fraction)
        return sorted(order[n_val:]), sorted(order[:n_val])


class ChronologicalSplit(_Split):
    """Earliest dates train, then validation, the latest test (the default: no look-ahead)."""

    def assign(self, dates):
        n = len(dates)
        n_test, n_val = self._count(n, self.test_fraction), self._count(n, self.val_fraction)
        idx = list(range(n))
        return {"train": idx[: n - n_test - n_val], "val": idx[n - n_test - n_val: n - n_test],
                "test": idx[n - n_test:]}


class RandomSplit(_Split):
    """Seeded random assignment of target dates."""

    def assign(self, dates):
        n = len(dates)
        order = np.random.default_rng(self.seed).permutation(n).tolist()
        n_test, n_val = self._count(n, self.test_fraction), self._count(n, self.val_fraction)
        return {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}


class SeasonalSplit(_Split):
    """Hold out one season (months) as test; validation is a seeded random fraction of the rest."""

    SEASONS = {"DJF": (12, 1, 2), "MAM": (3, 4, 5), "JJA": (6, 7, 8), "SON": (9, 10, 11)}

    def __init__(self, name: str, test_season: str = "JJA", val_fraction: float = 0.15, seed: int = 0):
        super().__init__(name, val_fraction, 0.0, seed)
        if test_season not in self.SEASONS:
            raise ConfigError(f"split.test_season={test_season!r}: use one of {', '.join(self.SEASONS)}.")
        self.test_season = test_season

    def assign(self, dates):
        months = self.SEASONS[self.test_season]
        test = [i for i, d in enumerate(dates) if d.month in months]
        train, val = self._random_val([i for i in range(len(dates)) if i not in test], len(dates))
        return {"train": train, "val": val, "test": test}


class LeaveYearOutSplit(_Split):
    """Hold out one calendar year as test; validation is a seeded random fraction of the other years."""

    def __init__(self, name: str, test_year: int | None = None, val_fraction: float = 0.15, seed: int = 0):
        super().__init__(name, val_fraction, 0.0, seed)
        self.test_year = None if test_year is None else _number("split.test_year", test_year, 2020, integer=True)

    def assign(self, dates):
        year = self.test_year if self.test_year is not None else dates[-1].year
        test = [i for i, d in enumerate(dates) if d.year == year]
        train, val = self._random_val([i for i in range(len(dates)) if i not in test], len(dates))
        return {"train": train, "val": val, "test": test}


class Pairing:
    """Reference dates for each target: the previous date, the nearest date, one on each side, or a sequence of the
    `k` nearest (`side`: both, or past only) within `max_gap_days`.

    `MODES` gives the references every sample of a mode is sure to have: a sequence sample has 1 to k.
    """

    MODES = {"previous": 1, "nearest": 1, "two_refs": 2, "sequence": 1}
    SIDES = ("both", "past")

    def __init__(self, name: str, mode: str = "previous", max_gap_days: float | None = None,
                 train_reference: str = "fixed", k: int | None = None, side: str = "both") -> None:
        if mode not in self.MODES:
            raise ConfigError(f"pairing.mode={mode!r}: use one of {', '.join(self.MODES)}.")
        if train_reference not in ("fixed", "random"):
            raise ConfigError(f"pairing.train_reference={train_reference!r}: use fixed or random.")
        if max_gap_days is not None:
            _number("pairing.max_gap_days", max_gap_days, 32)
        if mode == "sequence":  # k and side mean nothing to the other modes (an evaluation sibling keeps them)
            if _number("pairing.k", k, 3, integer=True) < 1:
                raise ConfigError(f"pairing.k={k!r} is not a number of references >= 1: set it like pairing.k=3.")
            if side not in self.SIDES:
                raise ConfigError(f"pairing.side={side!r}: use one of {', '.join(self.SIDES)}.")
        self.name, self.mode, self.max_gap_days, self.train_reference = name, mode, max_gap_days, train_reference
        self.k, self.side = k, side

    @property
    def n_refs(self) -> int:
        return self.MODES[self.mode]

    def pair(self, dates: list[dt.date], targets: list[int], candidates: list[int]) -> tuple[list[SampleSpec], list]:
        """Specs for the targets that can be paired, and the dates that cannot (with the reason)."""
        days = np.array([d.toordinal() for d in dates])
        specs, skipped = [], []
        for t in targets:
            pool = [c for c in candidates if c != t and self._within(days[t], days[c])]
            before = [c for c in pool if days[c] < days[t]]
            after = [c for c in pool if days[c] > days[t]]
            if self.mode == "previous":
                refs = (max(before, key=lambda c: days[c]),) if before else ()
            elif self.mode == "nearest":
                refs = (min(pool, key=lambda c: (abs(days[c] - days[t]), days[c])),) if pool else ()
            elif self.mode == "two_refs":
                refs = ((max(before, key=lambda c: days[c]), min(after, key=lambda c: days[c]))
                        if before and after else ())
            else:  # the k nearest (a tie takes the past), stacked earlier first
                side = before if self.side == "past" else pool
                refs = tuple(sorted(sorted(side, key=lambda c: (abs(days[c] - days[t]), days[c]))[: self.k],
                                    key=lambda c: days[c]))
            if refs:
                specs.append(SampleSpec(t, refs, self.k if self.mode == "sequence" else 0))
            else:
                want = {"previous": "earlier reference date", "nearest": "other reference date",
                        "two_refs": "reference date on each side",
                        "sequence": "earlier reference date" if self.side == "past" else "other reference date"}[
                    self.mode]
                gap = f" within {self.max_gap_days} days" if self.max_gap_days is not None else ""
                skipped.append((dates[t], f"no {want}{gap} (pairing.mode={self.mode})"))
        return specs, skipped

    def _within(self, a: int, b: int) -> bool:
        return self.max_gap_days is None or abs(a - b) <= self.max_gap_days


def make_samples(dates: list[dt.date], split: _Split, pairing: Pairing) -> tuple[dict[str, list[SampleSpec]], dict]:
    """Samples per split and the split's target indices; training pairs only with training dates."""
    parts = split(dates)
    samples, skipped = {}, {}
    for name in SPLITS:
        candidates = parts["train"] if name == "train" else list(range(len(dates)))
        samples[name], skipped[name] = pairing.pair(dates, parts[name], candidates)
        for date, why in skipped[name]:
            log.warning("split=%s pairing=%s: %s date %s is skipped: %s", split.name, pairing.name, name, date, why)
        if not samples[name]:
            raise ConfigError(
                f"no {name} sample can be paired with pairing={pairing.name} (max_gap_days={pairing.max_gap_days}) "
                f"and split={split.name}: {skipped[name][:3]}. Use another pairing (e.g. pairing=nearest), a larger "
                f"pairing.max_gap_days, or another split."
            )
    return samples, {"parts": parts, "skipped": skipped}
