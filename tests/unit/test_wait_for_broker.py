"""A worker waits for a broker that is down when it starts (a restart, a rolling upgrade)
instead of letting Faust's start exit."""

from __future__ import annotations

import socket
import threading
import time

from deploy.local.process import free_port
from streams.worker import wait_for_broker


def test_it_returns_once_the_broker_listens_and_gives_up_after_its_timeout() -> None:
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_late() -> None:
        time.sleep(1.5)
        server.bind(("127.0.0.1", port))
        server.listen()

    threading.Thread(target=listen_late, daemon=True).start()
    started = time.monotonic()
    wait_for_broker(f"127.0.0.1:1, 127.0.0.1:{port}", timeout_s=20)
    waited = time.monotonic() - started
    server.close()
    assert 1.0 < waited < 10
    started = time.monotonic()
    wait_for_broker("127.0.0.1:1", timeout_s=1)
    assert time.monotonic() - started < 5
