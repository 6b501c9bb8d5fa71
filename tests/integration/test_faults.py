"""Faults against a real worker on real services: a store that goes away for a minute is waited
for (nothing dead-lettered, every event indexed once it is back); a good event between bad
ones is indexed; a large bad event is kept aside and replayed; drift is reconciled.

The outages stop this module's own Postgres and Milvus Lite server (not the shared ones)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.settings import Settings
from deploy.local.milvus import MilvusLiteService
from deploy.local.postgres import PostgresService
from deploy.local.process import free_port
from schemas.dead_letter import ErrorKind
from schemas.events import ImageRef, encode_event
from stylestream.cli import main
from tests.events import photo, record, upsert
from tests.integration.conftest import Stack, Worker, wait_for
from tests.synthetic import encode

pytestmark = pytest.mark.services
OUTAGE_S = 60.0


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Postgres and a Milvus Lite server of this module's own, free to stop and start."""
    home = tmp_path_factory.mktemp("faults")
    milvus_port = free_port()
    overrides = {
        "data_dir": str(home),
        "pg_port": str(free_port()),
        "milvus_lite_port": str(milvus_port),
        "milvus_uri": f"http://127.0.0.1:{milvus_port}",
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    postgres, milvus = PostgresService(settings), MilvusLiteService(settings)
    postgres.up()
    milvus.up()
    yield overrides
    milvus.down()
    postgres.down()


@pytest.fixture(scope="module")
def stack(
    make_stack: Callable[..., Stack],
    private: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    images = tmp_path_factory.mktemp("images")
    overrides = {k: v for k, v in private.items() if k != "data_dir"}
    made = make_stack(
        **overrides,
        retry_cap_s="4",  # quick to notice a store is back
        dead_letter_inline_bytes="600",  # larger originals are kept in Postgres
        allowed_image_roots=str(images),
    )
    yield made
    made.dispose()  # before this module's Postgres and Milvus stop


@pytest.fixture(scope="module")
def worker(stack: Stack, start_worker: Callable[[Stack], Worker]) -> Iterator[Worker]:
    worker = start_worker(stack)
    yield worker
    worker.stop()  # before its stores stop: a worker left waiting for them loads the machine


def probe(worker: Worker, path: str) -> int:
    url = f"http://127.0.0.1:{worker.stack.settings.metrics_port}{path}"
    try:
        return int(urllib.request.urlopen(url, timeout=2).status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def outage(
    stack: Stack, worker: Worker, service: PostgresService | MilvusLiteService, first: int
) -> None:
    """Products ``first``.. sent while ``service`` is down for OUTAGE_S: all indexed after."""
    dependency = "postgres" if isinstance(service, PostgresService) else "milvus"
    waits = worker.metric(f"stylestream_dependency_waits_total{{dependency={dependency}}}")
    letters = len(stack.dead_letters())
    assert service.down()
    down_at = time.monotonic()
    stack.send_raw([record(upsert(f"o{i}", 1, i)) for i in range(first, first + 10)])
    wait_for(lambda: probe(worker, "/readyz") == 503, timeout=OUTAGE_S / 2)
    while time.monotonic() - down_at < OUTAGE_S:
        assert worker.running(), worker.tail()
        assert probe(worker, "/healthz") == 200  # alive: waiting is not stuck
        time.sleep(2)
    service.up()
    wait_for(lambda: stack.repo.count_products() == first + 10, timeout=90)
    assert stack.index.count() == first + 10
    assert worker.metric(f"stylestream_dependency_waits_total{{dependency={dependency}}}") > waits
    assert len(stack.dead_letters(expected=letters, timeout=5)) == letters  # none new
    wait_for(lambda: probe(worker, "/readyz") == 200, timeout=30)


def test_a_good_event_between_two_bad_ones_is_indexed(stack: Stack, worker: Worker) -> None:
    good = record(upsert("o0", 1, 0))
    wrong_key = (b"not-o1", encode_event(upsert("o1", 1, 1)))
    stack.send_raw([(b"x", b"{broken"), good, wrong_key])
    wait_for(lambda: stack.repo.count_products() == 1, timeout=120)
    letters = stack.dead_letters(expected=2)
    assert sorted(dl.error_kind for dl in letters) == [ErrorKind.KEY_MISMATCH, ErrorKind.NOT_JSON]
    assert "o0" in stack.index.get(["o0"])


def test_a_milvus_outage_of_a_minute_loses_nothing(
    stack: Stack, worker: Worker, private: dict[str, str]
) -> None:
    wait_for(lambda: stack.repo.count_products() == 1, timeout=120)
    outage(stack, worker, MilvusLiteService(Settings(**private)), first=1)  # type: ignore[arg-type]


def test_a_postgres_outage_of_a_minute_loses_nothing(
    stack: Stack, worker: Worker, private: dict[str, str]
) -> None:
    outage(stack, worker, PostgresService(Settings(**private)), first=11)  # type: ignore[arg-type]


def test_a_large_bad_event_is_kept_aside_and_replayed_once_its_cause_is_fixed(
    stack: Stack, worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Its image is not there yet: dead-lettered (original kept in Postgres: over the inline
    limit); once the file exists, `stylestream dlq replay` indexes it; a second replay changes
    nothing and dead-letters nothing."""
    root = Path(stack.settings.allowed_image_roots[0])
    late = root / "late.png"
    event = upsert("late", 1, 3, image=ImageRef(path=str(late)), title="t" * 512)
    stack.send_raw([record(event)])
    letters = stack.dead_letters(keys=["late"])
    mine = [dl for dl in letters if dl.original_key == "late"]
    assert len(mine) == 1 and mine[0].error_kind is ErrorKind.IMAGE_UNAVAILABLE
    assert mine[0].original_stored and mine[0].original_base64 == ""
    env = stack.env()
    listed = CliRunner().invoke(
        main, ["dlq", "list", "--kind", "image_unavailable", "--json"], env=env
    )
    assert listed.exit_code == 0 and '"product_id": "late"' in listed.output
    late.write_bytes(encode(photo(3)[0]))
    replayed = CliRunner().invoke(main, ["dlq", "replay", "--product-id", "late"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 of 1" in replayed.output
    wait_for(lambda: stack.repo.get_product("late") is not None, timeout=60)
    stale = worker.metric("stylestream_events_stale_total")
    again = CliRunner().invoke(main, ["dlq", "replay", "--product-id", "late"], env=env)
    assert again.exit_code == 0
    wait_for(lambda: worker.metric("stylestream_events_stale_total") > stale, timeout=60)
    everything = stack.dead_letters(expected=10**6, timeout=10)  # the whole topic, as it is
    assert [dl.original_key for dl in everything].count("late") == 1
    refused = CliRunner().invoke(main, ["dlq", "replay"], env=env)
    assert refused.exit_code == 2  # no selection: refused, not everything replayed


def test_reconcile_repairs_milvus_to_the_ledger(stack: Stack, worker: Worker) -> None:
    wait_for(lambda: stack.repo.get_product("late") is not None, timeout=60)
    ids = sorted(p for page in stack.repo.live_versions() for p in page)
    stack.index.delete([ids[0]])
    stale = stack.index.get([ids[1]], with_vectors=True)[ids[1]]
    stack.index.upsert([replace(stale, version=0), replace(stale, product_id="ghost")])
    env = stack.env()
    dry = CliRunner().invoke(main, ["reconcile", "--dry-run"], env=env)
    assert dry.exit_code == 1, dry.output
    assert '"missing_count": 1' in dry.output and '"extra_count": 1' in dry.output
    fixed = CliRunner().invoke(main, ["reconcile"], env=env)
    assert fixed.exit_code == 0, fixed.output
    versions = {p: v for page in stack.index.versions() for p, v in page.items()}
    assert versions == {p: v for page in stack.repo.live_versions() for p, v in page.items()}
    assert CliRunner().invoke(main, ["reconcile", "--dry-run"], env=env).exit_code == 0
