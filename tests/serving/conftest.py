"""Session fixtures for the server tests: Cranfield demo indexes of the tiny Dream model, CLI runs, a server.

Built once per session: the first documents of ``examples/cranfield`` encoded (dense, multi, impact) with the
tiny random checkpoint, a Lucene impact index, a Lucene index storing the raw documents (``base_index``), the
search CLI's runs for a few Cranfield topics, and one REST server subprocess (with API keys) on a free
loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CRANFIELD = REPO / "examples" / "cranfield"
N_DOCS = 24
N_TOPICS = 6
HITS = 10
MAX_LENGTH = 64
API_KEY = "test-key-0123456789abcdef"
MAX_QUERY_CHARS = 300
MAX_HITS = 50
SEARCHES = {
    "dense": ["--index", "{enc}/dense"],
    "multi": ["--index", "{enc}/multi"],
    "impact": ["--index", "{work}/impact"],
    "hybrid": ["--multi-index", "{enc}/multi", "--impact-index", "{work}/impact", "--depth", "20"],
    "hybrid_pyserini": ["--dense-index", "{enc}/dense", "--impact-index", "{work}/impact", "--depth", "20"]
    + ["--fusion", "pyserini"],
}


@dataclass
class Demo:
    work: Path
    topics: dict[str, str]
    runs: dict[str, dict[str, list[tuple[str, float]]]]
    config: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_run(path: Path) -> dict[str, list[tuple[str, float]]]:
    run: dict[str, list[tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, float(score)))
    return run


def _corpus(work: Path) -> tuple[Path, Path]:
    """The first documents with text (BEIR layout for encoding, Pyserini JsonCollection for the doc store)."""
    docs = []
    with open(CRANFIELD / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["text"].strip():
                docs.append(doc)
            if len(docs) == N_DOCS:
                break
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    store = work / "store-collection"
    store.mkdir()
    (store / "docs.jsonl").write_text(
        "".join(json.dumps({"id": d["id"], "contents": f"{d['title']}\n{d['text']}"}) + "\n" for d in docs)
    )
    return corpus, store


def _build(work: Path, model: Path) -> Path:
    from pyserini_diffretriever.cli import encode as encode_cli
    from pyserini_diffretriever.cli import index as index_cli

    corpus, store = _corpus(work)
    encode_argv = ["input", "--corpus", str(corpus), "--fields", "title", "text", "encoder", "--encoder", str(model)]
    encode_argv += ["--batch-size", "8", "--max-length", str(MAX_LENGTH), "--representation", "dense", "multi"]
    encode_argv += ["impact", "output", "--embeddings", str(work / "enc"), "--no-progress"]
    assert encode_cli.main(encode_argv) == 0
    assert index_cli.main(["lucene", "--input", str(work / "enc" / "impact"), "--index", str(work / "impact")]) == 0
    command = [sys.executable, "-m", "pyserini_diffretriever.run", "pyserini.index.lucene", "--collection"]
    command += ["JsonCollection", "--input", str(store), "--index", str(work / "store"), "--generator"]
    command += ["DefaultLuceneDocumentGenerator", "--threads", "1", "--storeRaw"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "enc"


def _cli_runs(work: Path, enc: Path, topics: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    from pyserini_diffretriever.cli import search as search_cli

    runs = {}
    for name, index_args in SEARCHES.items():
        out = work / "runs" / f"{name}.trec"
        argv = [a.format(enc=enc, work=work) for a in index_args]
        argv += ["--topics", str(topics), "--output", str(out), "--hits", str(HITS)]
        assert search_cli.main(argv) == 0
        runs[name] = read_run(out)
    return runs


def _write_config(work: Path, enc: Path) -> Path:
    config = {
        "api_keys": [API_KEY],
        "indexes": {
            "docs": {"path": str(work / "store"), "index_type": "tf"},
            "dense": {"path": str(enc / "dense"), "index_type": "diffretriever_dense", "base_index": "docs"},
            "multi": {"path": str(enc / "multi"), "index_type": "diffretriever_multi"},
            "impact": {"path": str(work / "impact"), "index_type": "diffretriever_impact", "base_index": "docs"},
            "hybrid": {
                "path": str(work / "impact"),
                "with": str(enc / "multi"),
                "index_type": "diffretriever_hybrid",
                "fusion": "minmax",
                "depth": 20,
            },
            "hybrid_pyserini": {
                "path": str(enc / "dense"),
                "with": str(work / "impact"),
                "index_type": "diffretriever_hybrid",
                "fusion": "pyserini",
                "depth": 20,
            },
        },
    }
    path = work / "server.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@pytest.fixture(scope="session")
def cranfield_demo(tmp_path_factory, tiny_dream_dir) -> Demo:
    work = tmp_path_factory.mktemp("serving")
    enc = _build(work, tiny_dream_dir)
    topics = {}
    for line in (CRANFIELD / "topics.tsv").read_text().splitlines()[:N_TOPICS]:
        qid, text = line.split("\t", 1)
        topics[qid] = text
    topics_file = work / "topics.tsv"
    topics_file.write_text("".join(f"{q}\t{t}\n" for q, t in topics.items()))
    return Demo(work, topics, _cli_runs(work, enc, topics_file), _write_config(work, enc))


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, key: str | None = API_KEY, **params) -> requests.Response:
        headers = {"X-API-Key": key} if key is not None else {}
        return requests.get(self.url + path, params=params, headers=headers, timeout=60)


def start_server(config: Path, log: Path, *extra: str, timeout: float = 120) -> Server:
    """``python -m pyserini_diffretriever.server rest`` on a free loopback port, returned once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "pyserini_diffretriever.server", "rest", "--config", str(config)]
    command += ["--port", str(port), "--no-access-log", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(server.url + "/", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            time.sleep(0.3)
    stop_server(server)
    raise AssertionError(f"server not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def rest_server(cranfield_demo) -> Iterator[Server]:
    log = cranfield_demo.work / "server.log"
    limits = ["--max-query-chars", str(MAX_QUERY_CHARS), "--max-hits", str(MAX_HITS)]
    server = start_server(cranfield_demo.config, log, *limits, "--search-cache-size", "0")  # every request searches
    try:
        yield server
    finally:
        stop_server(server)
