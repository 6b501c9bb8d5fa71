"""The MetadataRepository contract (stores/base.py): only newer versions apply, deletes leave
tombstones, attributes are replaced whole, and every read the search, the re-index, the miner
and training make; on the in-memory twin and on Postgres."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from processors.text import parse_terms, product_text
from schemas.attributes import TAXONOMY_V1
from stores.base import MetadataRepository, TextMatch
from stores.filters import Filters
from stores.rows import decode_base, encode_base


def row(pid: str, version: int, title: str, **extra: Any) -> dict[str, Any]:
    """A products row as stores/rows.postgres_row shapes it (every row of a batch has the same
    keys, as the writer's do)."""
    now = datetime.now(UTC)
    return {
        "product_id": pid,
        "version": version,
        "title": title,
        "brand": None,
        "category": "dress",
        "price": Decimal("1.50"),
        "currency": "EUR",
        "image_ref": "x",
        "synthetic_fields": [],
        "roi_box": [0, 0, 1, 1],
        "image_width": 1,
        "image_height": 1,
        "primary_colour": "red",
        "colour_fractions": {"red": 1.0},
        "colour_vector": [0.5],
        "model_version": "m",
        "event_time": now,
        "produced_at": now,
        "indexed_at": now,
        "thumbnail": None,
        "base_embedding": None,
        "attributes": [],
        **extra,
    }


def attribute(key: str, confidence: float = 0.9) -> dict[str, Any]:
    return {"attribute_key": key, "confidence": confidence, "source": "model", "model_version": "t"}


def test_only_newer_versions_apply_and_deletes_leave_tombstones(repo: MetadataRepository) -> None:
    assert repo.apply([row("a", 2, "v2"), row("b", 1, "b1")], []) == (["a", "b"], [])
    assert repo.apply([row("a", 2, "dup")], []) == ([], [])
    assert repo.apply([row("a", 1, "old")], []) == ([], [])
    assert repo.get_product("a")["title"] == "v2"  # type: ignore[index]
    assert repo.ledger(["a", "zz"]) == {"a": repo.ledger(["a"])["a"]}
    assert repo.ledger(["a"])["a"].version == 2 and not repo.ledger(["a"])["a"].deleted
    assert repo.apply([row("a", 3, "v3")], [("b", 1)]) == (["a"], ["b"])
    assert repo.get_product("b") is None and repo.ledger(["b"])["b"].deleted
    assert repo.apply([row("b", 1, "again")], [("b", 1)]) == ([], [])  # stale after delete
    assert repo.apply([], [("b", 0)]) == ([], [])  # an older delete changes nothing
    assert repo.apply([row("b", 2, "back")], []) == (["b"], [])  # a newer version returns
    assert repo.apply([], [("never", 4)]) == ([], ["never"])  # a tombstone for the unseen
    assert repo.apply([row("never", 3, "late")], []) == ([], [])
    assert repo.count_products() == 2
    assert repo.get_products([]) == {} and repo.ledger([]) == {}


def test_base_embeddings_are_read_without_the_rest_of_the_row(repo: MetadataRepository) -> None:
    vector = bytes(range(8))
    repo.apply([row("e1", 1, "one", base_embedding=vector), row("e2", 1, "two")], [])
    assert repo.base_embeddings(["e2", "nope", "e1"]) == {"e1": ("m", vector)}
    assert repo.base_embeddings([]) == {}
    repo.apply([], [("e1", 2)])
    assert repo.base_embeddings(["e1"]) == {}


def test_reads_for_results_pages_and_facets(repo: MetadataRepository) -> None:
    repo.apply(
        [
            row("p1", 1, "one", thumbnail=b"webp", category="bag"),
            row("p2", 1, "two", attributes=[attribute("colour.red"), attribute("pattern.striped")]),
            row("p3", 1, "three", attributes=[attribute("colour.red", 0.5)]),
        ],
        [],
    )
    summary = repo.get_summaries(["p1", "nope"])
    assert summary == {
        "p1": {
            "product_id": "p1",
            "title": "one",
            "category": "bag",
            "price": Decimal("1.50"),
            "currency": "EUR",
        }
    }
    product = repo.get_product("p2")
    assert product is not None and product["colour_fractions"] == {"red": 1.0}
    assert "attributes" not in product
    assert repo.get_thumbnail("p1") == b"webp" and repo.get_thumbnail("p2") is None
    assert repo.get_thumbnail("nope") is None
    assert repo.categories() == ["bag", "dress"]
    attributes = repo.get_attributes(["p3", "p2", "p1"])
    assert list(attributes) == ["p2", "p3"]
    assert [a["attribute_key"] for a in attributes["p2"]] == ["colour.red", "pattern.striped"]
    assert attributes["p3"][0]["confidence"] == 0.5 and attributes["p3"][0]["source"] == "model"
    assert repo.products_with("colour.red") == ["p2", "p3"]
    assert repo.products_with("colour.red", limit=1) == ["p2"]
    counts = {t["key"]: t["products"] for t in repo.taxonomy()}
    assert len(counts) == len(TAXONOMY_V1)
    assert counts["colour.red"] == 2 and counts["pattern.striped"] == 1 and counts["fit.slim"] == 0


def test_rows_the_table_would_refuse_are_refused(repo: MetadataRepository) -> None:
    with pytest.raises(Exception, match=r"nope|unknown|not-null|null value"):
        repo.apply([row("a", 1, "x", nope=1)], [])
    with pytest.raises(Exception, match=r"title|null value|not-null"):
        repo.apply([{**row("b", 1, "x"), "title": None}], [])
    assert repo.count_products() == 0 and repo.ledger(["a", "b"]) == {}  # all or nothing


def test_attributes_are_replaced_whole_and_removed_with_the_product(
    repo: MetadataRepository,
) -> None:
    repo.apply(
        [row("p", 1, "x", attributes=[attribute("colour.red"), attribute("colour.blue")])], []
    )
    repo.apply([row("p", 2, "x", attributes=[attribute("pattern.dotted")])], [])
    assert [a["attribute_key"] for a in repo.get_attributes(["p"])["p"]] == ["pattern.dotted"]
    repo.apply([], [("p", 2)])
    assert repo.get_attributes(["p"]) == {} and repo.products_with("pattern.dotted") == []


def test_reads_for_the_reindex_the_miner_and_training(repo: MetadataRepository) -> None:
    before = repo.now() - timedelta(seconds=1)
    vectors = np.eye(3, dtype=np.float32)
    repo.apply(
        [row(f"p{i}", 1, "t", base_embedding=encode_base(vectors[i])) for i in range(3)]
        + [row("bare", 1, "t")],
        [("gone", 1)],
    )
    assert repo.product_ids(10) == ["bare", "p0", "p1", "p2"] and repo.product_ids(2) == [
        "bare",
        "p0",
    ]
    batches = list(repo.product_batches(batch=3))
    assert [len(b) for b in batches] == [3, 1]
    stored = {r["product_id"]: r for b in batches for r in b}
    assert list(stored) == ["bare", "p0", "p1", "p2"]
    assert stored["bare"]["base_embedding"] is None
    assert np.allclose(decode_base(stored["p1"]["base_embedding"]), vectors[1])
    assert {"version", "category", "price", "colour_vector", "predicted_category"} <= set(
        stored["p0"]
    )
    changed, now = repo.changed_since(before)
    assert set(changed) == {"p0", "p1", "p2", "bare", "gone"} and changed["gone"][1]
    assert not changed["p0"][1] and now >= before
    assert repo.changed_since(now + timedelta(seconds=5))[0] == {}
    assert repo.base_versions() == ["m"]
    repo.ping()


def test_then_runs_before_the_commit_and_a_failure_in_it_commits_nothing(
    repo: MetadataRepository,
) -> None:
    repo.apply([row("t", 1, "one")], [])
    seen: list[tuple[list[str], list[str]]] = []

    def refuse(upserted: list[str], deleted: list[str]) -> None:
        seen.append((upserted, deleted))
        raise RuntimeError("the vector index refused")

    with pytest.raises(RuntimeError, match="refused"):
        repo.apply([row("t", 2, "two"), row("u", 1, "new")], [("gone", 3)], then=refuse)
    assert seen == [(["t", "u"], ["gone"])]
    assert repo.get_product("t")["title"] == "one"  # type: ignore[index]
    assert repo.get_product("u") is None and repo.ledger(["u", "gone"]) == {}
    assert repo.apply([row("t", 2, "two")], [], then=lambda u, d: seen.append((u, d))) == (
        ["t"],
        [],
    )
    assert seen[-1] == (["t"], [])


def test_a_second_writer_of_a_product_waits_for_the_first_commit(
    repo: MetadataRepository,
) -> None:
    """An upsert (v2) and a delete (v3) of one product from two writers: the second waits
    while the first holds the product inside ``then``, then sees the version it must beat."""
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(upserted: list[str], deleted: list[str]) -> None:
        order.append(f"first sees {upserted}")
        started.set()
        assert release.wait(10)

    first = threading.Thread(target=lambda: repo.apply([row("x", 2, "v2")], [], then=slow))
    first.start()
    assert started.wait(10)
    second: list[tuple[list[str], list[str]]] = []
    other = threading.Thread(
        target=lambda: second.append(
            repo.apply([], [("x", 3)], then=lambda u, d: order.append(f"second sees {d}"))
        )
    )
    other.start()
    other.join(0.5)
    assert other.is_alive()  # blocked behind the first writer's lock
    release.set()
    first.join(10)
    other.join(10)
    assert order == ["first sees ['x']", "second sees ['x']"] and second == [([], ["x"])]
    assert repo.ledger(["x"])["x"].deleted and repo.get_product("x") is None


def test_live_versions_and_rows_read_under_the_writers_lock(repo: MetadataRepository) -> None:
    repo.apply([row(f"v{i:02d}", i + 1, "t") for i in range(12)], [("v03", 99)])
    pages = list(repo.live_versions(batch=5))
    merged = {pid: v for page in pages for pid, v in page.items()}
    assert len(pages) == 3 and "v03" not in merged and merged["v11"] == 12
    started, release = threading.Event(), threading.Event()
    seen: list[dict[str, Any]] = []

    def hold(rows: dict[str, dict[str, Any]]) -> None:
        seen.append(rows)
        started.set()
        assert release.wait(10)

    reader = threading.Thread(target=lambda: repo.locked_rows(["v01", "v03", "nope"], hold))
    reader.start()
    assert started.wait(10)
    writer = threading.Thread(target=lambda: repo.apply([row("v01", 50, "newer")], []))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive()  # waits for the locked read to end
    release.set()
    reader.join(10)
    writer.join(10)
    assert sorted(seen[0]) == ["v01"] and seen[0]["v01"]["version"] == 2
    assert seen[0]["v01"]["base_embedding"] is None and "thumbnail" not in seen[0]["v01"]
    assert seen[0]["v01"]["attributes"] == []
    assert repo.ledger(["v01"])["v01"].version == 50


def test_a_locked_read_waits_for_a_writer_inserting_a_new_product(
    repo: MetadataRepository,
) -> None:
    """The reconcile must not see a product a writer is adding (in Milvus, not yet committed
    in Postgres) as one to delete: its locked read waits for the insert to commit."""
    started, release = threading.Event(), threading.Event()

    def slow(upserted: list[str], deleted: list[str]) -> None:
        started.set()
        assert release.wait(10)

    writer = threading.Thread(target=lambda: repo.apply([row("fresh", 1, "new")], [], then=slow))
    writer.start()
    assert started.wait(10)
    seen: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: repo.locked_rows(["fresh"], seen.append))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive()  # held behind the insert
    release.set()
    writer.join(10)
    reader.join(10)
    assert list(seen[0]) == ["fresh"]


def worded(pid: str, words: str, version: int = 1, **extra: Any) -> dict[str, Any]:
    return row(pid, version, words, search_text=words, **extra)


def ids(matches: list[TextMatch]) -> list[str]:
    return [m.product_id for m in matches]


@pytest.fixture
def shop(repo: MetadataRepository) -> MetadataRepository:
    repo.apply(
        [
            worded("boot-1", "Black leather ankle boots with heel", category="ankle-boot"),
            worded("boot-2", "Black ankle boot", category="ankle-boot", primary_colour="black"),
            worded("dress-1", "Red striped dress", attributes=[attribute("pattern.striped")]),
            worded("dress-2", "Red dresses, long", price=Decimal("80.00")),
            worded("bag-1", "Brown leather bag", category="bag", primary_colour="brown"),
        ],
        [],
    )
    return repo


def test_text_search_matches_any_word_and_ranks_more_words_first(shop: MetadataRepository) -> None:
    found = shop.text_search(parse_terms("black ankle boots"), 10)
    assert set(ids(found)) == {"boot-1", "boot-2"}
    assert all(m.score > 0 and len(m.terms) == 1 for m in found)
    # plural and singular, any case, match alike; stop words and punctuation never match
    assert set(ids(shop.text_search(parse_terms("DRESS"), 10))) == {"dress-1", "dress-2"}
    assert ids(shop.text_search(parse_terms("the with"), 10)) == []
    both = shop.text_search(parse_terms("red striped"), 10)
    assert ids(both)[0] == "dress-1" and set(ids(both)) == {"dress-1", "dress-2"}
    assert both[0].score > both[1].score
    assert ids(shop.text_search(parse_terms("leather"), 10)) == ["bag-1", "boot-1"]  # ties: id


def test_text_search_pages_and_filters_like_the_vector_index(shop: MetadataRepository) -> None:
    every = ids(shop.text_search(parse_terms("black red leather"), 10))
    assert len(every) == 5
    assert ids(shop.text_search(parse_terms("black red leather"), 2, offset=2)) == every[2:4]
    terms = parse_terms("black red leather")
    assert set(ids(shop.text_search(terms, 10, Filters(category="ankle-boot")))) == {
        "boot-1",
        "boot-2",
    }
    assert ids(shop.text_search(terms, 10, Filters(colour="brown"))) == ["bag-1"]
    assert ids(shop.text_search(terms, 10, Filters(min_price=50))) == ["dress-2"]
    assert ids(shop.text_search(terms, 10, Filters(attributes=("pattern.striped",)))) == ["dress-1"]
    assert ids(shop.text_search(terms, 10, Filters(category="none"))) == []


def test_weighted_and_negative_terms(shop: MetadataRepository) -> None:
    plain = shop.text_search(parse_terms({"black boots": 1}), 10)
    demoted = shop.text_search(parse_terms({"black boots": 1, "heel": -0.5}), 10)
    excluded = shop.text_search(parse_terms({"black boots": 1, "heel": -1}), 10)
    assert set(ids(plain)) == set(ids(demoted)) == {"boot-1", "boot-2"}
    by_id = {m.product_id: m for m in demoted}
    assert by_id["boot-1"].terms[1] > 0 and by_id["boot-2"].terms[1] == 0
    assert by_id["boot-1"].score < {m.product_id: m for m in plain}["boot-1"].score
    assert ids(demoted)[0] == "boot-2"
    assert ids(excluded) == ["boot-2"]
    # a heavier term outranks a lighter one
    heavy = shop.text_search(parse_terms({"bag": 3, "dress": 1}), 10)
    assert ids(heavy)[0] == "bag-1"


def test_query_syntax_is_only_words(shop: MetadataRepository) -> None:
    for hostile in ["red & !black | (leather:*)", "red' OR 1=1 --", "<->", "\x00 red"]:
        terms = parse_terms(hostile) if any(c.isalnum() for c in hostile) else None
        if terms is None:
            continue
        found = shop.text_search(terms, 10)
        assert all(m.score > 0 for m in found)
    assert {"dress-1", "dress-2"} <= set(ids(shop.text_search(parse_terms("red' OR 1=1 --"), 10)))


def test_excluding_terms_need_all_their_words_and_strings_exclude_dashed_words(
    shop: MetadataRepository,
) -> None:
    # "leather heel" excludes only what has both words: boot-1, not bag-1
    found = ids(shop.text_search(parse_terms({"leather": 1, "leather heel": -1}), 10))
    assert found == ["bag-1"]
    assert ids(shop.text_search(parse_terms("black boots -heel"), 10)) == ["boot-2"]


def test_text_excluded_names_the_given_products_an_excluding_term_refuses(
    shop: MetadataRepository,
) -> None:
    """What keeps dense text results in line with the words' exclusions (search/text.py)."""
    every = ["boot-1", "boot-2", "dress-1", "dress-2", "bag-1", "nowhere"]
    terms = parse_terms({"leather": 1, "leather heel": -1, "striped": -2})
    assert shop.text_excluded(every, terms) == {"boot-1", "dress-1"}
    assert shop.text_excluded(["boot-2", "bag-1"], terms) == set()
    assert shop.text_excluded(every, parse_terms({"black": 1, "heel": -0.5})) == set()
    assert shop.text_excluded([], terms) == set()
    assert shop.text_excluded(every, parse_terms("boots -HEELS")) == {"boot-1"}  # stemmed


def test_accented_titles_meet_folded_queries(repo: MetadataRepository) -> None:
    text = product_text("Crêpe Café dress", None, "dress", "red", [])
    repo.apply([worded("crepe-1", text)], [])
    assert ids(repo.text_search(parse_terms("crepe"), 10)) == ["crepe-1"]
    assert ids(repo.text_search(parse_terms("CRÊPE"), 10)) == ["crepe-1"]


def test_text_follows_versions_and_deletes(shop: MetadataRepository) -> None:
    shop.apply([worded("bag-1", "Green canvas tote", version=2)], [])
    assert ids(shop.text_search(parse_terms("canvas"), 10)) == ["bag-1"]
    assert "bag-1" not in ids(shop.text_search(parse_terms("leather"), 10))
    shop.apply([], [("boot-1", 2)])
    assert ids(shop.text_search(parse_terms("heel"), 10)) == []
