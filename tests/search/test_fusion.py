"""The paper's min-max fusion on hand-made examples, and the HybridSearcher-shaped wrapper."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyserini_diffretriever.search.fusion import (
    MinMaxHybridSearcher,
    fuse_min_max,
    fuse_min_max_hits,
    normalize_min_max,
)
from pyserini_diffretriever.search.results import SearchResult


def hits(*pairs):
    return [SimpleNamespace(docid=d, score=s) for d, s in pairs]


def as_pairs(results):
    return [(r.docid, pytest.approx(r.score)) for r in results]


def test_union_with_missing_side_scoring_zero():
    dense = hits(("a", 10.0), ("b", 6.0), ("c", 2.0))  # -> a 1, b 0.5, c 0
    sparse = hits(("b", 30.0), ("d", 20.0), ("a", 10.0))  # -> b 1, d 0.5, a 0
    fused = fuse_min_max_hits(dense, sparse, alpha=0.5)
    # a: .5*1 + .5*0 = .5 ; b: .5*.5 + .5*1 = .75 ; c: 0 (+ missing 0) ; d: missing 0 + .5*.5 = .25
    assert as_pairs(fused) == [("b", 0.75), ("a", 0.5), ("d", 0.25), ("c", 0.0)]


def test_alpha_weighs_run_a():
    dense, sparse = hits(("a", 1.0), ("b", 0.0)), hits(("b", 1.0), ("a", 0.0))
    assert as_pairs(fuse_min_max_hits(dense, sparse, alpha=0.8)) == [("a", 0.8), ("b", pytest.approx(0.2))]
    assert as_pairs(fuse_min_max_hits(dense, sparse, alpha=0.0)) == [("b", 1.0), ("a", 0.0)]


def test_equal_scores_normalise_to_zero_instead_of_dividing_by_zero():
    # max == min: the reference implementation divides by max(max - min, 1e-9), so the whole side is 0
    assert normalize_min_max(hits(("a", 3.0), ("b", 3.0))) == {"a": 0.0, "b": 0.0}
    assert normalize_min_max(hits(("only", 7.5))) == {"only": 0.0}
    fused = fuse_min_max_hits(hits(("x", 5.0)), hits(("y", 2.0), ("x", 1.0)), alpha=0.5)
    assert as_pairs(fused) == [("y", 0.5), ("x", 0.0)]


def test_only_the_top_depth_of_each_run_is_normalised_and_fused():
    dense = hits(("a", 4.0), ("b", 3.0), ("c", 0.0))
    assert normalize_min_max(dense, depth=2) == {"a": 1.0, "b": 0.0}
    fused = fuse_min_max_hits(dense, hits(("c", 9.0), ("a", 1.0)), alpha=0.5, depth=1)
    assert {r.docid for r in fused} == {"a", "c"}


def test_ties_are_broken_by_docid_and_input_order_does_not_matter():
    dense = hits(("z", 1.0), ("m", 1.0), ("k", 0.0))
    sparse = hits(("k", 1.0), ("z", 0.0))
    first = fuse_min_max_hits(dense, sparse)
    second = fuse_min_max_hits(dense[::-1], sparse[::-1])
    # z: .5*1 + .5*0, m: .5*1 + 0 (missing), k: .5*0 + .5*1 -> all 0.5, so docid order decides
    assert as_pairs(first) == as_pairs(second) == [("k", 0.5), ("m", 0.5), ("z", 0.5)]


def test_duplicate_docids_keep_their_best_score_and_k_cuts():
    fused = fuse_min_max_hits(hits(("a", 1.0), ("a", 5.0), ("b", 3.0)), [], alpha=1.0, k=1)
    assert as_pairs(fused) == [("a", 1.0)]


def test_runs_are_fused_per_query_including_queries_of_one_run_only():
    run_a = {"q1": hits(("a", 2.0), ("b", 1.0)), "q2": hits(("c", 1.0), ("d", 0.0))}
    run_b = {"q1": hits(("b", 2.0), ("a", 1.0)), "q3": hits(("e", 3.0), ("f", 1.0))}
    fused = fuse_min_max(run_a, run_b, alpha=0.5)
    assert list(fused) == ["q1", "q2", "q3"]
    assert as_pairs(fused["q1"]) == [("a", 0.5), ("b", 0.5)]
    assert as_pairs(fused["q3"]) == [("e", 0.5), ("f", 0.0)]


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"alpha": -0.1}, {"depth": 0}, {"k": 0}])
def test_invalid_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        fuse_min_max({}, {}, **kwargs)


class _Searcher:
    """A searcher returning fixed hits and recording how deep it was asked."""

    def __init__(self, table):
        self.table = table
        self.asked = []

    def search(self, query, k=10):
        self.asked.append(k)
        return sorted(self.table[query], key=lambda h: -h.score)[:k]

    def batch_search(self, queries, q_ids, k=10, threads=1):
        self.asked.append(k)
        return {qid: self.search(q, k) for q, qid in zip(queries, q_ids)}


def test_hybrid_searcher_retrieves_depth_per_side_and_returns_k():
    dense = _Searcher({"q": hits(("a", 3.0), ("b", 2.0), ("c", 1.0))})
    sparse = _Searcher({"q": hits(("c", 9.0), ("d", 1.0))})
    searcher = MinMaxHybridSearcher(dense, sparse, alpha=0.5, depth=50)
    single = searcher.search("q", k=2)
    assert dense.asked == [50] and sparse.asked == [50]
    assert len(single) == 2 and all(isinstance(r, SearchResult) for r in single)
    batch = searcher.batch_search(["q"], [7], k=2)
    assert list(batch) == ["7"] and batch["7"] == single
    assert batch["7"] == fuse_min_max_hits(dense.search("q", 50), sparse.search("q", 50), 0.5, 50, 2)
