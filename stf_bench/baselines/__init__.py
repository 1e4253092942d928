"""Classical fusion methods: no trainable parameters, same sample in, same prediction out.

One module per method (`persistence`, `delta`, `coarse`, `starfm`, `estarfm`, `ubestarfm`, `fsdaf`, `fitfc`,
`stnlffm`, `ubdf`), each a `base.ClassicalBaseline` configured by `conf/model/<id>.yaml` (models.md part 3). Shared
pieces: `base` (sample handling, fallback chain), `_windows` (reflected windows in row tiles), `blocks` (the coarse
block grid), `kmeans` (1-D classes), `tps` (thin-plate spline). Inputs and outputs are Kelvin.
"""
