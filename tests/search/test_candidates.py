"""Candidate generators, each alone: means, token hits with MaxSim bounds, centroid interaction; and that a new
generator plugs into MultiVectorSearcher by name."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.indexing.compress_multi import compress_multivector
from pyserini_diffretriever.search import candidates as cand
from pyserini_diffretriever.search.compressed_index import CompressedMultiVectorIndex
from pyserini_diffretriever.search.multivector import MultiVectorSearcher
from pyserini_diffretriever.search.multivector_index import MultiVectorIndex
from pyserini_diffretriever.search.scoring import maxsim

from .index_builders import clustered_collection, random_multi_docs, write_multi_index


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("candidates")
    docs = clustered_collection(300, 6, 16, n_topics=12, seed=3)
    docids = [f"d{i:03d}" for i in range(len(docs))]
    floats = write_multi_index(root / "multi", docs, docids)
    compress_multivector(floats, root / "multi-c", reduced_dimension=16, nlist=8)
    queries = clustered_collection(6, 3, 16, n_topics=12, seed=3)
    return MultiVectorIndex(floats), CompressedMultiVectorIndex(root / "multi-c"), docs, queries


def exact_top(query, docs, k):
    scores = np.array([maxsim(query, d) for d in docs])
    return set(np.lexsort((np.arange(len(docs)), -scores))[:k].tolist())


def test_mean_candidates_are_the_best_by_mean_inner_product(collection):
    index, _, docs, queries = collection
    generator = cand.MeanCandidates(index, chunk_bytes=4 * index.num_docs * 2)  # two queries per block
    found = generator.candidates(queries, k=5, depth=20)
    means = np.stack([d.mean(axis=0) for d in docs])
    for query, got in zip(queries, found):
        assert np.all(np.diff(got) > 0) and len(got) == 20
        scores = means @ query.mean(axis=0)
        assert scores[got].min() >= np.sort(scores)[-20] - 1e-5


def test_token_candidates_keep_the_exact_top_k_with_a_flat_index_and_every_hit(collection):
    index, _, docs, queries = collection
    generator = cand.TokenCandidates(index, token_hits=index.num_vectors, token_index="flat")
    generator.prepare()
    assert generator.info.kind == "flat"
    for query, got in zip(queries, generator.candidates(queries, k=10, depth=40)):
        assert exact_top(query, docs, 10) <= set(got.tolist()) and len(got) <= 40


def test_prerank_bounds_drop_documents_that_cannot_reach_the_top_k():
    """Rows 0, 1, 2 are documents 0, 1, 2. Query vector 0 hits doc 0 (0.9) and doc 1 (0.6); vector 1 hits doc 2
    (0.8) and doc 0 (0.3). Bounds [lower, upper]: doc 0 [1.2, 1.2] (both hit it), doc 1 [0.6, 0.6 + 0.3],
    doc 2 [0.8, 0.8 + 0.6]. For k=1 doc 1's upper bound 0.9 is below doc 0's lower bound 1.2: dropped."""
    scores = np.array([[0.9, 0.6], [0.8, 0.3]], dtype=np.float32)
    rows = np.array([[0, 1], [2, 0]])
    same = np.asarray
    assert cand.prerank(same, scores, rows, k=1, limit=10).tolist() == [0, 2]
    assert cand.prerank(same, scores, rows, k=1, limit=1).tolist() == [2]  # the best upper bound first
    assert cand.prerank(same, scores, rows, k=3, limit=10).tolist() == [0, 1, 2]
    assert cand.prerank(same, scores, np.full_like(rows, -1), k=1, limit=10).size == 0


def test_centroid_candidates_follow_the_centroid_scores(collection):
    _, compressed, _, queries = collection
    generator = cand.CentroidCandidates(compressed, centroid_candidates=30)
    projected = [compressed.project(q) for q in queries]
    for query, got in zip(projected, generator.candidates(projected, k=5, depth=10)):
        scores = compressed.centroid_scores(query)
        assert len(got) == 30 and scores[got].min() >= np.sort(scores)[-30] - 1e-5
    assert len(cand.CentroidCandidates(compressed, 10**6).candidates(projected[:1], 5, 10)[0]) == compressed.num_docs


def test_generators_declare_the_storage_they_need(collection):
    index, compressed, *_ = collection
    with pytest.raises(ValueError, match="means cannot be used with compressed"):
        MultiVectorSearcher(compressed.index_dir, sources=("means",))
    with pytest.raises(ValueError, match="centroids cannot be used with float"):
        MultiVectorSearcher(index.index_dir, sources=("centroids",))


class EveryOther(cand.CandidateGenerator):
    """A new strategy: even document numbers only."""

    name = "even"
    storages = frozenset({"float"})

    def __init__(self, index):
        self.index = index

    def candidates(self, queries, k, depth, threads=1):
        return [np.arange(0, self.index.num_docs, 2) for _ in queries]


def test_a_new_generator_plugs_in_by_name(monkeypatch, tmp_path):
    docs = random_multi_docs(10, 4, seed=1)
    folder = write_multi_index(tmp_path / "m", docs, [f"d{i}" for i in range(10)])
    monkeypatch.setitem(cand.GENERATORS, "even", EveryOther)
    hits = MultiVectorSearcher(folder, sources=("even",)).search(docs[3], k=10)
    assert {h.docid for h in hits} <= {f"d{i}" for i in range(0, 10, 2)} and hits
