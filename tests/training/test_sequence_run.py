"""`train.py model=tsstfn pairing=sequence pairing.k=3 trainer=debug` on tiny synthetic data (issue 12): the
sequence batches train, validate and test, and run.json records the pairing and a context that includes K."""

from __future__ import annotations

import json


def test_tsstfn_trains_on_a_three_reference_sequence(tiny, train_run):
    _, run_dir = train_run(*tiny("tsstfn"), "pairing=sequence", "pairing.k=3", "trainer=debug")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished", info.get("error")
    assert info["pairing"] == "sequence" and info["pairing_config"]["k"] == 3
    assert info["context"]["pairing"] == "sequence K=3" and info["context"]["pairing_config"]["k"] == 3
    assert 0.0 < info["test"]["test/rmse"] < 60.0
    assert info["params"] == 465_153
