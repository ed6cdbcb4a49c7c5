"""The multi-vector folder reader: memory-mapped, validated against itself and its manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.search.index_format import IndexFormatError
from pyserini_diffretriever.search.multivector_index import MultiVectorIndex
from pyserini_diffretriever.writers import ManifestError

from .index_builders import random_multi_docs, write_multi_index


@pytest.fixture()
def folder(tmp_path):
    docs = random_multi_docs(5, 4, seed=0) + [np.zeros((0, 4), dtype=np.float32)]
    return write_multi_index(tmp_path / "multi", docs, [f"d{i}" for i in range(6)]), docs


def test_gather_returns_each_documents_rows(folder):
    path, docs = folder
    index = MultiVectorIndex(path)
    assert isinstance(index.vectors, np.memmap)
    assert (index.num_docs, index.dimension) == (6, 4)
    rows, local = index.gather(np.array([1, 3, 5]))
    np.testing.assert_array_equal(rows, np.concatenate([docs[1], docs[3]]))
    assert local.tolist() == [0, len(docs[1]), len(docs[1]) + len(docs[3]), len(docs[1]) + len(docs[3])]
    assert index.docs_of_rows(np.array([0, index.num_vectors - 1])).tolist() == [0, 4]


def test_float16_vectors_are_read_as_float32(tmp_path):
    docs = random_multi_docs(3, 4, seed=1)
    index = MultiVectorIndex(write_multi_index(tmp_path / "m", docs, ["a", "b", "c"], dtype=np.float16))
    rows, _ = index.gather(np.array([0]))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, docs[0], atol=1e-3)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: np.save(p / "offsets.npy", np.array([0, 2, 1, 99])), "offsets must start at 0"),
        (lambda p: (p / "docid").write_text("only-one\n"), "1 docids for 6 documents"),
        (lambda p: (p / "vectors.npy").unlink(), "vectors.npy: missing"),
        (lambda p: np.save(p / "vectors.npy", np.zeros((3, 2, 2))), "expected a 2-D array"),
        (
            lambda p: (p / "manifest.json").write_text(
                json.dumps({**json.loads((p / "manifest.json").read_text()), "dimension": 9})
            ),
            "dimension=9",
        ),
        (
            lambda p: (p / "manifest.json").write_text(
                json.dumps({**json.loads((p / "manifest.json").read_text()), "kind": "dense"})
            ),
            "expected 'multi'",
        ),
    ],
)
def test_inconsistent_folders_are_rejected_with_the_file_named(folder, damage, message):
    path, _ = folder
    damage(path)
    with pytest.raises(IndexFormatError, match=message):
        MultiVectorIndex(path)


def test_missing_manifest_is_a_manifest_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="manifest"):
        MultiVectorIndex(tmp_path / "empty")
