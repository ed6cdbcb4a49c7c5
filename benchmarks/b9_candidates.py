"""B9's ranking diagnosis: how much of the exact top-100 the small tier ranks within its top ``N``.

Recall@100 of the small tier answers "does it rank the exact top-100 first"; this answers "does it find them at
all", which is what a finer tier re-ranking the top ``N`` could recover (B9 at 100k: the SQ8 tier costs ~0.001
against an exact re-rank of the same candidates). Where the two part, the small tier's codes, not candidate
generation, limit recall. Usage (after ``b9_multi_scale.py``)::

    python benchmarks/b9_candidates.py --work build/bench/b9 [--tags llm-100000 flat-100000 llm-1000000]

(``make bench`` runs it after B9 in the long mode.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]
HITS = 100
DEPTHS = (100, 250, 1000, 3000, 10000)


def within_top(searcher, queries: np.ndarray, truth: np.ndarray, nprobe: int, depths: tuple[int, ...]) -> dict:
    """Mean and lowest fraction of each query's exact top-100 found in the small tier's top ``depth``."""
    from pyserini_diffretriever.indexing.compress_warp import recall_at

    out = {}
    for depth in depths:
        hits = [searcher.rank(query, depth, nprobe=nprobe, candidates=depth, rerank=0)[0] for query in queries]
        found = recall_at(hits, truth[:, :HITS])
        out[str(depth)] = {"mean": float(np.mean(found)), "min": float(np.min(found))}
    return out


def main(argv: list[str] | None = None) -> int:
    from pyserini_diffretriever.search.warp_index import WarpSearcher, one_blas_thread

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", "--workdir", type=Path, required=True, help="B9's work folder")
    parser.add_argument("--tags", nargs="+", default=None, help="GEOMETRY-DOCS (default: every index B9 built)")
    parser.add_argument("--nprobe", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="accepted for make bench; the indexes decide the size")
    parser.add_argument("--output", "--out", type=Path, default=HERE / "results" / "raw" / "b9_candidates.json")
    args = parser.parse_args(argv)
    report = json.loads(args.output.read_text()) if args.output.is_file() else {}
    tags = args.tags or sorted(path.name[len("queries-") : -len(".npy")] for path in args.work.glob("queries-*.npy"))
    for tag in tags:
        queries = np.load(args.work / f"queries-{tag}.npy")
        truth = np.load(args.work / f"truth-{tag}.npy")
        searcher = WarpSearcher(args.work / f"warp-{tag}", rerank=0)
        with one_blas_thread():
            report[tag] = {
                "nprobe": args.nprobe,
                "within_top": within_top(searcher, queries, truth, args.nprobe, DEPTHS),
            }
        print(tag, json.dumps(report[tag]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
