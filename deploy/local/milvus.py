"""The local Milvus: Milvus Lite in its server mode (the default), or the Milvus standalone
server from the PyPI ``milvus`` wheel when the URI names its port (binary vectors, real ANN at
scale), so the worker, the API and the CLI share one index."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from config.settings import Settings
from deploy.local.process import ManagedProcess, port_open
from stores.milvus import connect


class MilvusLiteService:
    name = "milvus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir.resolve() / "milvus"
        self.port = settings.milvus_lite_port

    @property
    def enabled(self) -> bool:
        """Only when the configured URI points at this local server."""
        return self.settings.milvus_uri.rstrip("/") == f"http://127.0.0.1:{self.port}"

    def process(self) -> ManagedProcess:
        exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or "milvus-lite"
        return ManagedProcess(
            "milvus",
            [
                exe,
                "server",
                "--data-dir",
                str(self.home / "data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            self.home,
        )

    def up(self, timeout: float = 60.0) -> None:
        self.process().start_healthy("127.0.0.1", self.port, self.healthy, timeout)

    def healthy(self) -> bool:
        if not port_open("127.0.0.1", self.port):
            return False
        client = connect(f"http://127.0.0.1:{self.port}", timeout=3)
        try:
            client.list_collections()
            return True
        finally:
            client.close()

    def down(self) -> bool:
        return self.process().stop()


class MilvusServerService(MilvusLiteService):
    """The standalone server (Go binary, embedded etcd, local storage) as a daemon: enabled when
    ``STYLESTREAM_MILVUS_URI`` is ``http://127.0.0.1:<STYLESTREAM_MILVUS_SERVER_PORT>``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.home = settings.data_dir.resolve() / "milvus-server"
        self.port = settings.milvus_server_port

    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "milvus-server",
            [
                sys.executable,
                "-m",
                "deploy.local.milvus_server",
                "--data-dir",
                str(self.home / "data"),
                "--port",
                str(self.port),
            ],
            self.home,
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )

    def up(self, timeout: float = 180.0) -> None:
        super().up(timeout)


def local_milvus(settings: Settings) -> MilvusLiteService | None:
    """The local Milvus the URI names, if it names one (else the URI is someone else's)."""
    for service in (MilvusLiteService(settings), MilvusServerService(settings)):
        if service.enabled:
            return service
    return None
