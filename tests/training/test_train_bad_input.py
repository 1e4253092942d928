"""Bad input to `train.py`, through the real command line: a non-zero exit, a message that names the thing and the
fix, and no Python traceback."""

from __future__ import annotations

import shutil


def check_refused(proc, *phrases: str, status: int = 2) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == status, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    squeezed = " ".join(out.replace("│", " ").split())  # the message panel wraps lines
    for phrase in phrases:
        assert phrase in squeezed, squeezed[-3000:]


def test_unknown_model_lists_the_valid_ones(cli):
    # Hydra refuses it while composing, before any stf_bench code runs (its own exit status 1)
    check_refused(cli("train.py", "model=nope"), "Could not find 'model/nope'", "Available options in 'model'",
                  "edcstfn", "ganstfm", "swinstfm", "delta", status=1)


def test_two_reference_model_with_one_reference_pairing(cli, tiny, data_dir):
    proc = cli("train.py", *tiny("edcstfn"), "model.min_refs=2", "pairing=previous", "trainer=debug",
               f"paths.data_dir={data_dir}")
    check_refused(proc, "ConfigError", "the model needs 2 reference pairs but pairing=previous gives 1",
                  "pairing=two_refs")


def test_patch_size_that_breaks_the_model_constraint(cli, data_dir):
    proc = cli("train.py", "model=swinstfm", "model.train.patch_size=128", f"paths.data_dir={data_dir}")
    check_refused(proc, "model swinstfm accepts only 256x256 patches", "datamodule.patch_size=128",
                  "Set model.train.patch_size=256")


def test_checkpoint_from_another_dataset(cli, tiny, data_dir, edcstfn_run):
    # 13 dates instead of 12: another store of the same dataset name
    other = [o.replace("n_dates=12", "n_dates=13") for o in tiny("edcstfn")]
    proc = cli("train.py", *other, f"ckpt_path={edcstfn_run / 'checkpoints' / 'last.ckpt'}",
               f"paths.data_dir={data_dir}")
    check_refused(proc, "ConfigError", "was trained on dataset synthetic_small/reproject-",
                  "Resume with the same dataset and preprocess options")


def test_truncated_checkpoint(cli, tiny, data_dir, edcstfn_run, tmp_path):
    broken = tmp_path / "broken.ckpt"
    shutil.copy(edcstfn_run / "checkpoints" / "last.ckpt", broken)
    with open(broken, "r+b") as f:
        f.truncate(broken.stat().st_size // 2)
    proc = cli("train.py", *tiny("edcstfn"), f"ckpt_path={broken}", f"paths.data_dir={data_dir}")
    check_refused(proc, "DataError", f"checkpoint {broken} cannot be read", "corrupt, truncated")
