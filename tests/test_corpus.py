"""Streaming corpus reader: Pyserini's field/id/shard rules, and a precise error for every bad record."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pyserini_diffretriever.corpus import CorpusError, JsonlCorpusReader, list_corpus_files, shard_bounds


def _write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_named_fields_and_default_id_keys(tmp_path):
    corpus = _write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"_id": "a", "title": " Wings ", "text": "Lift and drag. "},
            {"docid": 7, "title": "", "text": "Only text"},
            {"id": "c", "_id": "ignored", "title": None, "text": "Id wins over _id"},
        ],
    )
    records = list(JsonlCorpusReader(corpus, fields=("title", "text")))
    assert [(r.docid, r.fields) for r in records] == [
        ("a", {"title": "Wings", "text": "Lift and drag."}),
        ("7", {"title": "", "text": "Only text"}),
        ("c", {"title": "", "text": "Id wins over _id"}),
    ]
    assert [r.line for r in records] == [1, 2, 3]


def test_contents_split_on_delimiter_with_cacm_trailing_delimiter(tmp_path):
    corpus = _write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": "1", "contents": "Title one\nBody one\n"},  # one delimiter too many at the end: dropped
            {"id": "2", "contents": "Title two|||Body two"},
        ],
    )
    first = next(iter(JsonlCorpusReader(corpus, fields=("title", "text"))))
    assert first.fields == {"title": "Title one", "text": "Body one"}
    with pytest.raises(CorpusError, match=r"line 2: 'contents' of document '2' splits into 1 parts"):
        list(JsonlCorpusReader(corpus, fields=("title", "text")))
    piped = _write_jsonl(tmp_path / "p.jsonl", [{"id": "2", "contents": "Title two|||Body two"}])
    assert next(iter(JsonlCorpusReader(piped, ("title", "text"), delimiter="|||"))).fields["text"] == "Body two"


def test_docid_field_option(tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [{"pid": "p1", "id": "x", "text": "t"}])
    assert next(iter(JsonlCorpusReader(corpus, docid_field="pid"))).docid == "p1"
    with pytest.raises(CorpusError, match="missing id .*'nope'"):
        list(JsonlCorpusReader(corpus, docid_field="nope"))


@pytest.mark.parametrize(
    ("line", "fields", "message"),
    [
        ('{"id": "d1", "text": "ok"', ("text",), r"line 2: invalid JSON"),
        ('["d1", "text"]', ("text",), r"line 2: expected a JSON object"),
        ('{"text": "no id"}', ("text",), r"line 2: missing id"),
        ('{"id": "  ", "text": "x"}', ("text",), r"line 2: empty id"),
        ('{"id": "a\\nb", "text": "x"}', ("text",), r"line 2: id 'a\\nb' contains whitespace"),
        ('{"id": "d9", "title": "t"}', ("title", "text"), r"line 2: missing text field\(s\) \['text'\]"),
        ('{"id": "d9", "text": "   "}', ("text",), r"line 2: empty text in document 'd9'"),
        ('{"id": "d9", "text": 5}', ("text",), r"line 2: field 'text' of document 'd9' is int"),
        ('{"id": "d0", "text": "again"}', ("text",), r"line 2: duplicate id 'd0' \(first seen at .*line 1\)"),
    ],
)
def test_bad_records_name_file_line_and_problem(tmp_path, line, fields, message):
    corpus = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "d0", "title": "t", "text": "fine"}, line])
    with pytest.raises(CorpusError, match=message) as info:
        list(JsonlCorpusReader(corpus, fields=fields))
    assert info.value.path == str(corpus) and info.value.line == 2


def test_folder_is_read_in_name_order_with_gzip_and_blank_lines(tmp_path):
    folder = tmp_path / "corpus"
    _write_jsonl(folder / "b.jsonl", [{"id": "b1", "text": "x"}, "", {"id": "b2", "text": "y"}])
    _write_jsonl(folder / "a.json", [{"id": "a1", "text": "z"}])
    with gzip.open(folder / "c.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "c1", "text": "w"}) + "\n")
    (folder / "README.txt").write_text("not a corpus file")
    reader = JsonlCorpusReader(folder)
    assert [p.name for p in reader.files] == ["a.json", "b.jsonl", "c.jsonl.gz"]
    assert [r.docid for r in reader] == ["a1", "b1", "b2", "c1"]
    assert reader.count() == 4
    assert [r.line for r in reader.iter_records(1, 3)] == [1, 3]  # the blank line is skipped, not counted


def test_missing_or_empty_corpus_path(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        list_corpus_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no corpus files"):
        list_corpus_files(tmp_path / "empty")


@pytest.mark.parametrize(("total", "num"), [(10, 3), (7, 7), (5, 2), (20, 4), (3, 5)])
def test_shards_are_contiguous_like_pyserini_and_cover_everything(total, num):
    bounds = [shard_bounds(total, i, num) for i in range(num)]
    size = total // num  # Pyserini: int(N / shard_num), the last shard takes the remainder
    assert bounds[:-1] == [(i * size, i * size + size) for i in range(num - 1)]
    assert bounds[-1] == ((num - 1) * size, total)
    covered = [i for start, end in bounds for i in range(start, end)]
    assert covered == list(range(total))


def test_batches_follow_shard_and_skip_other_records_without_parsing(tmp_path):
    records = [{"id": f"d{i}", "title": f"T{i}", "text": f"body {i}"} for i in range(7)]
    records[1] = '{"this line is never parsed"'  # outside shard 1/2 -> no error
    corpus = _write_jsonl(tmp_path / "c.jsonl", records)
    reader = JsonlCorpusReader(corpus, fields=("title", "text"))
    batches = list(reader.iter_batches(batch_size=2, shard_id=1, shard_num=2, progress=False))
    assert [b["id"] for b in batches] == [["d3", "d4"], ["d5", "d6"]]
    assert batches[0]["title"] == ["T3", "T4"] and batches[1]["text"] == ["body 5", "body 6"]
    with pytest.raises(CorpusError, match="line 2: invalid JSON"):
        list(reader.iter_batches(batch_size=2, shard_id=0, shard_num=2, progress=False))


@pytest.mark.jvm
def test_same_documents_and_shards_as_pyserini_iterator(tmp_path):
    from pyserini.encode import JsonlCollectionIterator

    import pyserini_diffretriever  # noqa: F401  (prepares Java: importing pyserini.encode starts the JVM)

    records = [{"id": f"d{i}", "contents": f"Title {i}\nBody of {i}.", "extra": i} for i in range(11)]
    records[4] = {"_id": "beir", "title": "Named", "text": "fields win over contents", "contents": "x\ny"}
    corpus = _write_jsonl(tmp_path / "c.jsonl", records)
    ours = JsonlCorpusReader(corpus, fields=("title", "text"))
    theirs = JsonlCollectionIterator(str(corpus), fields=["title", "text"])
    for shard in range(3):
        expected = [dict(b) for b in theirs(4, shard, 3)]
        got = list(ours.iter_batches(4, shard, 3, progress=False))
        assert [{k: list(v) for k, v in b.items()} for b in expected] == got


def test_skip_mode_reports_bad_records_and_keeps_good_ones(tmp_path):
    corpus = _write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "a", "text": "fine"}, '{"id": "b", "text": ', {"id": "a", "text": "dup"}, {"id": "c", "text": "ok"}],
    )
    strict = JsonlCorpusReader(corpus)
    with pytest.raises(CorpusError, match="line 2: invalid JSON") as info:
        list(strict)
    assert info.value.kind == "invalid-json"
    lenient = JsonlCorpusReader(corpus, on_error="skip")
    assert [r.docid for r in lenient] == ["a", "c"]
    assert [(s.line, s.kind, s.docid) for s in lenient.skipped] == [(2, "invalid-json", None), (3, "duplicate-id", "a")]
    assert lenient.skipped[1].as_dict() == {
        "file": str(corpus),
        "line": 3,
        "id": "a",
        "kind": "duplicate-id",
        "problem": lenient.skipped[1].problem,
    }
    seen = []
    assert [r.docid for r in lenient.iter_records(on_skip=seen.append)] == ["a", "c"] and len(seen) == 2
    with pytest.raises(ValueError, match="on_error must be one of"):
        JsonlCorpusReader(corpus, on_error="ignore")


def test_entries_digest_covers_the_records_read(tmp_path):
    import hashlib

    records = [{"id": f"d{i}", "text": f"t{i}"} for i in range(4)]
    corpus = _write_jsonl(tmp_path / "c.jsonl", [records[0], "", *records[1:]])
    digest = hashlib.sha256()
    entries = list(JsonlCorpusReader(corpus).iter_entries(0, 2, digest=digest))
    assert [e.docid for e in entries] == ["d0", "d1"]
    assert (
        digest.hexdigest()
        == hashlib.sha256((json.dumps(records[0]) + "\n" + json.dumps(records[1]) + "\n").encode()).hexdigest()
    )


def test_over_long_records_are_counted_and_reported(tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "x" * 100}, {"id": "b", "text": "y"}])
    reader = JsonlCorpusReader(corpus, max_record_bytes=50, on_error="skip")
    assert reader.count() == 2
    assert [r.docid for r in reader] == ["b"]
    assert reader.skipped[0].kind == "too-long" and "record is 123 bytes" in reader.skipped[0].problem
    assert [r.docid for r in JsonlCorpusReader(corpus, max_record_bytes=0)] == ["a", "b"]  # 0: no limit


@pytest.mark.parametrize(
    ("docid", "problem"),
    [
        ("d1", None),
        ("ü-7", None),
        ("", "empty id"),
        ("a b", "whitespace"),
        ("a\u2003b", "whitespace"),
        ("a\x00b", "control character"),
        ("a\x9bb", "control character"),
        ("a\ud800", "lone surrogate"),
    ],
)
def test_docid_problem(docid, problem):
    from pyserini_diffretriever.corpus import docid_problem

    found = docid_problem(docid)
    assert (found is None) if problem is None else (problem in found)
