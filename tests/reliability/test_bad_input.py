"""The bad-input catalogue: every kind of bad corpus record, in strict mode (a clear error naming file, line and
problem; no output) and in skip mode (listed in skipped-records.jsonl, counted in the manifest, every good
record still encoded: nothing lost silently)."""

from __future__ import annotations

import gzip
import json
import logging
import re

import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.corpus import PROBLEMS
from pyserini_diffretriever.writers import iter_vector_records, read_faiss_docids, read_manifest, verify_output

from .harness import FakeEncoder, cranfield_like, encode_argv, run_child, write_corpus

BAD_LINE = 4  # the bad record goes on this line, between good ones

# (case id, raw line, problem code, regex the message must match)
CATALOGUE = [
    ("json-truncated", '{"_id": "x", "title": "t", "text": ', "invalid-json", r"invalid JSON \(Expecting value"),
    ("json-trailing-garbage", '{"_id": "x", "text": "a"} extra', "invalid-json", r"invalid JSON \(Extra data"),
    ("json-single-quotes", "{'_id': 'x', 'text': 'a'}", "invalid-json", r"invalid JSON"),
    ("json-nested-too-deep", "[" * 2000 + "]" * 2000, "invalid-json", r"invalid JSON \(nested too deeply\)"),
    ("json-nbsp-only", "\u00a0", "invalid-json", r"invalid JSON"),
    (
        "utf8-latin1-byte",
        b'{"_id": "x", "text": "caf\xe9"}',
        "invalid-utf8",
        r"invalid UTF-8 \(byte 0xe9 at byte 26 of the line",
    ),
    ("utf8-cut-multibyte", b'{"_id": "x", "text": "\xe2\x82"}', "invalid-utf8", r"invalid UTF-8"),
    ("not-object-list", '["x", "text"]', "not-an-object", r"expected a JSON object, got list"),
    ("not-object-string", '"just text"', "not-an-object", r"expected a JSON object, got str"),
    ("not-object-null", "null", "not-an-object", r"expected a JSON object, got NoneType"),
    ("missing-id", '{"title": "t", "text": "no id"}', "missing-id", r"missing id \(looked for key 'id' / '_id'"),
    ("null-id", '{"_id": null, "text": "x"}', "missing-id", r"missing id"),
    ("empty-id", '{"_id": "", "text": "x"}', "bad-id", r"empty id"),
    ("whitespace-id", '{"_id": " \\t ", "text": "x"}', "bad-id", r"empty id"),
    ("id-with-space", '{"_id": "doc 7", "text": "x"}', "bad-id", r"id 'doc 7' contains whitespace"),
    ("id-with-tab", '{"_id": "doc\\t7", "text": "x"}', "bad-id", r"id 'doc\\t7' contains whitespace"),
    ("id-with-newline", '{"_id": "doc\\n7", "text": "x"}', "bad-id", r"contains whitespace"),
    ("id-trailing-space", '{"_id": "doc7 ", "text": "x"}', "bad-id", r"contains whitespace"),
    ("id-control-char", '{"_id": "doc\\u00077", "text": "x"}', "bad-id", r"contains a control character"),
    ("id-list", '{"_id": ["a"], "text": "x"}', "bad-id", r"id must be a string or number, got list"),
    ("id-bool", '{"_id": true, "text": "x"}', "bad-id", r"id must be a string or number, got bool"),
    ("missing-text", '{"_id": "x", "title": "t"}', "missing-field", r"missing text field\(s\) \['text'\] and no"),
    ("text-number", '{"_id": "x", "title": "t", "text": 5}', "bad-field", r"field 'text' of document 'x' is int"),
    ("text-nan", '{"_id": "x", "title": "t", "text": NaN}', "bad-field", r"field 'text' of document 'x' is float"),
    ("contents-wrong-split", '{"_id": "x", "contents": "a|b|c"}', "bad-field", r"splits into 1 parts"),
    ("empty-text", '{"_id": "x", "title": "", "text": ""}', "empty-text", r"empty text in document 'x'"),
    ("whitespace-text", '{"_id": "x", "title": " \\t", "text": "\\n  "}', "empty-text", r"empty text"),
    (
        "nul-in-text",
        '{"_id": "x", "title": "t", "text": "a\\u0000b"}',
        "control-character",
        r"field 'text' of document 'x' contains control character U\+0000 at offset 1",
    ),
    (
        "escape-in-text",
        '{"_id": "x", "title": "t", "text": "a\\u001b[31mred"}',
        "control-character",
        r"control character U\+001B",
    ),
    (
        "lone-surrogate",
        '{"_id": "x", "title": "t", "text": "a\\ud800b"}',
        "control-character",
        r"lone surrogate U\+D800",
    ),
    (
        "too-long",
        json.dumps({"_id": "x", "title": "t", "text": "lift " * 2000}),
        "too-long",
        r"record is 10\d\d\d bytes, longer than the limit of 4096 \(--max-record-bytes\)",
    ),
    (
        "duplicate-id",
        '{"_id": "cran2", "title": "t", "text": "again"}',
        "duplicate-id",
        r"duplicate id 'cran2' \(first seen at .*corpus.jsonl, line 2\)",
    ),
]
LIMIT = ["--max-record-bytes", "4096"]


def corpus_with(tmp_path, bad_line):
    lines = [*cranfield_like(8)]
    lines.insert(BAD_LINE - 1, bad_line)
    return write_corpus(tmp_path / "corpus.jsonl", lines)


def run(monkeypatch, corpus, out, *extra_input, representations=("dense", "multi", "impact")):
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: FakeEncoder())
    return encode_cli.main(
        encode_argv(
            corpus, out, representations=representations, checkpoint_every=1000, extra_input=[*LIMIT, *extra_input]
        )
    )


def test_catalogue_covers_every_problem_code():
    assert {kind for _, _, kind, _ in CATALOGUE} == set(PROBLEMS)


@pytest.mark.parametrize(("case", "line", "kind", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_strict_mode_stops_with_file_line_and_problem(tmp_path, monkeypatch, caplog, case, line, kind, message):
    corpus = corpus_with(tmp_path, line)
    assert run(monkeypatch, corpus, tmp_path / "out") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{corpus}, line {BAD_LINE}: ") and re.search(message, errors[0]), errors[0]
    assert "Traceback" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]  # no output, no partial, no lock


@pytest.mark.parametrize(("case", "line", "kind", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_skip_mode_lists_the_record_and_loses_nothing(tmp_path, monkeypatch, caplog, case, line, kind, message):
    caplog.set_level(logging.INFO)
    corpus = corpus_with(tmp_path, line)
    out = tmp_path / "out"
    assert run(monkeypatch, corpus, out, "--on-error", "skip") == 0
    good = [d["_id"] for d in cranfield_like(8)]
    for name in ("dense", "multi", "impact"):
        manifest = verify_output(out / name, deep=True)
        assert manifest["num_docs"] == len(good) and manifest["num_skipped_records"] == 1
        assert manifest["skipped_by_problem"] == {kind: 1}
        assert manifest["num_docs"] + manifest["num_skipped_records"] == manifest["corpus"]["num_records"] == 9
        report = [json.loads(x) for x in (out / name / "skipped-records.jsonl").read_text().splitlines()]
        assert len(report) == 1 and report[0]["file"] == str(corpus) and report[0]["line"] == BAD_LINE
        assert report[0]["kind"] == kind and re.search(message, report[0]["problem"])
    assert read_faiss_docids(out / "dense") == good  # every good record, in corpus order
    assert [docid for docid, _ in iter_vector_records(out / "impact")] == good
    summary = [r.getMessage() for r in caplog.records if "skipped 1 bad records" in r.getMessage()]
    assert len(summary) == 1 and f"({kind}: 1)" in summary[0] and "skipped-records.jsonl" in summary[0]


def test_all_kinds_at_once_in_skip_mode(tmp_path, monkeypatch):
    good = cranfield_like(12)
    lines: list = []
    for i, (case, line, _, _) in enumerate(CATALOGUE):
        if case == "duplicate-id":
            line = '{"_id": "good0", "title": "t", "text": "again"}'
        lines += [good[i % len(good)] | {"_id": f"good{i}"}, line]
    corpus = write_corpus(tmp_path / "corpus.jsonl", lines)
    out = tmp_path / "out"
    assert run(monkeypatch, corpus, out, "--on-error", "skip", representations=("dense",)) == 0
    manifest = read_manifest(out)
    expected_kinds: dict[str, int] = {}
    for _, _, kind, _ in CATALOGUE:
        expected_kinds[kind] = expected_kinds.get(kind, 0) + 1
    assert manifest["skipped_by_problem"] == dict(sorted(expected_kinds.items()))
    report = [json.loads(x) for x in (out / "skipped-records.jsonl").read_text().splitlines()]
    assert [r["line"] for r in report] == [2 * i + 2 for i in range(len(CATALOGUE))]  # each bad line once
    assert read_faiss_docids(out) == [f"good{i}" for i in range(len(CATALOGUE))]


def test_same_shards_in_strict_and_skip_mode(tmp_path, monkeypatch):
    """A skipped record still counts for sharding, so --shard-id/--shard-num select the same records."""
    lines = [*cranfield_like(9)]
    lines[4] = '{"_id": "broken"'
    corpus = write_corpus(tmp_path / "corpus.jsonl", lines)
    out = tmp_path / "s1"
    assert run(monkeypatch, corpus, out, "--on-error", "skip", "--shard-id", "1", "--shard-num", "3") == 0
    assert read_faiss_docids(out / "dense") == ["cran4", "cran6"]  # records 3..5, the 5th skipped
    assert read_manifest(out / "dense")["corpus"]["shard_range"] == [3, 6]


@pytest.mark.parametrize(
    ("lines", "ids"),
    [
        (
            [
                b"\xef\xbb\xbf" + json.dumps({"_id": "a", "title": "", "text": "bom"}).encode(),
                {"_id": "b", "title": "", "text": "x"},
            ],
            ["a", "b"],
        ),
        (
            [json.dumps({"_id": "a", "title": "", "text": "crlf"}) + "\r", {"_id": "b", "title": "", "text": "x"}],
            ["a", "b"],
        ),
        (["", {"_id": "a", "title": "", "text": "x"}, "   ", {"_id": "b", "title": "", "text": "y"}], ["a", "b"]),
        (
            [{"_id": "a", "title": "", "text": "form\ffeed and\vtab are whitespace, \u0085 and C1 \u0090 are kept"}],
            ["a"],
        ),
        (
            [{"_id": 7, "title": "", "text": "numeric id"}, {"_id": "ü-ñ", "title": "", "text": "non-ASCII id"}],
            ["7", "ü-ñ"],
        ),
    ],
    ids=["utf8-bom", "crlf", "blank-lines", "whitespace-controls", "numeric-and-unicode-ids"],
)
def test_accepted_variants_are_not_problems(tmp_path, monkeypatch, lines, ids):
    corpus = write_corpus(tmp_path / "corpus.jsonl", lines)
    assert run(monkeypatch, corpus, tmp_path / "out", representations=("dense",)) == 0
    assert read_faiss_docids(tmp_path / "out") == ids


def test_last_line_without_newline_is_a_record(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "a", "title": "", "text": "x"}) + "\n" + json.dumps({"_id": "b", "title": "", "text": "y"})
    )
    assert run(monkeypatch, corpus, tmp_path / "out", representations=("dense",)) == 0
    assert read_faiss_docids(tmp_path / "out") == ["a", "b"]


def test_default_limit_takes_a_17_mib_record_in_bounded_memory(tmp_path):
    """The default --max-record-bytes (16 MiB) rejects a 17 MiB line without loading it whole."""
    import tracemalloc

    from pyserini_diffretriever.corpus import JsonlCorpusReader

    corpus = tmp_path / "corpus.jsonl"
    with open(corpus, "w") as handle:
        handle.write(json.dumps({"_id": "a", "text": "x"}) + "\n")
        handle.write('{"_id": "huge", "text": "' + "w" * (17 << 20) + '"}\n')
        handle.write(json.dumps({"_id": "b", "text": "y"}) + "\n")
    reader = JsonlCorpusReader(corpus, on_error="skip")
    tracemalloc.start()
    entries = list(reader.iter_entries())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [getattr(e, "docid", None) for e in entries] == ["a", None, "b"]
    assert entries[1].kind == "too-long" and entries[1].line == 2
    assert peak < 40 << 20  # the 16 MiB + 1 probe plus 1 MiB chunks, never the whole 17 MiB line twice


def test_corrupt_gzip_corpus_names_the_file(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "corpus"
    write_corpus(folder / "a.jsonl", cranfield_like(3))
    data = gzip.compress(b"".join(json.dumps(d).encode() + b"\n" for d in cranfield_like(30)[3:]))
    (folder / "b.jsonl.gz").write_bytes(data[: len(data) // 2])  # truncated download
    assert run(monkeypatch, folder, tmp_path / "out", "--on-error", "skip") == 1
    assert re.search(r"b\.jsonl\.gz, line \d+: cannot read corpus file \(Compressed file ended", caplog.text)
    assert not (tmp_path / "out").exists()


def test_bad_record_in_second_file_names_that_file(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "corpus"
    write_corpus(folder / "a.jsonl", cranfield_like(3))
    write_corpus(
        folder / "b.jsonl", [{"_id": "b1", "title": "", "text": "fine"}, '{"_id": "b2", "title": "", "text": 3}']
    )
    assert run(monkeypatch, folder, tmp_path / "out") == 1
    assert f"{folder / 'b.jsonl'}, line 2: field 'text' of document 'b2' is int" in caplog.text


@pytest.mark.parametrize("case", ["json-truncated", "utf8-latin1-byte", "id-with-tab"])
def test_command_line_shows_one_clear_message_and_no_traceback(tmp_path, case):
    line = next(c[1] for c in CATALOGUE if c[0] == case)
    corpus = corpus_with(tmp_path, line)
    result = run_child(encode_argv(corpus, tmp_path / "out", checkpoint_every=1000), tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if " ERROR " in x]
    assert len(errors) == 1 and f"{corpus}, line {BAD_LINE}: " in errors[0], result.stderr
