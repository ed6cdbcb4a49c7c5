"""B6: encoding on Ray -- throughput with 1 and 2 workers, and Ray's overhead over the plain encode command.

Each case runs the real command line (``python -m pyserini_diffretriever.encode``) in a child process on the same
corpus, with the benchmark network (:mod:`_common`: Dream shape, hidden 512, 8 layers, real 152k vocabulary),
all three representations (dense, multi, impact) from one forward pass per batch, on CPU:

``single``     the plain command, torch on 1 thread (``OMP_NUM_THREADS=1``);
``ray-1``      ``ray --workers 1 --cpus-per-worker 1`` (a local Ray cluster the command starts);
``ray-2``      ``ray --workers 2 --cpus-per-worker 1``.

Throughput is measured in the steady state, from the command's own commits: a watcher reads
``OUT.partial/progress.json`` every 20 ms and records (time, records committed); throughput is the records
committed between the first and the last commit over the time between them, so the start-up (Python, torch,
Ray, one model load per worker) is left out -- at MS MARCO scale it is amortised over hours. The single command
commits every block (``--checkpoint-every`` = block size), as the Ray driver does. End-to-end wall times are
reported too. The three cases run round-robin ``repeats`` times; medians are kept. ``others_cpu_share`` is the CPU
used by processes other than this one and its children during a case: the Ray workers are started by Ray, not by
the command, so about 0.5 per busy one-thread worker is expected there (on 2 cores); the plain case shows the
machine's own background load.

``ray_encode_2workers_over_1 = ray-2 / ray-1`` (target >= 1.6 on this 2-core machine) and
``ray_overhead_over_single_process = single / ray-1`` throughput (time ratio; target <= 1.10).

Usage: ``python benchmarks/b6_ray.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CASES = {"single": None, "ray-1": 1, "ray-2": 2}


def _corpus(path: Path, count: int) -> Path:
    texts = C.long_texts(count, words=48, seed=3)
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"d{i}", "contents": text}) + "\n")
    return path


class _CommitWatcher(threading.Thread):
    """Records (seconds, records committed) each time ``progress.json`` of a running encode changes."""

    def __init__(self, progress: Path) -> None:
        super().__init__(daemon=True)
        self.progress, self.points, self.stop = progress, [], threading.Event()

    def run(self) -> None:
        last = -1
        while not self.stop.is_set():
            try:
                done = json.loads(self.progress.read_text())["state"].get("records_done", 0)
            except (OSError, ValueError, KeyError):
                done = last
            if done != last and done > 0:
                self.points.append((time.perf_counter(), done))
                last = done
            time.sleep(0.02)

    def steady_rate(self) -> float | None:
        if len(self.points) < 3:
            return None
        (t0, n0), (t1, n1) = self.points[0], self.points[-1]
        return (n1 - n0) / (t1 - t0)


def _command(model: Path, corpus: Path, out: Path, block: int, workers: int | None) -> list[str]:
    command = [sys.executable, "-m", "pyserini_diffretriever.encode"]
    command += ["input", "--corpus", str(corpus)]
    command += ["encoder", "--encoder", str(model), "--representation", "dense", "multi", "impact"]
    command += ["--device", "cpu", "--batch-size", "8", "--max-length", "128"]
    command += ["output", "--embeddings", str(out), "--no-progress", "--checkpoint-every", str(block)]
    if workers is not None:
        command += ["ray", "--workers", str(workers), "--cpus-per-worker", "1", "--block-size", str(block)]
    return command


def _run_case(model: Path, corpus: Path, work: Path, block: int, workers: int | None) -> dict:
    out = work / f"out-{workers or 0}"
    for path in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".ray-blocks")):
        shutil.rmtree(path, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["RAY_AUTH_MODE"] = "disabled"  # a private, loopback-only cluster the command starts and stops
    C.wait_quiet()
    watcher = _CommitWatcher(out.with_name(out.name + ".partial") / "progress.json")
    watcher.start()
    before = C._cpu_clock()
    start = time.perf_counter()
    done = subprocess.run(
        _command(model, corpus, out, block, workers), env=env, capture_output=True, text=True, cwd=C.REPO
    )
    wall = time.perf_counter() - start
    others = C._others_share(before, C._cpu_clock())
    watcher.stop.set()
    watcher.join()
    if done.returncode != 0:
        raise RuntimeError(f"encode failed ({workers} workers): {done.stderr[-3000:]}")
    return {"end_to_end_seconds": wall, "steady_docs_per_second": watcher.steady_rate(), "others_cpu_share": others}


def run(quick: bool, workdir: Path) -> dict:
    count, block, repeats = (96, 16, 1) if quick else (320, 32, 2)
    dream, _ = C.write_pair(workdir / "models")
    corpus = _corpus(workdir / "corpus.jsonl", count)
    samples: dict[str, list[dict]] = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, workers in CASES.items():
            samples[name].append(_run_case(dream, corpus, workdir, block, workers))
            print(name, samples[name][-1], flush=True)
    rate = {name: C.median([s["steady_docs_per_second"] for s in runs]) for name, runs in samples.items()}
    wall = {name: C.median([s["end_to_end_seconds"] for s in runs]) for name, runs in samples.items()}
    return {
        "benchmark": "b6_ray",
        "quick": quick,
        "docs": count,
        "block_size": block,
        "batch_size": 8,
        "repeats": repeats,
        "network": C.NET,
        "ray_version": _ray_version(),
        "machine": C.machine(),
        "steady_docs_per_second": rate,
        "end_to_end_seconds": wall,
        "samples": samples,
        "ray_encode_2workers_over_1": rate["ray-2"] / rate["ray-1"],
        "ray_overhead_over_single_process": rate["single"] / rate["ray-1"],
    }


def _ray_version() -> str:
    import ray

    return ray.__version__


if __name__ == "__main__":
    sys.exit(C.bench_main(run, __doc__, "b6_ray-"))
