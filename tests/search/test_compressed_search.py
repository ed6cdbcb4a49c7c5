"""Searching compressed multi-vector folders: no float reads, exact MaxSim on decoded codes, re-ranking, factory."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pyserini_diffretriever.indexing.compress_multi import compress_multivector
from pyserini_diffretriever.search import MultiVectorSearcher, open_searcher
from pyserini_diffretriever.search.compressed_index import CompressedMultiVectorIndex
from pyserini_diffretriever.search.index_format import IndexFormatError, IndexMismatchError
from pyserini_diffretriever.search.kinds import KindOptionError
from pyserini_diffretriever.search.scoring import maxsim
from tests.search.index_builders import clustered_collection, write_multi_index

N_DOCS, PER_DOC, DIM = 1500, 6, 64


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("compressed")
    docs = clustered_collection(N_DOCS, PER_DOC, DIM, n_topics=30, seed=21)
    docids = [f"doc{i:04d}" for i in range(N_DOCS)]
    floats = write_multi_index(root / "multi", docs, docids)
    compress_multivector(floats, root / "multi-c", reduced_dimension=DIM, nlist=32)  # SQ8 error only
    queries = clustered_collection(40, 4, DIM, n_topics=30, seed=21)
    return root, docs, docids, queries


def exact_top(query, docs, docids, k):
    scores = np.array([maxsim(query, d) for d in docs])
    order = np.lexsort((np.array(docids), -scores))
    return [docids[i] for i in order[:k]]


def recall(found, truth):
    return len(set(found) & set(truth)) / len(truth)


def test_search_needs_no_float_vectors(collection, tmp_path):
    root, docs, docids, queries = collection
    moved = tmp_path / "alone"
    shutil.copytree(root / "multi-c", moved)  # the float folder is not next to it: nothing can read it
    searcher = MultiVectorSearcher(moved)
    assert searcher.compressed and searcher.sources == ("centroids", "tokens")
    hits = searcher.search(queries[0], k=10)
    assert len(hits) == 10 and hits[0].score >= hits[-1].score


def test_default_mode_finds_the_exact_top_documents(collection):
    root, docs, docids, queries = collection
    searcher = MultiVectorSearcher(root / "multi-c")
    found = [recall([h.docid for h in searcher.search(q, k=20)], exact_top(q, docs, docids, 20)) for q in queries[:20]]
    assert np.mean(found) >= 0.9


def test_exact_mode_is_exhaustive_maxsim_over_the_decoded_codes(collection):
    root, docs, docids, queries = collection
    index = CompressedMultiVectorIndex(root / "multi-c")
    searcher = MultiVectorSearcher(root / "multi-c", mode="exact")
    query = queries[3]
    rows, local = index.gather(np.arange(N_DOCS))
    projected = index.project(query)
    scores = np.array([maxsim(projected, rows[local[i] : local[i + 1]]) for i in range(N_DOCS)])
    hits = searcher.search(query, k=15)
    np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:15], rtol=1e-5, atol=1e-5)


def test_rerank_scores_the_best_documents_exactly_from_float_vectors(collection):
    root, docs, docids, queries = collection
    plain = MultiVectorSearcher(root / "multi-c")
    reranked = MultiVectorSearcher(root / "multi-c", rerank=100)
    position = {d: i for i, d in enumerate(docids)}
    gains = []
    for query in queries[:15]:
        hits = reranked.search(query, k=10)
        for hit in hits:
            assert hit.score == pytest.approx(maxsim(query, docs[position[hit.docid]]), abs=1e-5)
        truth = exact_top(query, docs, docids, 10)
        gains.append(recall([h.docid for h in hits], truth) - recall([h.docid for h in plain.search(query, 10)], truth))
    assert min(gains) >= 0 and np.mean([g >= 0 for g in gains]) == 1.0


def test_rerank_refuses_a_float_folder_of_other_documents(collection, tmp_path):
    root, docs, docids, _ = collection
    other = write_multi_index(tmp_path / "other", docs[:10], docids[:10])
    with pytest.raises(IndexFormatError, match="not the float vectors"):
        MultiVectorSearcher(root / "multi-c", rerank=10, rerank_index=other)
    with pytest.raises(ValueError, match="compressed"):
        MultiVectorSearcher(root / "multi", rerank=10)


class FixedMultiEncoder:
    """A query encoder stand-in with the index's settings."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def encode(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(len(text))
        vectors = rng.standard_normal((4, self.dimension)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_open_searcher_opens_compressed_folders_and_checks_the_dimension(collection):
    root, *_ = collection
    searcher = open_searcher(root / "multi-c", FixedMultiEncoder(DIM), rerank=20)
    assert isinstance(searcher, MultiVectorSearcher) and searcher.rerank == 20
    assert len(searcher.search("a query", k=5)) == 5
    batch = searcher.batch_search(["a query", "another"], ["q1", "q2"], k=5)
    assert [h.docid for h in batch["q1"]] == [h.docid for h in searcher.search("a query", k=5)]
    with pytest.raises(IndexMismatchError, match="dimension"):
        open_searcher(root / "multi-c", FixedMultiEncoder(DIM + 1)).search("x", k=3)


def test_damaged_codes_are_named(collection, tmp_path):
    root, *_ = collection
    broken = tmp_path / "broken"
    shutil.copytree(root / "multi-c", broken)
    with open(broken / "codes.npy", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(IndexFormatError, match="codes.npy"):
        open_searcher(broken, FixedMultiEncoder(DIM))


@pytest.mark.parametrize(
    ("folder", "options", "named"),
    [
        ("multi-c", {"token_index": "ivf"}, "token_index does not apply to multi-compressed"),
        ("multi-c", {"mmap": False}, "mmap does not apply to multi-compressed"),
        ("multi", {"centroid_candidates": 10}, "centroid_candidates does not apply to multi indexes"),
    ],
)
def test_options_of_the_other_storage_are_refused_naming_both(collection, folder, options, named):
    root, *_ = collection
    with pytest.raises(KindOptionError, match=named):
        MultiVectorSearcher(root / folder, **options)
