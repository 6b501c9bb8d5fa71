"""One contract, every backend: the same tests run against the in-memory twins (no service)
and the real adapters (Milvus Lite in-process, Milvus Lite's server, a Milvus 2.3.5
standalone server; Postgres). Backends that need a service carry the ``services`` mark, so
``pytest -m 'not services'`` still proves the twins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.local.postgres import PostgresService
from stores.base import MetadataRepository, VectorIndex
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.migrate import upgrade
from stores.milvus import MilvusConfig, MilvusVectorIndex
from stores.postgres import PostgresRepository

DIM = 8
services = pytest.mark.services


@pytest.fixture(scope="session")
def milvus_server(milvus_standalone_server: tuple[str, int]) -> str:
    """A real Milvus 2.3.5 standalone server, for the same contract as Milvus Lite."""
    return milvus_standalone_server[0]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("lite-file", marks=services),
        pytest.param("lite-server", marks=services),
        pytest.param("milvus-standalone", marks=services),
    ]
)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "memory":
        yield MemoryVectorIndex("contract", DIM)
        return
    if request.param == "lite-file":
        uri = str(tmp_path / "milvus.db")
    elif request.param == "lite-server":
        uri = request.getfixturevalue("running_services").milvus_uri
    else:
        uri = request.getfixturevalue("milvus_server")
    name = f"contract_{request.param.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    idx = MilvusVectorIndex(MilvusConfig(uri), name, DIM)
    idx.drop()
    idx.ensure()
    yield idx
    idx.drop()
    idx.close()


@contextmanager
def contract_database(request: pytest.FixtureRequest) -> Iterator[PostgresRepository]:
    """A migrated database of its own on the local Postgres, dropped afterwards."""
    running: Settings = request.getfixturevalue("running_services")
    settings = running.model_copy(update={"pg_database": f"contract_{uuid.uuid4().hex[:8]}"})
    pg = PostgresService(settings)
    pg.ensure_database(settings.pg_database)
    upgrade(settings.pg_dsn)
    postgres = PostgresRepository.from_dsn(settings.pg_dsn)
    try:
        yield postgres
    finally:
        postgres.close()
        pg.drop_database(settings.pg_database)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=services)])
def repo(request: pytest.FixtureRequest) -> Iterator[MetadataRepository]:
    if request.param == "memory":
        yield MemoryRepository()
        return
    with contract_database(request) as postgres:
        yield postgres
