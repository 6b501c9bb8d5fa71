"""A real Milvus standalone server (Go binary from the PyPI ``milvus`` 2.3.5 wheel: embedded etcd,
local storage), as a child of the calling process. Used by the store tests and the search
benchmark to prove the adapter works unchanged against a server, not only Milvus Lite.

Its coordinators are pinned to 127.0.0.1; some gRPC ports still listen on every interface
(the wheel's template), which is acceptable for a child process that lives for one test run.
Its embedded etcd's peer port is fixed at 2380, so one such server runs per machine at a time.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local.process import free_port, pid_alive

COMPONENTS = (
    "proxy",
    "rootCoord",
    "queryCoord",
    "queryNode",
    "indexCoord",
    "indexNode",
    "dataCoord",
    "dataNode",
)


@contextmanager
def milvus_standalone(
    data_dir: Path, port: int, timeout_s: float = 120
) -> Iterator[tuple[str, int]]:
    """Yields (uri, pid). Needs the ``milvus`` wheel (a dev dependency)."""
    from milvus import MilvusServer

    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(str(data_dir))
    server.listen_port = port
    server.config.set("etcd_port", free_port())
    for component in COMPONENTS:
        server.config.set(f"{component}.ip", "127.0.0.1")
    server.start()
    try:
        server.wait_started(timeout=int(timeout_s * 1000))
        yield f"http://127.0.0.1:{port}", int(server.server_proc.pid)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m deploy.local.milvus_server --data-dir D --port P``: the server until SIGTERM
    (how ``stylestream dev up`` runs it as a daemon when the URI names it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with milvus_standalone(args.data_dir, args.port) as (uri, pid):
        print(f"milvus standalone server {uri} (pid {pid})", flush=True)
        while not stop.wait(1.0):
            if not pid_alive(pid):  # crashed or OOM-killed: exit, so `dev up` starts it again
                print(f"milvus (pid {pid}) exited", flush=True)
                sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
