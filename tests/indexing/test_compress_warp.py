"""Building and searching the cell-major (multi-warp) index: layout, recall vs exact, the build-time estimate,
memory-mapped opening, sub-linear work, resume, and the ``index compress`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.cli.index import main as index_main
from pyserini_diffretriever.indexing import compress_warp
from pyserini_diffretriever.indexing.compress_warp import FolderSource, build_warp_index, compress_multivector_warp
from pyserini_diffretriever.indexing.warp_codec import WarpCodec
from pyserini_diffretriever.search.factory import open_searcher
from pyserini_diffretriever.search.index_format import IndexMismatchError
from pyserini_diffretriever.search.kinds import KindOptionError
from pyserini_diffretriever.search.warp_index import WarpIndex, WarpSearcher
from pyserini_diffretriever.writers import verify_output
from pyserini_diffretriever.writers.checkpoint import partial_path
from pyserini_diffretriever.writers.verify import CorruptOutputError
from tests.search.index_builders import ENCODER_SETTINGS, FakeQueryEncoder, clustered_collection, write_multi_index

DIM, DOCS, TOPICS = 48, 600, 30
OPTIONS = {"reduced_dimension": 24, "train_docs": 400, "estimate_queries": 24, "nprobe": 4, "checkpoint_every": 100}


def _collection(n_docs: int, seed: int = 7) -> list[np.ndarray]:
    docs = clustered_collection(n_docs, 6, DIM, n_topics=TOPICS, seed=seed)
    return [d[: 3 + i % 4] for i, d in enumerate(docs)]  # 3 to 6 vectors: offsets must follow


def _exact_top(docs: list[np.ndarray], query: np.ndarray, k: int) -> set[int]:
    scores = [np.maximum((query @ d.T).max(axis=1), 0).sum() for d in docs]
    return set(np.argsort(-np.asarray(scores), kind="stable")[:k].tolist())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("warp")
    docs = _collection(DOCS)
    encoder = {**ENCODER_SETTINGS, "hidden_size": DIM}
    folder = write_multi_index(root / "multi", docs, [f"d{i:03d}" for i in range(DOCS)], encoder, dtype=np.float16)
    manifest = compress_multivector_warp(folder, root / "warp", **OPTIONS)
    floats = [d.astype(np.float16).astype(np.float32) for d in docs]
    return root, folder, floats, manifest


def _queries(count: int) -> np.ndarray:
    vectors = clustered_collection(count, 4, DIM, n_topics=TOPICS, seed=7)
    return np.stack(vectors)


def test_layout_is_cell_major_and_matches_the_codec(built):
    root, folder, floats, manifest = built
    assert verify_output(root / "warp", "multi-warp") == json.loads((root / "warp/manifest.json").read_text())
    assert manifest["num_docs"] == DOCS and manifest["num_vectors"] == sum(len(d) for d in floats)
    assert (root / "warp" / manifest["source"]).resolve() == folder.resolve()
    index = WarpIndex(root / "warp")
    codec = WarpCodec.load(root / "warp/codec.npz")
    rows = np.concatenate(floats)
    cells, codes = codec.encode_small(rows)
    order = np.argsort(cells, kind="stable")
    np.testing.assert_array_equal(np.asarray(index.codes), codes[order])
    doc_of_row = np.repeat(np.arange(DOCS), [len(d) for d in floats])
    np.testing.assert_array_equal(np.asarray(index.doc_numbers), doc_of_row[order])
    np.testing.assert_array_equal(np.diff(index.cell_offsets), np.bincount(cells, minlength=codec.nlist))
    np.testing.assert_array_equal(np.asarray(index.rerank_codes), codec.encode_rerank(rows))
    assert index.docids[:2] == ["d000", "d001"] and not partial_path(root / "warp").exists()


def test_doc_rows_point_every_vector_to_its_code(built):
    root, _, floats, _ = built
    index = WarpIndex(root / "warp")
    codec = index.codec
    cells, codes = codec.encode_small(np.concatenate(floats))
    rows = np.asarray(index.doc_rows)
    assert sorted(rows.tolist()) == list(range(index.num_vectors))
    np.testing.assert_array_equal(np.asarray(index.codes)[rows], codes)
    np.testing.assert_array_equal(np.searchsorted(index.cell_offsets, rows, side="right") - 1, cells)


def test_small_scores_are_the_maxsim_of_the_decoded_codes(built):
    root, _, floats, _ = built
    searcher = WarpSearcher(root / "warp")
    codec = searcher.index.codec
    query = _queries(1)[0]
    docs = np.array([5, 0, 411, 77])
    projected_query = codec.project(query)
    expected = []
    for d in docs:
        cells, codes = codec.encode_small(floats[d])
        decoded = codec.centroids[cells] + codec.decode_residuals(codes)
        expected.append(np.maximum((projected_query @ decoded.T).max(axis=1), 0).sum())
    np.testing.assert_allclose(searcher.small_scores(query, docs), expected, rtol=1e-4, atol=1e-4)


def test_exact_small_stage_finds_more_than_warp_imputation(built):
    """Re-scoring the WARP candidates by all their codes is what recovers recall (issue 17's diagnosis)."""
    root, _, floats, _ = built
    queries = _queries(30)
    exact_stage = WarpSearcher(root / "warp", candidates=DOCS)
    warp_only = WarpSearcher(root / "warp", candidates=0)
    found = {"exact": [], "warp": []}
    for query in queries:
        truth = _exact_top(floats, query, 20)
        found["exact"].append(len({int(h.docid[1:]) for h in exact_stage.search_vectors(query, 20)} & truth))
        found["warp"].append(len({int(h.docid[1:]) for h in warp_only.search_vectors(query, 20)} & truth))
    assert np.mean(found["exact"]) >= np.mean(found["warp"])
    assert np.mean(found["exact"]) / 20 >= 0.8


def test_opening_maps_the_codes_without_reading_them(built):
    root = built[0]
    index = WarpIndex(root / "warp")
    for array in (index.codes, index.doc_numbers, index.doc_rows, index.rerank_codes):
        assert isinstance(array, np.memmap) and array.mode == "r"


def test_recall_against_exact_maxsim(built):
    root, _, floats, _ = built
    queries = _queries(30)
    exhaustive = WarpSearcher(root / "warp", nprobe=10_000, rerank=DOCS)  # every cell, every document re-scored
    probed = WarpSearcher(root / "warp", rerank=0)
    found_all, found_probed = [], []
    for query in queries:
        exact = _exact_top(floats, query, 10)
        found_all.append(len({int(h.docid[1:]) for h in exhaustive.search_vectors(query, 10)} & exact) / 10)
        found_probed.append(len({int(h.docid[1:]) for h in probed.search_vectors(query, 10)} & exact) / 10)
    assert np.mean(found_all) >= 0.95  # the SQ8 tier is nearly exact
    assert np.mean(found_probed) >= 0.6  # small codes of 4 probed cells: approximate, not random


def test_split_tier_re_ranks_like_sq8_at_fewer_bytes(built, tmp_path):
    root, folder, floats, _ = built
    options = {**OPTIONS, "estimate_queries": 0, "rerank_tier": "split4"}
    manifest = compress_multivector_warp(folder, tmp_path / "split", **options)
    assert manifest["codec"]["rerank_tier"] == "split4" and manifest["codec"]["rerank_bytes"] == 24 + DIM // 2
    assert verify_output(tmp_path / "split", "multi-warp")["codec"]["rerank_bytes"] == 48
    index = WarpIndex(tmp_path / "split")
    assert index.rerank_codes.shape == (index.num_vectors, 48)
    split = WarpSearcher(index, nprobe=10_000, rerank=DOCS)
    sq8 = WarpSearcher(root / "warp", nprobe=10_000, rerank=DOCS)
    found = {"split": [], "sq8": []}
    for query in _queries(30):
        exact = _exact_top(floats, query, 10)
        for name, searcher in (("split", split), ("sq8", sq8)):
            found[name].append(len({int(h.docid[1:]) for h in searcher.search_vectors(query, 10)} & exact) / 10)
    assert np.mean(found["split"]) >= np.mean(found["sq8"]) - 0.05 and np.mean(found["split"]) >= 0.9
    docs = np.arange(20)
    rows = np.concatenate([np.asarray(index.rerank_codes[index.offsets[d] : index.offsets[d + 1]]) for d in docs])
    query = _queries(1)[0]
    per_row = index.codec.rerank_scores(query, rows)  # [rows, K]: the kernel's MaxSim is their max per document
    lengths = np.diff(index.offsets[: len(docs) + 1])
    expected = np.maximum(np.maximum.reduceat(per_row, np.r_[0, np.cumsum(lengths)[:-1]], axis=0), 0).sum(axis=1)
    np.testing.assert_allclose(split.rerank_scores(query, docs), expected, rtol=1e-4, atol=1e-4)


def test_re_ranking_announces_its_reads_first(built, monkeypatch):
    import os

    index = WarpIndex(built[0] / "warp")
    advised = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: advised.append((offset, length)))
    docs = np.array([5, 2, 9])
    scores = WarpSearcher(index).rerank_scores(_queries(1)[0], docs)
    row_bytes, header = index.rerank_codes.shape[1], index.rerank_codes.offset
    assert advised == [
        (header + index.offsets[d] * row_bytes, (index.offsets[d + 1] - index.offsets[d]) * row_bytes) for d in docs
    ]
    assert scores.shape == (3,)
    advised.clear()
    index.prefetch_rerank(np.array([], dtype=np.int64))
    assert advised == []


def test_a_folder_without_doc_rows_searches_warp_only(built, tmp_path):
    import shutil

    root = built[0]
    shutil.copytree(root / "warp", tmp_path / "old")
    (tmp_path / "old/doc_rows.npy").unlink()  # as written before the exact small-tier stage
    with pytest.raises(CorruptOutputError, match="doc_rows.npy"):  # the manifest still promises the exact stage
        verify_output(tmp_path / "old", "multi-warp")
    manifest = json.loads((tmp_path / "old/manifest.json").read_text())
    del manifest["search"]["candidates"]
    (tmp_path / "old/manifest.json").write_text(json.dumps(manifest))
    verify_output(tmp_path / "old", "multi-warp")
    query = _queries(1)[0]
    old = WarpSearcher(tmp_path / "old")
    assert old.exact_candidates == 0
    assert old.search_vectors(query, 5) == WarpSearcher(root / "warp", candidates=0).search_vectors(query, 5)
    with pytest.raises(ValueError, match="no doc_rows.npy"):
        WarpSearcher(tmp_path / "old", candidates=10)


def test_estimate_tracks_the_recall_measured_on_other_queries(built):
    root, _, floats, manifest = built
    estimate = manifest["recall_estimate"]
    assert estimate["queries"] == OPTIONS["estimate_queries"] and estimate["documents"] == DOCS
    default = estimate["default"]
    assert default["nprobe"] == OPTIONS["nprobe"] and default["rerank"] == 0  # given: only candidates are tuned
    assert manifest["search"] == {**manifest["search"], "nprobe": 4, "candidates": default["candidates"]}
    assert manifest["search"]["tuned"] == ["candidates"]
    settings = {(row["nprobe"], row["candidates"], row["rerank"]) for row in estimate["settings"]}
    assert settings >= {(4, 250, 0), (4, 500, 0), (4, DOCS, 0), (4, DOCS, 1000), (4, default["candidates"], 100)}
    searcher = WarpSearcher(root / "warp")
    recalls = []
    for query in _queries(40):
        exact = _exact_top(floats, query, compress_warp.RECALL_DEPTH)
        hits = searcher.search_vectors(query, compress_warp.RECALL_DEPTH)
        recalls.append(len({int(h.docid[1:]) for h in hits} & exact) / compress_warp.RECALL_DEPTH)
    assert abs(default["recall"] - np.mean(recalls)) <= 0.1


def test_the_build_tunes_the_cheapest_search_within_tolerance_of_the_best(built, tmp_path):
    _, folder, _, _ = built
    options = {**OPTIONS, "nprobe": None, "rerank_tier": "none", "estimate_queries": 16}
    manifest = compress_multivector_warp(folder, tmp_path / "tuned", **options)
    estimate = manifest["recall_estimate"]
    rows, default = estimate["settings"], estimate["default"]
    nlist = manifest["codec"]["nlist"]
    grid = {(min(p, nlist), min(c, DOCS)) for p in compress_warp.NPROBE_GRID for c in compress_warp.CANDIDATE_GRID}
    assert {(row["nprobe"], row["candidates"]) for row in rows} == grid and all(row["rerank"] == 0 for row in rows)
    best, best_worst = max(row["recall"] for row in rows), max(row["min"] for row in rows)
    tolerance, worst_tolerance = compress_warp.TUNE_TOLERANCE, compress_warp.TUNE_WORST_TOLERANCE
    assert default["recall"] >= best - tolerance and default["min"] >= best_worst - worst_tolerance
    cheaper = [row for row in rows if row["cost"] < default["cost"]]
    assert all(row["recall"] < best - tolerance or row["min"] < best_worst - worst_tolerance for row in cheaper)
    assert manifest["search"]["tuned"] == ["nprobe", "candidates"]
    searcher = WarpSearcher(tmp_path / "tuned")
    assert (searcher.nprobe, searcher.exact_candidates) == (default["nprobe"], default["candidates"])
    # more cells cost more codes; more candidates cost more at the same cells
    by_setting = {(row["nprobe"], row["candidates"]): row["cost"] for row in rows}
    assert by_setting[(min(8, nlist), 250)] < by_setting[(min(256, nlist), 250)] < by_setting[(min(256, nlist), DOCS)]


def test_the_default_must_also_keep_the_worst_query():
    def row(nprobe, recall, worst, cost):
        return {"nprobe": nprobe, "candidates": 250, "rerank": 0, "recall": recall, "min": worst, "cost": cost}

    rows = [row(8, 0.944, 0.70, 10), row(32, 0.946, 0.81, 40), row(64, 0.948, 0.83, 80), row(64, 0.99, 0.9, 1)]
    rows[-1]["rerank"] = 1000  # re-rank rows never become the default
    assert compress_warp.choose_default(rows)["nprobe"] == 32  # nprobe 8 is near the mean but loses a query
    assert compress_warp.choose_default(rows, worst_tolerance=1.0)["nprobe"] == 8
    # the best mean and the best worst query on different rows: the worst query is judged among the near-best
    split = [row(8, 0.95, 0.80, 10), row(16, 0.94, 0.83, 20)]
    assert compress_warp.choose_default(split)["nprobe"] == 8


def test_the_default_re_ranks_only_where_the_small_tier_misses_min_recall():
    def row(nprobe, rerank, recall, cost):
        return {"nprobe": nprobe, "candidates": 2000, "rerank": rerank, "recall": recall, "min": recall, "cost": cost}

    small = row(8, 0, 0.59, 10)
    rows = [small, row(8, 1000, 0.97, 10), row(8, 400, 0.96, 10), row(64, 400, 0.96, 80), row(8, 100, 0.8, 10)]
    assert compress_warp.choose_rerank(rows, small, 0.95) == row(8, 400, 0.96, 10)  # fewest re-scored, then cost
    assert compress_warp.choose_rerank(rows, small, 0.965) == row(8, 1000, 0.97, 10)
    assert compress_warp.choose_rerank(rows, small, 0.99) is small  # none reaches it: the small tier, and a warning
    assert compress_warp.choose_rerank(rows, small, 0.5) is small


def test_a_build_whose_small_tier_misses_min_recall_re_ranks_by_default(built, tmp_path, caplog):
    _, folder, _, _ = built
    options = {**OPTIONS, "estimate_queries": 12, "reduced_dimension": 4, "subvector_dims": 4, "nprobe": None}
    manifest = compress_multivector_warp(folder, tmp_path / "tiny", **options, min_recall=0.9)
    estimate, search = manifest["recall_estimate"], manifest["search"]
    assert estimate["small_tier_default"]["recall"] < 0.9 <= estimate["default"]["recall"]  # 6-byte codes miss it
    assert search["rerank"] == estimate["default"]["rerank"] > 0 and "rerank" in search["tuned"]
    assert "the default search re-ranks" in caplog.text
    assert WarpSearcher(tmp_path / "tiny").rerank == search["rerank"]


def test_a_rerank_deeper_than_the_candidates_rescores_that_many(built, monkeypatch):
    searcher = WarpSearcher(built[0] / "warp")
    seen = []
    rerank_scores = WarpSearcher.rerank_scores
    monkeypatch.setattr(
        WarpSearcher, "rerank_scores", lambda self, q, docs: seen.append(len(docs)) or rerank_scores(self, q, docs)
    )
    query = _queries(1)[0]
    searcher.rank(query, 10, nprobe=4, candidates=20, rerank=60)
    assert seen == [min(60, len(searcher.candidates(query, 4)[0]))] and seen[0] > 20
    ranked = searcher.rank_settings(query, 10, 4, [20], reranks=(60,)).rankings[(20, 60)]
    assert set(ranked.tolist()) == set(searcher.rank(query, 10, nprobe=4, candidates=20, rerank=60)[0].tolist())


def test_rank_settings_gives_what_rank_gives_for_each_setting(built):
    searcher = WarpSearcher(built[0] / "warp")
    for query in _queries(4):
        ranked = searcher.rank_settings(query, 20, 4, [0, 30, 100], reranks=(25, 60))
        assert set(ranked.rankings) == {(0, 0), (30, 0), (100, 0), (100, 25), (100, 60)}
        without_exact = searcher.rank_settings(query, 20, 4, [0], reranks=(60,)).rankings  # WARP -> re-rank tier
        for (candidates, rerank), docs in [*ranked.rankings.items(), ((0, 60), without_exact[(0, 60)])]:
            alone = searcher.rank(query, 20, nprobe=4, candidates=candidates, rerank=rerank)[0]
            assert set(docs.tolist()) == set(alone.tolist()), (candidates, rerank)
        assert ranked.warp_candidates == len(searcher.candidates(query, 4)[0]) and ranked.probed_codes > 0


def test_work_per_query_grows_sublinearly(tmp_path):
    def probed_rows(n_docs: int) -> float:
        docs = _collection(n_docs, seed=3)
        folder = write_multi_index(tmp_path / f"m{n_docs}", docs, [f"d{i}" for i in range(n_docs)])
        options = {**OPTIONS, "estimate_queries": 0, "rerank_tier": "none", "train_docs": n_docs}
        compress_multivector_warp(folder, tmp_path / f"w{n_docs}", **options)
        searcher = WarpSearcher(tmp_path / f"w{n_docs}")
        index = searcher.index
        counts = []
        for query in _queries(10):
            cells, _, _ = searcher.probe(index.codec.project(query), searcher.nprobe)
            counts.append(int((index.cell_offsets[cells + 1] - index.cell_offsets[cells]).sum()))
        return float(np.mean(counts)), index.codec.nlist

    small, small_cells = probed_rows(400)
    large, large_cells = probed_rows(3200)
    assert large_cells > small_cells
    assert large / small < 8 * 0.6  # 8x the collection, well under 8x the codes scored


def test_an_interrupted_build_resumes_to_the_same_bytes(built, tmp_path, monkeypatch):
    root, folder, _, _ = built
    options = {**OPTIONS, "estimate_queries": 8}
    monkeypatch.setattr(FolderSource, "__init__", _small_blocks(FolderSource.__init__))  # same blocks both times
    compress_multivector_warp(folder, tmp_path / "whole", **options)
    blocks = FolderSource.blocks

    def failing(self, start):
        for number, block in enumerate(blocks(self, start)):
            if number == 3:
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(FolderSource, "blocks", failing)
    with pytest.raises(KeyboardInterrupt):
        compress_multivector_warp(folder, tmp_path / "resumed", **options)
    assert (partial_path(tmp_path / "resumed") / "progress.json").is_file()
    monkeypatch.setattr(FolderSource, "blocks", blocks)
    monkeypatch.setattr(compress_warp, "train_warp_codec", _must_not_train)
    manifest = compress_multivector_warp(folder, tmp_path / "resumed", **options)
    whole = json.loads((tmp_path / "whole/manifest.json").read_text())
    for name in ("codes.npy", "doc_numbers.npy", "cell_offsets.npy", "rerank.npy", "offsets.npy", "docid"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert manifest["recall_estimate"] == whole["recall_estimate"] and manifest["search"] == whole["search"]


def _small_blocks(init):
    def wrapped(self, directory, docs_per_block=1024):
        init(self, directory, docs_per_block=50)

    return wrapped


def _must_not_train(*args, **kwargs):
    raise AssertionError("a resumed build keeps its trained codec")


def test_searcher_api_and_errors(built):
    root = built[0]
    queries = _queries(3)

    class Encoder:
        def encode(self, text):
            return queries[int(text)]

    searcher = WarpSearcher(root / "warp", Encoder())
    hits = searcher.search("1", k=5)
    assert len(hits) == 5 and hits == searcher.search_vectors(queries[1], 5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    batch = searcher.batch_search(["0", "2"], ["q0", "q2"], k=5, threads=2)
    assert batch["q2"] == searcher.search("2", k=5)
    with pytest.raises(IndexMismatchError, match="dimension"):
        searcher.search_vectors(np.ones((4, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="query_encoder"):
        WarpSearcher(root / "warp").search("text")
    with pytest.raises(ValueError, match="nprobe"):
        WarpSearcher(root / "warp", nprobe=0)
    with pytest.raises(ValueError, match="candidates must be >= 0"):
        WarpSearcher(root / "warp", candidates=-1)


def test_open_searcher_takes_the_kind_and_its_options(built):
    root = built[0]
    queries = _queries(2)
    encoder = FakeQueryEncoder({"a": queries[0], "b": queries[1]}, "multi", {"hidden_size": DIM})
    searcher = open_searcher(root / "warp", encoder, nprobe=8, candidates=40, rerank=50)
    assert isinstance(searcher, WarpSearcher)
    assert (searcher.nprobe, searcher.exact_candidates, searcher.rerank) == (8, 40, 50)
    again = WarpSearcher(root / "warp", nprobe=8, candidates=40, rerank=50)
    assert searcher.search("a", k=3) == again.search_vectors(queries[0], 3)
    with pytest.raises(KindOptionError, match="option mode does not apply to multi-warp"):
        open_searcher(root / "warp", encoder, mode="exact")


def test_a_source_that_stops_early_is_an_error(built, tmp_path):
    _, folder, _, _ = built

    class Short(FolderSource):
        def blocks(self, start):
            yield next(super().blocks(start))

    with pytest.raises(ValueError, match=f"expected {DOCS}"):
        build_warp_index(Short(folder, docs_per_block=100), tmp_path / "short", **{**OPTIONS, "estimate_queries": 0})


def test_cli_builds_warp_and_refuses_foreign_options(built, tmp_path, caplog):
    _, folder, _, _ = built
    out = tmp_path / "cli"
    arguments = ["compress", "--engine", "warp", "--input", str(folder), "--output", str(out), "--dim", "24"]
    arguments += ["--nlist", "8"]
    assert index_main([*arguments, "--rerank-tier", "none", "--estimate-queries", "8", "--min-recall", "1.0"]) == 0
    manifest = verify_output(out, "multi-warp")
    assert manifest["codec"]["nlist"] == 8 and manifest["codec"]["rerank_tier"] == "none"
    assert "below --min-recall 1.00" in caplog.text  # the warning names what would reach it
    assert not (out / "rerank.npy").exists()
    with pytest.raises(ValueError, match="no re-rank tier"):
        WarpSearcher(out, rerank=10)
    foreign = ["compress", "--engine", "warp", "--input", str(folder), "--output", str(tmp_path / "x"), "--code", "SQ4"]
    assert index_main(foreign) == 1
    assert "--code do(es) not apply to --engine warp" in caplog.text


def test_exact_block_scores_give_documents_without_vectors_zero():
    from pyserini_diffretriever.indexing.compress_warp import exact_block_scores

    rng = np.random.default_rng(3)
    queries = rng.standard_normal((2, 3, 8)).astype(np.float32)
    documents = [rng.standard_normal((n, 8)).astype(np.float32) for n in (0, 2, 0, 3, 0)]  # empty first and last
    scores = exact_block_scores(queries, np.concatenate(documents), np.array([len(d) for d in documents]))
    expected = [[np.maximum(q @ d.T, 0).max(axis=1).sum() if len(d) else 0.0 for d in documents] for q in queries]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_searches_hold_blas_to_one_thread_until_the_last_one_leaves():
    import threading

    from threadpoolctl import threadpool_info

    from pyserini_diffretriever.search.warp_index import one_blas_thread

    def blas_threads() -> set[int]:  # numpy's BLAS: the one a query's products run on
        return {lib["num_threads"] for lib in threadpool_info() if "numpy" in lib["filepath"]}

    before = blas_threads()
    seen = {}

    def worker():  # a search in another thread, inside and leaving before the caller's (as batch_search's workers)
        with one_blas_thread():
            pass
        seen["after the worker left"] = blas_threads()

    with one_blas_thread():
        seen["inside"] = blas_threads()
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(10)
    assert seen == {"inside": {1}, "after the worker left": {1}}
    assert blas_threads() == before


def test_short_codec_samples_get_more_documents_for_the_cells(built):
    """Cells must keep growing like sqrt(n): where the codec's sample holds too few vectors for ``nlist`` cells,
    the build draws more documents for k-means alone (issue 17: 3,276 cells at 1M instead of 8,192)."""
    root, folder, floats, manifest = built
    source = FolderSource(folder)
    vectors_per_doc = manifest["num_vectors"] / manifest["num_docs"]
    assert list(compress_warp._cell_sample(source, 100, 450, nlist=8, seed=0)) == []  # 320 vectors suffice
    assert list(compress_warp._cell_sample(source, DOCS, 450, nlist=64, seed=0)) == []  # nothing left to draw
    drawn = list(compress_warp._cell_sample(source, 100, int(100 * vectors_per_doc), nlist=32, seed=0))
    missing = 32 * 40 - int(100 * vectors_per_doc)
    assert missing * 0.8 <= sum(len(block) for block in drawn) <= missing * 1.3 + 6
    assert all(block.dtype == np.float32 and block.shape[1] == DIM for block in drawn)
    # the fixture's build (400 of 600 documents sampled, default cells) drew the rest for its k-means
    assert manifest["codec"]["cell_train_vectors"] > manifest["codec"]["train_vectors"]
