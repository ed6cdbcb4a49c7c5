"""The build-time recall estimate of approximate dense indexes: exact top-k, leave-one-out, tracking, advice."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from pyserini_diffretriever.indexing.dense_recall import (
    ExactTopK,
    advice,
    alternatives,
    leave_one_out,
    pseudo_queries,
    recall_record,
)

DIM = 32


def clustered(n, seed, topics=40):
    """Unit vectors around shared topic centres (the same centres for every seed), so kNN lists are local."""
    centres = np.random.default_rng(7).standard_normal((topics, DIM))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(topics, size=n)] + 0.8 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def collection():
    docs = clustered(4000, seed=1)
    index = faiss.index_factory(DIM, "IVF64,SQ4", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.seed = 0
    index.train(docs)
    index.add(docs)
    rows = np.sort(np.random.default_rng(3).choice(len(docs), 300, replace=False))
    exact = ExactTopK(docs[rows], 51)
    for lo in range(0, len(docs), 700):
        exact.add(docs[lo : lo + 700])
    return {"docs": docs, "index": index, "pseudo": pseudo_queries(docs[rows], rows, exact)}


def test_exact_top_k_over_chunks_is_the_brute_force_ranking():
    docs, queries = clustered(1000, seed=4), clustered(7, seed=5)
    exact = ExactTopK(queries, 20)
    for lo in (0, 3, 250, 251, 900):  # uneven chunks, one smaller than k
        exact.add(docs[lo : {0: 3, 3: 250, 250: 251, 251: 900, 900: 1000}[lo]])
    assert exact.seen == 1000
    np.testing.assert_array_equal(exact.top(), np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :20])


def test_leave_one_out_drops_the_query_row_and_padding():
    found = np.array([[5, 2, 9, -1], [1, 4, 6, 8]])
    assert [f.tolist() for f in leave_one_out(found, np.array([2, 7]), 3)] == [[5, 9], [1, 4, 6]]


def test_estimate_tracks_the_recall_of_held_out_queries(collection):
    """Pseudo-queries drawn from the collection give the recall that queries distributed like it get, measured
    by brute force, at every nprobe (recall from ~0.5 to 1)."""
    index, docs, pseudo = collection["index"], collection["docs"], collection["pseudo"]
    held_out = clustered(300, seed=2)
    truth = np.argsort(-(held_out @ docs.T), axis=1, kind="stable")[:, :50]
    ivf = faiss.extract_index_ivf(index)
    estimates = []
    for nprobe in (1, 4, 64):
        ivf.nprobe = nprobe
        estimate = float(pseudo.recall(index).mean())
        _, found = index.search(held_out, 50)
        measured = np.mean([len(np.intersect1d(f, t)) / 50 for f, t in zip(found, truth)])
        assert abs(estimate - measured) < 0.04, (nprobe, estimate, measured)
        estimates.append(estimate)
    assert estimates[0] < 0.8 < estimates[1] and estimates[2] > 0.9  # the estimate moves with the index


def test_low_recall_gets_measured_alternatives_and_advice_that_names_the_option(collection):
    index = collection["index"]
    faiss.extract_index_ivf(index).nprobe = 1
    record = recall_record(index, "IVF64,SQ4", collection["pseudo"], {"nprobe": 1}, wanted=0.9)
    assert record["recall_at_50"] < 0.9 and record["queries"] == 300 and record["search"] == {"nprobe": 1}
    options = record["alternatives"]
    assert list(options)[0] == "--nprobe 2" and max(v for k, v in options.items() if k.startswith("--")) >= 0.9
    assert list(options)[-1] == f"re-rank 4 x 50 candidates exactly at {reaching_probe(options)} (upper bound)"
    reaching = next(k for k, v in options.items() if v >= 0.9)
    assert f"use {reaching}" in record["advice"] and "below --min-recall 0.90" in record["advice"]
    assert faiss.extract_index_ivf(index).nprobe == 1  # the alternatives restore the chosen parameters
    assert "advice" not in recall_record(index, "IVF64,SQ4", collection["pseudo"], {"nprobe": 1}, wanted=0.1)


def reaching_probe(options):
    """The widest ``--nprobe`` option tried."""
    return [option for option in options if option.startswith("--nprobe")][-1]


def test_advice_when_only_re_ranking_or_no_cheap_option_reaches_the_target():
    rerank = {"--nprobe 128": 0.8, "re-rank 4 x 100 candidates exactly at --nprobe 128 (upper bound)": 0.97}
    assert "--factory 'IVF{nlist},RaBitQ,Refine(SQ8)' --nprobe 128 (8-bit" in advice("IVF", 100, 0.79, 0.95, rerank)
    nothing = {"--ef-search 512": 0.7, "re-rank 4 x 100 candidates exactly (upper bound)": 0.8}
    assert "codec limits it: use --factory HNSW32" in advice("HNSW32_PQ256x8", 100, 0.6, 0.95, nothing)


def test_hnsw_alternatives_raise_ef_search():
    docs = clustered(1500, seed=6)
    index = faiss.index_factory(DIM, "HNSW4", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 8
    index.add(docs)
    index.hnsw.efSearch = 4
    rows = np.arange(0, 1500, 10)
    exact = ExactTopK(docs[rows], 21)
    exact.add(docs)
    measured = alternatives(index, pseudo_queries(docs[rows], rows, exact), {"efSearch": 4}, wanted=1.01)
    assert list(measured)[:3] == ["--ef-search 8", "--ef-search 16", "--ef-search 32"]
    assert index.hnsw.efSearch == 4
