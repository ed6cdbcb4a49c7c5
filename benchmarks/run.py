"""``make bench``: run the benchmark suite (B1-B10; B9 only with --long) and regenerate ``benchmarks/results``.

Each benchmark runs in its own Python process (clean thread pools and a fresh peak-memory high-water mark) and
writes ``results/raw/<name>.json``; :mod:`report` then writes ``results/summary.json``, ``results/REPORT.md``
and the PNG plots from those files alone, so a report can be rebuilt without re-measuring
(``python benchmarks/report.py``).

Usage::

    python benchmarks/run.py                  # full suite, ~105 min on 2 cores (B5 at dimension 3584: ~60 min, 25 GB disk)
                                              # (+ b5_flat / b5_dense_flat: B5 again on the flat-tail geometry)
    python benchmarks/run.py --quick          # smaller sizes / fewer repeats -> results/quick/
    python benchmarks/run.py --only b3 b4     # some benchmarks (the report uses the others' last raw files)
    python benchmarks/run.py --long           # also the long modes (B9: 100k passages x 2 geometries, streamed;
                                              # then b9_faiss and b9_candidates on B9's indexes; b9_split: B9
                                              # with the split4 re-rank tier; b9_codes: re-rank codes at 1M density)
    python benchmarks/run.py --only b9 --million   # B9 at 100k and 1M passages
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARKS = {
    "b1": "b1_cost_vs_k.py",
    "b2": "b2_overhead.py",
    "b3": "b3_search.py",
    "b4": "b4_memory.py",
    "b5": "b5_scale.py",
    "b5_flat": "b5_scale.py --geometry flat",
    "b5_dense": "b5_dense.py",
    "b5_dense_flat": "b5_dense.py --geometry flat",
    "b6_ray": "b6_ray.py",
    "b7": "b7_train.py",
    "b8": "b8_server.py",
    "b9": "b9_multi_scale.py",
    "b9_faiss": "b9_faiss.py",
    "b9_candidates": "b9_candidates.py",
    "b9_split": "b9_multi_scale.py --rerank-tier split4",
    "b9_codes": "b9_codes.py",
    "b10": "b10_encode.py",
}
LONG = {"b9", "b9_faiss", "b9_candidates", "b9_split", "b9_codes"}
"""Long modes (hours on 2 cores): run only when named with --only or with --long; CI skips them."""
FRESH_WORKDIRS = {"b3"}  # searchers would reuse token indexes from an earlier run and hide their build time
SHARED_WORKDIRS = {"b1": "models", "b2": "models", "b9_faiss": "b9", "b9_candidates": "b9"}  # B9's indexes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and fewer measurements (results/quick/)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--long", action="store_true", help=f"also the long modes ({', '.join(sorted(LONG))})")
    parser.add_argument("--million", action="store_true", help="B9 also at 1M passages (about a day on 2 cores)")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "build" / "bench",
        help="scratch space for models, corpora and indexes (default build/bench)",
    )
    args = parser.parse_args(argv)
    results = args.results or (HERE / "results" / "quick" if args.quick else HERE / "results")
    raw = results / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="2",
        MKL_NUM_THREADS="2",
        OPENBLAS_NUM_THREADS="2",
        TOKENIZERS_PARALLELISM="false",
    )
    timings = {}
    for name in args.only or sorted(name for name in BENCHMARKS if args.long or name not in LONG):
        workdir = args.workdir / SHARED_WORKDIRS.get(name, name)
        if name in FRESH_WORKDIRS and workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(HERE / BENCHMARKS[name].split()[0]),
            *BENCHMARKS[name].split()[1:],
            "--out",
            str(raw / f"{name}.json"),
            "--workdir",
            str(workdir.parent if name in ("b1", "b2") else workdir),
        ]
        if args.quick:
            command.append("--quick")
        if name in ("b9", "b9_split") and args.million:
            command.append("--million")
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=REPO)
        timings[name] = time.perf_counter() - start
        print(f"== {name} finished in {timings[name]:.0f} s (exit {done.returncode})", flush=True)
        if done.returncode != 0:
            return done.returncode
        path = raw / f"{name}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["wall_seconds"] = timings[name]
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    sys.path.insert(0, str(HERE))
    import report

    report.build(results, command=" ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]))
    print(f"wrote {results / 'summary.json'}, {results / 'REPORT.md'} and the plots", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
