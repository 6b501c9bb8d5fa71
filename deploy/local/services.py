"""``stylestream dev up|down|status``: every local service, health-checked and idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from deploy.local.kafka import KafkaService
from deploy.local.milvus import MilvusLiteService, MilvusServerService, local_milvus
from deploy.local.postgres import PostgresService


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    detail: str


def _services(settings: Settings) -> list[KafkaService | PostgresService | MilvusLiteService]:
    services: list[KafkaService | PostgresService | MilvusLiteService] = [KafkaService(settings)]
    if not settings.postgres_dsn:
        services.append(PostgresService(settings))
    milvus = local_milvus(settings)
    if milvus is not None:
        services.append(milvus)
    return services


def up(settings: Settings) -> None:
    for service in _services(settings):
        service.up()


def _started(settings: Settings) -> list[KafkaService | PostgresService | MilvusLiteService]:
    """The services, plus a local Milvus of the other kind this project started earlier
    (the URI may have been switched since)."""
    services = _services(settings)
    for other in (MilvusLiteService(settings), MilvusServerService(settings)):
        if not other.enabled and other.process().pid() is not None:
            services.append(other)
    return services


def down(settings: Settings) -> list[str]:
    stopped = []
    for service in reversed(_started(settings)):
        if service.down():
            stopped.append(service.name)
    return stopped


def status(settings: Settings) -> list[ServiceStatus]:
    out = []
    for service in _started(settings):
        pid = service.pid() if isinstance(service, PostgresService) else service.process().pid()
        try:
            healthy = service.healthy()
            detail = "ok" if healthy else "not answering"
        except Exception as exc:  # status reports, it does not fail
            healthy, detail = False, str(exc).splitlines()[0][:120]
        out.append(ServiceStatus(service.name, pid is not None, healthy, f"pid={pid} {detail}"))
    return out
