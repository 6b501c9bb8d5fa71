"""Child processes of the benches and tests: a `stylestream` subcommand with its output in a
log file, stopped with SIGTERM then SIGKILL (deploy/local/process.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy.local.process import terminate


class Process:
    """``stylestream ARGS`` in a child process; ``env``: its whole environment (default: this
    process's)."""

    def __init__(
        self, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stylestream.cli", *args],
                env=dict(os.environ if env is None else env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def running(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.proc.args!r} exited {self.proc.returncode}: see {self.log}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 30.0) -> None:
        terminate(self.proc, timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def wait_or_fail(
    check: Callable[[], bool], timeout: float, what: str, procs: Sequence[Process] = ()
) -> None:
    """Poll ``check`` until true; fail early when a child process has died."""
    deadline = time.monotonic() + timeout
    while not check():
        for p in procs:
            p.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout:.0f}s")
        time.sleep(0.5)
