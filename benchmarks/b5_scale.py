"""B5: the compressed multi-vector index at the real dimension (3584), 100k passages x 16 vectors.

Phases, each in its own process (clean peak-memory high-water mark, cold FAISS/BLAS pools):

``generate``  float16 ``multi`` folder from :mod:`hidden_states` (``--geometry``: ``llm``, the LLM-like default,
              or ``flat``, the flat-tail preset; cached, ~11.5 GB) + queries;
``truth``     exhaustive float32 MaxSim of every query over the float16 vectors (chunked memory map): the
              exact top-100, and the single-query exhaustive latency (the speed-up's denominator);
``build``     ``compress_multivector`` (codec training + streaming encode): vectors/s, peak RSS, bytes;
``search``    ``MultiVectorSearcher`` on the compressed folder: recall@100 vs the exact top-100 with no float
              reads, and with ``rerank`` from the float16 folder; median single-query latency; peak RSS
              while serving the queries; a sweep of the candidate-generation knobs.

Writes ``results/raw/b5.json``. Usage::

    python benchmarks/b5_scale.py                 # 100k passages (~40 min on 2 cores, ~12 GB of disk)
    python benchmarks/b5_scale.py --docs 20000    # smaller
    python benchmarks/b5_scale.py --geometry flat --output benchmarks/results/raw/b5_flat.json   # flat tail
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

K_P, K_Q, HITS = 16, 4, 100
RERANK = 300
MSMARCO_PASSAGES = 8_841_823


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def phase_generate(work: Path, docs: int, queries: int, geometry: str) -> dict:
    from hidden_states import GEOMETRIES, HiddenStateGenerator, describe

    from pyserini_diffretriever.writers import MultiVectorWriter

    folder = work / "multi"
    generator = HiddenStateGenerator(GEOMETRIES[geometry])
    start = time.perf_counter()
    if not (folder / "manifest.json").is_file():
        settings = {"backbone": "synthetic/hidden-states-3584", "hidden_size": 3584, "representation": "multi"}
        with MultiVectorWriter(folder, settings, dtype="float16", manifest_extra={"query": {"k": K_Q}}) as writer:
            first = 0
            for block in generator.documents(docs, K_P):
                ids = [f"p{first + i}" for i in range(len(block))]
                writer.write({"id": ids, "vector": list(block)})
                first += len(block)
    query_vectors, targets = generator.queries(queries, K_Q, docs)
    np.save(work / "queries.npy", query_vectors)
    return {
        "seconds": time.perf_counter() - start,
        "geometry_name": geometry,
        "geometry": describe(generator, K_P),
        "queries": queries,
        "targets": targets.tolist(),
    }


def exhaustive_scores(vectors: np.ndarray, offsets: np.ndarray, queries: np.ndarray, rows: int = 65_536):
    """``[Q, N]`` clamped MaxSim, float32 products over float16 rows read in chunks (the reference)."""
    import torch

    n_docs = len(offsets) - 1
    per_doc = int(offsets[1] - offsets[0])
    assert np.all(np.diff(offsets) == per_doc), "the benchmark collection has a fixed K per document"
    q = torch.from_numpy(queries.reshape(-1, queries.shape[-1]))
    scores = np.empty((len(queries), n_docs), dtype=np.float32)
    step = rows // per_doc
    for lo in range(0, n_docs, step):
        hi = min(lo + step, n_docs)
        block = torch.from_numpy(np.asarray(vectors[offsets[lo] : offsets[hi]], dtype=np.float32))
        sims = (q @ block.T).reshape(len(queries), queries.shape[1], hi - lo, per_doc)
        scores[:, lo:hi] = sims.amax(dim=3).clamp_(min=0).sum(dim=1).numpy()
    return scores


def phase_truth(work: Path) -> dict:
    import torch

    torch.set_num_threads(2)
    vectors = np.load(work / "multi/vectors.npy", mmap_mode="r")
    offsets = np.load(work / "multi/offsets.npy")
    queries = np.load(work / "queries.npy")
    start = time.perf_counter()
    scores = exhaustive_scores(vectors, offsets, queries)
    batch_seconds = time.perf_counter() - start
    top = np.argsort(-scores, axis=1, kind="stable")[:, :HITS]
    np.save(work / "truth.npy", top)
    single = []
    for i in range(3):  # one query alone: what a user waits for without an index
        start = time.perf_counter()
        exhaustive_scores(vectors, offsets, queries[i : i + 1])
        single.append(time.perf_counter() - start)
    return {"batch_seconds": batch_seconds, "single_query_seconds": single, "peak_rss_gb": peak_rss_gb()}


def phase_build(work: Path, dim: int, code: str) -> dict:
    from pyserini_diffretriever.indexing.compress_multi import compress_multivector

    out = work / f"multi-{dim}-{code}"
    start = time.perf_counter()
    manifest = compress_multivector(work / "multi", out, reduced_dimension=dim, residual_code=code, overwrite=True)
    seconds = time.perf_counter() - start
    on_disk = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    return {
        "folder": str(out),
        "seconds": seconds,
        "vectors_per_s": manifest["num_vectors"] / seconds,
        "peak_rss_gb": peak_rss_gb(),
        "code_size": manifest["code_size"],
        "bytes_per_vector_on_disk": on_disk / manifest["num_vectors"],
        "num_vectors": manifest["num_vectors"],
        "codec": manifest["codec"],
    }


def phase_search(work: Path, folder: str, sweep: bool) -> dict:
    import faiss

    from pyserini_diffretriever.search import MultiVectorSearcher

    faiss.omp_set_num_threads(2)
    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    start = time.perf_counter()
    searcher = MultiVectorSearcher(folder, threads=2)  # builds the token index (default mode)
    open_seconds = time.perf_counter() - start
    docids = searcher.docids
    position = {d: i for i, d in enumerate(docids)}

    def run(label: str, **options) -> dict:
        defaults = {"sources": ("centroids", "tokens"), "centroid_candidates": None, "token_hits": None, "nprobe": None}
        settings = {**defaults, **options}
        searcher.sources = settings["sources"]
        searcher.generators["centroids"].centroid_candidates = settings["centroid_candidates"]
        searcher.generators["tokens"].token_hits = settings["token_hits"]
        searcher.generators["tokens"].nprobe = settings["nprobe"]
        searcher.search(queries[0], k=HITS)  # warm-up
        latencies, recalls = [], []
        for i, query in enumerate(queries):
            start = time.perf_counter()
            hits = searcher.search(query, k=HITS)
            latencies.append(time.perf_counter() - start)
            recalls.append(len({position[h.docid] for h in hits} & set(truth[i].tolist())) / HITS)
        return {
            "label": label,
            **options,
            "recall_at_100": float(np.mean(recalls)),
            "min_recall_at_100": float(np.min(recalls)),
            "median_latency_ms": 1000 * float(np.median(latencies)),
            "p90_latency_ms": 1000 * float(np.percentile(latencies, 90)),
        }

    runs = [run("default")]
    if sweep:
        runs.append(run("tokens-only", sources=("tokens",)))
        for depth in (2000, 8000):
            runs.append(run(f"centroids{depth}", sources=("centroids",), centroid_candidates=depth))
    serving_rss = peak_rss_gb()
    reranked = MultiVectorSearcher(folder, threads=2, rerank=RERANK, sources=("centroids",))  # no second token index
    reranked.generators["tokens"] = searcher.generators["tokens"]
    searcher = reranked
    runs.append(run(f"rerank{RERANK}", rerank=RERANK))
    return {
        "open_seconds": open_seconds,
        "runs": runs,
        "serving_peak_rss_gb": serving_rss,
        "peak_rss_gb_with_rerank": peak_rss_gb(),
        "token_index": searcher.token_index_info.factory,
    }


def child(phase: str, work: Path, *extra: str) -> dict:
    from _common import run_phase

    return run_phase(__file__, phase, work, extra, {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dim", type=int, default=448)
    parser.add_argument("--code", default="SQ8")
    parser.add_argument(
        "--geometry",
        choices=("llm", "flat"),
        default="llm",
        help="hidden_states.GEOMETRIES preset: llm (steep spectrum, default) or flat (flat tail)",
    )
    parser.add_argument("--work", "--workdir", type=Path, default=None, help="data and indexes (reused)")
    parser.add_argument("--output", "--out", type=Path, default=HERE / "results" / "raw" / "b5.json")
    parser.add_argument("--quick", action="store_true", help="20k passages, 50 queries, no sweep")
    parser.add_argument("--phase", choices=("generate", "truth", "build", "search"))
    parser.add_argument("--folder", default=None)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument(
        "--codec-sweep",
        nargs="+",
        metavar="DIM:CODE",
        help="only build and search these codecs on the existing collection (recall vs bytes per vector); "
        "results are added to --output under codec_sweep",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.queries, args.no_sweep = 20_000, 50, True
    suffix = "" if args.geometry == "llm" else f"-{args.geometry}"
    work = (args.work or REPO / "build" / "bench") / f"b5-{args.docs}{suffix}"
    if args.phase:  # a child: the parent passes its own resolved work folder
        work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.phase:
        result = {
            "generate": lambda: phase_generate(work, args.docs, args.queries, args.geometry),
            "truth": lambda: phase_truth(work),
            "build": lambda: phase_build(work, args.dim, args.code),
            "search": lambda: phase_search(work, args.folder, not args.no_sweep),
        }[args.phase]()
        print(json.dumps(result))
        return 0
    if args.codec_sweep:
        return codec_sweep(work, args.codec_sweep, args.output)
    report: dict = {"docs": args.docs, "k_p": K_P, "k_q": K_Q, "dimension": 3584, "storage": "float16"}
    report["geometry"] = args.geometry
    for phase, extra in (
        ("generate", ["--docs", str(args.docs), "--queries", str(args.queries), "--geometry", args.geometry]),
        ("truth", []),
        ("build", ["--dim", str(args.dim), "--code", args.code]),
    ):
        start = time.perf_counter()
        report[phase] = child(phase, work, *extra)
        print(f"{phase}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    extra = ["--folder", report["build"]["folder"]] + (["--no-sweep"] if args.no_sweep else [])
    report["search"] = child("search", work, *extra)
    report["summary"] = summarise(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return 0


def codec_sweep(work: Path, specs: list[str], output: Path) -> int:
    """Recall@100 (default search, no re-rank) against bytes per vector for several codecs."""
    report = json.loads(output.read_text()) if output.is_file() else {}
    points = report.get("codec_sweep", [])
    for spec in specs:
        dim, code = spec.split(":")
        build = child("build", work, "--dim", dim, "--code", code)
        search = child("search", work, "--folder", build["folder"], "--no-sweep")
        default = search["runs"][0]
        points = [p for p in points if p["spec"] != spec] + [
            {
                "spec": spec,
                "bytes_per_vector": build["bytes_per_vector_on_disk"],
                "energy_kept": build["codec"]["energy_kept"],
                "recall_at_100": default["recall_at_100"],
                "rerank_recall_at_100": search["runs"][-1]["recall_at_100"],
                "median_latency_ms": default["median_latency_ms"],
                "build_vectors_per_s": build["vectors_per_s"],
            }
        ]
        print(json.dumps(points[-1]), file=sys.stderr, flush=True)
        report["codec_sweep"] = sorted(points, key=lambda p: p["bytes_per_vector"])
        output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def summarise(report: dict) -> dict:
    build, search = report["build"], report["search"]
    default = search["runs"][0]
    rerank = search["runs"][-1]
    exhaustive = float(np.median(report["truth"]["single_query_seconds"]))
    float16_bytes = 3584 * 2
    # MS MARCO projection: codes on disk, plus in RAM the IVF copy of the codes and their 8-byte ids,
    # offsets (8 bytes per passage) and the docids (about 60 bytes per passage as Python strings)
    vectors = MSMARCO_PASSAGES * K_P
    ram = vectors * (build["code_size"] + 8) + MSMARCO_PASSAGES * (8 + 60)
    return {
        "compressed_multi_bytes_per_vector": build["bytes_per_vector_on_disk"],
        "compressed_multi_compression_vs_float16": float16_bytes / build["bytes_per_vector_on_disk"],
        "compressed_multi_recall_at_100": default["recall_at_100"],
        "compressed_multi_rerank_recall_at_100": rerank["recall_at_100"],
        "compressed_multi_search_peak_rss_gb": search["serving_peak_rss_gb"],
        "compressed_multi_latency_ms": default["median_latency_ms"],
        "exhaustive_float16_latency_ms": 1000 * exhaustive,
        "compressed_multi_latency_speedup": 1000 * exhaustive / default["median_latency_ms"],
        "compressed_multi_build_vectors_per_s": build["vectors_per_s"],
        "compressed_multi_build_peak_rss_gb": build["peak_rss_gb"],
        "compressed_multi_build_peak_rss_gb_per_1m_vectors": build["peak_rss_gb"] / (build["num_vectors"] / 1e6),
        "msmarco_multi_projected_ram_gb": ram / 1e9,
        "msmarco_multi_projected_disk_gb": vectors * build["bytes_per_vector_on_disk"] / 1e9,
        "msmarco_multi_projected_build_hours": vectors / build["vectors_per_s"] / 3600,
    }


if __name__ == "__main__":
    sys.exit(main())
