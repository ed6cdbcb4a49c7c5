"""B9 codes: which re-rank tier can order a 1M-passage collection's near-identical passages (recall vs bytes).

At 1M passages B9's small tier finds every exact top-100 passage within its best 1,000 but orders them badly
(recall@100 0.59): the generator's 1,000 topics put ~1,000 near-identical passages around each query, and the
exact MaxSim gaps near rank 100 are ~5e-4. This measures, per code, the recall@100 of ordering exactly that
candidate set -- all 1,000 passages of the query's topic, the density of a 1M collection -- against exact float32
MaxSim. Every tier is fitted on the same trained codec (cells, projection, PQ codes: :func:`fit_rerank_tier`), so
the curve isolates the code. A proxy for the 1M index's re-rank stage: the small tier's own candidates at 1M
contain every exact top-100 passage (``b9_candidates.py``), so re-ranking them is re-ranking this set. Usage::

    python benchmarks/b9_codes.py [--geometries llm flat] [--queries 24]     # ~10 min per geometry, 2 cores

Writes ``results/raw/b9_codes.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

K_P, K_Q, HITS = 16, 4, 100
TOPIC_DOCS = 1000
"""Passages per query's topic: 1M passages over the generator's 1,000 topics."""
TRAIN_DOCS = 8192
TIERS = ("sq8", "split4", "split2")


def maxsim(query: np.ndarray, scores_per_row: np.ndarray) -> np.ndarray:
    """Per-document MaxSim from per-row scores ``[docs * K_P, K_Q]`` (clamped at 0, summed over query vectors)."""
    per_doc = scores_per_row.reshape(-1, K_P, query.shape[0]).max(axis=1)
    return np.maximum(per_doc, 0).sum(axis=1)


def top(scores: np.ndarray) -> set[int]:
    return set(np.argsort(-scores, kind="stable")[:HITS].tolist())


def measure(geometry_name: str, queries: int, seed: int) -> dict:
    from hidden_states import GEOMETRIES, HiddenStateGenerator

    from pyserini_diffretriever.indexing.warp_codec import default_cells, fit_rerank_tier, train_warp_codec

    geometry = GEOMETRIES[geometry_name]
    generator = HiddenStateGenerator(geometry)
    start = time.perf_counter()
    blocks = [
        block.reshape(-1, geometry.dimension)
        for _, block in zip(range(TRAIN_DOCS // 512), generator.documents(TRAIN_DOCS, K_P))
    ]
    sample = np.concatenate(blocks)
    del blocks
    codec, facts = train_warp_codec(sample, nlist=default_cells(1_000_000 * K_P), rerank_tier="none", seed=seed)
    codecs = {tier: fit_rerank_tier(replace(codec), sample, tier, seed=seed) for tier in TIERS}
    del sample
    trained = time.perf_counter() - start
    found: dict[str, list[float]] = {"small": [], **{tier: [] for tier in TIERS}}
    gaps = []
    rng = np.random.default_rng([seed, 11])
    for _ in range(queries):
        topic = rng.integers(geometry.topics)
        centres = generator.topic_centres[topic] + geometry.doc_spread * generator._structured(rng, TOPIC_DOCS)
        docs = generator._vectors(rng, centres, K_P, geometry.slot_spread).reshape(-1, geometry.dimension)
        around = centres[:1] + geometry.query_spread * generator._structured(rng, 1)  # near the topic's first passage
        query = generator._vectors(rng, around, K_Q, geometry.slot_spread)[0]
        exact = maxsim(query, docs @ query.T)
        truth = top(exact)
        ranked = np.sort(exact)[::-1]
        gaps.append(float(ranked[HITS - 1] - ranked[HITS]))
        projected = codec.project(docs)
        cells, codes = codec.encode_small(docs, projected)
        small = (codec.centroids[cells] + codec.decode_residuals(codes)) @ codec.project(query).T
        found["small"].append(len(top(maxsim(query, small)) & truth) / HITS)
        for tier, tiered in codecs.items():
            rows = tiered.encode_rerank(docs, projected)
            found[tier].append(len(top(maxsim(query, tiered.rerank_scores(query, rows))) & truth) / HITS)
    bytes_per_vector = {"small": codec.code_bytes, **{tier: c.rerank_bytes for tier, c in codecs.items()}}
    return {
        "geometry": geometry_name,
        "queries": queries,
        "topic_docs": TOPIC_DOCS,
        "energy_kept": facts["energy_kept"],
        "nlist": codec.nlist,
        "seconds_training": trained,
        "seconds": time.perf_counter() - start,
        "median_gap_at_100": float(np.median(gaps)),
        "codes": {
            name: {
                "bytes_per_vector": bytes_per_vector[name],
                "recall_at_100": float(np.mean(values)),
                "min_recall_at_100": float(np.min(values)),
                "gb_at_1m": bytes_per_vector[name] * 1_000_000 * K_P / 1e9,
            }
            for name, values in found.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometries", nargs="+", default=["llm", "flat"])
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="16 queries, the LLM geometry")
    parser.add_argument("--work", "--workdir", type=Path, default=None, help="accepted for make bench (unused)")
    parser.add_argument("--output", "--out", type=Path, default=HERE / "results" / "raw" / "b9_codes.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.geometries = 16, ["llm"]
    report = json.loads(args.output.read_text()) if args.output.is_file() else {}
    for name in args.geometries:
        report[name] = measure(name, args.queries, args.seed)
        print(name, json.dumps(report[name]["codes"]), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
