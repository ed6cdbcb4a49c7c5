"""MaxSimRescorer alone: re-scored candidates and the exhaustive ranking equal brute-force MaxSim, ties by docid."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.search.multivector_index import MultiVectorIndex
from pyserini_diffretriever.search.rescoring import MaxSimRescorer
from pyserini_diffretriever.search.scoring import maxsim

from .index_builders import random_multi_docs, write_multi_index


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    docs = random_multi_docs(40, 6, seed=9)
    docs += [docs[2].copy()]  # a tie with doc 2, its docid sorts first
    docids = [f"d{i:02d}" for i in range(40)] + ["a-copy"]
    index = MultiVectorIndex(write_multi_index(tmp_path_factory.mktemp("rescore") / "m", docs, docids))
    return index, docs, docids


def brute(query, docs, docids, subset, k):
    ranked = sorted((-maxsim(query, docs[i]), docids[i], i) for i in subset)[:k]
    return [i for *_, i in ranked], [-s for s, *_ in ranked]


def test_rescore_ranks_the_candidates_exactly(storage):
    index, docs, docids = storage
    rescorer = MaxSimRescorer(index)
    query = docs[2][:2]
    subset = np.array([0, 2, 5, 9, 17, 40])
    got, scores = rescorer.rescore(query, subset, k=4)
    expected, expected_scores = brute(query, docs, docids, subset, 4)
    assert got.tolist() == expected and got[0] == 40  # "a-copy" before "d02"
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    assert rescorer.rescore(query, np.zeros(0, dtype=np.int64), 4)[0].size == 0


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 500])
def test_exhaustive_equals_rescoring_every_document(storage, chunk_bytes):
    index, docs, docids = storage
    rescorer = MaxSimRescorer(index)
    queries = [random_multi_docs(1, 6, seed=s, max_vectors=3)[0] for s in range(4)] + [np.zeros((0, 6), np.float32)]
    found = rescorer.exhaustive(queries, k=7, chunk_bytes=chunk_bytes)
    for query, (got, scores) in zip(queries[:-1], found):
        expected, expected_scores = brute(query, docs, docids, range(len(docs)), 7)
        assert got.tolist() == expected
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    assert found[-1][0].size == 0
