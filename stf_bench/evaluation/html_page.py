"""leaderboard.html: one self-contained page (no network) with sortable columns, the better direction of every
metric in its header, and the best value of each metric marked within each evaluation context.

Rows of different contexts (store, split, pairing) are not comparable, so every context is its own <tbody> headed
by a row that names it; sorting reorders rows inside each context and the best marks never cross contexts.
"""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from stf_bench.evaluation.leaderboard import DECIMALS, METRICS
from stf_bench.metrics import BEST

# which value is best: "low" (↓), "high" (↑) or "zero" (signed, closest to 0); metrics.md gives the reasons
ARROW = {"low": ("↓", "lower is better"), "high": ("↑", "higher is better"), "zero": ("→0", "closest to 0 is best")}
# columns shown beside the metrics: displayed title -> numeric column of the leaderboard table (None: sort by text)
LEADING = {"Model": None, "Source": None, "Family": None, "Seeds": "n_runs"}
TRAILING = {"Params": "params", "MACs/256² [G]": "macs_g", "Inference [s/scene]": "inference_s",
            "Train [min]": "train_s", "Train peak [MB]": "train_peak_mb"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:16px;color:#1d232a}
h1{font-size:20px;margin:0 0 4px}
p.summary{margin:0 0 10px;color:#48525c}
.wrap{overflow:auto;max-height:78vh;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:separate;border-spacing:0;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;white-space:nowrap;border-bottom:1px solid #eaeef2;background:#fff}
td.num{text-align:right}
thead th{position:sticky;top:0;z-index:2;background:#f6f8fa;border-bottom:2px solid #d0d7de;cursor:pointer;
 text-align:center;vertical-align:bottom;user-select:none}
thead th .dir{display:block;font-size:12px;color:#0969da}
thead th .range{display:block;font-size:11px;font-weight:normal;color:#57606a}
thead th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
thead th[aria-sort=descending]::after{content:" ▼";font-size:10px}
th.model,td.model{position:sticky;left:0;z-index:1;text-align:left;border-right:2px solid #d0d7de;max-width:320px;
 white-space:normal;min-width:180px}
thead th.model{z-index:3}
tr.context th{text-align:left;background:#eef3f8;font-weight:normal;border-top:2px solid #d0d7de;cursor:default}
tr.context th span{position:sticky;left:10px}
tbody tr.row:hover td{background:#f6f8fa}
td.best{font-weight:700;background:#dafbe1}
td.best::after{content:" ★";color:#1a7f37}
td.na{color:#8c959f}
ul.notes{font-size:12px;color:#48525c;padding-left:18px}
"""

# click a header: best first (text: A..Z), click again: reversed; '#sort=<column key>' sorts on load
JS = """
(function(){
 const table=document.getElementById('board');
 const heads=[...table.tHead.rows[0].cells];
 function sort(th,flip){
  const i=heads.indexOf(th), best=th.dataset.best;
  let asc=best!=='high';
  if(flip&&th.getAttribute('aria-sort'))asc=th.getAttribute('aria-sort')!=='ascending';
  heads.forEach(h=>h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort',asc?'ascending':'descending');
  const key=tr=>{const c=tr.cells[i],v=c.dataset.v;
   if(v===undefined)return c.textContent.toLowerCase();
   if(v==='')return null;
   return best==='zero'?Math.abs(+v):+v;};
  for(const body of table.tBodies){
   const rows=[...body.querySelectorAll('tr.row')];
   rows.sort((a,b)=>{const x=key(a),y=key(b);
    if(x===null||y===null)return (x===null)-(y===null);
    return (x<y?-1:x>y?1:0)*(asc?1:-1);});
   rows.forEach(r=>body.appendChild(r));
  }
 }
 heads.forEach(th=>th.addEventListener('click',()=>sort(th,true)));
 const m=location.hash.match(/sort=([\\w-]+)/);
 const th=m&&heads.find(h=>h.dataset.key===m[1]);
 if(th)sort(th,false);
})();
"""


def best_rows(values: pd.Series, direction: str, decimals: int) -> pd.Series:
    """Rows holding the best value as displayed (rounded, so equal-looking values are all marked); none when every
    row with a value holds it (one row, or all tied), as then the mark would single nothing out."""
    shown = values.round(decimals)
    score = {"low": shown, "high": -shown, "zero": shown.abs()}[direction]
    best = score == score.min()
    return best if best.sum() < score.notna().sum() else pd.Series(False, index=values.index)


def _context_label(row: pd.Series) -> str:
    return (f"{row['dataset']} · store {row['store_hash']} · variant {row['variant']} · split {row['split']} · "
            f"pairing {row['pairing']} · L = {row['data_range_k']:g} K · {row['n_test_scenes']} test scenes")


def _num(value) -> str:
    return "" if pd.isna(value) or not np.isfinite(float(value)) else repr(float(value))


def leaderboard_page(table: pd.DataFrame, shown: pd.DataFrame, header: list[str]) -> str:
    """The page for the numeric `table` and its displayed twin `shown` (same rows, same order)."""
    ranges = sorted(set(table["data_range_k"].dropna()))
    range_note = f"L = {ranges[0]:g} K" if len(ranges) == 1 else "L: see context row"
    heads = []
    for title, col in LEADING.items():
        cls = ' class="model"' if title == "Model" else ""
        heads.append(f'<th{cls} data-key="{escape(col or title.lower())}">{escape(title)}</th>')
    for key, title in METRICS.items():
        arrow, meaning = ARROW[BEST[key]]
        extra = f'<span class="range">{escape(range_note)}</span>' if key in ("ssim", "psnr") else ""
        heads.append(f'<th data-key="{key}" data-best="{BEST[key]}" title="{escape(meaning)}">{escape(title)}'
                     f'<span class="dir">{arrow}</span>{extra}</th>')
    heads += [f'<th data-key="{col}">{escape(title)}</th>' for title, col in TRAILING.items()]

    bodies = []
    for _, group in table.groupby("context", sort=False):
        best = {key: best_rows(group[f"{key}_mean"], BEST[key], DECIMALS.get(key, 2)) for key in METRICS}
        rows = [f'<tr class="context"><th colspan="{len(heads)}"><span>{escape(_context_label(group.iloc[0]))}'
                f"</span></th></tr>"]
        for idx, row in group.iterrows():
            cells = []
            for title, col in LEADING.items():
                cls = ' class="model"' if title == "Model" else ""
                value = f' data-v="{_num(row[col])}"' if col else ""
                cells.append(f"<td{cls}{value}>{escape(str(shown.at[idx, title]))}</td>")
            for key, title in METRICS.items():
                text = str(shown.at[idx, title])
                cls = "num best" if best[key][idx] else "num na" if text == "n/a" else "num"
                cells.append(f'<td class="{cls}" data-v="{_num(row[f"{key}_mean"])}">{escape(text)}</td>')
            cells += [f'<td class="num" data-v="{_num(row[col])}">{escape(str(shown.at[idx, title]))}</td>'
                      for title, col in TRAILING.items()]
            rows.append(f'<tr class="row">{"".join(cells)}</tr>')
        bodies.append("<tbody>" + "".join(rows) + "</tbody>")

    n_contexts = table["context"].nunique()
    summary = (f"{len(table)} rows in {n_contexts} evaluation context{'s' * (n_contexts != 1)}; rows are comparable "
               "only within their context. ↓ lower, ↑ higher, →0 closest to zero is best; ★ best in its context. "
               "Click a column to sort.")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>stf_bench leaderboard</title><style>{CSS}</style></head><body>"
            f"<h1>stf_bench leaderboard</h1><p class=\"summary\">{escape(summary)}</p>"
            f"<div class=\"wrap\"><table id=\"board\"><thead><tr>{''.join(heads)}</tr></thead>{''.join(bodies)}"
            "</table></div><ul class=\"notes\">" + "".join(f"<li>{escape(h)}</li>" for h in header)
            + f"</ul><script>{JS}</script></body></html>\n")
