"""B3: search latency and throughput vs index size (10k, 100k documents) and K_p (1, 4, 16).

Searchers, all on the same synthetic collection (dimension 128, clustered like real embeddings: documents near
topic directions, a document's K_p vectors near its own centre; queries drawn the same way with K_q = 4):

``impact``           a real Lucene impact index built by Pyserini/Anserini from JsonVectorCollection records
                    (``--impact --pretokenized``) and searched by ``LuceneImpactSearcher`` with a query encoder
                    returning fixed ``{term: weight}`` dicts (pooled over slots, so independent of K_p);
``dense``           FAISS ``IndexFlatIP`` over the single vectors (mean of a document's normalised vectors) via
                    Pyserini's ``FaissSearcher``;
``multi-default``   :class:`pyserini_diffretriever.search.MultiVectorSearcher` (candidates + exact re-scoring);
``multi-exact``     the same searcher in ``exact`` mode (exhaustive MaxSim, streamed);
``torch-exhaustive``the reference's approach (docs/method.md §6): every document's vectors in one torch tensor,
                    clamped MaxSim by chunked matmul against all documents, top-k merged per chunk.

Latency = median seconds of single-query ``search(k=100)`` calls, with 2 threads (``latency_s``) and with 1
(``latency_1t_s``: on a shared 2-core machine OpenMP barriers make 2-thread latencies of small searches erratic);
throughput = queries per second of one ``batch_search`` over all queries with 2 threads (torch: all queries
at once in document chunks, as the reference). Recall@100 of ``multi-default`` is measured against the exhaustive
MaxSim top 100 (torch, all queries); ``multi-exact`` computes the same ranking (checked on a subset, which is
also all it is timed on at large sizes: its numpy scoring is slow). At 100k documents x K_p=16 the default
searcher is also run with a smaller candidate budget (``candidates=200``) to show the latency/recall knob.

Usage: ``python benchmarks/b3_search.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import os

# torch and faiss-cpu each bring an OpenMP runtime; with the default (spinning) wait policy, idle torch threads
# starve FAISS's on 2 cores and every 2-thread FAISS search pays ~10 ms (measured: 11.6 ms vs 0.25 ms for a 10k
# flat search). Passive waiting removes that cross-library artefact; it must be set before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DIM = 128
K_Q = 4
TOPICS = 512
HITS = 100
THREADS = 2


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clustered(n: int, per_item: int, seed: int, stream: int) -> np.ndarray:
    """``[n, per_item, DIM]`` float32 unit vectors: topic -> item centre -> item vectors."""
    topics = _unit(np.random.default_rng(seed).standard_normal((TOPICS, DIM)))
    rng = np.random.default_rng([seed, stream, n, per_item])
    centres = _unit(topics[rng.integers(TOPICS, size=n)] + 0.9 * _unit(rng.standard_normal((n, DIM))))
    out = np.empty((n, per_item, DIM), dtype=np.float32)
    for lo in range(0, n, 8192):  # bounded temporaries at 100k x 16
        hi = min(lo + 8192, n)
        noise = _unit(rng.standard_normal((hi - lo, per_item, DIM)))
        out[lo:hi] = _unit(centres[lo:hi, None, :] + 0.6 * noise)
    return out


def write_multi(folder: Path, vectors: np.ndarray, docids: list[str]) -> Path:
    from pyserini_diffretriever.writers.manifest import build_manifest, write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    n, per_doc, dim = vectors.shape
    np.save(folder / "vectors.npy", vectors.reshape(n * per_doc, dim))
    np.save(folder / "offsets.npy", np.arange(0, n * per_doc + 1, per_doc, dtype=np.int64))
    (folder / "docid").write_text("".join(f"{d}\n" for d in docids))
    write_manifest(
        folder, build_manifest("multi", {"k": per_doc}, n, dimension=dim, dtype="float32", num_vectors=n * per_doc)
    )
    return folder


def write_dense(folder: Path, matrix: np.ndarray, docids: list[str]) -> Path:
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(np.ascontiguousarray(matrix, dtype=np.float32))
    faiss.write_index(index, str(folder / "index"))
    (folder / "docid").write_text("".join(f"{d}\n" for d in docids))
    return folder


def impact_vectors(n: int, seed: int, terms: int = 30000, per_doc: int = 48) -> list[dict[str, int]]:
    """Zipf-distributed term ids with integer impacts 1..300 (like ×100-quantised log(1+relu) weights)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, terms + 1)
    p = 1.0 / ranks**1.07
    p /= p.sum()
    out = []
    for _ in range(n):
        ids = np.unique(rng.choice(terms, size=per_doc, p=p))
        weights = rng.integers(1, 301, size=len(ids))
        out.append({f"t{i}": int(w) for i, w in zip(ids, weights)})
    return out


def build_impact_index(folder: Path, vectors: list[dict[str, int]]) -> float:
    collection = folder.parent / f"{folder.name}-jsonl"
    collection.mkdir(parents=True, exist_ok=True)
    with open(collection / "docs.jsonl", "w") as handle:
        for i, vector in enumerate(vectors):
            handle.write(json.dumps({"id": f"d{i}", "contents": "", "vector": vector}) + "\n")
    command = [
        sys.executable,
        "-m",
        "pyserini_diffretriever.run",
        "pyserini.index.lucene",
        "--collection",
        "JsonVectorCollection",
        "--input",
        str(collection),
        "--index",
        str(folder),
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        str(THREADS),
        "--impact",
        "--pretokenized",
    ]
    env = dict(os.environ, PYTHONPATH=str(C.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"Lucene indexing failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")
    return time.perf_counter() - start


class FixedQueries:
    """A query encoder that returns precomputed representations keyed by query string."""

    def __init__(self, table: dict) -> None:
        self.table = table

    def encode(self, query, **kwargs):
        return self.table[query]


class TorchExhaustive:
    """The reference's exhaustive MaxSim: all vectors in one tensor, chunked matmul, per-chunk top-k merge."""

    def __init__(self, vectors: np.ndarray, chunk_docs: int = 16384) -> None:
        import torch

        self.torch = torch
        self.docs = torch.from_numpy(vectors)  # [N, Kp, H], already L2-normalised
        self.chunk_docs = chunk_docs

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``queries [Q, Kq, H]`` -> ``(scores [Q, k], doc indices [Q, k])``."""
        torch = self.torch
        q = torch.from_numpy(queries)
        n_q, k_q, dim = q.shape
        flat_q = q.reshape(n_q * k_q, dim)
        best_s = torch.full((n_q, 0), float("-inf"))
        best_i = torch.zeros((n_q, 0), dtype=torch.long)
        with torch.inference_mode():
            for lo in range(0, self.docs.shape[0], self.chunk_docs):
                chunk = self.docs[lo : lo + self.chunk_docs]
                n_c, k_p, _ = chunk.shape
                sims = chunk.reshape(n_c * k_p, dim) @ flat_q.T  # [n_c*Kp, Q*Kq]
                scores = sims.view(n_c, k_p, n_q, k_q).amax(dim=1).clamp_min(0).sum(dim=-1).T  # [Q, n_c]
                top_s, top_i = scores.topk(min(k, n_c), dim=1)
                best_s = torch.cat([best_s, top_s], dim=1)
                best_i = torch.cat([best_i, top_i + lo], dim=1)
                best_s, keep = best_s.topk(min(k, best_s.shape[1]), dim=1)
                best_i = best_i.gather(1, keep)
        return best_s.numpy(), best_i.numpy()


def latency(fn, items, threads: int) -> float:
    """Median single-query seconds over ``items`` (one warm-up), ``fn(item, threads)``."""
    import torch

    torch.set_num_threads(threads)
    try:
        fn(items[0], threads)
        return C.median(C.timed_each(lambda item: fn(item, threads), items))
    finally:
        torch.set_num_threads(THREADS)


def latencies(fn, items) -> dict:
    return {"latency_s": latency(fn, items, THREADS), "latency_1t_s": latency(fn, items, 1)}


def throughput(fn) -> float:
    """Seconds of one batch call (every searcher already ran the same batch once, for the recall check)."""
    return C.timed(fn)


def run_multi(root: Path, n: int, k_p: int, n_queries: int, quick: bool) -> list[dict]:
    from pyserini_diffretriever.search import MultiVectorSearcher

    docs = clustered(n, k_p, seed=11, stream=1)
    queries = clustered(n_queries, K_Q, seed=11, stream=2)
    docids = [f"d{i}" for i in range(n)]
    folder = write_multi(root / f"multi-{n}-{k_p}", docs, docids)
    points = []
    start = time.perf_counter()
    default = MultiVectorSearcher(folder, mode="default", threads=THREADS)
    build_seconds = time.perf_counter() - start
    exact = MultiVectorSearcher(folder, mode="exact", threads=THREADS)
    reference = TorchExhaustive(docs)
    qids = [f"q{i}" for i in range(n_queries)]
    qlist = [queries[i] for i in range(n_queries)]
    sample = qlist[: min(len(qlist), 16 if quick else 32)]
    few = 8 if n * k_p > 200_000 else len(sample)  # exhaustive numpy scoring is slow: fewer timed queries

    # ground truth: exhaustive MaxSim (torch, all queries); the exact searcher must agree with it
    _, torch_top = reference.search(queries, HITS)
    truth = {q: {docids[j] for j in torch_top[i]} for i, q in enumerate(qids)}
    exact_runs = exact.batch_search(qlist[:few], qids[:few], k=HITS, threads=THREADS)
    agreement = float(np.mean([len({h.docid for h in exact_runs[q]} & truth[q]) / HITS for q in qids[:few]]))
    default_runs = default.batch_search(qlist, qids, k=HITS, threads=THREADS)
    recall = float(np.mean([len({h.docid for h in default_runs[q]} & truth[q]) / HITS for q in qids]))
    cases = [
        (
            "multi-default",
            lambda q, t: default.search(q, k=HITS, threads=t),
            lambda: default.batch_search(qlist, qids, k=HITS, threads=THREADS),
            sample,
            n_queries,
        ),
        (
            "multi-exact",
            lambda q, t: exact.search(q, k=HITS, threads=t),
            lambda: exact.batch_search(qlist[:few], qids[:few], k=HITS, threads=THREADS),
            sample[:few],
            few,
        ),
        (
            "torch-exhaustive",
            lambda q, t: reference.search(q[None], HITS),
            lambda: reference.search(queries, HITS),
            sample,
            n_queries,
        ),
    ]
    for name, single, batch, items, count in cases:
        points.append(
            {
                "searcher": name,
                "num_docs": n,
                "k_p": k_p,
                **latencies(single, items),
                "qps": count / throughput(batch),
                "n_queries": count,
            }
        )
    points[0].update(
        recall_at_100=recall,
        build_seconds=build_seconds,
        token_index=getattr(default.token_index_info, "factory", None),
    )
    points[1]["agreement_with_exhaustive_at_100"] = agreement
    if k_p == 16 and n >= 100_000:  # the candidate budget is the knob between latency and recall
        small = MultiVectorSearcher(folder, mode="default", threads=THREADS, candidates=2 * HITS)
        runs = small.batch_search(qlist, qids, k=HITS, threads=THREADS)
        points.append(
            {
                "searcher": "multi-default-c200",
                "num_docs": n,
                "k_p": k_p,
                **latencies(lambda q, t: small.search(q, k=HITS, threads=t), sample),
                "qps": n_queries / throughput(lambda: small.batch_search(qlist, qids, k=HITS, threads=THREADS)),
                "n_queries": n_queries,
                "candidates": 2 * HITS,
                "recall_at_100": float(np.mean([len({h.docid for h in runs[q]} & truth[q]) / HITS for q in qids])),
            }
        )
    default = exact = reference = docs = None  # free the memory before the next size
    return points


def run_dense(root: Path, n: int, n_queries: int, quick: bool) -> dict:
    from pyserini.search.faiss import FaissSearcher

    docs = clustered(n, 16, seed=11, stream=1)
    means = docs.mean(axis=1)
    queries = clustered(n_queries, K_Q, seed=11, stream=2).mean(axis=1)
    folder = write_dense(root / f"dense-{n}", means, [f"d{i}" for i in range(n)])
    searcher = FaissSearcher(str(folder), FixedQueries({}))
    qlist = [queries[i : i + 1] for i in range(n_queries)]

    def batch():
        return searcher.batch_search(
            queries,
            [f"q{i}" for i in range(n_queries)],
            k=HITS,  # noqa: E731
            threads=THREADS,
        )

    batch()  # warm-up
    timing = latencies(lambda q, t: searcher.search(q, k=HITS, threads=t), qlist[:32])
    qps = n_queries / throughput(batch)
    return {"searcher": "dense", "num_docs": n, "k_p": None, **timing, "qps": qps, "n_queries": n_queries}


def run_impact(root: Path, n: int, n_queries: int, quick: bool) -> dict:
    from pyserini.search.lucene import LuceneImpactSearcher

    vectors = impact_vectors(n, seed=5)
    folder = root / f"impact-{n}"
    index_seconds = build_impact_index(folder, vectors)
    rng = np.random.default_rng(9)
    table = {}
    for i in range(n_queries):  # a query takes ~8 terms of one document (so it has relevant hits)
        doc = vectors[int(rng.integers(n))]
        terms = list(doc)
        picked = rng.choice(len(terms), size=min(8, len(terms)), replace=False)
        table[f"query {i}"] = {terms[j]: int(rng.integers(20, 301)) for j in picked}
    searcher = LuceneImpactSearcher(str(folder), FixedQueries(table))
    texts = list(table)

    def batch():
        return searcher.batch_search(
            texts,
            [f"q{i}" for i in range(n_queries)],
            k=HITS,  # noqa: E731
            threads=THREADS,
        )

    for _ in range(3):  # warm-up (the JVM compiles the search path)
        batch()
    timing = latencies(lambda q, t: searcher.search(q, k=HITS), texts[:32])  # one Lucene thread per query
    qps = n_queries / throughput(batch)
    return {
        "searcher": "impact",
        "num_docs": n,
        "k_p": None,
        **timing,
        "qps": qps,
        "n_queries": n_queries,
        "index_seconds": index_seconds,
    }


def run(quick: bool, workdir: Path) -> dict:
    C.set_threads(THREADS)
    sizes = (10_000, 100_000)
    k_ps = (1, 4, 16)
    n_queries = 32 if quick else 64
    points = []
    for n in sizes:
        points.append(run_impact(workdir, n, n_queries, quick))
        print(f"  impact {n}: {points[-1]['latency_s'] * 1000:.2f} ms", flush=True)
        points.append(run_dense(workdir, n, n_queries, quick))
        print(f"  dense {n}: {points[-1]['latency_s'] * 1000:.2f} ms", flush=True)
        for k_p in k_ps:
            found = run_multi(workdir, n, k_p, n_queries, quick)
            points.extend(found)
            print(
                f"  multi {n} Kp={k_p}: "
                + ", ".join(f"{p['searcher']} {p['latency_s'] * 1000:.1f} ms" for p in found)
                + f"; recall@100 {found[0]['recall_at_100']:.4f}",
                flush=True,
            )
    return {
        "benchmark": "b3_search",
        "quick": quick,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "dimension": DIM,
        "k_q": K_Q,
        "topics": TOPICS,
        "hits": HITS,
        "threads": THREADS,
        "points": points,
        "machine": C.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    return C.bench_main(run, __doc__, "pdr-b3-", argv)


if __name__ == "__main__":
    sys.exit(main())
