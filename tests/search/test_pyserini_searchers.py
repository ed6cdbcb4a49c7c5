"""Pyserini's own searchers on our index formats: exact impact and dense scores, HybridSearcher unchanged.

(a) LuceneImpactSearcher returns exactly the exhaustive quantised dot products, ties broken by docid (Anserini then
    lowers each further tied score by about 1e-6, so that trec_eval, which re-sorts by score, keeps that order);
(b) FaissSearcher over a flat IP folder returns exactly the exhaustive inner products;
(d) pyserini's HybridSearcher runs unchanged over FaissSearcher or MultiVectorSearcher plus LuceneImpactSearcher;
(e) the search CLI fuses a compressed multi-vector folder with an impact index, with both fusions.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.search.factory import open_searcher
from pyserini_diffretriever.search.fusion import MinMaxHybridSearcher, fuse_min_max_hits
from pyserini_diffretriever.search.index_format import IndexFormatError, IndexMismatchError, read_manifest
from pyserini_diffretriever.search.multivector import MultiVectorSearcher
from pyserini_diffretriever.search.scoring import dense_scores, impact_scores

from .index_builders import ENCODER_SETTINGS as ENCODER
from .index_builders import (
    FakeQueryEncoder,
    random_multi_docs,
    write_dense_index,
    write_impact_index,
    write_multi_index,
)

pytestmark = pytest.mark.jvm  # importing pyserini.search.* starts the JVM

N_DOCS, DIM = 40, 16
# token strings as real vocabularies have them: BPE space marks, WordPiece continuations, non-ASCII, punctuation
VOCAB = ["Ġwing", "Ġflow", "##ing", "Ġchoc", "é", "Ġheat", "Ġmach", "Ġ.", "Ġlift", "Ġdrag", "Ġ2", "Ġboundary"]
EVERYWHERE = "Ġthe"  # in every document: df == N, so idf == 0 and LuceneImpactSearcher drops it


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = np.random.default_rng(7)
    docids = [f"d{i:02d}" for i in range(N_DOCS)]
    impact = {}
    for docid in docids:
        vector = {t: int(rng.integers(1, 10)) for t in VOCAB if rng.random() < 0.35} or {VOCAB[0]: 1}
        impact[docid] = {**vector, EVERYWHERE: int(rng.integers(1, 4))}
    impact["d38"] = dict(impact["d05"])  # exact duplicates: tied scores, resolved by docid
    impact["d39"] = dict(impact["d05"])
    dense = rng.standard_normal((N_DOCS, DIM)).astype(np.float32)
    multi = random_multi_docs(N_DOCS, DIM, seed=8, max_vectors=4)
    root = tmp_path_factory.mktemp("pyserini")
    settings = {"hidden_size": DIM}
    return {
        "docids": docids,
        "impact": impact,
        "dense": dense,
        "multi": multi,
        "impact_dir": write_impact_index(root / "impact", impact, {**ENCODER, **settings}),
        "dense_dir": write_dense_index(root / "dense", dense, docids, {**ENCODER, **settings}),
        "multi_dir": write_multi_index(root / "multi", multi, docids, {**ENCODER, **settings}),
    }


def impact_queries(collection):
    rng = np.random.default_rng(3)
    queries = {"q-ties": {t: 1 for t in collection["impact"]["d05"] if t != EVERYWHERE}}
    for i in range(6):
        terms = rng.choice(VOCAB, size=int(rng.integers(1, 6)), replace=False)
        queries[f"q{i}"] = {str(t): int(rng.integers(1, 20)) for t in terms}
    queries["q-everywhere"] = {EVERYWHERE: 5, "Ġflow": 2, "unknown-term": 7}
    return queries


def expected_impact(query, collection):
    """numpy scores over the terms Lucene keeps (0 < df < N), matching docs only, ordered (-score, docid)."""
    docs = [collection["impact"][d] for d in collection["docids"]]
    df = {t: sum(t in d for d in docs) for t in query}
    kept = {t: w for t, w in query.items() if 0 < df[t] < len(docs)}
    scores = impact_scores(kept, docs)
    return sorted(((d, float(s)) for d, s in zip(collection["docids"], scores) if s > 0), key=lambda x: (-x[1], x[0]))


def fake(table, representation):
    return FakeQueryEncoder(table, representation, {"hidden_size": DIM})


def test_impact_search_equals_exhaustive_quantised_dot_products(collection):
    queries = impact_queries(collection)
    searcher = open_searcher(collection["impact_dir"], fake(queries, "impact"))
    assert all(0 < sum(t in d for d in collection["impact"].values()) < N_DOCS for t in VOCAB)
    for text, query in queries.items():
        assert_impact_hits(searcher.search(text, k=N_DOCS), expected_impact(query, collection))
    ties = searcher.search("q-ties", k=3)
    assert [h.docid for h in ties] == ["d05", "d38", "d39"]
    assert ties[0].score == 32.0 and 32.0 > ties[1].score >= ties[2].score > 31.9999
    batch = searcher.batch_search(list(queries), list(queries), k=N_DOCS, threads=2)
    assert sorted(batch) == sorted(queries)
    for text, hits in batch.items():
        assert_impact_hits(hits, expected_impact(queries[text], collection))


def assert_impact_hits(hits, expected):
    """Same documents in the same order; scores equal up to Anserini's tie adjustment (< 1e-4 here)."""
    assert [h.docid for h in hits] == [d for d, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=0, atol=1e-4)


def test_a_term_in_every_document_is_dropped_by_pyserini(collection):
    queries = {"everywhere": {EVERYWHERE: 5}}
    searcher = open_searcher(collection["impact_dir"], fake(queries, "impact"))
    assert searcher.search("everywhere", k=5) == []  # idf == 0 is not > min_idf == 0


def test_dense_faiss_search_equals_exhaustive_inner_products(collection):
    rng = np.random.default_rng(5)
    queries = {f"q{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(4)}
    encoder = fake(queries, "dense")
    searcher = open_searcher(collection["dense_dir"], encoder)
    assert type(searcher).__name__ == "FaissSearcher"
    for text, vector in queries.items():
        scores = dense_scores(vector, collection["dense"])
        order = np.argsort(-scores, kind="stable")[:10]
        hits = searcher.search(text, k=10)
        assert [h.docid for h in hits] == [collection["docids"][i] for i in order]
        np.testing.assert_allclose([h.score for h in hits], scores[order], rtol=1e-5, atol=1e-5)
    batch = searcher.batch_search(list(queries), list(queries), k=10)
    assert encoder.calls["encode_batch"] == 1
    assert all([h.docid for h in batch[q]] == [h.docid for h in searcher.search(q, k=10)] for q in queries)


def test_dense_dimension_mismatches_are_reported(collection, tmp_path):
    with pytest.raises(IndexMismatchError, match="dimension"):
        open_searcher(
            collection["dense_dir"],
            FakeQueryEncoder({}, "dense", {"hidden_size": DIM + 1}),
            ignore_mismatch=("hidden_size",),
        )
    broken = write_dense_index(
        tmp_path / "dense", collection["dense"][:, :8], collection["docids"], {**ENCODER, "hidden_size": DIM}
    )
    manifest = (broken / "manifest.json").read_text().replace('"dimension": 8', f'"dimension": {DIM}')
    (broken / "manifest.json").write_text(manifest)
    # found by verify_output before FAISS loads the file
    with pytest.raises(IndexFormatError, match=rf"{broken}: index has dimension 8, the manifest says {DIM}"):
        open_searcher(broken, fake({}, "dense"))


def _pyserini_fusion(dense_hits, sparse_hits, alpha):
    """Pyserini's _hybrid_results without normalisation: missing side = that side's minimum, alpha on sparse."""
    dense = {h.docid: float(h.score) for h in dense_hits}
    sparse = {h.docid: float(h.score) for h in sparse_hits}
    low_dense, low_sparse = min(dense.values()), min(sparse.values())
    return {d: alpha * sparse.get(d, low_sparse) + dense.get(d, low_dense) for d in dense.keys() | sparse.keys()}


@pytest.mark.parametrize("dense_kind", ["dense", "multi"])
def test_pyserini_hybrid_searcher_runs_unchanged_over_our_searchers(collection, dense_kind):
    from pyserini.search.hybrid import HybridSearcher

    queries = impact_queries(collection)
    rng = np.random.default_rng(9)
    vectors = {
        q: (rng.standard_normal(DIM) if dense_kind == "dense" else rng.standard_normal((3, DIM))).astype(np.float32)
        for q in queries
    }
    dense = open_searcher(collection[f"{dense_kind}_dir"], fake(vectors, dense_kind))
    sparse = open_searcher(collection["impact_dir"], fake(queries, "impact"))
    assert isinstance(dense, MultiVectorSearcher) == (dense_kind == "multi")
    hybrid = HybridSearcher(dense, sparse)
    for text in ("q0", "q1"):
        fused = hybrid.search(text, k0=15, k=8, alpha=0.3)
        expected = _pyserini_fusion(dense.search(text, 15), sparse.search(text, 15), 0.3)
        assert len(fused) == 8
        assert all(h.score == pytest.approx(expected[h.docid]) for h in fused)
        assert sorted(expected.values(), reverse=True)[:8] == pytest.approx([h.score for h in fused])
    batch = hybrid.batch_search(["q0", "q1"], ["q0", "q1"], k0=15, k=8, alpha=0.3)
    assert {q: sorted(h.docid for h in hits) for q, hits in batch.items()} == {
        q: sorted(h.docid for h in hybrid.search(q, k0=15, k=8, alpha=0.3)) for q in ("q0", "q1")
    }
    ours = MinMaxHybridSearcher(dense, sparse, alpha=0.5, depth=15)
    assert ours.search("q2", k=8) == fuse_min_max_hits(dense.search("q2", 15), sparse.search("q2", 15), 0.5, 15, 8)
    assert ours.batch_search(["q2"], ["q2"], k=8)["q2"] == ours.search("q2", k=8)


@pytest.mark.parametrize("engine", ["codec", "warp"])
def test_the_search_cli_fuses_a_compressed_multi_index_with_an_impact_index(collection, tmp_path, monkeypatch, engine):
    """The paper's best configuration, multi + impact, on a compressed folder of either engine (multi-compressed,
    multi-warp), with both fusions (issues 17 and 18)."""
    from pyserini_diffretriever.cli import search as search_cli
    from pyserini_diffretriever.indexing.compress_multi import compress_multivector
    from pyserini_diffretriever.indexing.compress_warp import compress_multivector_warp
    from pyserini_diffretriever.search import factory
    from pyserini_diffretriever.search.fusion import fuse
    from pyserini_diffretriever.search.kinds import INDEX_KINDS

    compressed = tmp_path / "multi-c"
    if engine == "codec":
        compress_multivector(collection["multi_dir"], compressed, reduced_dimension=DIM, nlist=4)
    else:  # too few vectors for PQ's 256 sub-centroids: 4-bit buckets
        compress_multivector_warp(
            collection["multi_dir"], compressed, residual="sq", bits=4, nlist=4, estimate_queries=8
        )
    assert read_manifest(compressed)["kind"] == {"codec": "multi-compressed", "warp": "multi-warp"}[engine]
    queries = impact_queries(collection)
    rng = np.random.default_rng(4)
    tables = {"impact": queries, "multi": {q: rng.standard_normal((3, DIM)).astype(np.float32) for q in queries}}

    def encoder_for(manifest, **kwargs):
        representation = INDEX_KINDS[manifest["kind"]].representation
        return fake(tables[representation], representation)

    monkeypatch.setattr(factory, "query_encoder_for", encoder_for)
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"{q}\t{q}\n" for q in queries))
    multi = factory.open_searcher(compressed, nprobe=2)
    sparse = factory.open_searcher(collection["impact_dir"])
    for fusion in ("minmax", "pyserini"):
        out = tmp_path / f"{fusion}.trec"
        argv = ["--multi-index", str(compressed), "--impact-index", str(collection["impact_dir"]), "--nprobe", "2"]
        argv += ["--fusion", fusion, "--depth", "10", "--topics", str(topics), "--output", str(out), "--hits", "5"]
        assert search_cli.main(argv) == 0
        run: dict[str, list[tuple[str, float]]] = {}
        for line in out.read_text().splitlines():
            qid, _, docid, _, score, _ = line.split()
            run.setdefault(qid, []).append((docid, float(score)))
        fused = fuse(multi, sparse, fusion, depth=10)
        assert list(run) == list(queries)
        for qid in queries:
            hits = sorted(fused.search(qid, k=5), key=lambda h: (-round(h.score, 6), h.docid))  # the run's order
            assert [d for d, _ in run[qid]] == [h.docid for h in hits]
            assert [s for _, s in run[qid]] == pytest.approx([h.score for h in hits], abs=1e-6)
