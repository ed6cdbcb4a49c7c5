"""Dense vectors in Lucene (Anserini HNSW / flat) from flat dense folders; searched with a Python query encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.indexing.lucene_dense import (
    DenseLuceneIndexError,
    anserini_dense_args,
    build_dense_lucene_index,
    write_dense_collection,
)
from pyserini_diffretriever.writers import FaissFlatWriter, ManifestError, read_manifest

from .test_faiss_dense import ENCODER, TableEncoder, anisotropic

N_DOCS, DIM = 300, 64


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lucene-dense") / "dense"
    rng = np.random.default_rng(3)
    vectors = anisotropic(N_DOCS, DIM, seed=5) * rng.uniform(0.6, 1.0, size=(N_DOCS, 1)).astype(np.float32)
    with FaissFlatWriter(folder, ENCODER, manifest_extra={"query": {"k": 4, "prompt": "few"}}) as writer:
        writer.write({"id": [f"d{i:03d}" for i in range(N_DOCS)], "vector": vectors})
    queries = anisotropic(12, DIM, seed=6)
    scores = queries @ vectors.T
    return {"folder": folder, "vectors": vectors, "queries": queries, "scores": scores}


def exhaustive(dense, i, k):
    order = np.argsort(-dense["scores"][i], kind="stable")[:k]
    return [f"d{j:03d}" for j in order], dense["scores"][i][order]


def test_collection_records_are_exact_float32_values(dense, tmp_path):
    assert write_dense_collection(dense["folder"], tmp_path / "c", records_per_part=128, chunk_size=50) == N_DOCS
    parts = sorted((tmp_path / "c").iterdir())
    assert [p.name for p in parts] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    records = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    assert [r["docid"] for r in records] == [f"d{i:03d}" for i in range(N_DOCS)]
    np.testing.assert_array_equal(np.array([r["vector"] for r in records], dtype=np.float32), dense["vectors"])
    assert write_dense_collection(dense["folder"], tmp_path / "even", records_per_part=100) == N_DOCS
    assert len(list((tmp_path / "even").iterdir())) == 3  # no empty fourth part


def test_anserini_arguments():
    assert anserini_dense_args("C", "I", M=8, ef_construction=50, quantize_sqv=True, threads=2) == [
        *("-collection", "JsonDenseVectorCollection", "-input", "C", "-index", "I", "-threads", "2"),
        *("-M", "8", "-efC", "50", "-quantize.sqv"),
    ]
    assert "-M" not in anserini_dense_args("C", "I", hnsw=False)


def test_bad_inputs_are_refused_before_java_starts(dense, tmp_path):
    with pytest.raises(ManifestError, match="not a folder"):
        build_dense_lucene_index(tmp_path / "missing", tmp_path / "idx")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x").write_text("")
    with pytest.raises(DenseLuceneIndexError, match="not empty"):
        build_dense_lucene_index(dense["folder"], tmp_path / "idx", keep_collection=tmp_path / "keep")
    assert not (tmp_path / "idx").exists()


@pytest.mark.jvm
@pytest.mark.parametrize("hnsw", [True, False], ids=["hnsw", "flat"])
def test_lucene_dense_search_equals_exhaustive_inner_products(dense, tmp_path, hnsw):
    from pyserini_diffretriever.search import open_searcher
    from pyserini_diffretriever.search.lucene_dense import LuceneDenseSearcher

    manifest = build_dense_lucene_index(dense["folder"], tmp_path / "idx", hnsw=hnsw, M=16, ef_construction=100)
    assert manifest["kind"] == "dense-lucene-index" and manifest["num_docs"] == manifest["indexed_docs"] == N_DOCS
    assert manifest["encoder"] == ENCODER and manifest["dimension"] == DIM and manifest["lucene"]["hnsw"] == hnsw
    assert (tmp_path / "idx" / "diffretriever-manifest.json").is_file()
    assert not list(tmp_path.glob("idx.collection-*")) and not list(tmp_path.glob("idx.partial-*"))

    searcher = open_searcher(tmp_path / "idx", TableEncoder(dense["queries"]))
    assert isinstance(searcher, LuceneDenseSearcher)
    for i in range(len(dense["queries"])):
        docids, scores = exhaustive(dense, i, 10)
        hits = searcher.search(f"q{i}", k=10)
        assert [h.docid for h in hits] == docids
        np.testing.assert_allclose([h.score for h in hits], scores, rtol=0, atol=1e-5)  # inner products
    batch = searcher.batch_search(["q0", "q3"], ["a", "b"], k=5, threads=2)
    assert [h.docid for h in batch["b"]] == exhaustive(dense, 3, 5)[0]


@pytest.mark.jvm
def test_hybrid_searchers_and_mismatches(dense, tmp_path):
    from pyserini.search.hybrid import HybridSearcher
    from search.index_builders import write_impact_index

    from pyserini_diffretriever.search import MinMaxHybridSearcher, fuse_min_max_hits, open_searcher
    from pyserini_diffretriever.search.index_format import IndexMismatchError

    build_dense_lucene_index(dense["folder"], tmp_path / "idx", M=8, ef_construction=64, ef_search=50)
    rng = np.random.default_rng(0)
    impact = {
        f"d{i:03d}": {t: int(rng.integers(1, 9)) for t in ("wing", "flow", "heat") if rng.random() < 0.5}
        for i in range(N_DOCS)
    }
    impact = {d: v or {"mach": 1} for d, v in impact.items()}
    sparse_dir = write_impact_index(tmp_path / "impact", impact, ENCODER)

    class SparseEncoder(TableEncoder):
        def encode(self, query, **kwargs):
            return {"wing": 2, "heat": 1}

        def settings(self):
            return {**super().settings(), "representation": "impact"}

    dense_searcher = open_searcher(tmp_path / "idx", TableEncoder(dense["queries"]))
    assert dense_searcher.ef_search == 50
    sparse = open_searcher(sparse_dir, SparseEncoder(dense["queries"]))
    fused = HybridSearcher(dense_searcher, sparse).search("q1", k0=20, k=10, alpha=0.3)
    dense_hits = {h.docid: h.score for h in dense_searcher.search("q1", 20)}
    sparse_hits = {h.docid: h.score for h in sparse.search("q1", 20)}
    low_dense, low_sparse = min(dense_hits.values()), min(sparse_hits.values())
    expected = {  # Pyserini's fusion: a side's minimum for missing documents, alpha on the sparse side
        d: 0.3 * sparse_hits.get(d, low_sparse) + dense_hits.get(d, low_dense) for d in dense_hits.keys() | sparse_hits
    }
    assert len(fused) == 10 and all(h.score == pytest.approx(expected[h.docid]) for h in fused)
    assert sorted(expected.values(), reverse=True)[:10] == pytest.approx([h.score for h in fused])
    ours = MinMaxHybridSearcher(dense_searcher, sparse, alpha=0.5, depth=20)
    expected = fuse_min_max_hits(dense_searcher.search("q1", 20), sparse.search("q1", 20), 0.5, 20, 10)
    assert ours.search("q1", k=10) == expected

    with pytest.raises(IndexMismatchError, match="vocabulary_sha256"):
        open_searcher(tmp_path / "idx", TableEncoder(dense["queries"], {"vocabulary_sha256": "x"}))
    with pytest.raises(IndexMismatchError, match="dimension"):
        open_searcher(
            tmp_path / "idx", TableEncoder(dense["queries"], {"hidden_size": 8}), ignore_mismatch=["hidden_size"]
        )


@pytest.mark.jvm
def test_cli_round_trip_keeps_the_collection_on_request(dense, tmp_path, monkeypatch):
    from pyserini_diffretriever.cli import search as search_cli
    from pyserini_diffretriever.search import factory

    argv = ["lucene-dense", "--input", str(dense["folder"]), "--index", str(tmp_path / "idx")]
    assert index_cli.main([*argv, "--flat", "--keep-collection", str(tmp_path / "coll")]) == 0
    assert read_manifest(tmp_path / "idx")["lucene"]["class"].endswith("IndexFlatDenseVectors")
    assert sorted(p.name for p in (tmp_path / "coll").iterdir()) == ["part-00000.jsonl"]
    assert index_cli.main(argv) == 1  # exists

    encoder = TableEncoder(dense["queries"])
    monkeypatch.setattr(factory, "query_encoder_for", lambda manifest, **kwargs: encoder)
    topics = tmp_path / "topics.tsv"
    topics.write_text("q0\tq0\nq5\tq5\n")
    run = tmp_path / "run.trec"
    assert (
        search_cli.main(
            ["--index", str(tmp_path / "idx"), "--topics", str(topics), "--output", str(run), "--hits", "5"]
        )
        == 0
    )
    lines = run.read_text().splitlines()
    assert [line.split()[2] for line in lines[:5]] == exhaustive(dense, 0, 5)[0]
    assert len(lines) == 10
