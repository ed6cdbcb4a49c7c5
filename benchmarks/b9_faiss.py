"""B9's engine comparison: FAISS ``IndexIVFPQ`` holding the *same* cells and codes as a ``multi-warp`` index.

Issue 17 asks for engines considered by measurement. The ``multi-warp`` small tier is an IVF-PQ by residual under
inner product (projected query . centroid + PQ table lookups), so FAISS can hold it unchanged: the index below
gets the codec's centroids, its PQ sub-centroids and every stored code, and scores each code exactly as the
numba kernel does (checked on the first query). What differs is the search:

``faiss``  per query vector, ``IndexIVFPQ.search`` over the same ``nprobe`` cells returns the best ``k`` codes
           (a heap; ColBERTv1/PLAID-style token retrieval), grouped per document: max per (document, query
           vector), a missing one imputed with that query vector's ``k``-th score, clamped at 0, summed; the best
           ``candidates`` then go through the same exact small-tier stage;
``warp``   :meth:`WarpSearcher.rank` (WARP_SELECT's reduction over *every* code of the probed cells).

Both run one query at a time on one thread (``faiss.omp_set_num_threads(1)``, one BLAS thread), on B9's 100k
index and queries. Usage (after ``b9_multi_scale.py --docs 100000``)::

    python benchmarks/b9_faiss.py --work build/bench/b9 [--geometries llm flat]

(``make bench`` runs it after B9 in the long mode: ``python benchmarks/run.py --long``.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]
HITS = 100


def faiss_ivfpq(index) -> object:
    """An ``IndexIVFPQ`` (inner product, by residual) filled with ``index``'s cells and codes; ids are documents."""
    import faiss

    codec = index.codec
    quantizer = faiss.IndexFlatIP(codec.reduced_dimension)
    quantizer.add(np.ascontiguousarray(codec.centroids, dtype=np.float32))
    ivf = faiss.IndexIVFPQ(
        quantizer, codec.reduced_dimension, codec.nlist, codec.code_bytes, 8, faiss.METRIC_INNER_PRODUCT
    )
    faiss.copy_array_to_vector(np.ascontiguousarray(codec.pq_centroids, dtype=np.float32).ravel(), ivf.pq.centroids)
    ivf.is_trained = True
    invlists = ivf.invlists
    for cell in range(codec.nlist):
        lo, hi = int(index.cell_offsets[cell]), int(index.cell_offsets[cell + 1])
        if hi > lo:
            ids = np.ascontiguousarray(index.doc_numbers[lo:hi], dtype=np.int64)
            codes = np.ascontiguousarray(index.codes[lo:hi])
            invlists.add_entries(cell, hi - lo, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
    ivf.ntotal = index.num_vectors
    return ivf


def faiss_rank(searcher, ivf, query: np.ndarray, nprobe: int, k: int, candidates: int) -> np.ndarray:
    """Top ``HITS`` documents: FAISS's top-``k`` codes per query vector, grouped, then the exact small stage."""
    from pyserini_diffretriever.search.warp_index import _top

    projected, centroid_scores, tables = searcher._prepare(np.asarray(query, dtype=np.float32))
    ivf.nprobe = nprobe
    scores, ids = ivf.search(projected, k)
    found = ids >= 0
    docs, where = np.unique(ids[found], return_inverse=True)
    best = np.repeat(np.maximum(scores[:, -1], 0)[None, :], len(docs), axis=0)  # imputed: the k-th score
    rows = np.nonzero(found)[0]
    np.maximum.at(best, (where, rows), np.maximum(scores[found], 0))
    approximate = best.sum(axis=1)
    pool = docs[_top(approximate, max(candidates, HITS))]
    exact = searcher._small_scores(centroid_scores, tables, pool)
    return pool[_top(exact, HITS)]


def main(argv: list[str] | None = None) -> int:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", "--workdir", type=Path, required=True, help="B9's work folder (index, queries, truth)"
    )
    parser.add_argument("--geometries", "--geometry", nargs="+", default=["llm", "flat"])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="B9's --quick index (20k passages)")
    parser.add_argument("--ks", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument(
        "--settings",
        type=lambda text: tuple(int(part) for part in text.split("x")),
        nargs="*",
        default=[(64, 2000)],
        help="NPROBExCANDIDATES settings measured besides the index's tuned default (default: 64x2000)",
    )
    parser.add_argument("--output", "--out", type=Path, default=HERE / "results" / "raw" / "b9_faiss.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs = 20_000
    faiss.omp_set_num_threads(1)
    for geometry in args.geometries:
        compare(args, f"{geometry}-{args.docs}")
    return 0


def compare(args: argparse.Namespace, tag: str) -> None:
    """Measure one B9 index (``warp-<tag>``) both ways and merge the result into ``args.output`` under ``tag``."""
    import faiss

    from pyserini_diffretriever.indexing import warp_kernel
    from pyserini_diffretriever.indexing.compress_warp import recall_at
    from pyserini_diffretriever.search.warp_index import WarpSearcher, _probe, one_blas_thread

    queries = np.load(args.work / f"queries-{tag}.npy")
    truth = np.load(args.work / f"truth-{tag}.npy")
    searcher = WarpSearcher(args.work / f"warp-{tag}", rerank=0)  # the small tier only, like FAISS
    start = time.perf_counter()
    ivf = faiss_ivfpq(searcher.index)
    fill_seconds = time.perf_counter() - start

    with one_blas_thread():
        projected, centroid_scores, tables = searcher._prepare(queries[0])
        ivf.nprobe = searcher.nprobe
        faiss_scores, faiss_ids = ivf.search(projected, 5)
        cells, cell_scores, _ = _probe(centroid_scores, searcher.nprobe)
        index = searcher.index
        _, query_vector, code_scores = warp_kernel.score_probed(
            index.codes, index.doc_numbers, index.cell_offsets, cells, cell_scores, tables
        )
        best_code = [code_scores[query_vector == i].max() for i in range(len(projected))]
        np.testing.assert_allclose(faiss_scores[:, 0], best_code, rtol=1e-4, atol=1e-4)  # the same code scores

        def measure(name: str, rank) -> dict:
            rank(queries[0])  # warm-up
            latencies, hits = [], []
            for query in queries:
                began = time.perf_counter()
                hits.append(rank(query))
                latencies.append(time.perf_counter() - began)
            return {
                "engine": name,
                "recall_at_100": float(recall_at(hits, truth[:, :HITS]).mean()),
                "p50_ms": 1000 * float(np.median(latencies)),
                "p90_ms": 1000 * float(np.percentile(latencies, 90)),
            }

        default = (searcher.nprobe, searcher.exact_candidates)
        settings = list(dict.fromkeys([default, *((n, c) for n, c in args.settings if n <= index.codec.nlist)]))
        report = json.loads(args.output.read_text()) if args.output.is_file() else {}
        for nprobe, candidates in settings:
            searcher.nprobe, searcher.exact_candidates = nprobe, candidates
            runs = [measure("warp", lambda q: searcher.rank(q, HITS)[0])]
            for k in args.ks:
                run = measure(
                    f"faiss IVFPQ top-{k} per query vector",
                    lambda q, k=k, n=nprobe, c=candidates: faiss_rank(searcher, ivf, q, n, k, c),
                )
                runs.append({**run, "k": k})
            key = tag if (nprobe, candidates) == default else f"{tag} at nprobe {nprobe}"
            report[key] = {
                "nprobe": nprobe,
                "candidates": candidates,
                "tuned_default": (nprobe, candidates) == default,
                "faiss_version": faiss.__version__,
                "faiss_fill_seconds": fill_seconds,
                "load": os.getloadavg(),
                "runs": runs,
            }
            print(json.dumps({key: report[key]}, indent=2), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
