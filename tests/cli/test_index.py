"""``python -m pyserini_diffretriever.index``: ``lucene`` (Pyserini's indexer + verification) and CLI errors.

Shard merging through this CLI is covered with the encode runs in ``test_encode.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.writers import iter_vector_records, read_manifest

from .test_encode import FakeEncoder, cranfield_like, write_corpus


def _expected_ranking(query: dict, docs: dict) -> list[tuple[str, float]]:
    """Impact scores as Lucene computes them: integer dot products over query terms with 0 < df < N."""
    df = {}
    for vector in docs.values():
        for term in vector:
            df[term] = df.get(term, 0) + 1
    usable = {t: w for t, w in query.items() if 0 < df.get(t, 0) < len(docs)}
    scores = {d: sum(w * vec.get(t, 0) for t, w in usable.items()) for d, vec in docs.items()}
    return sorted(((d, float(s)) for d, s in scores.items() if s > 0), key=lambda x: (-x[1], x[0]))


def _assert_hits(hits, expected) -> None:
    """Same documents and scores (Lucene sums float32 impacts: tiny rounding), in non-increasing score order."""
    assert {d: round(s, 3) for d, s in hits} == {d: round(s, 3) for d, s in expected}
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_help_shows_the_equivalent_pyserini_command(capsys):
    with pytest.raises(SystemExit):
        index_cli.main(["lucene", "-h"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "python -m pyserini.index.lucene --collection JsonVectorCollection --input OUT/impact/vectors "
        "--index IDX --generator DefaultLuceneDocumentGenerator --threads N --impact --pretokenized"
    ) in text


@pytest.mark.jvm
def test_encode_impact_then_lucene_index_and_search(tmp_path, monkeypatch):
    from pyserini.search.lucene import LuceneImpactSearcher

    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: FakeEncoder())
    assert (
        encode_cli.main(
            [
                "input",
                "--corpus",
                str(corpus),
                "--fields",
                "title",
                "text",
                "encoder",
                "--encoder",
                "fake",
                "--representation",
                "dense",
                "impact",
                "output",
                "--embeddings",
                str(tmp_path / "out"),
                "--records-per-file",
                "7",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        index_cli.main(
            ["lucene", "--input", str(tmp_path / "out" / "impact"), "--index", str(tmp_path / "idx"), "--threads", "2"]
        )
        == 0
    )
    manifest = read_manifest(tmp_path / "idx", "impact-index")
    assert manifest["num_docs"] == manifest["indexed_docs"] == 20
    assert manifest["encoder"] == read_manifest(tmp_path / "out" / "impact")["encoder"]

    docs = dict(iter_vector_records(tmp_path / "out" / "impact"))
    queries = {"q1": {"shock": 3, "wave": 2, "laminar": 1}, "q2": {"buckling": 2, "mach": 1, "the": 5}}

    class FixedQueryEncoder:
        def encode(self, text):
            return queries[text]

    searcher = LuceneImpactSearcher(str(tmp_path / "idx"), FixedQueryEncoder())
    for qid, query in queries.items():
        hits = [(h.docid, h.score) for h in searcher.search(qid, k=20)]
        _assert_hits(hits, _expected_ranking(query, docs))


@pytest.mark.jvm
@pytest.mark.slow
def test_tiny_dream_impact_index_searched_with_the_query_encoder(tmp_path, tiny_dream_dir):
    """Real token strings survive JSON + Lucene: LuceneImpactSearcher scores equal the integer dot products."""
    from pyserini.search.lucene import LuceneImpactSearcher

    from pyserini_diffretriever.encoders import DiffRetrieverQueryEncoder

    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(12))
    assert (
        encode_cli.main(
            [
                "input",
                "--corpus",
                str(corpus),
                "--fields",
                "title",
                "text",
                "encoder",
                "--encoder",
                str(tiny_dream_dir),
                "--representation",
                "impact",
                "--batch-size",
                "6",
                "--max-length",
                "64",
                "--device",
                "cpu",
                "output",
                "--embeddings",
                str(tmp_path / "impact"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert index_cli.main(["lucene", "--input", str(tmp_path / "impact"), "--index", str(tmp_path / "idx")]) == 0
    docs = dict(iter_vector_records(tmp_path / "impact"))
    assert len(docs) == 12
    query_encoder = DiffRetrieverQueryEncoder(str(tiny_dream_dir), representation="impact", max_length=64)
    searcher = LuceneImpactSearcher(str(tmp_path / "idx"), query_encoder)
    for text in ("shock wave boundary layer", "buckling of cylinders"):
        hits = [(h.docid, h.score) for h in searcher.search(text, k=12)]
        expected = _expected_ranking(query_encoder.encode(text), docs)
        assert expected, text  # the query shares terms with the corpus
        _assert_hits(hits, expected)


def test_cli_errors_exit_1_with_a_message(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    assert index_cli.main(["lucene", "--input", str(tmp_path / "empty"), "--index", str(tmp_path / "idx")]) == 1
    assert "no manifest.json" in caplog.text
    assert index_cli.main(["merge", "--inputs", str(tmp_path / "empty"), "--output", str(tmp_path / "m")]) == 1
    assert not (tmp_path / "idx").exists() and not (tmp_path / "m").exists()


def test_python_dash_m_entry_points():
    for module in ("pyserini_diffretriever.encode", "pyserini_diffretriever.index"):
        proc = subprocess.run([sys.executable, "-m", module, "-h"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "usage: python -m " + module in proc.stdout, proc.stderr


@pytest.mark.jvm
@pytest.mark.slow
def test_tiny_dream_dense_into_faiss_ann_and_lucene_then_search_cli(tmp_path, tiny_dream_dir):
    """encode dense + impact -> index faiss (HNSW) and lucene-dense (HNSW, flat) -> search CLI, alone and as the
    dense side of hybrids; on 12 documents every dense index ranks exactly as the flat FAISS folder."""
    from pyserini_diffretriever.cli import search as search_cli

    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(12))
    argv = ["input", "--corpus", str(corpus), "--fields", "title", "text", "encoder", "--encoder"]
    argv += [str(tiny_dream_dir), "--representation", "dense", "impact", "--batch-size", "6", "--max-length", "64"]
    argv += ["--device", "cpu", "output", "--embeddings", str(tmp_path / "enc"), "--no-progress"]
    assert encode_cli.main(argv) == 0
    dense = str(tmp_path / "enc" / "dense")
    assert index_cli.main(["faiss", "--input", dense, "--output", str(tmp_path / "hnsw"), "--hnsw", "--M", "8"]) == 0
    assert read_manifest(tmp_path / "hnsw")["index"]["factory"] == "HNSW8"
    assert index_cli.main(["lucene-dense", "--input", dense, "--index", str(tmp_path / "lhnsw")]) == 0
    assert read_manifest(tmp_path / "lhnsw")["lucene"]["class"] == "io.anserini.index.IndexHnswDenseVectors"
    assert index_cli.main(["lucene-dense", "--input", dense, "--index", str(tmp_path / "lflat"), "--flat"]) == 0
    assert (
        index_cli.main(["lucene", "--input", str(tmp_path / "enc" / "impact"), "--index", str(tmp_path / "imp")]) == 0
    )
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tshock wave boundary layer\n2\theat transfer at high mach number\n")

    def run(name, *indexes):
        out = tmp_path / f"{name}.trec"
        argv = [*indexes, "--topics", str(topics), "--output", str(out), "--hits", "12", "--max-length", "64"]
        assert search_cli.main(argv) == 0
        return [line.split() for line in out.read_text().splitlines()]

    flat = run("flat", "--index", dense)
    for name in ("hnsw", "lhnsw", "lflat"):
        ranked = run(name, "--index", str(tmp_path / name))
        assert [(r[0], r[2]) for r in ranked] == [(r[0], r[2]) for r in flat], name
        assert [float(r[4]) for r in ranked] == pytest.approx([float(r[4]) for r in flat], abs=2e-6), name
    hybrid = run("hybrid", "--dense-index", str(tmp_path / "lhnsw"), "--impact-index", str(tmp_path / "imp"))
    reference = run("hybrid-flat", "--dense-index", dense, "--impact-index", str(tmp_path / "imp"))
    assert [(r[0], r[2]) for r in hybrid] == [(r[0], r[2]) for r in reference]
    with pytest.raises(SystemExit) as usage:
        search_cli.main(["--index", dense, "--topics", str(topics), "--output", "x", "--ef-search", "0"])
    assert usage.value.code == 2
