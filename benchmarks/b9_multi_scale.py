"""B9: the cell-major (WARP-style) multi-vector index at scale, streamed, on two geometries.

For each geometry of :data:`hidden_states.GEOMETRIES` (``llm``: B5's; ``flat``: a flat spectral tail, where a
448-dim projection keeps at most ~0.70 of the energy), in its own processes:

``build``   stream ``--docs`` passages x 16 vectors of dimension 3584 from the generator straight into
            :func:`~pyserini_diffretriever.indexing.compress_warp.build_warp_index` -- the float vectors are never
            stored (1M passages would be 115 GB as float16). The same pass computes the exact float32 MaxSim
            top-100 of the 100 benchmark queries (4 vectors each). Build vectors/s counts the index's own work
            (training, encoding, its recall estimate, the cell-major layout), not generating the data or the
            benchmark's ground truth;
``search``  one query at a time (one BLAS thread: two only wait on each other for matrices this small): p50 latency and recall@100 against the exact top-100 for the small
            tier alone (no float reads) at several ``nprobe``, and with the SQ8 re-rank tier at several depths;
            anonymous memory (``RssAnon`` of ``/proc/self/status``) apart from the page cache (``RssFile``);
            the build-time recall estimate against the measured recall.

Writes ``results/raw/b9.json``. Usage::

    python benchmarks/b9_multi_scale.py                     # 100k passages, both geometries (long: hours under load)
    python benchmarks/b9_multi_scale.py --million           # also 1M passages (small tier only: 57 GB SQ8 tier)
    python benchmarks/b9_multi_scale.py --docs 1000000 --geometries llm   # 1M alone (about 75 min, quiet machine)
    python benchmarks/b9_multi_scale.py --docs 1000000 --geometries llm --rerank-tier sq8   # with the tier (~60 GB)
    python benchmarks/b9_multi_scale.py --docs 20000 --geometries llm
    python benchmarks/b9_multi_scale.py --search-again      # search the 100k indexes again (first search kept)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

K_P, K_Q, HITS = 16, 4, 100
MSMARCO_PASSAGES = 8_841_823
NPROBE_SWEEP = (8, 16, 32, 64, 128)
RERANK_SWEEP = (100, 200, 400, 1000)
RERANK_SWEEP_1M_EXTRA = (600,)
"""Re-rank depths measured too at 1M, where the small tier orders a topic's ~1,000 passages poorly and the depth
that reaches 0.97 lies between 400 and 1,000."""
FIXED_SMALL, FIXED_CANDIDATES = (64, 0), 2000
"""``(nprobe, rerank)`` and candidates of a small-tier run measured at every size whatever its tuned default: the
latency growth at one setting (``multi_latency_1m_over_100k_same_setting``)."""
FIXED_RERANK_NPROBES = (64, 128)
"""The re-rank tier is also measured at these cells with 2,000 candidates, whatever the tuned default is."""
DEEP_RERANK = (128, 16_000, 3000)
"""``(nprobe, candidates, rerank)``: a deep setting for a flat spectrum, where the small tier's order (0.68 of the
energy at 448 dims) rather than the SQ8 codes limits the re-rank tier (issue 17: 0.992 at ~210 ms at 100k)."""
CEILING_MAX_DOCS = 1_000_000
"""The ceiling run (every document a candidate) only below this size: at 1M it re-scores 16M codes per query."""
SMALL_TIER_FILES = ("codes.npy", "doc_numbers.npy", "doc_rows.npy")
"""Per-vector files of the small tier: codes, each code's document, each vector's code row (document order)."""
DOCID_BYTES = 76
"""Anonymous bytes per passage in the searcher: its id, a short str (~56 B) + its list slot (8), its offset (8), and
the kernel's ``document -> slot`` scratch entry (4, one searching thread)."""


def geometries() -> dict:
    """The benchmark geometries by name (``hidden_states.GEOMETRIES`` once it exists there)."""
    import hidden_states

    found = getattr(hidden_states, "GEOMETRIES", None)
    if found:
        return dict(found)
    return {  # stand-in until the shared module names its flat-tail geometry
        "llm": hidden_states.HiddenStateGeometry(),
        "flat": hidden_states.HiddenStateGeometry(noise=1.2, spectrum_decay=0.5, rank=2048),
    }


def rss_kb(field: str) -> int:
    """``RssAnon`` / ``RssFile`` of this process in kB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class GeneratorSource:
    """The generator as a :class:`~pyserini_diffretriever.indexing.compress_warp.DocumentSource`.

    Every block it yields also updates the exact top-100 of the benchmark queries, and the time spent generating
    and on that ground truth is counted apart (``overhead_seconds``; its CPU time, all threads, in
    ``overhead_cpu_seconds``; the sample drawn for training in ``sample_seconds``).
    """

    def __init__(self, geometry, num_docs: int, queries: np.ndarray) -> None:
        from hidden_states import BLOCK_DOCS, HiddenStateGenerator

        from pyserini_diffretriever.indexing.compress_warp import RunningTop

        self.generator = HiddenStateGenerator(geometry)
        self.block_docs = BLOCK_DOCS
        self.num_docs = num_docs
        self.dimension = geometry.dimension
        self.encoder_settings = {"backbone": "synthetic/hidden-states", "hidden_size": geometry.dimension}
        self.manifest_extra = {"query": {"k": K_Q}}
        self.identity = {"generator": repr(geometry), "num_docs": num_docs}
        self.queries = queries
        self.truth = RunningTop(len(queries), HITS)
        self.overhead_seconds = 0.0
        self.overhead_cpu_seconds = 0.0
        self.sample_seconds = 0.0

    def _block(self, block: int) -> np.ndarray:
        rng, centres = self.generator._doc_centres(block)
        count = min(self.block_docs, self.num_docs - block * self.block_docs)
        return self.generator._vectors(rng, centres[:count], K_P, self.generator.geometry.slot_spread)

    def sample(self, count: int, seed: int) -> list[np.ndarray]:
        start, cpu = time.perf_counter(), time.process_time()
        blocks = -(-self.num_docs // self.block_docs)
        chosen = np.random.default_rng(seed).choice(
            blocks, size=min(blocks, -(-count // self.block_docs)), replace=False
        )
        docs = [doc for block in np.sort(chosen) for doc in self._block(int(block))][:count]
        seconds = time.perf_counter() - start
        self.sample_seconds += seconds  # the codec's sample and the cells' extra blocks
        self.overhead_seconds += seconds
        self.overhead_cpu_seconds += time.process_time() - cpu
        return docs

    def blocks(self, start: int):
        from pyserini_diffretriever.indexing.compress_warp import DocumentBlock, exact_block_scores

        for block in range(start // self.block_docs, -(-self.num_docs // self.block_docs)):
            began, cpu = time.perf_counter(), time.process_time()
            docs = self._block(block)
            first = block * self.block_docs
            rows = docs.reshape(-1, docs.shape[-1])
            lengths = np.full(len(docs), K_P)
            self.truth.add(exact_block_scores(self.queries, rows, lengths), first)
            self.overhead_seconds += time.perf_counter() - began
            self.overhead_cpu_seconds += time.process_time() - cpu
            yield DocumentBlock([f"p{first + i}" for i in range(len(docs))], rows, lengths)


def phase_build(work: Path, geometry_name: str, docs: int, queries: int, rerank_tier: str) -> dict:
    from hidden_states import HiddenStateGenerator

    from pyserini_diffretriever.indexing.compress_warp import build_warp_index

    geometry = geometries()[geometry_name]
    query_vectors, targets = HiddenStateGenerator(geometry).queries(queries, K_Q, docs)
    source = GeneratorSource(geometry, docs, query_vectors)
    folder = work / f"warp-{geometry_name}-{docs}"
    load_before = os.getloadavg()
    start, cpu = time.perf_counter(), time.process_time()
    manifest = build_warp_index(source, folder, rerank_tier=rerank_tier, overwrite=True, restart=True)
    seconds = time.perf_counter() - start
    build_cpu_seconds = time.process_time() - cpu - source.overhead_cpu_seconds
    np.save(work / f"queries-{geometry_name}-{docs}.npy", query_vectors)
    np.save(work / f"truth-{geometry_name}-{docs}.npy", source.truth.docs)
    build_seconds = seconds - source.overhead_seconds
    sizes = {path.name: path.stat().st_size for path in folder.iterdir() if path.is_file()}
    vectors = manifest["num_vectors"]
    return {
        "folder": str(folder),
        "geometry": geometry_name,
        "seconds_total": seconds,
        "seconds_generating_and_truth": source.overhead_seconds,
        "build_seconds": build_seconds,
        "vectors_per_s": vectors / build_seconds,
        "build_cpu_seconds": build_cpu_seconds,
        "cpu_microseconds_per_vector": 1e6 * build_cpu_seconds / vectors,
        "seconds_drawing_training_sample": source.sample_seconds,
        "stage_seconds": manifest.get("build_seconds", {}),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "num_vectors": vectors,
        "files": sizes,
        "small_bytes_per_vector": sum(sizes.get(name, 0) for name in SMALL_TIER_FILES) / vectors,
        "rerank_bytes_per_vector": sizes.get("rerank.npy", 0) / vectors,
        "codec": manifest["codec"],
        "recall_estimate": manifest.get("recall_estimate"),
        "targets": targets.tolist(),
    }


def warm_small_tier(folder: Path) -> float:
    """Read the small tier's files once (sequentially) so that they sit in the page cache, as on a serving machine;
    returns the seconds it took.

    Why: the small tier (1.9 GB at 1M) is what every query scans, so a server keeps it cached; but right after a
    build with a re-rank tier larger than the page cache (57 GB at 1M), the build's own estimate has evicted it,
    and the first runs would time cold disk reads instead (B9 at 1M: 33 ms p50 at nprobe 8 cold, measured)."""
    start = time.perf_counter()
    for name in SMALL_TIER_FILES:
        path = folder / name
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass
    return time.perf_counter() - start


def phase_search(work: Path, folder: str, geometry_name: str, docs: int) -> dict:
    from pyserini_diffretriever.search.warp_index import WarpSearcher

    queries = np.load(work / f"queries-{geometry_name}-{docs}.npy")
    truth = np.load(work / f"truth-{geometry_name}-{docs}.npy")
    load_before = os.getloadavg()
    warm_seconds = warm_small_tier(Path(folder))
    anon_before = rss_kb("RssAnon")
    searcher = WarpSearcher(folder, rerank=0)
    anon_open = rss_kb("RssAnon")
    manifest_search = searcher.index.manifest["search"]
    # the small tier's tuned default (the manifest's default re-ranks where the small tier misses --min-recall)
    small_default = (searcher.index.manifest.get("recall_estimate") or {}).get("small_tier_default", manifest_search)
    default_candidates = int(small_default["candidates"])
    position = {d: i for i, d in enumerate(searcher.docids)}

    def run(nprobe: int, rerank: int, candidates: int | None = None) -> dict:
        searcher.nprobe, searcher.rerank = nprobe, rerank
        searcher.exact_candidates = default_candidates if candidates is None else candidates
        searcher.search_vectors(queries[0], HITS)  # warm-up (and numba compilation)
        latencies, recalls, candidates = [], [], []
        for query, exact in zip(queries, truth):
            start = time.perf_counter()
            hits = searcher.search_vectors(query, HITS)
            latencies.append(time.perf_counter() - start)
            recalls.append(len({position[h.docid] for h in hits} & set(exact.tolist())) / HITS)
        for query in queries[:10]:
            candidates.append(len(searcher.candidates(query, nprobe)[0]))
        return {
            "nprobe": nprobe,
            "rerank": rerank,
            "candidates": searcher.exact_candidates,
            "recall_at_100": float(np.mean(recalls)),
            "min_recall_at_100": float(np.min(recalls)),
            "p50_ms": 1000 * float(np.median(latencies)),
            "p90_ms": 1000 * float(np.percentile(latencies, 90)),
            "mean_candidates": float(np.mean(candidates)),
        }

    default_nprobe = int(small_default["nprobe"])
    runs = [run(nprobe, 0) for nprobe in sorted({*NPROBE_SWEEP, default_nprobe})]  # at the default candidates
    runs.append(run(*FIXED_SMALL, candidates=FIXED_CANDIDATES))  # one setting every size has: growth at equal work
    if searcher.index.rerank_codes is not None:
        sweep = RERANK_SWEEP if docs < 1_000_000 else sorted({*RERANK_SWEEP, *RERANK_SWEEP_1M_EXTRA})
        runs += [run(default_nprobe, depth) for depth in sweep]  # what `--rerank N` gives by default
        if manifest_search.get("rerank"):  # the build chose a re-ranking default: what a user gets
            runs.append(run(manifest_search["nprobe"], manifest_search["rerank"], manifest_search["candidates"]))
        for nprobe in FIXED_RERANK_NPROBES:  # where probing, not the default setting, limits the re-rank tier
            runs += [run(nprobe, depth, candidates=2000) for depth in RERANK_SWEEP[-2:]]
        deep_nprobe, deep_candidates, deep_rerank = DEEP_RERANK
        runs.append(run(deep_nprobe, deep_rerank, candidates=deep_candidates))
        if docs < CEILING_MAX_DOCS:  # the re-rank tier's ceiling: 256 cells, every candidate re-scored by its
            runs.append(run(256, RERANK_SWEEP[-1], candidates=docs))  # small codes, the deepest re-rank
    return {
        "runs": runs,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "anon_rss_gb_before_open": anon_before / 2**20,
        "anon_rss_gb_open": anon_open / 2**20,
        "anon_rss_gb_after_search": rss_kb("RssAnon") / 2**20,
        "file_rss_gb_after_search": rss_kb("RssFile") / 2**20,
        "nlist": searcher.index.codec.nlist,
        "reduced_dimension": searcher.index.codec.reduced_dimension,
        "default_nprobe": default_nprobe,
        "default_candidates": default_candidates,
        "small_tier_warm_seconds": warm_seconds,
        "manifest_search": {key: manifest_search.get(key) for key in ("nprobe", "candidates", "rerank")},
        "numba": __import__("pyserini_diffretriever.indexing.warp_kernel", fromlist=["x"]).HAVE_NUMBA,
    }


def child(phase: str, work: Path, *extra: str) -> dict:
    from _common import run_phase

    threads = "1" if phase == "search" else "2"  # one query's matrices are tiny: a second BLAS thread only waits
    env = {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "NUMBA_NUM_THREADS": "2"}
    return run_phase(__file__, phase, work, extra, env)


def run_point(work: Path, geometry: str, docs: int, queries: int, rerank_tier: str) -> dict:
    common = ["--geometry", geometry, "--docs", str(docs)]
    start = time.perf_counter()
    build = child("build", work, *common, "--queries", str(queries), "--rerank-tier", rerank_tier)
    print(f"build {geometry} {docs}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    search = child("search", work, *common, "--folder", build["folder"])
    return {"geometry": geometry, "docs": docs, "build": build, "search": search, "uptime": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    from pyserini_diffretriever.indexing.warp_codec import RERANK_TIERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also 1M passages (small tier only)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--geometries", nargs="+", default=["llm", "flat"])
    parser.add_argument("--work", "--workdir", type=Path, default=None, help="indexes (not reused)")
    parser.add_argument("--output", "--out", type=Path, default=HERE / "results" / "raw" / "b9.json")
    parser.add_argument("--quick", action="store_true", help="20k passages, 50 queries")
    parser.add_argument("--phase", choices=("build", "search"))
    parser.add_argument("--geometry", default="llm")
    parser.add_argument("--folder", default=None)
    parser.add_argument(
        "--rerank-tier",
        choices=RERANK_TIERS,
        default=None,
        help="the re-rank tier of every size built (default: sq8 below 1M passages, none at 1M, where the 3,584-byte "
        "tier takes 57 GB of disk; split4 2,240 bytes per vector)",
    )
    parser.add_argument(
        "--search-again",
        action="store_true",
        help="search the finished indexes of --docs/--geometries again (e.g. at a lower load); the first search "
        "is kept as search_first",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 20_000, 50
    work = args.work or REPO / "build" / "bench" / "b9"
    work.mkdir(parents=True, exist_ok=True)
    if args.phase == "build":
        print(json.dumps(phase_build(work, args.geometry, args.docs, args.queries, args.rerank_tier or "sq8")))
        return 0
    if args.phase == "search":
        print(json.dumps(phase_search(work, args.folder, args.geometry, args.docs)))
        return 0
    report = json.loads(args.output.read_text()) if args.output.is_file() else {}
    points = report.get("points", [])

    def tier(docs: int) -> str:  # 1M passages: small tier only unless asked (a 3,584-byte SQ8 tier is 57 GB)
        return args.rerank_tier or ("sq8" if docs < 1_000_000 else "none")

    plan = [(geometry, args.docs, tier(args.docs)) for geometry in args.geometries]
    if args.million:
        plan += [(geometry, 1_000_000, tier(1_000_000)) for geometry in args.geometries]
    for geometry, docs, tier in plan:
        if args.search_again:
            point = next(p for p in points if (p["geometry"], p["docs"]) == (geometry, docs))
            point.setdefault("search_first", point["search"])
            common = ["--geometry", geometry, "--docs", str(docs), "--folder", point["build"]["folder"]]
            point["search"] = child("search", work, *common)
        else:
            point = run_point(work, geometry, docs, args.queries, tier)
        points = [p for p in points if (p["geometry"], p["docs"]) != (geometry, docs)] + [point]
        report = {"k_p": K_P, "k_q": K_Q, "dimension": 3584, "points": points}
        report["summary"] = summarise(report)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return 0


def _point(report: dict, geometry: str, docs: int) -> dict | None:
    return next((p for p in report["points"] if p["geometry"] == geometry and p["docs"] == docs), None)


def _default_run(point: dict) -> dict:
    """The run at the index's default search (before tuning: the default nprobe, whatever candidates it had)."""
    search = point["search"]
    candidates = search.get("default_candidates")
    return next(
        r
        for r in search["runs"]
        if r["nprobe"] == search["default_nprobe"]
        and r["rerank"] == 0
        and (candidates is None or r["candidates"] == candidates)
    )


def _best_rerank(point: dict) -> dict | None:
    reranked = [r for r in point["search"]["runs"] if r["rerank"]]
    return max(reranked, key=lambda r: (r["recall_at_100"], -r["rerank"])) if reranked else None


def growth(report: dict) -> dict:
    """How latency and build rate change with the collection, per geometry (``_flat`` suffix):
    ``multi_<size>_p50_ms`` / ``multi_<size>_build_vectors_per_s`` at every size, and from the two largest sizes
    the fitted exponent of p50 ~ docs^a; where 1M was not measured, the 1M p50 it projects
    (``multi_1m_p50_ms_projected``: a projection, never the measured ``multi_1m_p50_ms``).

    Why a fitted exponent: the probed codes grow like sqrt(docs) by design (``default_cells``), but a query's fixed
    costs (projection, tables, centroid scores) do not grow, so the measured exponent is the honest one."""
    out: dict = {}
    for geometry, suffix in (("llm", ""), ("flat", "_flat")):
        points = sorted((p for p in report["points"] if p["geometry"] == geometry), key=lambda p: p["docs"])
        for point in points:
            label = "1m" if point["docs"] == 1_000_000 else f"{point['docs'] // 1000}k"
            out[f"multi_{label}_p50_ms{suffix}"] = _default_run(point)["p50_ms"]
            out[f"multi_{label}_build_vectors_per_s{suffix}"] = point["build"]["vectors_per_s"]
        if len(points) >= 2:
            small, large = points[-2], points[-1]
            ratio = _default_run(large)["p50_ms"] / _default_run(small)["p50_ms"]
            exponent = float(np.log(ratio) / np.log(large["docs"] / small["docs"]))
            out[f"multi_p50_growth_exponent{suffix}"] = exponent
            if large["docs"] < 1_000_000:  # only a projection where 1M was not measured
                out[f"multi_1m_p50_ms_projected{suffix}"] = (
                    _default_run(large)["p50_ms"] * (1_000_000 / large["docs"]) ** exponent
                )
    return out


def summarise(report: dict) -> dict:
    """The issue-17 keys (LLM geometry unless ``_flat``).

    The reference size is 100k passages; when only a smaller run exists (``--docs``), its size-free figures
    (recall, estimate error, bytes, memory, build rate) are reported with ``multi_reference_docs`` saying which
    size they come from, and its latency only under its own size (``multi_20k_p50_ms``), never under a 100k key.
    """
    out: dict = {}
    sizes = sorted({p["docs"] for p in report["points"] if p["docs"] < 1_000_000})
    reference = 100_000 if 100_000 in sizes else (sizes[-1] if sizes else None)
    if reference is None:
        return _million(report, None, out)
    out["multi_reference_docs"] = reference
    label = f"{reference // 1000}k"
    small = _point(report, "llm", reference)
    for geometry, suffix in (("llm", ""), ("flat", "_flat")):
        point = _point(report, geometry, reference)
        if not point:
            continue
        default = _default_run(point)
        estimate = (point["build"].get("recall_estimate") or {}).get("default", {}).get("recall")
        out[f"multi_{label}_recall_at_100{suffix}"] = default["recall_at_100"]
        out[f"multi_{label}_p50_ms{suffix}"] = default["p50_ms"]
        if estimate is not None:
            out[f"multi_recall_estimate_abs_error{suffix}"] = abs(estimate - default["recall_at_100"])
        out.update(_rerank_keys(point, "multi_rerank_tier", suffix, 0.99))
    if small:
        default = _default_run(small)
        build, search = small["build"], small["search"]
        codec = build["codec"]  # code sizes; the files add a 128-byte .npy header each
        per_vector_ids = 4 * sum(name in build["files"] for name in SMALL_TIER_FILES[1:])  # int32 doc number, row
        out["multi_small_bytes_per_vector"] = codec["code_bytes"] + per_vector_ids
        out["multi_small_bytes_per_vector_on_disk"] = build["small_bytes_per_vector"]
        out["multi_small_recall_at_100"] = default["recall_at_100"]
        out["multi_rerank_tier_bytes_per_vector"] = codec["rerank_bytes"]
        out[f"multi_{label}_search_anon_rss_gb"] = search["anon_rss_gb_after_search"]
        out["compressed_multi_build_vectors_per_s"] = build["vectors_per_s"]
        nlist_msmarco = 2 ** round(np.log2(2 * np.sqrt(MSMARCO_PASSAGES * K_P)))
        extra_cells = (nlist_msmarco - search["nlist"]) * search["reduced_dimension"] * 4
        out["msmarco_multi_projected_ram_gb"] = (
            search["anon_rss_gb_after_search"] * 2**30 + (MSMARCO_PASSAGES - small["docs"]) * DOCID_BYTES + extra_cells
        ) / 1e9
    out.update(growth(report))
    return _million(report, small if reference == 100_000 else None, out)


def _rerank_keys(point: dict, prefix: str, suffix: str, target: float) -> dict:
    """The best re-rank run of ``point`` (recall, depth, p50) and the fastest setting measured to reach ``target``
    (what the target costs)."""
    best = _best_rerank(point)
    if not best:
        return {}
    out = {
        f"{prefix}_recall_at_100{suffix}": best["recall_at_100"],
        f"{prefix}_depth{suffix}": best["rerank"],
        f"{prefix}_p50_ms{suffix}": best["p50_ms"],
    }
    reaching = [r for r in point["search"]["runs"] if r["rerank"] and r["recall_at_100"] >= target]
    if reaching:
        fastest = min(reaching, key=lambda r: r["p50_ms"])
        label = f"{target:.2f}".replace(".", "_")
        out[f"{prefix}_fastest_{label}_p50_ms{suffix}"] = fastest["p50_ms"]
        out[f"{prefix}_fastest_{label}_setting{suffix}"] = [fastest["nprobe"], fastest["candidates"], fastest["rerank"]]
    return out


def _million(report: dict, small: dict | None, out: dict) -> dict:
    """The 1M keys (LLM geometry), and the 1M / 100k latency ratios when ``small`` is the 100k point: at each
    index's tuned default (what a user gets) and at one setting both measured (:data:`FIXED_SMALL`)."""
    large = _point(report, "llm", 1_000_000)
    if not large:
        return out
    default = _default_run(large)
    out["multi_1m_p50_ms"] = default["p50_ms"]
    out["multi_1m_recall_at_100"] = default["recall_at_100"]
    out["multi_1m_search_anon_rss_gb"] = large["search"]["anon_rss_gb_after_search"]
    out["multi_1m_default_setting"] = [default["nprobe"], default["candidates"]]
    # built with a re-rank tier (--rerank-tier): read from disk where it outgrows the page cache (SQ8: 57 GB)
    out.update(_rerank_keys(large, "multi_1m_rerank_tier", "", 0.97))
    chosen = large["search"].get("manifest_search") or {}
    if chosen.get("rerank"):  # the build's default re-ranks (the small tier missed --min-recall): what users get
        key = (chosen["nprobe"], chosen["rerank"], chosen["candidates"])
        run = next((r for r in large["search"]["runs"] if (r["nprobe"], r["rerank"], r["candidates"]) == key), None)
        if run:
            out["multi_1m_default_search_recall_at_100"] = run["recall_at_100"]
            out["multi_1m_default_search_p50_ms"] = run["p50_ms"]
            out["multi_1m_default_search_setting"] = [chosen["nprobe"], chosen["candidates"], chosen["rerank"]]
    if small:
        out["multi_latency_1m_over_100k"] = default["p50_ms"] / _default_run(small)["p50_ms"]
        key = (*FIXED_SMALL, FIXED_CANDIDATES)  # (nprobe, rerank, candidates)
        fixed = [
            next((r for r in p["search"]["runs"] if (r["nprobe"], r["rerank"], r["candidates"]) == key), None)
            for p in (small, large)
        ]
        if all(fixed):
            out["multi_latency_1m_over_100k_same_setting"] = fixed[1]["p50_ms"] / fixed[0]["p50_ms"]
            out["multi_1m_recall_at_100_same_setting"] = fixed[1]["recall_at_100"]
    return out


if __name__ == "__main__":
    sys.exit(main())
