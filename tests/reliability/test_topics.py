"""Bad topics files: each is refused by ``search.topics.read_topics`` with a TopicsFormatError that names the
file and (where the format has lines) the line, never a bare traceback; ``on_error="skip"`` leaves bad
records out and lists them."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from pyserini_diffretriever.search.topics import SkippedTopic, TopicsFormatError, load_topics, read_topics

# (case, file name, bytes, regex over the message after the path)
CATALOGUE = [
    (
        "tsv-missing-column",
        "t.tsv",
        b"1\tfirst query\n2 second query without a tab\n",
        r":2: expected 'qid<TAB>query text', found no tab",
    ),
    ("tsv-empty-query", "t.tsv", b"1\tfirst\n2\t   \n", r":2: query '2' has empty text"),
    ("tsv-missing-qid", "t.tsv", b"1\tfirst\n\tno id\n", r":2: missing or invalid query id ''"),
    ("tsv-qid-with-space", "t.tsv", b"1\tfirst\nq 2\ttext\n", r":2: query id 'q 2' contains whitespace"),
    ("tsv-duplicate-qid", "t.tsv", b"1\tfirst\n1\tagain\n", r":2: duplicate query id '1'"),
    (
        "tsv-invalid-utf8",
        "t.tsv",
        b"1\tfirst\n2\tcaf\xe9\n3\tok\n",
        r"^:2: invalid UTF-8 \(byte 0xe9 at byte 6 of the line\); save the file as UTF-8",
    ),
    ("tsv-invalid-utf8-after-bom", "t.tsv", b"\xef\xbb\xbf1\t\xff\n", r"^:1: invalid UTF-8 \(byte 0xff at byte 6 "),
    ("tsv-invalid-utf8-gz", "t.tsv.gz", gzip.compress(b"1\tok\n2\tok\n3\t\xc3(\n"), r"^:3: invalid UTF-8 \(byte 0xc3"),
    (
        "tsv-gzip-truncated",
        "t.tsv.gz",
        gzip.compress(b"".join(b"%d\tquery %d\n" % (i, i) for i in range(500)))[:60],
        r": cannot read after line \d+",
    ),
    (
        "tsv-control-in-text",
        "t.tsv",
        b"1\tok\n2\tbell\x07 here\n",
        r"^:2: query '2' text contains a control character U\+0007 at character 5",
    ),
    (
        "tsv-c1-control-in-text",
        "t.tsv",
        "1\tit\u0092s\n".encode(),
        r"^:1: query '1' text contains a control character U\+0092",
    ),
    ("tsv-cr-inside-text", "t.tsv", b"1\ta\rb\n", r"^:1: query '1' text contains a control character U\+000D"),
    (
        "tsv-control-in-qid",
        "t.tsv",
        b"1\tok\nq\x012\ttext\n",
        r"^:2: query id 'q\\x012' contains a control character U\+0001 at character 2",
    ),
    (
        "jsonl-invalid-utf8",
        "q.jsonl",
        b'{"_id": "1", "text": "a"}\n\n{"_id": "2", "text": "\xed\xa0\x80"}\n',
        r"^:3: invalid UTF-8 \(byte 0xed at byte 23 of the line\)",
    ),
    (
        "jsonl-lone-surrogate",
        "q.jsonl",
        b'{"_id": "1", "text": "a\\ud800b"}\n',
        r"^:1: query '1' text contains a lone surrogate U\+D800 at character 2",
    ),
    (
        "jsonl-nul-in-text",
        "q.jsonl",
        b'{"_id": "1", "text": "a\\u0000"}\n',
        r"^:1: query '1' text contains a control "
        r"character U\+0000",
    ),
    ("json-invalid-utf8", "q.json", b'{"1": "a",\n "2": "caf\xe9"}', r"^:2: invalid UTF-8 \(byte 0xe9 at byte 11 "),
    (
        "json-lone-surrogate-id",
        "q.json",
        b'{"q\\udc00": "x"}',
        r"^\['q\\udc00'\]: query id .* contains a lone "
        r"surrogate U\+DC00",
    ),
    ("tsv-empty-file", "t.tsv", b"\n\n", r": no topics found"),
    (
        "jsonl-invalid-json",
        "q.jsonl",
        b'{"_id": "1", "text": "a"}\n{"_id": "2", "text": \n',
        r":2: invalid JSON \(Expecting value\)",
    ),
    (
        "jsonl-missing-text-key",
        "q.jsonl",
        b'{"_id": "1", "text": "a"}\n{"_id": "2"}\n',
        r":2: a query record needs an id key .* and a text key .*; found _id",
    ),
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
    assert text.startswith(str(path)) and re.search(message, text[len(str(path)) :]), text


def test_missing_topics_file(tmp_path):
    with pytest.raises(TopicsFormatError, match=r"topics file not found"):
        read_topics(tmp_path / "nope.tsv")


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("t.tsv", b"\xef\xbb\xbf1\tbom query\r\n2\tcrlf query\r\n", {"1": "bom query", "2": "crlf query"}),
        ("t.tsv", b"1\tquery\t\n2\tsecond\n", {"1": "query", "2": "second"}),  # empty trailing column
        ("q.json", json.dumps({"1": "tab\there\nnewline"}).encode(), {"1": "tab\there\nnewline"}),
        ("q.jsonl", b'\n{"query_id": 3, "query": "numeric id"}\n\n', {"3": "numeric id"}),
        ("q.json", json.dumps({"1": {"title": "t"}}).encode(), {"1": "t"}),
    ],
    ids=["bom-crlf", "trailing-tab", "json-tab-newline", "blank-lines-numeric-id", "json-title"],
)
def test_accepted_variants(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    assert read_topics(path) == expected


def test_extra_tsv_columns_are_ignored_like_pyserini_with_a_warning(tmp_path, caplog):
    """Anserini's TsvInt/TsvStringTopicReader: ``line.trim().split("\\t")``, id arr[0], text arr[1].trim()."""
    path = tmp_path / "t.tsv"
    path.write_bytes(b"1\tfirst query\tjunk\n2\tsecond\n3\tthird\tmore\tcolumns\n")
    assert read_topics(path) == {"1": "first query", "2": "second", "3": "third"}
    assert re.search(r"t\.tsv: 2 lines have more than two tab-separated columns \(first: line 1\)", caplog.text)


def test_skip_mode_leaves_bad_records_out_and_lists_them(tmp_path, caplog):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"1\tfirst\n2 no tab\n3\tcaf\xe9\n1\tagain\n4\tbell\x07\n5\tlast\n")
    loaded = load_topics(path, on_error="skip")
    assert loaded.topics == {"1": "first", "5": "last"}  # a duplicate id keeps its first record
    assert [s.where for s in loaded.skipped] == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    assert all(isinstance(s, SkippedTopic) for s in loaded.skipped)
    assert "invalid UTF-8" in loaded.skipped[1].problem and "duplicate query id '1'" in loaded.skipped[2].problem
    assert read_topics(path, on_error="skip") == loaded.topics
    assert f"skipping query: {path}:5: query '4' text contains a control character" in caplog.text
    with pytest.raises(TopicsFormatError, match=r":2: expected 'qid<TAB>query text'"):
        read_topics(path)  # strict is the default


def test_skip_mode_with_nothing_left_and_file_level_errors_still_fail(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"_id": "1"}\nnot json\n')
    with pytest.raises(
        TopicsFormatError,
        match=r"no topics found \(2 bad records skipped, first: .*t\.jsonl:1: a "
        r"query record needs",
    ):
        load_topics(path, on_error="skip")
    whole = tmp_path / "q.json"
    whole.write_bytes(b'{"1": "a",')
    with pytest.raises(TopicsFormatError, match=r"invalid JSON"):
        load_topics(whole, on_error="skip")
    with pytest.raises(ValueError, match=r"on_error='lenient'"):
        load_topics(whole, on_error="lenient")
