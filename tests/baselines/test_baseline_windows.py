"""Window machinery: reflection, box sums, offsets and the "most similar" selection."""

from __future__ import annotations

import numpy as np
import torch

from stf_bench.baselines._windows import Padded, Window, box_sum, most_similar, reflect_pad


def test_reflection_repeats_when_the_pad_is_wider_than_the_image():
    x = np.arange(12.0).reshape(3, 4)
    for pad in (1, 2, 5, 9):
        np.testing.assert_array_equal(reflect_pad(torch.tensor(x), pad).numpy(), np.pad(x, pad, mode="reflect"))
    np.testing.assert_array_equal(reflect_pad(torch.ones(1, 1) * 7, 3).numpy(), np.full((7, 7), 7.0))


def test_box_sum_equals_the_brute_force_window_sum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 13))
    w = 2
    padded = np.pad(x, w, mode="reflect")
    brute = np.array([[padded[r : r + 2 * w + 1, c : c + 2 * w + 1].sum() for c in range(13)] for r in range(9)])
    np.testing.assert_allclose(box_sum(torch.tensor(x), w).numpy(), brute, atol=1e-12)


def test_offsets_shifted_slices_and_unfold_see_the_same_window():
    x = torch.arange(30.0).reshape(5, 6)
    p = Padded(x, 2)
    win = Window(2)
    unfolded = p.unfold(1, 4, 2)  # rows 1..3
    for i, o in enumerate(win.offsets):
        np.testing.assert_array_equal(p.shifted(1, 4, o.dy, o.dx).numpy(), unfolded[..., o.dy, o.dx].numpy())
        assert o.is_centre == (i == win.size // 2)
    assert win.offsets[0].distance == np.hypot(2, 2)


def test_rank_orders_by_distance_then_index():
    rank = Window(1).rank().numpy()
    # centre first, then the 4 edge neighbours in index order, then the 4 corners in index order
    np.testing.assert_array_equal(rank, [5, 1, 6, 2, 0, 3, 7, 4, 8])


def test_most_similar_breaks_ties_towards_the_nearer_pixel_and_respects_threshold():
    x = torch.full((5, 5), 300.0)
    x[2, 3] = 300.5  # one slightly different pixel right of the centre
    x[0, 0] = float("nan")  # never a candidate
    p = Padded(x, 2)
    win = Window(2)
    pos, ok = most_similar(p, x, 2, 3, win, n=5)
    centre_pos = set(pos[0, 2][ok[0, 2]].tolist())
    # centre (12) and its three equal edge neighbours (7, 11, 17) beat the unequal right neighbour (13); the fifth
    # is the nearest equal diagonal, index order first (6)
    assert centre_pos == {12, 7, 11, 17, 6}
    pos, ok = most_similar(p, x, 2, 3, win, n=25, threshold=0.1)
    assert int(ok[0, 2].sum()) == 25 - 2  # all but the NaN corner and the unequal pixel
    # a zero threshold still leaves the valid centre
    pos, ok = most_similar(p, x, 2, 3, win, n=3, threshold=0.0)
    assert pos[0, 2][ok[0, 2]].tolist() == [12]
