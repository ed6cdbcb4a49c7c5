"""Merging shard folders: manifests must agree, shards are joined in shard-id order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.writers import (
    FaissFlatWriter,
    JsonVectorWriter,
    ManifestError,
    MultiVectorFolder,
    MultiVectorWriter,
    iter_vector_records,
    merge_outputs,
    read_faiss_docids,
    read_manifest,
)

ENCODER = {"backbone": "fake", "k": 2}


def _dense(path, ids, shard, encoder=ENCODER, dim=4):
    with FaissFlatWriter(path, encoder, shard=shard) as writer:
        writer.write(
            {"id": ids, "vector": np.arange(len(ids) * dim, dtype=np.float32).reshape(len(ids), dim) + 100 * shard[0]}
        )


def test_dense_shards_merge_in_shard_order(tmp_path):
    import faiss

    _dense(tmp_path / "s1", ["c", "d"], (1, 2))
    _dense(tmp_path / "s0", ["a", "b"], (0, 2))
    manifest = merge_outputs([tmp_path / "s1", tmp_path / "s0"], tmp_path / "all")
    assert read_faiss_docids(tmp_path / "all") == ["a", "b", "c", "d"]
    index = faiss.read_index(str(tmp_path / "all" / "index"))
    np.testing.assert_array_equal(index.reconstruct(2), np.arange(4, dtype=np.float32) + 100)
    assert (manifest["num_docs"], manifest["shard"], manifest["encoder"]) == (4, {"id": 0, "num": 1}, ENCODER)
    assert len(manifest["merged_from"]) == 2


def test_multi_and_impact_shards_merge(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((k, 3)).astype(np.float32) for k in (1, 3, 2, 2, 1)]
    for shard, (start, stop) in enumerate([(0, 2), (2, 5)]):
        with MultiVectorWriter(tmp_path / f"m{shard}", ENCODER, shard=(shard, 2)) as writer:
            writer.write({"id": [f"d{i}" for i in range(start, stop)], "vector": docs[start:stop]})
        with JsonVectorWriter(tmp_path / f"i{shard}", ENCODER, shard=(shard, 2), strict=False) as writer:
            writer.write(
                {
                    "id": [f"d{i}" for i in range(start, stop)] + [f"empty{shard}"],
                    "vector": [{f"t{i}": i + 1} for i in range(start, stop)] + [{}],
                }
            )
    merge_outputs([tmp_path / "m0", tmp_path / "m1"], tmp_path / "multi")
    folder = MultiVectorFolder(tmp_path / "multi")
    assert folder.docids == [f"d{i}" for i in range(5)]
    for i, doc in enumerate(docs):
        np.testing.assert_array_equal(folder.document(i), doc)
    manifest = merge_outputs([tmp_path / "i0", tmp_path / "i1"], tmp_path / "impact")
    assert list(iter_vector_records(tmp_path / "impact")) == [(f"d{i}", {f"t{i}": i + 1}) for i in range(5)]
    assert (manifest["num_docs"], manifest["num_skipped_empty"]) == (5, 2)
    assert (tmp_path / "impact" / "empty-vector-docids.txt").read_text() == "empty0\nempty1\n"


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ([("s0", ["a"], (0, 2), ENCODER)], "all shards 0..n-1"),
        ([("s0", ["a"], (0, 2), ENCODER), ("s0b", ["b"], (0, 2), ENCODER)], "all shards 0..n-1"),
        ([("s0", ["a"], (0, 2), ENCODER), ("s1", ["b"], (1, 2), {"backbone": "other"})], "'encoder' differs"),
        ([("s0", ["a"], (0, 2), ENCODER), ("s1", ["b"], (1, 3), ENCODER)], "all shards 0..n-1"),
        ([("s0", ["a"], (0, 2), ENCODER), ("s1", ["a"], (1, 2), ENCODER)], "duplicate document id 'a'"),
    ],
)
def test_disagreeing_shards_are_refused(tmp_path, shards, message):
    for name, ids, shard, encoder in shards:
        _dense(tmp_path / name, ids, shard, encoder)
    with pytest.raises((ManifestError, ValueError), match=message):
        merge_outputs([tmp_path / name for name, *_ in shards], tmp_path / "all")
    assert not (tmp_path / "all").exists()
    assert not list(tmp_path.glob("all.partial-*"))


def test_kinds_must_agree(tmp_path):
    _dense(tmp_path / "s0", ["a"], (0, 2))
    with MultiVectorWriter(tmp_path / "s1", ENCODER, shard=(1, 2)) as writer:
        writer.write({"id": ["b"], "vector": [np.ones((1, 4), np.float32)]})
    with pytest.raises(ManifestError, match="'kind' differs"):
        merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "all")
    (tmp_path / "s1" / "manifest.json").write_text(json.dumps({"format": "nope"}))
    with pytest.raises(ManifestError, match="not a pyserini-diffretriever manifest"):
        merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "all")
    assert read_manifest(tmp_path / "s0")["kind"] == "dense"


def _dense_with_query(path, ids, shard, query):
    with FaissFlatWriter(path, ENCODER, shard=shard, manifest_extra={"query": query}) as writer:
        writer.write({"id": ids, "vector": np.ones((len(ids), 4), np.float32)})


QUERY = {"k": 4, "prompt": "few", "prompt_sha256": "ab" * 32, "max_length": 512}


def test_merged_folder_keeps_the_expected_query_settings(tmp_path):
    _dense_with_query(tmp_path / "s0", ["a"], (0, 2), QUERY)
    _dense_with_query(tmp_path / "s1", ["b"], (1, 2), QUERY)
    assert merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "all")["query"] == QUERY


@pytest.mark.parametrize("other", [{**QUERY, "k": 2}, {**QUERY, "prompt": "one"}, None], ids=["k", "prompt", "none"])
def test_shards_expecting_other_query_settings_are_refused(tmp_path, other):
    _dense_with_query(tmp_path / "s0", ["a"], (0, 2), QUERY)
    if other is None:
        _dense(tmp_path / "s1", ["b"], (1, 2))  # a shard from before the record existed
    else:
        _dense_with_query(tmp_path / "s1", ["b"], (1, 2), other)
    with pytest.raises(ManifestError, match=r"'query' differs"):
        merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "all")
