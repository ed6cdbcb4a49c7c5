"""Local topics: TSV / JSON / JSONL (gzipped too), file order kept, malformed lines named."""

from __future__ import annotations

import gzip
import json

import pytest

from pyserini_diffretriever.search.topics import TopicsFormatError, read_topics


def test_tsv_keeps_file_order_string_ids_and_the_first_two_columns(tmp_path):
    path = tmp_path / "topics.tsv"
    path.write_text("10\tfirst query\n\n2\tsecond\tthird column\r\nq-3\tthird\n", encoding="utf-8")
    assert read_topics(path) == {"10": "first query", "2": "second", "q-3": "third"}  # as Pyserini's TSV readers
    assert list(read_topics(path)) == ["10", "2", "q-3"]


def test_gzipped_tsv_and_utf8_bom(tmp_path):
    path = tmp_path / "topics.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\ufeff1\tflügel\n")
    assert read_topics(path) == {"1": "flügel"}


def test_json_in_pyserini_and_record_layouts(tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"1": {"title": "a b"}, "2": "plain"}))
    assert read_topics(nested) == {"1": "a b", "2": "plain"}
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"qid": 5, "query": "x"}]))
    assert read_topics(records) == {"5": "x"}


def test_jsonl_beir_queries(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "what", "metadata": {}}\n\n{"_id": "q2", "text": "why"}\n')
    assert read_topics(path) == {"q1": "what", "q2": "why"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.tsv", "1\tok\n2 no tab here\n", "t.tsv:2: expected 'qid<TAB>query text'"),
        ("t.tsv", "1\tok\n1\tagain\n", "t.tsv:2: duplicate query id '1'"),
        ("t.tsv", "1\t   \n", "t.tsv:1: query '1' has empty text"),
        ("t.tsv", "a b\tq\n", "contains whitespace"),
        ("t.jsonl", '{"_id": "1", "text": "a"}\n{"_id": "2"\n', "t.jsonl:2: invalid JSON"),
        ("t.jsonl", '{"name": "x"}\n', "t.jsonl:1: a query record needs an id key"),
        ("t.json", "[1, 2]", "expected a JSON object"),
        ("t.json", '{"1": {"body": "x"}}', "has no text"),
        ("t.csv", "1,x\n", "unknown topics type .csv"),
        ("t.tsv", "\n\n", "no topics found"),
        ("t.tsv", "1\tok\n2\tnul\x00\n", "t.tsv:2: query '2' text contains a control character U.0000"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TopicsFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_topics(path)


def test_missing_file_is_a_topics_error(tmp_path):
    with pytest.raises(TopicsFormatError, match="not found"):
        read_topics(tmp_path / "beir-v1.0.0-scifact-test")
