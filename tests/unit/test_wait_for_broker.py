"""A worker waits for a broker that is down when it starts (a restart, a rolling upgrade)
instead of letting Faust's start exit."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kafka.errors import KafkaConnectionError

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


def test_the_topic_check_is_tried_again_while_the_broker_drops_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that accepts, then drops the admin call (restarting): seen killing a worker's
    start in the chaos test; the check is tried again until it answers."""
    import streams.worker as worker
    from config.settings import Settings

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    calls: list[int] = []

    def flaky(settings: Settings) -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaConnectionError("socket disconnected")
        return {"products.v1": 3}

    monkeypatch.setattr(worker, "ensure_topics", flaky)
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the module worker.py uses
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{server.getsockname()[1]}")
    assert worker.topics_when_up(settings) == {"products.v1": 3}
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(worker, "ensure_topics", lambda s: _raise())
    with pytest.raises(KafkaConnectionError):
        worker.topics_when_up(settings, timeout_s=0)
    server.close()


def _raise() -> dict[str, int]:
    raise KafkaConnectionError("still down")
