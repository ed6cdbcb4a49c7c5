"""Compressed/ANN FAISS indexes from flat dense folders: streaming build, Pyserini's FaissSearcher, manifest checks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.indexing import faiss_dense
from pyserini_diffretriever.indexing.faiss_dense import DenseIndexError, build_faiss_index, factory_string
from pyserini_diffretriever.writers import FaissFlatWriter, ManifestError, OutputExistsError, read_manifest

ENCODER = {"backbone": "fake/backbone", "model_type": "Dream", "vocabulary_sha256": "abc123", "hidden_size": 64}
N_DOCS, DIM = 800, 64


def anisotropic(n, dim, seed, topics=12):
    """Unit vectors around topic centres, sharing a common mean direction and two large dimensions."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((topics, dim))
    mean = np.random.default_rng(98).standard_normal(dim)
    x = centres[rng.integers(topics, size=n)] + 0.6 * rng.standard_normal((n, dim)) + 1.5 * mean
    x[:, :2] *= 4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faiss") / "dense"
    vectors = anisotropic(N_DOCS, DIM, seed=1)
    query = {"k": 4, "prompt": "few", "max_length": 64}
    with FaissFlatWriter(folder, ENCODER, manifest_extra={"query": query}) as writer:
        for lo in range(0, N_DOCS, 300):
            writer.write({"id": [f"d{i}" for i in range(lo, min(lo + 300, N_DOCS))], "vector": vectors[lo : lo + 300]})
    queries = anisotropic(20, DIM, seed=2)
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")
    return {"folder": folder, "vectors": vectors, "queries": queries, "exact": exact}


class TableEncoder:
    """A dense query encoder returning fixed vectors; ``settings()`` as the real encoder reports them."""

    def __init__(self, queries, settings=None):
        self.table = {f"q{i}": v for i, v in enumerate(queries)}
        self._settings = {**ENCODER, "representation": "dense", "k": 4, "prompt": "few", **(settings or {})}

    def encode(self, query, **kwargs):
        return self.table[query]

    def encode_batch(self, queries, **kwargs):
        return np.stack([self.table[q] for q in queries])

    def settings(self):
        return dict(self._settings)


def recall(searcher, dense, k):
    found = [
        len({h.docid for h in searcher.search(f"q{i}", k)} & {f"d{j}" for j in dense["exact"][i, :k]}) / k
        for i in range(len(dense["queries"]))
    ]
    return float(np.mean(found))


def test_defaults_divide_the_real_dimensions():
    assert 3584 % faiss_dense.DEFAULT_PQ_M == 0 and 4096 % faiss_dense.DEFAULT_PQ_M == 0
    for dim in (3584, 4096):
        factory_string(dim, pq=True)  # no error
        assert "{" not in factory_string(dim, nlist=1024)
    assert faiss_dense.default_nlist(100_000, 65536) == 1024 and faiss_dense.default_nlist(800, 800) == 20
    assert factory_string(3584, nlist=1024) == "IVF1024,RaBitQ"
    assert (
        faiss_dense.default_pq_m(3584) == faiss_dense.default_pq_m(4096) == 256 and faiss_dense.default_pq_m(64) == 32
    )
    assert factory_string(64, hnsw=True, pq=True, pq_m=16, M=8) == "HNSW8_PQ16x8"
    assert factory_string(64, factory="OPQ16,IVF{nlist},PQ16", nlist=32) == "OPQ16,IVF32,PQ16"


def test_pq_m_that_does_not_divide_the_dimension_is_refused(dense, tmp_path):
    with pytest.raises(DenseIndexError, match=r"--pq-m 192 does not divide the dimension 3584.*128"):
        factory_string(3584, pq=True, pq_m=192)
    with pytest.raises(DenseIndexError, match="--pq-m must be >= 1"):
        factory_string(64, pq=True, pq_m=0)
    with pytest.raises(DenseIndexError, match="--pq-m 24 does not divide the dimension 64"):
        build_faiss_index(dense["folder"], tmp_path / "out", pq=True, pq_m=24)
    with pytest.raises(DenseIndexError, match="either a --factory string or --hnsw/--pq"):
        build_faiss_index(dense["folder"], tmp_path / "out", factory="HNSW8", hnsw=True)
    with pytest.raises(DenseIndexError, match="invalid FAISS factory string 'NOPE12'"):
        build_faiss_index(dense["folder"], tmp_path / "out", factory="NOPE12")
    assert not (tmp_path / "out").exists()


@pytest.mark.jvm
@pytest.mark.parametrize(
    ("options", "min_recall", "bytes_per_vector"),
    [
        ({}, 0.45, 64 // 8 + 8 + 8),  # default IVF + 1-bit RaBitQ: bits, 2 float factors, IVF id
        ({"factory": faiss_dense.HIGH_RECALL_FACTORY}, 0.9, 64 // 8 + 8 + 8 + 64),  # + SQ8 re-ranking codes
        ({"factory": "IVF{nlist},PQ{pq_m}x8"}, 0.8, 32 + 8),  # residual PQ, m = 32 at dimension 64
        ({"hnsw": True, "M": 8, "ef_search": 64}, 0.95, 4 * 64 + 4 * 16),
        ({"pq": True, "pq_m": 16}, 0.6, 16),
        ({"factory": "IVF{nlist},SQ8", "nprobe": 4}, 0.6, 64 + 8),
    ],
    ids=["default", "high-recall", "ivf-pq", "hnsw", "pq", "sq8"],
)
def test_built_index_opens_with_pyserini_faiss_searcher(dense, tmp_path, options, min_recall, bytes_per_vector):
    from pyserini.search.faiss import FaissSearcher

    from pyserini_diffretriever.search import open_searcher

    manifest = build_faiss_index(dense["folder"], tmp_path / "ann", threads=1, **options)
    assert manifest["kind"] == "dense-ann" and manifest["num_docs"] == N_DOCS and manifest["dimension"] == DIM
    assert manifest["encoder"] == ENCODER and manifest["query"]["k"] == 4
    assert manifest["index"]["bytes_per_vector"] == bytes_per_vector
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["docid", "index", "manifest.json"]
    assert not list(tmp_path.glob("ann.partial-*"))

    plain = FaissSearcher(str(tmp_path / "ann"), TableEncoder(dense["queries"]))  # Pyserini's own, no help
    assert plain.index.ntotal == N_DOCS
    assert search_parameters_in(plain.index) == manifest["search"]  # the file carries them, not FAISS's defaults
    estimate = manifest["recall_estimate"]
    assert estimate["queries"] == 200 and estimate["search"] == manifest["search"]
    assert 0 < estimate["recall_at_100"] <= 1
    searcher = open_searcher(tmp_path / "ann", TableEncoder(dense["queries"]))
    assert type(searcher).__name__ == "FaissSearcher"
    if "nprobe" in manifest["search"]:
        assert faiss_extract_ivf(searcher.index).nprobe == manifest["search"]["nprobe"]
    if "Refine" in manifest["index"]["factory"]:
        assert manifest["search"]["k_factor"] == faiss_dense.DEFAULT_K_FACTOR
    assert recall(searcher, dense, 10) >= min_recall
    batch = searcher.batch_search(["q0", "q1"], ["q0", "q1"], k=10)
    assert [h.docid for h in batch["q1"]] == [h.docid for h in searcher.search("q1", 10)]


def search_parameters_in(index):
    """``nprobe`` / ``efSearch`` / ``k_factor`` as a loaded FAISS index holds them."""
    import faiss

    found = {}
    if faiss.try_extract_index_ivf(index) is not None:
        found["nprobe"] = faiss.extract_index_ivf(index).nprobe
    if faiss_dense._hnsw_of(index) is not None:
        found["efSearch"] = faiss_dense._hnsw_of(index).efSearch
    if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
        found["k_factor"] = int(faiss.downcast_index(index).k_factor)
    return found


def faiss_extract_ivf(index):
    import faiss

    return faiss.extract_index_ivf(index)


@pytest.mark.jvm
def test_search_parameters_come_from_the_manifest_or_an_override(dense, tmp_path):
    from pyserini_diffretriever.search import open_searcher

    manifest = build_faiss_index(dense["folder"], tmp_path / "ann", nlist=32, nprobe=2, threads=1)
    assert manifest["index"]["nlist"] == 32 and manifest["search"] == {"nprobe": 2}
    few = open_searcher(tmp_path / "ann", TableEncoder(dense["queries"]))
    assert faiss_extract_ivf(few.index).nprobe == 2
    every = open_searcher(tmp_path / "ann", TableEncoder(dense["queries"]), nprobe=32)
    assert faiss_extract_ivf(every.index).nprobe == 32
    assert recall(every, dense, 10) > recall(few, dense, 10)
    with pytest.raises(TypeError, match="has no ef_search parameter"):
        open_searcher(tmp_path / "ann", TableEncoder(dense["queries"]), ef_search=10)
    build_faiss_index(dense["folder"], tmp_path / "hnsw", hnsw=True, M=8, threads=1)
    hnsw = open_searcher(tmp_path / "hnsw", TableEncoder(dense["queries"]), ef_search=20)
    assert hnsw.index.hnsw.efSearch == 20


def test_streaming_build_equals_a_one_shot_build(dense, tmp_path, monkeypatch):
    """Chunks smaller than the corpus give the same index file; no chunk exceeds chunk_size."""
    import faiss

    sizes = []
    original = faiss_dense.iter_flat_vectors

    def spy(*args, **kwargs):
        for chunk in original(*args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(faiss_dense, "iter_flat_vectors", spy)
    build_faiss_index(dense["folder"], tmp_path / "small", nlist=16, chunk_size=64, train_size=500, threads=1)
    assert max(sizes) == 64 and sum(sizes) == N_DOCS
    build_faiss_index(dense["folder"], tmp_path / "big", nlist=16, chunk_size=10_000, train_size=500, threads=1)
    assert (tmp_path / "small" / "index").read_bytes() == (tmp_path / "big" / "index").read_bytes()
    assert read_manifest(tmp_path / "small")["index"]["train_size"] == 500
    # and the IVF lists hold every document exactly once
    index = faiss.read_index(str(tmp_path / "small" / "index"))
    ivf = faiss.extract_index_ivf(index)
    ids = np.concatenate([faiss.rev_swig_ptr(ivf.invlists.get_ids(i), ivf.invlists.list_size(i)) for i in range(16)])
    assert sorted(ids.tolist()) == list(range(N_DOCS))


def test_flat_chunks_are_the_stored_vectors(dense):
    chunks = list(faiss_dense.iter_flat_vectors(dense["folder"], chunk_size=300, start=100))
    assert [len(c) for c in chunks] == [300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(chunks), dense["vectors"][100:])


def test_bad_inputs_get_clear_errors(dense, tmp_path):
    with pytest.raises(ManifestError, match="not a folder"):
        build_faiss_index(tmp_path / "missing", tmp_path / "out")
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "manifest.json").write_text(
        json.dumps({"format": "pyserini-diffretriever", "format_version": 1, "kind": "multi", "num_docs": 1})
    )
    with pytest.raises(ManifestError, match="kind is 'multi', expected 'dense'"):
        build_faiss_index(multi, tmp_path / "out")
    build_faiss_index(dense["folder"], tmp_path / "ann", factory="PQ8", threads=1)
    with pytest.raises(ManifestError, match="kind is 'dense-ann', expected 'dense'"):
        build_faiss_index(tmp_path / "ann", tmp_path / "out")
    with pytest.raises(OutputExistsError):
        build_faiss_index(dense["folder"], tmp_path / "ann", factory="PQ8")
    with pytest.raises(DenseIndexError, match="IVF lists for only 800 vectors"):
        build_faiss_index(dense["folder"], tmp_path / "out", nlist=1000)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))


@pytest.mark.jvm
def test_mismatched_query_encoders_and_damaged_indexes_are_refused(dense, tmp_path):
    from pyserini_diffretriever.search import open_searcher
    from pyserini_diffretriever.search.index_format import IndexFormatError, IndexMismatchError

    build_faiss_index(dense["folder"], tmp_path / "ann", factory="PQ8", threads=1)
    with pytest.raises(IndexMismatchError, match="vocabulary_sha256"):
        open_searcher(tmp_path / "ann", TableEncoder(dense["queries"], {"vocabulary_sha256": "other"}))
    with pytest.raises(IndexMismatchError, match="k: index expects queries with 4"):
        open_searcher(tmp_path / "ann", TableEncoder(dense["queries"], {"k": 2}))
    with pytest.raises(IndexMismatchError, match="dimension"):
        open_searcher(
            tmp_path / "ann", TableEncoder(dense["queries"], {"hidden_size": 32}), ignore_mismatch=("hidden_size",)
        )
    index = tmp_path / "ann" / "index"
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(IndexFormatError, match="index is .* bytes, the manifest says"):
        open_searcher(tmp_path / "ann", TableEncoder(dense["queries"]))


def test_cli_builds_and_reports_errors(dense, tmp_path, caplog):
    argv = ["faiss", "--input", str(dense["folder"]), "--output", str(tmp_path / "ann")]
    assert index_cli.main([*argv, "--factory", "IVF{nlist},PQ16", "--nlist", "8", "--threads", "1"]) == 0
    manifest = read_manifest(tmp_path / "ann")
    assert manifest["index"]["factory"] == "IVF8,PQ16" and manifest["search"] == {"nprobe": 8}
    assert index_cli.main([*argv, "--overwrite", "--threads", "1"]) == 0  # the default codec
    assert read_manifest(tmp_path / "ann")["index"]["factory"] == "IVF20,RaBitQ"
    assert index_cli.main([*argv, "--pq", "--pq-m", "24", "--overwrite"]) == 1
    assert "does not divide the dimension 64" in caplog.text
    assert index_cli.main(["faiss", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "x")]) == 1


def test_recall_estimate_is_a_brute_force_measurement_on_collection_rows(dense, tmp_path, caplog):
    """The recorded estimate equals recall@100 of the written index file (read back as is) for the seeded
    collection rows against their exact leave-one-out top 100; below --min-recall a warning names an option."""
    import faiss

    manifest = build_faiss_index(dense["folder"], tmp_path / "ann", nlist=32, nprobe=1, min_recall=0.99, threads=1)
    record = manifest["recall_estimate"]
    index = faiss.read_index(str(tmp_path / "ann" / "index"))
    assert faiss.extract_index_ivf(index).nprobe == 1
    rows = faiss_dense._draw_rows(N_DOCS, 200, seed=1)
    vectors = dense["vectors"]
    exact = np.argsort(-(vectors[rows] @ vectors.T), axis=1, kind="stable")
    _, found = index.search(vectors[rows], 101)
    per_query = [
        len(set(f[(f != r) & (f >= 0)][:100].tolist()) & set(e[e != r][:100].tolist())) / 100
        for f, e, r in zip(found, exact, rows)
    ]
    assert record["recall_at_100"] == pytest.approx(np.mean(per_query), abs=1e-4)
    assert record["min_query_recall_at_100"] == pytest.approx(min(per_query), abs=1e-4)
    assert record["recall_at_100"] < 0.99 and record["alternatives"]["--nprobe 2"] > record["recall_at_100"]
    assert "below --min-recall 0.99" in caplog.text and "--nprobe 2 ->" in caplog.text
    assert record["advice"] in caplog.text


def test_cli_reports_the_recall_estimate_and_validates_its_options(dense, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    argv = ["faiss", "--input", str(dense["folder"]), "--output", str(tmp_path / "ann"), "--threads", "1"]
    assert index_cli.main([*argv, "--nlist", "8", "--min-recall", "0"]) == 0
    estimate = read_manifest(tmp_path / "ann")["recall_estimate"]
    assert f"estimated recall@100 {estimate['recall_at_100']}" in caplog.text and "advice" not in estimate
    assert "below --min-recall" not in caplog.text
    assert index_cli.main([*argv, "--overwrite", "--recall-queries", "0"]) == 0
    assert "recall_estimate" not in read_manifest(tmp_path / "ann")
    assert index_cli.main([*argv, "--overwrite", "--min-recall", "1.5"]) == 1
    assert "--min-recall in [0, 1] (got 1.5)" in caplog.text
