"""Inference time that a reader can trust: one untimed warm-up, then the median of at least three timings."""

from __future__ import annotations

import time

import torch

from stf_bench.evaluation.evaluate import TIMING_REPEATS, score_method
from stf_bench.models.prediction import ScenePredictor


class SlowFirstCall(torch.nn.Module):
    """A Kelvin-space 'method' whose first call is slow (lazy initialisation, JIT) and one later call is slow too."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.delays = list(delays)
        self.calls = 0

    def forward(self, batch: dict) -> torch.Tensor:
        time.sleep(self.delays[min(self.calls, len(self.delays) - 1)])
        self.calls += 1
        return batch["coarse_tgt"]


class OneContext:
    """The part of an evaluation context that score_method reads: its test specs and their samples."""

    def __init__(self, n_scenes: int) -> None:
        self.specs = list(range(n_scenes))

    def samples(self, nan_inputs: bool = False):
        for i in self.specs:
            x = torch.full((1, 1, 16, 16), 290.0 + i)
            yield {"fine_ref": x, "coarse_ref": x, "coarse_tgt": x + 1, "fine_tgt": x + 1,
                   "valid_tgt": torch.ones(1, 1, 16, 16, dtype=torch.bool), "meta": {"dates": f"2020-01-0{i + 1}"}}


def _score(net, n_scenes):
    predictor = ScenePredictor(net, None, kelvin_inputs=True)
    return score_method("slow", predictor, OneContext(n_scenes), torch.device("cpu"), 60.0, 0, [])


def test_warm_up_is_not_timed_and_one_scene_is_timed_three_times():
    net = SlowFirstCall([0.5, 0.01])
    rows, efficiency, _ = _score(net, 1)
    assert net.calls == 1 + TIMING_REPEATS and efficiency["inference_timings"] == TIMING_REPEATS
    assert 0.01 <= efficiency["inference_s"] < 0.2 and len(rows) == 1 and rows[0]["rmse"] == 0.0
    assert efficiency["device"].startswith("CPU ")


def test_median_ignores_one_slow_scene():
    net = SlowFirstCall([0.01, 0.01, 0.01, 0.5, 0.01, 0.01])   # warm-up, then scene 3 hits a busy moment
    _, efficiency, _ = _score(net, 5)
    assert net.calls == 6 and efficiency["inference_timings"] == 5
    assert efficiency["inference_s"] < 0.2   # a mean would be above 0.1 s
