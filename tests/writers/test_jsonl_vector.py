"""JsonVectorCollection writer: integer weights only, no silent empty documents, parts of bounded size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.writers import (
    EmptyVectorError,
    JsonVectorWriter,
    WriterError,
    clean_impact_vector,
    iter_vector_records,
    read_manifest,
    vector_files,
)


def test_records_parts_and_manifest(tmp_path):
    out = tmp_path / "impact"
    vectors = [{"Ġwing": 57, "lift": np.int64(3)}, {"drag": 2.0, "zero": 0}, {"flow": 9}]
    with JsonVectorWriter(out, {"backbone": "fake"}, quantization=100, records_per_file=2, shard=(0, 2)) as w:
        w.write({"id": ["d1", "d2", "d3"], "vector": vectors})
    files = vector_files(out)
    assert [f.name for f in files] == ["part-00000.jsonl", "part-00001.jsonl"]
    assert sorted(p.name for p in (out / "vectors").iterdir()) == [f.name for f in files]  # only .jsonl files
    lines = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"id": "d1", "contents": "", "vector": {"Ġwing": 57, "lift": 3}},
        {"id": "d2", "contents": "", "vector": {"drag": 2}},
        {"id": "d3", "contents": "", "vector": {"flow": 9}},
    ]
    assert all(type(v) is int for line in lines for v in line["vector"].values())
    assert "Ġwing" in files[0].read_text(encoding="utf-8")  # UTF-8, not \u escapes
    manifest = read_manifest(out, "impact-vectors")
    assert (manifest["num_docs"], manifest["quantization"], manifest["num_skipped_empty"]) == (3, 100, 0)
    assert manifest["num_postings"] == 4 and manifest["num_files"] == 2
    assert list(iter_vector_records(out)) == [(r["id"], r["vector"]) for r in lines]


def test_empty_vector_is_an_error_by_default(tmp_path):
    with pytest.raises(EmptyVectorError, match="document 'd2' has an empty impact vector"):
        with JsonVectorWriter(tmp_path / "impact") as writer:
            writer.write({"id": ["d1", "d2"], "vector": [{"a": 1}, {"b": 0}]})
    assert not (tmp_path / "impact" / "manifest.json").exists()


def test_empty_vectors_are_reported_when_allowed(tmp_path, caplog):
    out = tmp_path / "impact"
    with JsonVectorWriter(out, strict=False) as writer:
        writer.write({"id": ["d1", "d2", "d3"], "vector": [{}, {"a": 4}, {"b": 0}]})
    assert (out / "empty-vector-docids.txt").read_text() == "d1\nd3\n"
    manifest = read_manifest(out)
    assert (manifest["num_docs"], manifest["num_skipped_empty"]) == (1, 2)
    assert [docid for docid, _ in iter_vector_records(out)] == ["d2"]
    assert "2 document(s) had empty impact vectors" in caplog.text


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ({"two words": 3}, "contains whitespace"),
        ({"tab\tbed": 3}, "contains whitespace"),
        ({"x" * 256: 3}, "longer than 255"),
        ({"": 3}, "not a non-empty string"),
        ({"a": 0.5}, "not an integer; quantise"),
        ({"a": -1}, "negative weight"),
        ({"a": True}, "not an integer"),
        ({"a": "3"}, "not an integer"),
        (["a", 1], "must be a dict"),
    ],
)
def test_invalid_vectors(vector, message):
    with pytest.raises(WriterError, match=message):
        clean_impact_vector("d1", vector)


def test_all_documents_empty_is_an_error_even_when_allowed(tmp_path):
    with pytest.raises(WriterError, match="no documents with a non-empty impact vector"):
        with JsonVectorWriter(tmp_path / "impact", strict=False) as writer:
            writer.write({"id": ["d1"], "vector": [{"a": 0}]})
