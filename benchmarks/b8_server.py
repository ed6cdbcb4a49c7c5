"""B8: the REST server under load (loopback only), and an optional soak run.

What is measured: ``python -m pyserini_diffretriever.server rest`` serving a dense (FAISS) index of Cranfield
documents encoded with the tiny Dream fixture, API keys on, the search-result cache off (every request encodes
its query). Closed-loop clients (threads with keep-alive sessions, distinct Cranfield topics in turn) run at
1, 4 and 16 concurrent clients for a capped duration and request count each; reported per level: QPS, p50,
p99, and status counts. ``server_errors_under_load`` counts 5xx answers and transport failures (must be 0);
load-shedding answers (429/503) are counted apart. The 16-client level is repeated with ``--max-batch 1``
(micro-batching off) and with a longer window, to show what batching buys and what the window costs.

Soak (``--soak-minutes N``, not in ``make bench``): 4 clients for N minutes; the server's RSS is sampled every
5 s and its growth after the first minute (warm-up) is reported.

Usage::

    python benchmarks/b8_server.py --out results/raw/b8.json --workdir build/bench/b8 [--quick]
    python benchmarks/b8_server.py --out soak.json --workdir build/bench/b8 --soak-minutes 10
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from _common import machine

REPO = Path(__file__).resolve().parents[1]
CRANFIELD = REPO / "examples" / "cranfield"
API_KEY = "b8-load-test-key-0123456789"
LEVELS = (1, 4, 16)


def build_index(workdir: Path, num_docs: int) -> Path:
    """Tiny Dream fixture + the first ``num_docs`` Cranfield documents encoded into a dense FAISS index."""
    from pyserini_diffretriever.cli import encode as encode_cli
    from pyserini_diffretriever.fixtures import write_tiny_dream

    index = workdir / f"dense-{num_docs}"
    if (index / "manifest.json").exists():
        return index
    model = workdir / "tiny-dream"
    if not (model / "config.json").exists():
        write_tiny_dream(model)
    corpus = workdir / f"corpus-{num_docs}.jsonl"
    with open(CRANFIELD / "corpus.jsonl", encoding="utf-8") as src:
        docs = [line for line in src if json.loads(line)["text"].strip()][:num_docs]
    corpus.write_text("".join(docs), encoding="utf-8")
    argv = ["input", "--corpus", str(corpus), "--fields", "title", "text", "encoder", "--encoder", str(model)]
    argv += ["--batch-size", "16", "--max-length", "128", "--representation", "dense", "output"]
    argv += ["--embeddings", str(index), "--no-progress"]  # one representation: written into the folder
    if encode_cli.main(argv) != 0:
        raise SystemExit("encoding the benchmark corpus failed")
    return index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The REST server in a subprocess on a free loopback port."""

    def __init__(self, config: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "pyserini_diffretriever.server", "rest", "--config", str(config)]
        command += ["--port", str(self.port), "--no-access-log", "--search-cache-size", "0", *extra]
        self.log = log
        with open(log, "w") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit("server not ready after 300 s")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()


def load(url: str, queries: list[str], clients: int, seconds: float, max_requests: int) -> dict:
    """``clients`` closed-loop clients for ``seconds`` (or ``max_requests`` in all); latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        session = requests.Session()
        session.headers["X-API-Key"] = API_KEY
        while time.perf_counter() < stop_at:
            with lock:
                n = next(counter)
            if n >= max_requests:
                return
            started = time.perf_counter()
            try:
                response = session.get(
                    url + "/v1/cran/search", params={"query": queries[n % len(queries)], "hits": 10}, timeout=60
                )
                status = response.status_code
            except requests.RequestException:
                status = "transport-error"
            elapsed = time.perf_counter() - started
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else None
    return {
        "clients": clients,
        "requests": sum(statuses.values()),
        "ok": len(latencies),
        "seconds": wall,
        "qps": len(latencies) / wall,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": p99 * 1000 if p99 is not None else None,
        "statuses": {str(k): v for k, v in statuses.items()},
        "server_errors": sum(v for k, v in statuses.items() if k == "transport-error" or (k >= 500 and k != 503)),
        "shed": statuses.get(429, 0) + statuses.get(503, 0),
    }


def batching_stats(log: str) -> dict | None:
    for line in log.splitlines():
        if "micro-batcher:" in line:
            words = line.split("micro-batcher:")[1].split()
            queries, passes = int(words[0]), int(words[3])
            return {"queries": queries, "forward_passes": passes, "queries_per_pass": queries / max(passes, 1)}
    return None


def run_levels(config: Path, workdir: Path, queries: list[str], seconds: float, cap: int, tag: str, *extra: str):
    server = Server(config, workdir / f"server-{tag}.log", *extra)
    try:
        load(server.url, queries, 4, min(seconds, 5), 40)  # warm-up (thread pools, allocator, FAISS)
        levels = [load(server.url, queries, c, seconds, cap) for c in (LEVELS if tag == "default" else (16,))]
    finally:
        log = server.stop()
    return levels, batching_stats(log)


def soak(config: Path, workdir: Path, queries: list[str], minutes: float) -> dict:
    server = Server(config, workdir / "server-soak.log")
    samples: list[tuple[float, int]] = []
    result: dict = {}
    started = time.perf_counter()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append((time.perf_counter() - started, server.rss_bytes()))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = load(server.url, queries, 4, minutes * 60, 10**9)
    finally:
        done.set()
        sampler.join()
        server.stop()
    warm = next((rss for t, rss in samples if t >= min(60.0, minutes * 60 / 5)), samples[0][1])
    final = samples[-1][1]
    return {
        "minutes": minutes,
        "clients": 4,
        "load": result,
        "rss_after_warmup_bytes": warm,
        "rss_final_bytes": final,
        "rss_max_bytes": max(rss for _, rss in samples),
        "rss_growth_after_warmup": (final - warm) / warm,
        "rss_samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="fewer documents, shorter levels")
    parser.add_argument("--soak-minutes", type=float, default=0, help="only the soak run, this long")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    num_docs, seconds, cap = (200, 8.0, 2000) if args.quick else (1000, 20.0, 5000)
    index = build_index(args.workdir, num_docs)
    config = args.workdir / "server.yaml"
    alias = {"path": str(index), "index_type": "diffretriever_dense"}
    config.write_text(json.dumps({"api_keys": [API_KEY], "indexes": {"cran": alias}}))
    queries = [line.split("\t", 1)[1] for line in (CRANFIELD / "topics.tsv").read_text().splitlines()]
    out: dict = {"benchmark": "b8_server", "num_docs": num_docs, "index": "dense (FAISS flat), tiny Dream fixture"}
    earlier = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    if args.soak_minutes:  # added to the load-test result in --out (kept by later load tests)
        out = {**earlier, **out} if earlier.get("benchmark") == "b8_server" else out
        out["soak"] = soak(config, args.workdir, queries, args.soak_minutes)
        out["soak"]["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    else:
        if "soak" in earlier:
            out["soak"] = earlier["soak"]
        out["seconds_per_level"], out["max_requests_per_level"] = seconds, cap
        out["levels"], out["batching"] = run_levels(config, args.workdir, queries, seconds, cap, "default")
        variants = {"no_batching": ("--max-batch", "1"), "window_10ms": ("--batch-window-ms", "10")}
        out["variants"] = {}
        for tag, extra in variants.items():
            levels, stats = run_levels(config, args.workdir, queries, seconds, cap, tag, *extra)
            out["variants"][tag] = {"options": list(extra), "level": levels[0], "batching": stats}
        by_clients = {level["clients"]: level for level in out["levels"]}
        every = out["levels"] + [v["level"] for v in out["variants"].values()]
        out["summary"] = {
            "server_errors_under_load": sum(level["server_errors"] for level in every),
            "server_shed_under_load": sum(level["shed"] for level in every),
            "server_qps_1": by_clients[1]["qps"],
            "server_qps_16": by_clients[16]["qps"],
            "server_qps_16_over_1": by_clients[16]["qps"] / by_clients[1]["qps"],
            "server_p99_ms_16": by_clients[16]["p99_ms"],
        }
    if args.soak_minutes:
        out["soak"]["machine"] = machine()
    else:
        out["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    shown = {k: v for k, v in out["soak"].items() if k != "rss_samples"} if args.soak_minutes else out["summary"]
    print(json.dumps(shown, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
