"""Bad topics files: each is refused by ``search.topics.read_topics`` with a TopicsFormatError that names the
file and (where the format has lines) the line, never a bare traceback."""
from __future__ import annotations

import gzip
import json
import re

import pytest

from pyserini_diffretriever.search.topics import TopicsFormatError, read_topics

# (case, file name, bytes, regex over the message after the path)
CATALOGUE = [
    ("tsv-missing-column", "t.tsv", b"1\tfirst query\n2 second query without a tab\n",
     r":2: expected 'qid<TAB>query text', found no tab"),
    ("tsv-empty-query", "t.tsv", b"1\tfirst\n2\t   \n", r":2: query '2' has empty text"),
    ("tsv-missing-qid", "t.tsv", b"1\tfirst\n\tno id\n", r":2: missing or invalid query id ''"),
    ("tsv-qid-with-space", "t.tsv", b"1\tfirst\nq 2\ttext\n", r":2: query id 'q 2' contains whitespace"),
    ("tsv-duplicate-qid", "t.tsv", b"1\tfirst\n1\tagain\n", r":2: duplicate query id '1'"),
    ("tsv-invalid-utf8", "t.tsv", b"1\tfirst\n2\tcaf\xe9\n", r": cannot read \('utf-8' codec can't decode byte 0xe9"),
    ("tsv-gzip-truncated", "t.tsv.gz", gzip.compress(b"".join(b"%d\tquery %d\n" % (i, i) for i in range(500)))[:60],
     r": cannot read"),
    ("tsv-empty-file", "t.tsv", b"\n\n", r": no topics found"),
    ("jsonl-invalid-json", "q.jsonl", b'{"_id": "1", "text": "a"}\n{"_id": "2", "text": \n',
     r":2: invalid JSON \(Expecting value\)"),
    ("jsonl-missing-text-key", "q.jsonl", b'{"_id": "1", "text": "a"}\n{"_id": "2"}\n',
     r":2: a query record needs an id key .* and a text key .*; found _id"),
    ("jsonl-missing-id-key", "q.jsonl", b'{"text": "a"}\n', r":1: a query record needs an id key"),
    ("jsonl-text-not-string", "q.jsonl", b'{"_id": "1", "text": ["a"]}\n', r":1: query '1' has no text \(got list\)"),
    ("jsonl-not-object", "q.jsonl", b'["1", "a"]\n', r":1: expected a JSON object, got list"),
    ("jsonl-bool-id", "q.jsonl", b'{"_id": true, "text": "a"}\n', r":1: missing or invalid query id True"),
    ("json-invalid", "q.json", b'{"1": "a",\n "2": }\n', r":2: invalid JSON"),
    ("json-not-object", "q.json", b'"just a string"', r": expected a JSON object \{qid: query\} or a list"),
    ("json-value-without-text", "q.json", b'{"1": {"narrative": "x"}}', r"\['1'\]: query '1' has no text"),
    ("unknown-type", "q.xml", b"<topics/>", r": unknown topics type \.xml"),
]


@pytest.mark.parametrize(("case", "name", "data", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_topics_name_file_line_and_problem(tmp_path, case, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TopicsFormatError) as info:
        read_topics(path)
    text = str(info.value)
    assert text.startswith(str(path)) and re.search(message, text[len(str(path)):]), text


def test_missing_topics_file(tmp_path):
    with pytest.raises(TopicsFormatError, match=r"topics file not found"):
        read_topics(tmp_path / "nope.tsv")


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("t.tsv", b"\xef\xbb\xbf1\tbom query\r\n2\tcrlf query\r\n", {"1": "bom query", "2": "crlf query"}),
        ("t.tsv", b"1\tquery with\ta tab\n", {"1": "query with\ta tab"}),
        ("q.jsonl", b'\n{"query_id": 3, "query": "numeric id"}\n\n', {"3": "numeric id"}),
        ("q.json", json.dumps({"1": {"title": "t"}}).encode(), {"1": "t"}),
    ],
    ids=["bom-crlf", "tab-inside-text", "blank-lines-numeric-id", "json-title"],
)
def test_accepted_variants(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    assert read_topics(path) == expected
