"""The binary index's contract, on its in-memory twin and a real Milvus standalone server:
Hamming order, the neutral filters, upsert replacing, deletes, versions. Milvus Lite 3 has no
binary vectors: the adapter says so in words."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from config.settings import Settings
from stores.base import IndexRow
from stores.codes import (
    BinaryVectorsUnsupported,
    Candidate,
    CodeIndex,
    CodeIndexConfig,
    MemoryCodeIndex,
    MilvusCodeIndex,
)
from stores.filters import Filters
from stores.milvus import MilvusConfig
from tests.contract.conftest import services

BITS = 64
EXACT = CodeIndexConfig(index_type="BIN_IVF_FLAT", nlist=4, nprobe=4)  # every list: exact


@pytest.fixture(params=["memory", pytest.param("milvus-standalone", marks=services)])
def codes(request: pytest.FixtureRequest) -> Iterator[CodeIndex]:
    if request.param == "memory":
        yield MemoryCodeIndex(BITS)
        return
    uri = request.getfixturevalue("milvus_server")
    index = MilvusCodeIndex(MilvusConfig(uri), f"codes_{uuid.uuid4().hex[:8]}", BITS, EXACT)
    index.drop()
    index.ensure()
    yield index
    index.drop()
    index.close()


def code(ones: int) -> np.ndarray:
    """A code with its first ``ones`` bits set: Hamming distance between two is the
    difference of their counts."""
    bits = np.zeros(BITS, dtype=np.uint8)
    bits[:ones] = 1
    return np.packbits(bits)


def rows(n: int) -> list[IndexRow]:
    return [
        IndexRow(
            product_id=f"p{i:02d}",
            version=1,
            category="dress" if i % 2 else "shirt",
            price=10.0 * i,
            primary_colour="red" if i % 3 == 0 else "blue",
            attributes=("sleeve.long",) if i % 4 == 0 else ("sleeve.short",),
        )
        for i in range(n)
    ]


def ids(found: list[list[Candidate]]) -> list[list[str]]:
    return [[c.product_id for c in query] for query in found]


def fill(index: CodeIndex, n: int = 12) -> None:
    index.upsert(rows(n), np.stack([code(3 * i) for i in range(n)]))


def test_nearest_codes_come_first(codes: CodeIndex) -> None:
    fill(codes)
    found = codes.search(np.stack([code(0), code(19)]), 3)
    assert ids(found) == [["p00", "p01", "p02"], ["p06", "p07", "p05"]]
    assert codes.count() == 12


def test_a_request_s_nprobe_is_taken_even_past_the_lists(codes: CodeIndex) -> None:
    fill(codes)
    for nprobe in (1, 4, 10**6):  # more lists than there are: all of them
        found = codes.search(np.stack([code(0)]), 2, nprobe=nprobe)
        assert len(found[0]) == 2
    assert ids(codes.search(np.stack([code(0)]), 3, nprobe=10**6)) == [["p00", "p01", "p02"]]


def test_the_neutral_filters_narrow_a_hamming_search(codes: CodeIndex) -> None:
    fill(codes)
    dresses = codes.search(np.stack([code(0)]), 3, Filters(category="dress"))
    assert ids(dresses) == [["p01", "p03", "p05"]]
    red = codes.search(np.stack([code(0)]), 2, Filters(colour="red", min_price=20))
    assert ids(red) == [["p03", "p06"]]
    long_sleeves = codes.search(np.stack([code(0)]), 5, Filters(attributes=("sleeve.long",)))
    assert ids(long_sleeves) == [["p00", "p04", "p08"]]


def test_upsert_replaces_and_delete_removes(codes: CodeIndex) -> None:
    fill(codes)
    moved = [IndexRow(product_id="p11", version=2, category="shirt")]
    codes.upsert(moved, np.stack([code(0)]))
    codes.delete(["p00"])
    # each candidate comes with the version its code was written for
    assert codes.search(np.stack([code(0)]), 2) == [[Candidate("p11", 2), Candidate("p01", 1)]]
    versions = {k: v for page in codes.versions(batch=5) for k, v in page.items()}
    assert versions["p11"] == 2 and "p00" not in versions and len(versions) == 11
    with pytest.raises(ValueError):
        codes.upsert(rows(2), np.zeros((2, 3), dtype=np.uint8))  # not 64 bits


@services
def test_milvus_lite_3_says_it_has_no_binary_vectors(running_services: Settings) -> None:
    index = MilvusCodeIndex(
        MilvusConfig(running_services.milvus_uri), f"codes_{uuid.uuid4().hex[:8]}", BITS, EXACT
    )
    with pytest.raises(BinaryVectorsUnsupported, match="binary"):
        index.ensure()
    index.close()
