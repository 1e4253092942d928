"""leaderboard.html from a hand-made two-context table: direction arrows, the best value marked per context, text
escaped, nothing fetched from the network; the page as headless Chromium renders it at 1400 px; and the terminal
tables evaluate.py prints from the same table."""

from __future__ import annotations

import importlib.util
import io
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from stf_bench.evaluation.html_page import leaderboard_page
from rich.console import Console

from stf_bench.evaluation.leaderboard import METRICS, display_table, header_lines, leaderboard_table
from stf_bench.metrics import BEST

EVIL = "<b>evil</b> & co"
# context -> model -> metrics; A and B differ in their best model, and |Bias|/|EDGE|/|LBP| are best near 0, not lowest
SCORES = {
    "ctxA": {"m1": dict(rmse=1.0, bias=-0.10, r=0.90, edge=0.20, lbp=-0.05, psnr=30.0),
             EVIL: dict(rmse=2.0, bias=0.05, r=0.95, edge=-0.10, lbp=0.10, psnr=28.0),
             "delta": dict(rmse=3.0, bias=-0.50, r=0.80, edge=-0.30, lbp=-0.30, psnr=30.001)},
    "ctxB": {"m1": dict(rmse=5.0, bias=0.40, r=0.70, edge=0.05, lbp=0.20, psnr=20.0),
             EVIL: dict(rmse=4.0, bias=-0.20, r=0.60, edge=0.50, lbp=-0.01, psnr=22.0)},
}
IDENT = {"ctxA": dict(dataset="synthetic_small", store_hash="0e88907"), "ctxB": dict(dataset="yanco", store_hash="ab12")}


def _result() -> dict:
    per_scene, runs = [], []
    for context, models in SCORES.items():
        for model, scores in models.items():
            group = dict(context=context, **IDENT[context], variant="reproject", split="chronological",
                         pairing="previous", model=model, recipe="r0")
            for seed in (1, 2):
                run = f"{context}/{model}/{seed}"
                for scene in range(2):  # seed and scene spread that averages back to the scores
                    shift = 0.01 * (seed - 1.5) + 0.02 * (scene - 0.5)
                    metrics = {k: scores.get(k, 0.5) + shift for k in METRICS}
                    per_scene.append(dict(group, run=run, seed=seed, **metrics, sse=metrics["rmse"] ** 2 * 100,
                                          n_pixels=100))
                runs.append(dict(group, run=run, seed=seed, label="re-implementation", family="cnn", params=1000,
                                 macs_g=1.5, inference_s=0.2, train_s=120.0, train_peak_mb=512.0, device="cpu",
                                 n_test_scenes=2, data_range_k=60.0))
    return {"per_scene": pd.DataFrame(per_scene), "runs": pd.DataFrame(runs), "device": "cpu"}


class Board(HTMLParser):
    """Header cells and, per <tbody>, its context line and its rows as {column title: (text, classes)}."""

    def __init__(self):
        super().__init__()
        self.heads, self.bodies, self.refs = [], [], []
        self._cell = self._row = None
        self._row_class = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "tbody":
            self.bodies.append({"context": None, "rows": []})
        elif tag == "tr":
            self._row, self._row_class = [], attrs.get("class") or ""
        elif tag in ("th", "td") and self._row is not None:
            self._cell = {"text": "", "class": attrs.get("class") or "", **attrs}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if not self.bodies:
                self.heads = self._row
            elif self._row_class == "context":
                self.bodies[-1]["context"] = self._row[0]["text"]
            else:
                titles = [h["data-key"] for h in self.heads]
                self.bodies[-1]["rows"].append(dict(zip(titles, self._row)))
            self._row = None


@pytest.fixture
def page() -> str:
    result = _result()
    table = leaderboard_table(result["per_scene"], result["runs"])
    return leaderboard_page(table, display_table(table), header_lines(table, 0, "cpu"))


def test_every_metric_has_a_direction():
    assert set(BEST) == set(METRICS)


def test_headers_carry_units_arrows_and_data_range(page):
    board = Board()
    board.feed(page)
    heads = {h["data-key"]: h for h in board.heads}
    assert heads["rmse"]["text"] == "RMSE [K]↓" and heads["r"]["text"] == "r↑"
    assert heads["bias"]["text"] == "Bias [K]→0" and heads["lbp"]["text"] == "LBP→0"
    assert heads["psnr"]["text"] == "PSNR [dB]↑L = 60 K" and heads["ssim"]["text"].endswith("L = 60 K")
    assert list(heads)[0] == "model" and heads["model"]["class"] == "model"


def test_best_is_marked_per_context(page):
    board = Board()
    board.feed(page)
    assert len(board.bodies) == 2
    contexts = [b["context"] for b in board.bodies]
    assert contexts[0].startswith("synthetic_small · store 0e88907 · variant reproject · split chronological · "
                                  "pairing previous · L = 60 K")
    assert contexts[1].startswith("yanco · store ab12")
    expected = {  # metric -> best models in ctxA, in ctxB; psnr ties in ctxA as displayed (30.00)
        "rmse": (["m1"], [EVIL]), "bias": ([EVIL], [EVIL]), "r": ([EVIL], ["m1"]), "edge": ([EVIL], ["m1"]),
        "lbp": (["m1"], [EVIL]), "psnr": (["m1", "delta"], [EVIL])}
    for metric, winners in expected.items():
        for body, winner in zip(board.bodies, winners):
            marked = [row["model"]["text"] for row in body["rows"] if "best" in row[metric]["class"].split()]
            assert marked == winner, (metric, body["context"])
    # ssim is equal for every model: a tie of all rows singles nothing out and is not marked
    assert not any("best" in row["ssim"]["class"] for body in board.bodies for row in body["rows"])
    assert [row["model"]["text"] for row in board.bodies[0]["rows"]] == ["m1", EVIL, "delta"]  # ranked by RMSE
    assert board.bodies[0]["rows"][0]["rmse"]["text"] == "1.00 ± 0.01"


def test_text_is_escaped_and_nothing_is_fetched(page):
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt; &amp; co" in page
    board = Board()
    board.feed(page)
    assert board.refs == [] and "http://" not in page and "https://" not in page
    assert "position:sticky;left:0" in page and "overflow:auto" in page  # model column stays while scrolling


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_page_in_headless_chromium(page, tmp_path):
    path = tmp_path / "leaderboard.html"
    path.write_text(page, encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars=false",
             "--window-size=1400,900", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", path.as_uri()], check=True, capture_output=True, timeout=120)
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])  # PNG IHDR
    assert (width, height) == (1400, 900)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.getextrema()[0] < 100  # text was drawn, not a blank page
    # '#sort=r' sorts by r on load (higher is better: descending) inside each context
    dom = subprocess.run([*flags, "--dump-dom", path.as_uri() + "#sort=r"], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    board = Board()
    board.feed(dom)
    assert [h["data-key"] for h in board.heads if h.get("aria-sort")] == ["r"]
    assert {h["data-key"]: h for h in board.heads}["r"]["aria-sort"] == "descending"
    assert [[row["model"]["text"] for row in body["rows"]] for body in board.bodies] == [
        [EVIL, "m1", "delta"], ["m1", EVIL]]


def test_terminal_tables_print_whole_names_one_table_per_context():
    spec = importlib.util.spec_from_file_location("evaluate_entry", Path(__file__).parents[2] / "evaluate.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    result = _result()
    table = leaderboard_table(result["per_scene"], result["runs"])
    long_name = "ganstfm (reconstructed) · recipe 0e88907"
    table.loc[0, "name"] = long_name  # the longest kind of name: a second recipe of a reconstructed design
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)  # the width evaluate.py prints at
    for rich_table in entry.leaderboard_tables(table, display_table(table)):
        console.print(rich_table)
    text = out.getvalue()
    assert "…" not in text
    assert f"│ {long_name} │ re-implementation │" in text and text.count("re-implementation") == 5
    assert text.count("stf_bench leaderboard: ") == 2
    assert "stf_bench leaderboard: synthetic_small [0e88907] reproject, split chronological, pairing previous" in text
    assert "yanco [ab12] reproject" in text and "PSNR [dB]" in text  # brackets are text, not rich markup
