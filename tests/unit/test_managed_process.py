"""A detached local server process: a second start is the first, and stopping reaches the
children of a leader that died (a server's own child keeps its ports), never strangers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from deploy.local.process import ManagedProcess, pid_alive, wait_until


def test_stop_reaches_the_children_of_a_dead_leader(tmp_path: Path) -> None:
    script = (
        "sleep 300 & echo $! > child.pid; "
        f"(cd / && exec sleep 301) & echo $! > {tmp_path}/elsewhere.pid; wait"
    )
    proc = ManagedProcess("t", ["bash", "-c", script], tmp_path)
    leader = proc.start()
    assert proc.start() == leader  # idempotent
    wait_until(lambda: (tmp_path / "elsewhere.pid").exists(), 10, "the children")
    child = int((tmp_path / "child.pid").read_text())
    elsewhere = int((tmp_path / "elsewhere.pid").read_text())  # same group, another folder
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        os.kill(leader, signal.SIGKILL)
        wait_until(lambda: proc.pid() is None, 10, "the leader's death")
        assert pid_alive(child)
        assert proc.stop() is False  # nothing tracked was running ...
        wait_until(lambda: not pid_alive(child), 10, "the orphan's end")  # ... its child ended
        time.sleep(0.2)
        assert stranger.poll() is None and pid_alive(elsewhere)
        assert not proc.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()
        os.kill(elsewhere, signal.SIGKILL)
