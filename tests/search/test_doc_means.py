"""Document mean vectors: computed once, written next to the vectors, recomputed when stale."""

from __future__ import annotations

import numpy as np

from pyserini_diffretriever.search.doc_means import DOC_MEANS_FILE, build_doc_means, load_doc_means
from pyserini_diffretriever.search.multivector_index import MultiVectorIndex

from .index_builders import random_multi_docs, write_multi_index


def test_doc_means_are_written_once_and_match_the_masked_means(tmp_path):
    docs = random_multi_docs(50, 6, seed=3, max_vectors=4)
    docs[7][1:] = 0.0  # truncated slots: excluded from the mean
    folder = write_multi_index(tmp_path / "multi", docs, [f"d{i}" for i in range(50)])
    index = MultiVectorIndex(folder)
    path = build_doc_means(folder)
    expected = np.stack([d[np.any(d != 0, axis=1)].mean(axis=0) for d in docs])
    np.testing.assert_allclose(np.load(path), expected, rtol=1e-6, atol=1e-6)
    assert isinstance(load_doc_means(index), np.memmap)  # reused from disk
    (folder / DOC_MEANS_FILE).write_bytes(b"")  # damaged file, stale description -> recomputed in memory
    (folder / "doc_means.json").write_text("{}")
    np.testing.assert_allclose(load_doc_means(index, write=False), expected, rtol=1e-6, atol=1e-6)


def test_means_follow_the_vectors_dtype_and_are_rebuilt_when_vectors_change(tmp_path):
    docs = random_multi_docs(10, 4, seed=5)
    folder = write_multi_index(tmp_path / "multi", docs, [f"d{i}" for i in range(10)], dtype=np.float16)
    assert np.load(build_doc_means(folder)).dtype == np.float16
    write_multi_index(folder, docs[:9], [f"d{i}" for i in range(9)])
    assert load_doc_means(MultiVectorIndex(folder)).shape == (9, 4)
