"""Run files: Pyserini's exact TREC / MS MARCO lines, (-score, docid) order, round trip."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyserini_diffretriever.search.results import SearchResult
from pyserini_diffretriever.search.runs import RunFormatError, RunWriter, read_run, write_run


def test_trec_lines_match_pyserini_trec_writer_format(tmp_path):
    hits = [
        SimpleNamespace(docid=" d2 ", score=0.5),
        SimpleNamespace(docid="d10", score=1.25),
        SimpleNamespace(docid="d1", score=0.5),
    ]
    path = write_run(tmp_path / "sub" / "run.trec", {"q1": hits}, tag="tag1")
    # pyserini.output_writer.TrecWriter: f'{topic} Q0 {docid} {rank} {score:.6f} {tag}' (docid stripped)
    assert path.read_text().splitlines() == [
        "q1 Q0 d10 1 1.250000 tag1",
        "q1 Q0 d1 2 0.500000 tag1",
        "q1 Q0 d2 3 0.500000 tag1",
    ]


def test_msmarco_format_and_max_hits(tmp_path):
    path = write_run(
        tmp_path / "run.tsv",
        {"7": [SearchResult("a", 2.0), SearchResult("b", 1.0)]},
        output_format="msmarco",
        max_hits=1,
    )
    assert path.read_text() == "7\ta\t1\n"


def test_round_trip_keeps_scores_to_six_decimals(tmp_path):
    results = {"q1": [SearchResult("a", 1 / 3), SearchResult("b", -2.0)], "q2": [SearchResult("c", 0.0)]}
    back = read_run(write_run(tmp_path / "r.trec", results))
    assert list(back) == ["q1", "q2"]
    assert [(h.docid, h.score) for h in back["q1"]] == [("a", 0.333333), ("b", -2.0)]


def test_unwritable_values_and_bad_lines_are_errors(tmp_path):
    with pytest.raises(RunFormatError, match="docid"):
        write_run(tmp_path / "r.trec", {"q": [SearchResult("has space", 1.0)]})
    with pytest.raises(RunFormatError, match="run tag"):
        RunWriter(tmp_path / "r.trec", tag="two words")
    with pytest.raises(ValueError, match="output format"):
        RunWriter(tmp_path / "r.trec", output_format="kilt")
    bad = tmp_path / "bad.trec"
    bad.write_text("q Q0 d 1 1.0 tag\nq Q0 d 2\n")
    with pytest.raises(RunFormatError, match="bad.trec:2: expected 6 fields"):
        read_run(bad)
