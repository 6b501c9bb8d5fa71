"""Myntra's text-search metrics on hand-checked lists."""

from __future__ import annotations

import numpy as np
import pytest

from bench.ranking_metrics import mean_metrics, query_metrics


def test_metrics_of_a_hand_checked_list() -> None:
    relevance = np.array([0.0, 1.0, 0.5, 1.0, 0.0])
    m = query_metrics([0, 1, 2, 3], relevance)
    assert m["MRR"] == 0.5
    assert m["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    dcg = 1 / np.log2(3) + 0.5 / np.log2(4) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 0.5 / np.log2(4)
    assert m["NDCG@10"] == pytest.approx(dcg / idcg)
    assert m["P@50"] == 2 / 50 and m["R@50"] == 1.0


def test_a_perfect_list_and_an_empty_one() -> None:
    relevance = np.array([1.0, 1.0, 0.0])
    best = query_metrics([0, 1, 2], relevance)
    assert best["MRR"] == best["MAP"] == best["NDCG@10"] == best["R@50"] == 1.0
    empty = query_metrics([], relevance)
    assert empty == {"MRR": 0.0, "MAP": 0.0, "NDCG@10": 0.0, "P@50": 0.0, "R@50": 0.0}


def test_means_skip_queries_without_a_relevant_product() -> None:
    relevance = np.array([[1.0, 0.0], [0.5, 0.0]])
    assert mean_metrics([[0, 1], [1, 0]], relevance)["MRR"] == 1.0
