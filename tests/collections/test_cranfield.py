"""Cranfield conversion: counts, id and grade mapping and the committed files, checked against the raw files.

Expected values are derived here from the raw files with independent one-line parsers, not from the module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyserini_diffretriever.collections.cranfield import (
    CranfieldFormatError,
    convert_cranfield,
    export_beir,
    load_cranfield,
    parse_documents,
    parse_qrels,
    parse_queries,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CRANFIELD = REPO_ROOT / "examples" / "cranfield"
RAW = CRANFIELD / "raw"


@pytest.fixture(scope="module")
def collection():
    return load_cranfield(CRANFIELD)


def raw_judgements() -> dict[tuple[str, str], int]:
    """Every non-blank ``cranqrel`` line as (query, doc) -> code."""
    pairs = {}
    for line in (RAW / "cranqrel").read_text().splitlines():
        if line.strip():
            query, doc, code = line.split()
            pairs[(query, doc)] = int(code)
    return pairs


def raw_query_texts() -> list[str]:
    """Query texts of ``cran.qry`` in file order, whitespace-normalised."""
    records = re.split(r"^\.I .*$", (RAW / "cran.qry").read_text(), flags=re.M)[1:]
    return [" ".join(record.replace(".W", " ", 1).split()) for record in records]


def test_corpus_has_1400_documents_with_ids_1_to_1400(collection):
    raw_ids = re.findall(r"^\.I (\d+)\s*$", (RAW / "cran.all.1400").read_text(), flags=re.M)
    assert len(raw_ids) == 1400
    assert list(collection.corpus) == [str(i) for i in range(1, 1401)] == raw_ids


def test_corpus_lines_are_single_json_records_without_newlines():
    lines = (CRANFIELD / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 1401
    for line in lines[:-1]:
        record = json.loads(line)
        assert list(record) == ["id", "title", "text"]
        assert all("\n" not in value and "\t" not in value and value == value.strip() for value in record.values())


def test_empty_documents_are_kept_and_only_those_are_empty(collection):
    empty = [doc_id for doc_id, doc in collection.corpus.items() if not doc["text"]]
    assert empty == ["471", "995"]
    assert [doc_id for doc_id, doc in collection.corpus.items() if not doc["title"]] == ["471", "995"]


def test_topics_are_the_225_queries_renumbered_in_file_order(collection):
    texts = raw_query_texts()
    assert len(texts) == 225
    assert collection.topics == {str(position): text for position, text in enumerate(texts, start=1)}
    queries = parse_queries(RAW / "cran.qry")
    assert [q.original_id for q in queries[:4]] == ["001", "002", "004", "008"]
    assert (queries[-1].id, queries[-1].original_id) == ("225", "365")


def test_qrels_hold_exactly_the_judged_pairs_of_cranqrel_with_mapped_gains(collection):
    judged = raw_judgements()
    assert len(judged) == 1837
    written = {(qid, docid): gain for qid, docs in collection.qrels.items() for docid, gain in docs.items()}
    assert set(written) == set(judged)
    expected_gain = {1: 4, 2: 3, 3: 2, 4: 1}
    assert written == {pair: expected_gain.get(code, 0) for pair, code in judged.items()}
    assert sum(gain > 0 for gain in written.values()) == 1612
    assert set(collection.qrels) == {str(i) for i in range(1, 226)}
    assert all(any(g > 0 for g in docs.values()) for docs in collection.qrels.values())
    assert set(written) <= {(q, d) for q in collection.topics for d in collection.corpus}


def test_qrels_file_is_trec_format_sorted_by_query_then_document():
    rows = [line.split(" ") for line in (CRANFIELD / "qrels.txt").read_text().splitlines()]
    assert all(len(row) == 4 and row[1] == "0" for row in rows)
    keys = [(int(row[0]), int(row[2])) for row in rows]
    assert keys == sorted(keys)


def test_committed_files_equal_a_fresh_conversion(tmp_path):
    stats = convert_cranfield(RAW, tmp_path)
    for name in ("corpus.jsonl", "topics.tsv", "qrels.txt"):
        assert (tmp_path / name).read_bytes() == (CRANFIELD / name).read_bytes(), name
    assert (stats.documents, stats.queries, stats.judgements, stats.relevant_judgements) == (
        1400,
        225,
        1837,
        1612,
    )
    assert stats.codes == {-1: 225, 1: 128, 2: 387, 3: 734, 4: 363}
    assert stats.empty_text_documents == ["471", "995"]
    assert stats.repeated_marker_documents == ["240", "576", "578"]
    assert stats.queries_without_relevant == []


def test_repeated_markers_keep_the_following_lines_as_text():
    documents, repeated = parse_documents(RAW / "cran.all.1400")
    doc240 = documents[239]
    assert doc240.id == "240" and "240" in repeated
    assert "prandtl number of unity in low-speed flow without injection" in doc240.text
    assert doc240.author == "dean r. chapman" and doc240.bibliography == "naca technote 3792"


def write_raw(folder: Path, documents: str, queries: str, qrels: str) -> Path:
    folder.mkdir()
    (folder / "cran.all.1400").write_text(documents)
    (folder / "cran.qry").write_text(queries)
    (folder / "cranqrel").write_text(qrels)
    return folder


DOCS = ".I 1\n.T\ntitle one .\n.A\nx\n.B\ny\n.W\nfirst  text\n.W\nmore text\n.I 2\n.T\n.A\n.B\n.W\n"
QUERIES = ".I 007\n.W\nwhat is\nthis .\n"


def test_small_collection_round_trip(tmp_path):
    raw = write_raw(tmp_path / "raw", DOCS, QUERIES, "1 1 1 \n\n1 2 -1\n")
    stats = convert_cranfield(raw, tmp_path / "out")
    loaded = load_cranfield(tmp_path / "out")
    assert loaded.corpus == {
        "1": {"title": "title one .", "text": "first text more text"},
        "2": {"title": "", "text": ""},
    }
    assert loaded.topics == {"1": "what is this ."}
    assert loaded.qrels == {"1": {"1": 4, "2": 0}}
    assert stats.repeated_marker_documents == ["1"] and stats.empty_text_documents == ["2"]


@pytest.mark.parametrize(
    "qrels, message",
    [
        ("1 1\n", r"cranqrel:1: expected 'query doc code'"),
        ("1 1 2\n1 1 3\n", r"cranqrel:2: query 1 / document 1 is judged twice"),
        ("1 9 2\n", "document 9 is not in"),
        ("2 1 2\n", "query 2 is not one of the 1 queries"),
    ],
)
def test_malformed_qrels_are_reported_with_their_location(tmp_path, qrels, message):
    raw = write_raw(tmp_path / "raw", DOCS, QUERIES, qrels)
    with pytest.raises(CranfieldFormatError, match=message):
        convert_cranfield(raw, tmp_path / "out")


def test_text_outside_a_record_is_an_error(tmp_path):
    raw = write_raw(tmp_path / "raw", "stray\n" + DOCS, QUERIES, "")
    with pytest.raises(CranfieldFormatError, match=r"cran.all.1400:1: text before the first"):
        parse_documents(raw / "cran.all.1400")
    assert parse_qrels(raw / "cranqrel") == []


def test_load_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        load_cranfield(tmp_path)


def test_cli_converts_the_raw_files(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pyserini_diffretriever.collections.cranfield", str(RAW), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert json.loads(result.stdout)["judgements"] == 1837
    assert (tmp_path / "qrels.txt").read_bytes() == (CRANFIELD / "qrels.txt").read_bytes()


def test_export_beir_writes_the_chosen_part_in_beirs_format(tmp_path):
    collection = load_cranfield(CRANFIELD)
    out = export_beir(tmp_path / "cran", collection, queries=["2", "1"], documents=["12", "13", "14", "51"])
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    assert [doc["_id"] for doc in corpus] == ["12", "13", "14", "51"]
    assert corpus[0] == {
        "_id": "12",
        "title": collection.corpus["12"]["title"],
        "text": collection.corpus["12"]["text"],
    }
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert queries == [{"_id": "2", "text": collection.topics["2"]}, {"_id": "1", "text": collection.topics["1"]}]
    lines = (out / "qrels" / "test.tsv").read_text().splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    expected = [(q, d, g) for q in ("2", "1") for d, g in collection.qrels[q].items() if d in {"12", "13", "14", "51"}]
    assert sorted(tuple(line.split("\t")) for line in lines[1:]) == sorted((q, d, str(g)) for q, d, g in expected)
    assert expected  # queries 1 and 2 judge some of these documents
    with pytest.raises(KeyError, match="not in Cranfield"):
        export_beir(tmp_path / "bad", collection, queries=["999"])
