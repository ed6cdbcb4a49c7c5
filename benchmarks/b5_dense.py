"""B5 (dense): compressed/ANN FAISS indexes and Lucene HNSW at the real dimension 3584, against the flat index.

Data. ``--docs`` passages (default 100k, ``--quick`` 20k) and ``--queries`` queries from :class:`DenseGenerator`:
anisotropic synthetic hidden states with the geometry (and defaults) of the multi-vector generator
``benchmarks/hidden_states.py`` of the lead benchmark -- topic clusters, a common mean direction, a few dimensions
with very large magnitude, a power-law spectrum plus a noise floor. As the package's dense representation does, a
passage's vector is the mean of its K_p = 16 L2-normalised slot vectors (a query's of K_q = 4), not
re-normalised (drawn directly, see the class). The passages are written with the package's own
:class:`~pyserini_diffretriever.writers.FaissFlatWriter` (a flat ``dense`` folder, as the encoder writes).

Measured for each codec (built with ``python -m pyserini_diffretriever.index faiss`` in a child process, whose
peak RSS is sampled): bytes per vector (codes + 8-byte ids for IVF), build seconds (training + adding), build
peak RSS, recall@100 against the exact ``IndexFlatIP`` top 100 (the share of those 100 documents found), and
the median single-query latency (``k=100``, one thread, the index as ``FaissSearcher`` loads it). Lucene:
``index lucene-dense`` (HNSW, M=16, efConstruction=100; flat in ``--quick`` runs or with ``--lucene-flat``),
searched with :class:`~pyserini_diffretriever.search.lucene_dense.LuceneDenseSearcher` on the same query vectors.

Geometry (``--geometry``): ``llm`` (default) or ``flat``, the presets of ``hidden_states.GEOMETRIES`` (a flat
tail: the 448-dim projection keeps 0.68 of the energy instead of 0.92); the report lists the flat run's figures
with a ``_flat`` suffix (``results/raw/b5_dense_flat.json``).

Build-time recall estimate: each index's manifest records the builder's own recall@100 estimate from
pseudo-queries drawn from the collection (:mod:`pyserini_diffretriever.indexing.dense_recall`); each codec row
compares it with the recall measured here on the generator's real held-out queries
(``recall_estimate_abs_error``; the worst codec gives ``dense_recall_estimate_abs_error``, target <= 0.03).

Usage: ``python benchmarks/b5_dense.py [--quick] [--docs N] [--geometry llm|flat] [--out FILE]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from hidden_states import BLOCK_DOCS, GEOMETRIES, HiddenStateGenerator, HiddenStateGeometry  # noqa: E402

import pyserini_diffretriever  # noqa: E402,F401  (Java >= 21 before pyserini loads)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "raw" / "b5_dense.json"
DIM = 3584
K_P, K_Q = 16, 4
HITS = 100
ENCODER = {"backbone": "synthetic/hidden-states", "model_type": "Dream", "hidden_size": DIM}

# (name, factory, extra CLI flags): the candidates compared; the first one that reaches the target is the default
CODECS = [
    ("ivf-rabitq", "IVF{nlist},RaBitQ", ["--nprobe", "64"]),
    ("ivf-pq256", "IVF{nlist},PQ256x8", ["--nprobe", "64"]),
    ("ivf-pq448", "IVF{nlist},PQ448x8", ["--nprobe", "64"]),
    ("ivf-rabitq-refine-sq6", "IVF{nlist},RaBitQ,Refine(SQ6)", ["--nprobe", "64"]),
    ("ivf-rabitq-refine-sq8", "IVF{nlist},RaBitQ,Refine(SQ8)", ["--nprobe", "64"]),
    ("hnsw32-pq256", "HNSW32_PQ256x8", ["--ef-search", "256"]),
    ("hnsw32", "HNSW32", ["--ef-search", "256"]),
]


class DenseGenerator:
    """Dense vectors of :class:`hidden_states.HiddenStateGenerator` (same geometry, same random streams).

    A dense vector is the mean of K L2-normalised slot vectors. Drawing K slots per document costs K structured
    draws (1.6M at 100k x 16); instead the K slots' mean is drawn directly (slot deviations averaged: spread,
    noise and rogue variance divided by K) and divided by the norm of one explicitly drawn slot of the same
    document. At dimension 3584 the slot norms of a document differ by about 1%, so this equals the mean of the
    normalised slots to that precision, at 1/K of the cost. The basis, mean direction, rogue dimensions and
    topic centres are the multi-vector generator's, so both benchmarks measure one geometry.
    """

    def __init__(self, geometry: HiddenStateGeometry = GEOMETRIES["llm"]) -> None:
        self.base = HiddenStateGenerator(geometry)
        self.geometry = geometry

    def _structured(self, rng, n):
        return self.base._structured(rng, n)

    def _deviation(self, rng, n, scale):
        g = self.geometry
        out = (g.slot_spread * scale) * self._structured(rng, n)
        out += (g.noise * scale / np.sqrt(g.dimension)) * rng.standard_normal(out.shape, dtype=np.float32)
        out[:, self.base.rogue] += (g.rogue_std * scale) * rng.standard_normal((n, g.rogue_dims), dtype=np.float32)
        return out

    def _dense(self, rng, centres, k):
        mean = self.base.mean
        slot_norm = np.linalg.norm(centres + mean + self._deviation(rng, len(centres), 1.0), axis=1)
        return (centres + mean + self._deviation(rng, len(centres), 1 / np.sqrt(k))) / slot_norm[:, None]

    def documents(self, num_docs, k):
        """``[<=512, D]`` float32 blocks of passage vectors (mean of ``k`` normalised slots), in order."""
        for block in range(-(-num_docs // BLOCK_DOCS)):
            rng, centres = self.base._doc_centres(block)
            yield self._dense(rng, centres[: min(BLOCK_DOCS, num_docs - block * BLOCK_DOCS)], k).astype(np.float32)

    def queries(self, num_queries, k, num_docs):
        """``[num_queries, D]`` query vectors around random target passages."""
        rng = np.random.default_rng([self.geometry.seed, 2])
        targets = np.sort(rng.choice(num_docs, size=num_queries, replace=False))
        centres = np.stack([self.base._doc_centres(int(t // BLOCK_DOCS))[1][t % BLOCK_DOCS] for t in targets])
        spread = self.geometry.query_spread * self._structured(rng, num_queries)
        return self._dense(rng, centres + spread, k).astype(np.float32)


def write_corpus(folder: Path, num_docs: int, num_queries: int, geometry: str = "llm") -> tuple[np.ndarray, dict]:
    """The flat dense folder of ``num_docs`` passage vectors; returns the query vectors and the data description."""
    from pyserini_diffretriever.writers import FaissFlatWriter

    gen = DenseGenerator(GEOMETRIES[geometry])
    description = {
        "generator": "b5_dense.DenseGenerator (hidden_states.py geometry, slot mean drawn directly)",
        "geometry_name": geometry,
    }
    queries = np.ascontiguousarray(gen.queries(num_queries, K_Q, num_docs))
    if (folder / "manifest.json").is_file():
        return queries, description
    started, written = time.perf_counter(), 0
    with FaissFlatWriter(folder, ENCODER, manifest_extra={"query": {"k": K_Q, "prompt": "few"}}) as writer:
        for dense in gen.documents(num_docs, K_P):
            writer.write({"id": [f"p{written + i}" for i in range(len(dense))], "vector": dense})
            written += len(dense)
    description["generate_seconds"] = round(time.perf_counter() - started, 1)
    return queries, description


def exact_top(folder: Path, queries: np.ndarray, k: int = HITS) -> np.ndarray:
    """Exact inner-product top ``k`` row ids per query, streaming the flat file (bounded memory)."""
    from pyserini_diffretriever.indexing.faiss_dense import iter_flat_vectors

    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    offset = 0
    for chunk in iter_flat_vectors(folder, 16384):
        scores = queries @ chunk.T
        ids = np.broadcast_to(np.arange(offset, offset + len(chunk)), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
        offset += len(chunk)
    return best_ids


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(f[f >= 0].tolist()) & set(e.tolist())) / exact.shape[1] for f, e in zip(found, exact)])
    )


def run_child(command: list[str]) -> tuple[float, int]:
    """Run a child process; return (wall seconds, peak RSS bytes sampled every 50 ms, children included)."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss + sum(c.memory_info().rss for c in watched.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{stderr[-3000:]}")
    return time.perf_counter() - started, peak


def median_latency_ms(search, queries: np.ndarray, repeats: int = 1) -> float:
    search(queries[0])  # warm-up
    times = []
    for _ in range(repeats):
        for query in queries:
            start = time.perf_counter()
            search(query)
            times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


def faiss_codec(folder: Path, work: Path, name: str, factory: str, flags: list[str], queries, exact, args) -> dict:
    import faiss

    from pyserini_diffretriever.indexing.faiss_dense import apply_search_parameters
    from pyserini_diffretriever.writers import read_manifest

    out = work / f"ann-{name}"
    command = [sys.executable, "-m", "pyserini_diffretriever.index", "faiss", "--input", str(folder)]
    command += ["--output", str(out), "--factory", factory, "--threads", str(args.threads), "--overwrite"]
    command += ["--train-size", str(args.train_size), *flags]
    if args.nlist:
        command += ["--nlist", str(args.nlist)]
    wall, peak = run_child(command)
    manifest = read_manifest(out)
    index = faiss.read_index(str(out / "index"))
    faiss.omp_set_num_threads(1)
    row = {
        "codec": name,
        "factory": manifest["index"]["factory"],
        "bytes_per_vector": manifest["index"]["bytes_per_vector"],
        "index_bytes": manifest["index"]["index_bytes"],
        "build_seconds": manifest["index"]["build_seconds"],
        "train_seconds": manifest["index"]["train_seconds"],
        "build_wall_seconds": round(wall, 1),
        "build_peak_rss_gb": round(peak / 2**30, 3),
        "search": {},
    }
    (key, default_value), *_ = manifest["search"].items()
    values = [16, 32, 64, 128, 256] if key == "nprobe" else [64, 128, 256, 512]
    values = sorted({default_value, *(v for v in values if key != "nprobe" or v <= manifest["index"]["nlist"])})
    for value in values:
        apply_search_parameters(index, {**manifest["search"], key: value})
        _, found = index.search(queries, HITS)
        latency = median_latency_ms(lambda q: index.search(q[None, :], HITS), queries[: args.latency_queries])
        row["search"][f"{key}={value}"] = {"recall_at_100": round(recall_at(found, exact), 4), "latency_ms": latency}
    default = f"{key}={default_value}"
    row["default_search"] = default
    row["search_parameters"] = manifest["search"]
    row.update(row["search"][default])
    estimate = manifest.get("recall_estimate", {})
    if "recall_at_100" in estimate:  # the builder's own estimate against real held-out queries
        row["recall_estimate"] = estimate["recall_at_100"]
        row["recall_estimate_abs_error"] = round(abs(estimate["recall_at_100"] - row["recall_at_100"]), 4)
        row["recall_estimate_seconds"] = estimate.get("seconds")
    index.reset()  # free the codes
    return row


class _Vectors:
    """A query 'encoder' returning precomputed vectors by query id (the searchers' encode step is not measured)."""

    def __init__(self, queries: np.ndarray) -> None:
        self.queries = queries

    def encode(self, query: str):
        return self.queries[int(query)]


def lucene(folder: Path, work: Path, queries, exact, args, hnsw: bool) -> dict:
    from pyserini_diffretriever.search.lucene_dense import LuceneDenseSearcher

    out = work / ("lucene-hnsw" if hnsw else "lucene-flat")
    command = [sys.executable, "-m", "pyserini_diffretriever.index", "lucene-dense", "--input", str(folder)]
    command += ["--index", str(out), "--threads", str(args.threads), "--overwrite"]
    command += ["--M", "16", "--efC", "100"] if hnsw else ["--flat"]
    wall, peak = run_child(command)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    row = {"build_wall_seconds": round(wall, 1), "build_peak_rss_gb": round(peak / 2**30, 3), "index_bytes": size}
    row["bytes_per_vector"] = round(size / args.docs, 1)
    row["segments"] = len(list(out.glob("*.si")))
    for ef in [100, 200, 500] if hnsw else [None]:
        searcher = LuceneDenseSearcher(out, _Vectors(queries), ef_search=ef)
        hits = [searcher.search_vector(q, HITS) for q in queries]
        found = np.array([[int(h.docid[1:]) for h in q] + [-1] * (HITS - len(q)) for q in hits])
        latency = median_latency_ms(lambda q, s=searcher: s.search_vector(q, HITS), queries[: args.latency_queries])
        row[f"efSearch={ef}" if hnsw else "exhaustive"] = {
            "recall_at_100": round(recall_at(found, exact), 4),
            "latency_ms": latency,
        }
        searcher.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k passages, 50 queries, Lucene flat too")
    parser.add_argument("--docs", type=int, default=None, help="passages (default 100k; quick 20k)")
    parser.add_argument("--queries", type=int, default=None, help="queries (default 200; quick 50)")
    parser.add_argument("--latency-queries", type=int, default=50, help="queries timed one by one (default 50)")
    parser.add_argument("--codecs", nargs="*", default=None, help=f"subset of {[c[0] for c in CODECS]}")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the builder's)")
    parser.add_argument("--train-size", type=int, default=40960, help="codec training sample (default 40960)")
    parser.add_argument("--threads", type=int, default=2, help="build threads (default 2)")
    parser.add_argument("--no-lucene", action="store_true")
    parser.add_argument("--lucene-flat", action="store_true", help="also Lucene flat (always in --quick)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data and indexes here (reused)")
    parser.add_argument(
        "--geometry",
        choices=sorted(GEOMETRIES),
        default="llm",
        help="hidden_states.GEOMETRIES preset: llm (steep spectrum, default) or flat (flat tail)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.docs = args.docs or (20_000 if args.quick else 100_000)
    args.queries = args.queries or (50 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="b5-dense-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(args, work)
    save(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}, indent=2))
    return 0


def save(path: Path, result: dict) -> None:
    """Write the JSON (after every measured index, so an interrupted run keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def summarise(result: dict) -> None:
    """The headline keys: the best codec within 512 (+8 id) bytes per vector, by recall@100 at its default."""
    fits = [row for row in result["codecs"] if row["bytes_per_vector"] <= 512 + 8]
    if fits:
        best = max(fits, key=lambda row: row["recall_at_100"])
        result["dense_ann_codec"] = best["factory"]
        result["dense_ann_recall_at_100"] = best["recall_at_100"]
        result["dense_ann_bytes_per_vector"] = best["bytes_per_vector"]
        result["dense_ann_latency_ms"] = best["latency_ms"]
    high = [row for row in result["codecs"] if row["recall_at_100"] >= 0.95]
    if high:
        smallest = min(high, key=lambda row: row["bytes_per_vector"])
        result["dense_ann_095_codec"] = smallest["factory"]
        result["dense_ann_095_bytes_per_vector"] = smallest["bytes_per_vector"]
        result["dense_ann_095_recall_at_100"] = smallest["recall_at_100"]
    errors = [row["recall_estimate_abs_error"] for row in result["codecs"] if "recall_estimate_abs_error" in row]
    if errors:  # the worst codec: the build-time estimate must track every index it is recorded for
        result["dense_recall_estimate_abs_error"] = max(errors)


def run(args: argparse.Namespace, work: Path) -> dict:
    import faiss

    folder = work / (f"dense-{args.docs}" + ("" if args.geometry == "llm" else f"-{args.geometry}"))
    started = time.perf_counter()
    queries, data = write_corpus(folder, args.docs, args.queries, args.geometry)
    data["write_seconds"] = round(time.perf_counter() - started, 1)
    exact = exact_top(folder, queries)
    flat = faiss.read_index(str(folder / "index"))
    faiss.omp_set_num_threads(1)
    flat_latency = median_latency_ms(lambda q: flat.search(q[None, :], HITS), queries[: args.latency_queries])
    assert recall_at(flat.search(queries, HITS)[1], exact) > 0.999
    flat.reset()  # free the vectors
    result: dict = {
        "benchmark": "b5_dense",
        "geometry": args.geometry,
        "docs": args.docs,
        "queries": args.queries,
        "dimension": DIM,
        "k_p": K_P,
        "k_q": K_Q,
        "data": data,
        "threads_build": args.threads,
        "threads_search": 1,
        "faiss_flat_latency_ms": flat_latency,
        "faiss_flat_bytes_per_vector": 4 * DIM,
        "codecs": [],
    }
    save(args.out, result)
    chosen = [c for c in CODECS if args.codecs is None or c[0] in args.codecs]
    if args.codecs:
        chosen.sort(key=lambda c: args.codecs.index(c[0]))
    for name, factory, flags in chosen:
        print(f"[b5_dense] codec {name}", file=sys.stderr, flush=True)
        result["codecs"].append(faiss_codec(folder, work, name, factory, flags, queries, exact, args))
        summarise(result)
        save(args.out, result)
    if not args.no_lucene:
        print("[b5_dense] lucene hnsw", file=sys.stderr, flush=True)
        result["lucene_hnsw"] = lucene(folder, work, queries, exact, args, hnsw=True)
        result["lucene_hnsw_recall_at_100"] = result["lucene_hnsw"]["efSearch=100"]["recall_at_100"]
        result["lucene_hnsw_latency_ms"] = result["lucene_hnsw"]["efSearch=100"]["latency_ms"]
        save(args.out, result)
        if args.quick or args.lucene_flat:
            print("[b5_dense] lucene flat", file=sys.stderr, flush=True)
            result["lucene_flat"] = lucene(folder, work, queries, exact, args, hnsw=False)
            result["lucene_flat_recall_at_100"] = result["lucene_flat"]["exhaustive"]["recall_at_100"]
            result["lucene_flat_latency_ms"] = result["lucene_flat"]["exhaustive"]["latency_ms"]
    return result


if __name__ == "__main__":
    sys.exit(main())
