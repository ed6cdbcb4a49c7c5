"""``python -m pyserini_diffretriever.search``: run files, hybrid fusion, errors, and trec_eval on the output."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from search.index_builders import FakeQueryEncoder, random_multi_docs, write_multi_index

from pyserini_diffretriever.cli import search as search_cli
from pyserini_diffretriever.search import factory
from pyserini_diffretriever.search.multivector import MultiVectorSearcher
from pyserini_diffretriever.search.scoring import maxsim

TREC_LINE = re.compile(r"^(\S+) Q0 (\S+) (\d+) (-?\d+\.\d{6}) (\S+)$")


def parse_trec(path: Path) -> dict[str, list[tuple[str, int, float, str]]]:
    """Check every line's shape and return ``{qid: [(docid, rank, score, tag)]}``."""
    run: dict[str, list] = {}
    for line in path.read_text().splitlines():
        match = TREC_LINE.match(line)
        assert match, f"not a TREC run line: {line!r}"
        qid, docid, rank, score, tag = match.groups()
        run.setdefault(qid, []).append((docid, int(rank), float(score), tag))
    for hits in run.values():
        assert [rank for _, rank, _, _ in hits] == list(range(1, len(hits) + 1))
        assert [(-s, d) for d, _, s, _ in hits] == sorted((-s, d) for d, _, s, _ in hits)
        assert len({d for d, *_ in hits}) == len(hits)
    return run


@pytest.fixture()
def fake_multi(tmp_path, monkeypatch):
    """A small multi-vector index, topics, and a fake encoder the CLI gets instead of the real one."""
    docs = random_multi_docs(30, 8, seed=4)
    docids = [f"doc{i}" for i in range(30)]
    folder = write_multi_index(tmp_path / "multi", docs, docids)
    queries = {"1": docs[3][:2], "2": docs[7][:1], "doc5": docs[5]}
    texts = {"1": "first query", "2": "second query", "doc5": "a query whose id is a docid"}
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"{q}\t{t}\n" for q, t in texts.items()))
    encoder = FakeQueryEncoder({texts[q]: v for q, v in queries.items()}, "multi")
    monkeypatch.setattr(factory, "query_encoder_for", lambda manifest, **kwargs: encoder)
    return {"folder": folder, "docs": docs, "docids": docids, "topics": topics, "queries": queries, "texts": texts}


def test_single_index_run_is_pyserini_trec_with_exact_scores(fake_multi, tmp_path):
    out = tmp_path / "runs" / "multi.trec"
    argv = [
        "--index",
        str(fake_multi["folder"]),
        "--topics",
        str(fake_multi["topics"]),
        "--output",
        str(out),
        "--hits",
        "5",
        "--mode",
        "exact",
        "--run-tag",
        "mytag",
        "--batch-size",
        "2",
    ]
    assert search_cli.main(argv) == 0
    run = parse_trec(out)
    assert list(run) == ["1", "2", "doc5"] and all(len(hits) == 5 for hits in run.values())
    assert {tag for hits in run.values() for *_, tag in hits} == {"mytag"}
    by_id = dict(zip(fake_multi["docids"], fake_multi["docs"]))
    for qid, hits in run.items():
        for docid, _, score, _ in hits:
            assert score == pytest.approx(maxsim(fake_multi["queries"][qid], by_id[docid]), abs=1e-6)
    assert run["1"][0][0] == "doc3" and run["doc5"][0][0] == "doc5"


def test_default_mode_msmarco_output_and_remove_query(fake_multi, tmp_path):
    out = tmp_path / "run.tsv"
    argv = [
        "--index",
        str(fake_multi["folder"]),
        "--topics",
        str(fake_multi["topics"]),
        "--output",
        str(out),
        "--hits",
        "3",
        "--output-format",
        "msmarco",
        "--remove-query",
    ]
    assert search_cli.main(argv) == 0
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert all(len(fields) == 3 for fields in lines)
    assert [f[2] for f in lines if f[0] == "1"] == ["1", "2", "3"]
    assert "doc5" not in {f[1] for f in lines if f[0] == "doc5"}  # the query's own id was removed
    direct = MultiVectorSearcher(fake_multi["folder"]).search(fake_multi["queries"]["1"], k=3)
    assert [f[1] for f in lines if f[0] == "1"] == [h.docid for h in direct]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--index", "a", "--multi-index", "b"],
        ["--dense-index", "a", "--multi-index", "b", "--impact-index", "c"],
        ["--index", "a", "--hits", "0"],
        ["--index", "a", "--alpha", "2"],
        ["--index", "a", "--mode", "fast"],
    ],
)
def test_usage_errors_exit_with_status_2(argv, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        search_cli.main([*argv, "--topics", "t.tsv", "--output", str(tmp_path / "r")])
    assert exit_.value.code == 2


def test_data_errors_are_reported_with_status_1(fake_multi, tmp_path, capsys):
    out = str(tmp_path / "r.trec")
    assert (
        search_cli.main(
            ["--dense-index", str(fake_multi["folder"]), "--topics", str(fake_multi["topics"]), "--output", out]
        )
        == 1
    )
    assert "given as a dense index, but it holds a 'multi' index" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\tfine\n2 missing tab\n")
    assert search_cli.main(["--index", str(fake_multi["folder"]), "--topics", str(bad), "--output", out]) == 1
    assert "bad.tsv:2" in capsys.readouterr().err
    assert search_cli.main(["--index", str(tmp_path), "--topics", str(fake_multi["topics"]), "--output", out]) == 1
    assert "manifest" in capsys.readouterr().err


def test_bad_topic_records_can_be_skipped(fake_multi, tmp_path, capsys, caplog):
    topics = tmp_path / "topics.tsv"
    topics.write_bytes(b"1\tfirst query\n2 missing tab\n3\tbell\x07\n2\tsecond query\n")
    out = tmp_path / "run.trec"
    base = ["--index", str(fake_multi["folder"]), "--topics", str(topics), "--output", str(out), "--hits", "2"]
    assert search_cli.main(base) == 1 and "topics.tsv:2: expected 'qid<TAB>query text'" in capsys.readouterr().err
    assert search_cli.main([*base, "--topics-on-error", "skip"]) == 0
    assert list(parse_trec(out)) == ["1", "2"]
    assert "topics.tsv:3: query '3' text contains a control character U+0007" in caplog.text


@pytest.fixture()
def compressed(fake_multi, tmp_path):
    """The fake multi folder compressed (SQ8 codes; its manifest records the float folder for --rerank)."""
    from pyserini_diffretriever.indexing.compress_multi import compress_multivector

    compress_multivector(fake_multi["folder"], tmp_path / "multi-c", reduced_dimension=8, nlist=4)
    return tmp_path / "multi-c"


def test_rerank_searches_a_compressed_folder_and_rescores_from_its_floats(fake_multi, compressed, tmp_path):
    out = tmp_path / "rerank.trec"
    base = ["--topics", str(fake_multi["topics"]), "--output", str(out), "--hits", "3"]
    assert search_cli.main(["--index", str(compressed), "--rerank", "10", "--centroid-candidates", "20", *base]) == 0
    by_id = dict(zip(fake_multi["docids"], fake_multi["docs"]))
    run = parse_trec(out)
    assert list(run) == ["1", "2", "doc5"]
    for qid, hits in run.items():  # re-ranked scores are exact MaxSim of the float vectors
        for docid, _, score, _ in hits:
            assert score == pytest.approx(maxsim(fake_multi["queries"][qid], by_id[docid]), abs=1e-6)
    assert run["1"][0][0] == "doc3"
    other = write_multi_index(tmp_path / "elsewhere", fake_multi["docs"], fake_multi["docids"])
    argv = ["--index", str(compressed), "--rerank", "5", "--rerank-index", str(other), *base]
    assert search_cli.main(argv) == 0 and parse_trec(out)["1"][0][0] == "doc3"


@pytest.mark.parametrize(
    ("index", "option", "named"),
    [
        ("impact", ["--nprobe", "8"], "--nprobe: .*option nprobe does not apply to impact-index indexes"),
        ("multi", ["--rerank", "10"], "--rerank: .*option rerank does not apply to multi indexes"),
        ("compressed", ["--token-index", "ivf"], "--token-index: .*token_index does not apply to multi-compressed"),
        ("impact", ["--mode", "exact"], "--mode: .*mode does not apply to impact-index indexes"),
    ],
)
def test_options_of_another_kind_are_refused_naming_both(
    fake_multi, compressed, tmp_path, capsys, index, option, named
):
    from search.index_builders import write_manifest

    folders = {
        "impact": write_manifest(
            tmp_path / "impact", "impact-index", name="diffretriever-manifest.json", num_docs=30
        ).parent,
        "multi": fake_multi["folder"],
        "compressed": compressed,
    }
    argv = [
        "--index",
        str(folders[index]),
        *option,
        "--topics",
        str(fake_multi["topics"]),
        "--output",
        str(tmp_path / "r"),
    ]
    assert search_cli.main(argv) == 2
    assert re.search(named, capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


# --- the real tiny Dream encoder, Lucene and trec_eval ------------------------------------------------------
@pytest.mark.jvm
@pytest.mark.slow
def test_encode_index_search_and_trec_eval_end_to_end(tmp_path, tiny_dream_dir, caplog):
    """encode (dense, multi, impact) -> Lucene impact index -> search CLI on each index and two hybrids ->
    trec_eval evaluates the runs."""
    from pyserini_diffretriever.cli import encode as encode_cli
    from pyserini_diffretriever.cli import index as index_cli
    from pyserini_diffretriever.encoders import DiffRetrieverQueryEncoder
    from pyserini_diffretriever.search.multivector_index import MultiVectorIndex

    from .test_encode import cranfield_like, write_corpus

    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(12))
    out = tmp_path / "enc"
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
                "--batch-size",
                "4",
                "--max-length",
                "64",
                "--device",
                "cpu",
                "--representation",
                "dense",
                "multi",
                "impact",
                "output",
                "--embeddings",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert index_cli.main(["lucene", "--input", str(out / "impact"), "--index", str(tmp_path / "lucene")]) == 0
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tshock wave boundary layer\n2\theat transfer at high mach number\n3\twing flutter\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 cran1 1\n1 0 cran4 2\n2 0 cran2 1\n3 0 cran3 1\n3 0 cran7 1\n")

    def search(name, *argv):
        run = tmp_path / f"{name}.trec"
        assert (
            search_cli.main(
                [
                    *argv,
                    "--topics",
                    str(topics),
                    "--output",
                    str(run),
                    "--hits",
                    "10",
                    "--max-length",
                    "64",
                    "--run-tag",
                    name,
                ]
            )
            == 0
        )
        parsed = parse_trec(run)
        # a random tiny model may give a query no impact term present in the index: no lines, as in Pyserini
        assert list(parsed) == ["1", "2", "3"] or (name == "impact" and set(parsed) <= {"1", "2", "3"})
        return run, parsed

    multi_run, multi = search("multi", "--index", str(out / "multi"), "--mode", "exact")
    search("dense", "--index", str(out / "dense"))
    search("impact", "--index", str(tmp_path / "lucene"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyserini_diffretriever.search.factory"):
        hybrid_run, hybrid = search(
            "hybrid",
            "--multi-index",
            str(out / "multi"),
            "--impact-index",
            str(tmp_path / "lucene"),
            "--alpha",
            "0.5",
            "--depth",
            "10",
        )
    built = [r.getMessage() for r in caplog.records if r.getMessage().startswith("query encoder for")]
    assert len(built) == 2 and "DiffRetrieverModel" in built[1]  # the impact side reuses the loaded model
    search(
        "pyserini",
        "--dense-index",
        str(out / "dense"),
        "--impact-index",
        str(tmp_path / "lucene"),
        "--fusion",
        "pyserini",
        "--depth",
        "10",
    )
    assert all(0.0 <= score <= 1.0 for hits in hybrid.values() for _, _, score, _ in hits)

    # the CLI's multi run is exhaustive MaxSim of the query encoder's vectors against the stored documents
    encoder = DiffRetrieverQueryEncoder(str(tiny_dream_dir), representation="multi", max_length=64)
    index = MultiVectorIndex(out / "multi")
    query = encoder.encode("wing flutter")
    expected = sorted((-maxsim(query, index.gather(np.array([i]))[0]), d) for i, d in enumerate(index.docids))
    assert [d for d, *_ in multi["3"]] == [d for _, d in expected[:10]]

    for run in (multi_run, hybrid_run):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pyserini_diffretriever.run",
                "pyserini.eval.trec_eval",
                "-c",
                "-m",
                "ndcg_cut.10",
                str(qrels),
                str(run),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        value = re.search(r"ndcg_cut_10\s+all\s+([0-9.]+)", done.stdout)
        assert value and 0.0 <= float(value.group(1)) <= 1.0, done.stdout


def test_module_entry_point_prints_help_without_starting_java():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys, jnius_config; sys.argv = ['x', '--help']\n"
            "try:\n    runpy.run_module('pyserini_diffretriever.search', run_name='__main__')\n"
            "except SystemExit as e:\n    print('exit', e.code, jnius_config.vm_running)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--multi-index" in done.stdout and "trec_eval" in done.stdout
    assert done.stdout.strip().endswith("exit 0 False")
