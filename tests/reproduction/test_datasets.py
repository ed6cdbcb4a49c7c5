"""BEIR folders: conversion into topics / qrels / Anserini flat documents, and clear errors for bad or missing data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyserini_diffretriever.collections.cranfield import export_beir, load_cranfield
from pyserini_diffretriever.reproduction import datasets as ds
from pyserini_diffretriever.reproduction.datasets import (
    Dataset,
    DatasetError,
    MissingDatasetError,
    parse_dataset_spec,
    prepare_dataset,
)


@pytest.fixture(scope="module")
def cranfield():
    return load_cranfield()


@pytest.fixture
def folder(tmp_path, cranfield) -> Path:
    """Queries 1 and 2 with their judged documents plus two others; query 3 is in queries.jsonl but not judged."""
    documents = sorted({d for q in ("1", "2") for d in cranfield.qrels[q]} | {"5", "6"}, key=int)
    out = export_beir(tmp_path / "cran", cranfield, queries=["1", "2"], documents=documents)
    with (out / "queries.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "3", "text": cranfield.topics["3"]}) + "\n")
    return out


def test_spec_forms() -> None:
    assert parse_dataset_spec("data/beir/scifact") == Dataset("scifact", Path("data/beir/scifact"))
    assert parse_dataset_spec("sf=data/x", split="dev") == Dataset("sf", Path("data/x"), "dev")
    with pytest.raises(DatasetError, match="must not contain"):
        parse_dataset_spec("a b=data/x")


def test_prepare_writes_judged_topics_trec_qrels_and_flat_documents(folder, tmp_path, cranfield) -> None:
    prepared = prepare_dataset(Dataset("cran", folder), tmp_path / "out")
    topics = prepared.topics.read_text().splitlines()
    assert [line.split("\t")[0] for line in topics] == ["1", "2"]  # query 3 has no judgements
    assert topics[0].split("\t")[1] == " ".join(cranfield.topics["1"].split())
    qrels = [line.split() for line in prepared.qrels.read_text().splitlines()]
    assert all(len(parts) == 4 and parts[1] == "0" for parts in qrels)
    assert {(q, d): int(g) for q, _, d, g in qrels} == {
        (q, d): g for q in ("1", "2") for d, g in cranfield.qrels[q].items()
    }
    docs = [json.loads(line) for line in (prepared.bm25_docs / "docs.jsonl").read_text().splitlines()]
    first = cranfield.corpus[docs[0]["id"]]
    assert docs[0]["contents"] == f"{first['title']} {first['text']}".strip()
    assert (prepared.documents, prepared.queries, prepared.judgements) == (len(docs), 2, len(qrels))


def test_missing_folder_names_the_download(tmp_path) -> None:
    with pytest.raises(MissingDatasetError, match=r"scifact.*does not exist.*BEIR/datasets/scifact.zip"):
        prepare_dataset(Dataset("scifact", tmp_path / "scifact"), tmp_path / "out")
    (tmp_path / "mine").mkdir()
    with pytest.raises(MissingDatasetError, match=r"corpus.jsonl is missing.*put a BEIR-format folder"):
        prepare_dataset(Dataset("mine", tmp_path / "mine"), tmp_path / "out")


@pytest.mark.parametrize(
    ("file", "line", "pattern"),
    [
        ("corpus.jsonl", "{not json", r"corpus.jsonl:\d+: invalid JSON"),
        (
            "corpus.jsonl",
            json.dumps({"_id": "has space", "text": "x"}),
            r"corpus.jsonl:\d+: document has no usable '_id'",
        ),
        ("corpus.jsonl", json.dumps({"_id": "5", "text": "again"}), r"document id '5' appears twice"),
        ("queries.jsonl", json.dumps({"_id": "9"}), r"queries.jsonl:\d+: query '9' has no 'text'"),
        ("qrels/test.tsv", "1\t5\tgood", r"test.tsv:\d+: expected 'query-id<TAB>corpus-id<TAB>score'"),
    ],
)
def test_bad_lines_are_named_by_file_and_line(folder, tmp_path, file, line, pattern) -> None:
    with (folder / file).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(DatasetError, match=pattern):
        prepare_dataset(Dataset("cran", folder), tmp_path / "out")


def test_judged_query_without_text_is_an_error(folder, tmp_path) -> None:
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("77\t5\t1\n")
    with pytest.raises(DatasetError, match=r"1 judged queries are not in .*queries.jsonl \(first: 77\)"):
        prepare_dataset(Dataset("cran", folder), tmp_path / "out")


def test_missing_queries_of_a_non_beir_dataset(folder, tmp_path) -> None:
    (folder / "queries.jsonl").unlink()
    with pytest.raises(MissingDatasetError, match=r"queries.jsonl is missing and 'cran' is not a BEIR dataset"):
        prepare_dataset(Dataset("cran", folder), tmp_path / "out")


def test_missing_queries_of_a_beir_dataset_come_from_pyserini(folder, tmp_path, monkeypatch, cranfield) -> None:
    beir = folder.rename(tmp_path / "scifact")
    (beir / "queries.jsonl").unlink()
    asked = []

    def topics(name):
        asked.append(name)
        return {"1": cranfield.topics["1"], "2": cranfield.topics["2"]}

    monkeypatch.setitem(ds.FETCHERS, "topics", topics)
    prepared = prepare_dataset(Dataset("scifact", beir), tmp_path / "out")
    assert asked == ["beir-v1.0.0-scifact-test"]
    assert prepared.topics_source == "pyserini:beir-v1.0.0-scifact-test"

    def offline(name):
        raise OSError("Error downloading topics")

    monkeypatch.setitem(ds.FETCHERS, "topics", offline)
    with pytest.raises(MissingDatasetError, match=r"beir-v1.0.0-scifact-test' could not be fetched.*scifact.zip"):
        prepare_dataset(Dataset("scifact", beir), tmp_path / "out2")


def test_fingerprint_follows_content_not_location(folder, tmp_path) -> None:
    before = Dataset("cran", folder).fingerprint()
    moved = folder.rename(tmp_path / "elsewhere")
    assert Dataset("cran", moved).fingerprint() == before
    with (moved / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "new", "title": "", "text": "more"}) + "\n")
    assert Dataset("cran", moved).fingerprint()["files"]["corpus.jsonl"] != before["files"]["corpus.jsonl"]
