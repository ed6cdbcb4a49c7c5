"""SearchResult and the one deterministic order every searcher, fusion and writer uses."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from pyserini_diffretriever.search.results import SearchResult, as_search_results, sort_results


def test_sort_orders_by_score_then_docid_whatever_the_input_order():
    hits = [SearchResult("b", 1.0), SearchResult("c", 2.0), SearchResult("a", 1.0), SearchResult("d", -1.0)]
    for shuffled in (hits, hits[::-1], hits[1:] + hits[:1]):
        assert [h.docid for h in sort_results(shuffled)] == ["c", "a", "b", "d"]


def test_sort_cuts_to_k_and_accepts_foreign_hits():
    hits = [SimpleNamespace(docid="x", score=0.5), SimpleNamespace(docid="y", score=0.7)]
    assert [h.docid for h in sort_results(hits, 1)] == ["y"]
    assert sort_results(hits, 0) == []


def test_results_are_frozen_and_copyable_from_any_hit():
    result = SearchResult("d1", 1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 2.0  # type: ignore[misc]
    assert as_search_results([SimpleNamespace(docid=7, score=1)]) == [SearchResult("7", 1.0)]
