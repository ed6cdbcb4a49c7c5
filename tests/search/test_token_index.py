"""Token-level FAISS index: kinds, files, reuse, staleness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.search import token_index as ti
from pyserini_diffretriever.search.multivector_index import MultiVectorIndex

from .index_builders import random_multi_docs, write_multi_index


@pytest.fixture()
def folder(tmp_path):
    docs = random_multi_docs(300, 8, seed=3, max_vectors=4)
    return write_multi_index(tmp_path / "multi", docs, [f"d{i}" for i in range(len(docs))])


def test_auto_kind_and_defaults_scale_with_the_collection():
    assert ti.resolve_kind("auto", 1_000) == "flat"
    assert ti.resolve_kind("auto", 5_000_000) == "ivf"
    assert ti.default_nlist(1_600_000) == 1024 and ti.default_nlist(10) == 16
    assert ti.default_nprobe(1024) == 8 and ti.default_nprobe(16) == 4
    with pytest.raises(ValueError, match="kind"):
        ti.resolve_kind("lsh", 10)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_built_index_holds_every_vector_and_finds_exact_matches(folder, kind):
    path = ti.build_token_index(folder, kind, nlist=8)
    info = json.loads((folder / ti.TOKEN_INDEX_META_FILE).read_text())
    index = MultiVectorIndex(folder)
    assert path.name == ti.TOKEN_INDEX_FILE and info["kind"] == kind and info["num_vectors"] == index.num_vectors
    loaded, loaded_info = ti.load_token_index(index)  # auto: reuse the file
    assert loaded.ntotal == index.num_vectors and loaded_info.kind == kind
    ti.configure_search(loaded, nprobe=8, ef_search=64)
    _, rows = loaded.search(np.ascontiguousarray(index.vectors[:20]), 1)
    assert rows[:, 0].tolist() == list(range(20))


def test_auto_flat_is_built_in_memory_and_stale_or_other_kinds_are_rebuilt(folder):
    index = MultiVectorIndex(folder)
    _, info = ti.load_token_index(index)
    assert info.kind == "flat" and not (folder / ti.TOKEN_INDEX_FILE).exists()
    ti.build_token_index(folder, "ivf", nlist=4)
    _, info = ti.load_token_index(index, "hnsw")
    assert info.kind == "hnsw" and json.loads((folder / ti.TOKEN_INDEX_META_FILE).read_text())["kind"] == "hnsw"
    # new vectors (one document more) make the stored index stale
    docs = random_multi_docs(301, 8, seed=4, max_vectors=4)
    write_multi_index(folder, docs, [f"d{i}" for i in range(301)])
    _, info = ti.load_token_index(MultiVectorIndex(folder))
    assert info.num_vectors == MultiVectorIndex(folder).num_vectors


def test_an_unreadable_token_index_is_rebuilt(folder):
    ti.build_token_index(folder, "ivf", nlist=4)
    (folder / ti.TOKEN_INDEX_FILE).write_bytes(b"not a faiss index")
    loaded, info = ti.load_token_index(MultiVectorIndex(folder))
    assert info.kind == "ivf" and loaded.ntotal == MultiVectorIndex(folder).num_vectors


def test_factory_string_is_used_as_given(folder):
    _, info = ti.load_token_index(MultiVectorIndex(folder), factory="IVF4,SQ8", write=False)
    assert info.kind == "factory" and info.factory == "IVF4,SQ8"
    assert not (folder / ti.TOKEN_INDEX_FILE).exists()
