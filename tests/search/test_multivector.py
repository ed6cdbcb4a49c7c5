"""MultiVectorSearcher: exact mode equals exhaustive MaxSim; default mode recall and exact scores."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.search.index_format import IndexMismatchError
from pyserini_diffretriever.search.multivector import MultiVectorSearcher
from pyserini_diffretriever.search.scoring import maxsim

from .index_builders import (
    FakeQueryEncoder,
    FakeSingleQueryEncoder,
    clustered_collection,
    random_multi_docs,
    write_multi_index,
)


def reference_ranking(query, docs, docids, k):
    """Exhaustive float64 clamped MaxSim, ordered by (-score, docid)."""
    scored = sorted(((-maxsim(query, d), docid) for d, docid in zip(docs, docids)))[:k]
    return [(docid, -negative) for negative, docid in scored]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """60 random documents incl. exact duplicates (ties) and one without vectors."""
    docs = random_multi_docs(57, 8, seed=11)
    docs += [docs[3].copy(), docs[3].copy(), np.zeros((0, 8), dtype=np.float32)]
    docids = [f"doc{i:02d}" for i in range(57)] + ["a-dup", "zz-dup", "empty"]
    folder = write_multi_index(tmp_path_factory.mktemp("small") / "multi", docs, docids)
    queries = [random_multi_docs(1, 8, seed=100 + i, max_vectors=4)[0] for i in range(5)] + [docs[3][:2]]
    return folder, docs, docids, queries


def assert_same_ranking(hits, expected):
    assert [h.docid for h in hits] == [d for d, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_bytes", [256 << 20, 2_000])  # one chunk, or many tiny ones
def test_exact_mode_equals_exhaustive_maxsim_with_docid_tie_break(small, chunk_bytes):
    folder, docs, docids, queries = small
    searcher = MultiVectorSearcher(folder, mode="exact", chunk_bytes=chunk_bytes)
    assert searcher.token_index_info is None  # exact mode never builds a token index
    for query in queries:
        for k in (1, 7, 60, 100):
            assert_same_ranking(searcher.search(query, k=k), reference_ranking(query, docs, docids, k))
    top = [h.docid for h in searcher.search(queries[-1], k=3)]
    assert top == ["a-dup", "doc03", "zz-dup"]  # identical scores, docid order


def test_batch_search_equals_single_searches_in_both_modes(small):
    folder, _, _, queries = small
    ids = [f"q{i}" for i in range(len(queries))]
    for mode in ("exact", "default"):
        searcher = MultiVectorSearcher(folder, mode=mode)
        batch = searcher.batch_search(queries, ids, k=10, threads=2)
        assert list(batch) == ids
        for qid, query in zip(ids, queries):
            assert batch[qid] == searcher.search(query, k=10)


def test_default_mode_scores_are_exact_maxsim(small):
    folder, docs, docids, queries = small
    by_id = dict(zip(docids, docs))
    for hit in MultiVectorSearcher(folder).search(queries[0], k=20):
        assert hit.score == pytest.approx(maxsim(queries[0], by_id[hit.docid]), abs=1e-5)


def test_token_hits_alone_are_exact_when_the_flat_token_search_sees_every_vector(small):
    folder, docs, docids, queries = small
    searcher = MultiVectorSearcher(folder, sources=("tokens",), token_index="flat", token_hits=10_000, candidates=60)
    for query in queries:
        assert_same_ranking(searcher.search(query, k=10), reference_ranking(query, docs, docids, 10))


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """3,000 documents x 8 vectors around 60 topics, and 40 queries x 4 vectors on the same topics."""
    docs = clustered_collection(3000, 8, 32, 60, seed=5)
    folder = write_multi_index(
        tmp_path_factory.mktemp("clustered") / "multi", docs, [f"d{i}" for i in range(len(docs))]
    )
    queries = clustered_collection(40, 4, 32, 60, seed=5)
    ids = [f"q{i}" for i in range(len(queries))]
    exact = MultiVectorSearcher(folder, mode="exact").batch_search(queries, ids, k=100)
    return folder, queries, ids, exact


@pytest.mark.parametrize("options", [{}, {"token_index": "ivf", "nlist": 64}, {"sources": ("means",)}])
def test_default_mode_recall_at_100_against_exact(clustered, options):
    folder, queries, ids, exact = clustered
    found = MultiVectorSearcher(folder, **options).batch_search(queries, ids, k=100)
    recall = np.mean([len({h.docid for h in found[q]} & {h.docid for h in exact[q]}) / 100 for q in ids])
    assert recall >= 0.99


def test_text_queries_use_the_encoder_and_encode_batch(small):
    folder, _, _, queries = small
    encoder = FakeQueryEncoder({"a": queries[0], "b": queries[1]}, "multi", {"hidden_size": 8})
    searcher = MultiVectorSearcher(folder, encoder, mode="exact")
    assert searcher.search("a", k=5) == searcher.search(queries[0], k=5)
    batch = searcher.batch_search(["a", "b"], ["1", "2"], k=5)
    assert encoder.calls == {"encode": 1, "encode_batch": 1}
    assert batch["2"] == searcher.search(queries[1], k=5)
    single = FakeSingleQueryEncoder({"a": queries[0]}, "multi")
    assert MultiVectorSearcher(folder, single, mode="exact").batch_search(["a"], ["1"], k=5)["1"] == batch["1"]


def test_query_problems_are_reported(small):
    folder, _, _, _ = small
    searcher = MultiVectorSearcher(folder, mode="exact")
    with pytest.raises(ValueError, match="query_encoder"):
        searcher.search("text without encoder")
    with pytest.raises(IndexMismatchError, match="dimension 5, the index 8") as error:
        searcher.search(np.ones((2, 5), dtype=np.float32))
    assert error.value.differences == {"dimension": (8, 5)}
    assert searcher.search(np.zeros((0, 8), dtype=np.float32)) == []
    assert searcher.search(np.zeros((3, 8), dtype=np.float32)) == []  # only truncated (zero) vectors
    padded = np.concatenate([small[3][0], np.zeros((2, 8), dtype=np.float32)])
    assert searcher.search(padded, k=5) == searcher.search(small[3][0], k=5)
    assert len(searcher.search(np.ones(8, dtype=np.float32), k=3)) == 3  # a single [H] vector is one query vector
    with pytest.raises(ValueError, match="query ids"):
        searcher.batch_search([np.ones((1, 8))], ["1", "2"])


@pytest.mark.parametrize(
    "kwargs", [{"mode": "fast"}, {"candidates": 0}, {"sources": ("tokens", "bm25")}, {"nprobe": -1}]
)
def test_invalid_options_are_rejected(small, kwargs):
    with pytest.raises(ValueError):
        MultiVectorSearcher(small[0], **kwargs)
