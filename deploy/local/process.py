"""A detached local server process tracked by a pid file: start is idempotent, stop is graceful."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for child servers started by tests and benches)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM a child, then SIGKILL it if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0): read its state
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _group_members(group: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # after the state: ppid, then the process group
            members.append(int(stat.parent.name))
    return members


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # a health probe failing is the expected "not yet"
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last_error})")


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.workdir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self) -> int:
        existing = self.pid()
        if existing is not None:
            return existing
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                start_new_session=True,  # outlives the CLI that started it
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def start_healthy(
        self, host: str, port: int, healthy: Callable[[], bool], timeout: float
    ) -> None:
        """Start unless running (refusing a port held by a stranger), then wait for health."""
        if self.pid() is None and port_open(host, port):
            raise RuntimeError(f"port {port} is taken by a process this project did not start")
        self.start()
        try:
            wait_until(healthy, timeout, self.name)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.log_file} ---\n{self.tail(30)}") from exc

    def stop(self, timeout: float = 20.0) -> bool:
        pid = self.pid()
        if pid is None:
            self._stop_orphans()
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _stop_orphans(self) -> None:
        """Members left of the group of a leader that died (a server's own children keep its
        ports); only those still working in this process's folder, so a recycled number never
        reaches a stranger."""
        try:
            group = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        for pid in _group_members(group):
            try:
                inside = Path(f"/proc/{pid}/cwd").resolve().is_relative_to(self.workdir.resolve())
            except OSError:
                continue
            if inside:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
