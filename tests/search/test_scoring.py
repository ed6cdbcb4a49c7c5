"""Clamped MaxSim, mean vectors and the deterministic top-k selection, against plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.search.scoring import (
    TopKAccumulator,
    dense_scores,
    docid_tie_ranks,
    impact_scores,
    iter_doc_chunks,
    masked_means,
    maxsim,
    maxsim_scores,
    select_top_k,
)


def _python_maxsim(query, doc):
    """sum_i max(0, max_j q_i . d_j) written out with loops."""
    total = 0.0
    for q in query:
        best = max(sum(a * b for a, b in zip(q, d)) for d in doc) if len(doc) else 0.0
        total += max(0.0, best)
    return total


def test_maxsim_clamps_each_query_vector_at_zero():
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    doc = np.array([[0.5, -0.9], [0.2, -0.1]])
    # q1 best = 0.5, q2 best = -0.1 -> clamped to 0 (without the clamp the score would be 0.4)
    assert maxsim(query, doc) == pytest.approx(0.5)
    assert maxsim(query, -np.abs(doc) - 0.1) == 0.0


def test_zero_vectors_and_empty_documents_contribute_nothing():
    query = np.array([[0.6, 0.8], [0.0, 0.0]])
    assert maxsim(query, np.zeros((0, 2))) == 0.0
    assert maxsim(query, np.array([[0.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.6)
    assert maxsim(np.zeros((0, 2)), np.ones((1, 2))) == 0.0


def test_batched_maxsim_equals_the_reference_with_empty_documents_and_queries():
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((n, 6)) for n in (3, 0, 1, 4, 0, 2)]
    queries = [rng.standard_normal((n, 6)) for n in (2, 0, 5)]
    doc_offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    query_offsets = np.concatenate([[0], np.cumsum([len(q) for q in queries])])
    scores = maxsim_scores(np.concatenate(queries), query_offsets, np.concatenate(docs), doc_offsets)
    assert scores.shape == (6, 3)
    expected = np.array([[_python_maxsim(q, d) for q in queries] for d in docs])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_masked_means_skip_zero_vectors_and_are_not_renormalised():
    rows = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    means = masked_means(rows, np.array([0, 3, 3, 4]))
    np.testing.assert_allclose(means, [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]])


def test_dense_and_impact_references():
    np.testing.assert_allclose(dense_scores(np.array([1.0, 2.0]), np.array([[1.0, 1.0], [0.0, -1.0]])), [3.0, -2.0])
    docs = [{"a": 2, "b": 1}, {"b": 5}, {}]
    assert impact_scores({"a": 3, "b": 2, "z": 9}, docs).tolist() == [8, 10, 0]


def test_select_top_k_breaks_ties_by_rank_also_at_the_cut_off():
    scores = np.array([1.0, 3.0, 1.0, 1.0, 2.0])
    ranks = np.array([4, 0, 1, 3, 2])  # position 2 has the smallest tie rank among the score-1 documents
    assert select_top_k(scores, 3, ranks).tolist() == [1, 4, 2]
    assert select_top_k(scores, 10, ranks).tolist() == [1, 4, 2, 3, 0]
    assert select_top_k(scores, 0, ranks).tolist() == []


def test_docid_tie_ranks_follow_string_order():
    ranks = docid_tie_ranks(["d10", "d2", "a", "d1"])
    assert [d for _, d in sorted(zip(ranks, ["d10", "d2", "a", "d1"]))] == ["a", "d1", "d10", "d2"]


def test_running_top_k_equals_one_shot_selection():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=200).astype(np.float32)  # many ties
    ranks = rng.permutation(200)
    accumulator = TopKAccumulator(17, ranks)
    for start, end in iter_doc_chunks(np.arange(201), 23):
        accumulator.update(np.arange(start, end), scores[start:end])
    indices, values = accumulator.result()
    assert indices.tolist() == select_top_k(scores, 17, ranks).tolist()
    assert values.tolist() == scores[indices].tolist()


def test_doc_chunks_respect_the_row_budget_but_always_progress():
    offsets = np.array([0, 5, 6, 20, 21, 22])
    chunks = list(iter_doc_chunks(offsets, 6))
    assert chunks == [(0, 2), (2, 3), (3, 5)]
    for start, end in chunks:
        assert offsets[end] - offsets[start] <= 6 or end == start + 1
