"""`logger=[csv,wandb]` with no W&B key anywhere: the run logs offline into its own folder, says so once, and never
touches the network (a local listener stands in for the W&B server and must see no connection)."""

from __future__ import annotations

import json
import socket
import threading


class Listener:
    """A TCP server on a free local port that counts the connections made to it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port, self.connections, self._stop = self.server.getsockname()[1], 0, threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


def test_wandb_without_key_logs_offline_in_the_run_folder(cli, tiny, data_dir, tmp_path):
    home = tmp_path / "home"  # no ~/.netrc, no wandb settings
    home.mkdir()
    listener = Listener()
    try:
        # the cli fixture removes every WANDB_* variable; WANDB_MODE stays unset, as on a fresh machine
        proc = cli("train.py", *tiny("edcstfn"), "logger=[csv,wandb]", f"paths.data_dir={data_dir}",
                   env={"WANDB_MODE": None, "HOME": str(home), "WANDB_BASE_URL": f"http://127.0.0.1:{listener.port}"},
                   timeout=300)
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert listener.connections == 0

    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    # tagged with the seed, and the end-of-training prediction image is logged
    assert b"seed2019" in next(offline.glob("run-*.wandb")).read_bytes()
    assert list(offline.glob("files/media/images/test/prediction_*.png"))
    log = (run_dir / "train.log").read_text()
    assert log.count("W&B: no API key configured, logging offline") == 1
