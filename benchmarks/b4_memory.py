"""B4: peak memory while encoding 10k vs 100k documents (streaming: memory must not grow with the corpus).

Each corpus size runs in a fresh child process that builds a ``DiffRetrieverDocumentEncoder`` over the tiny
Dream fixture (hidden 64, 2 layers, the real 152,064-token vocabulary), warms it up, records its resident
memory, and then encodes the whole synthetic corpus (short Cranfield-word passages) with the real
:func:`pyserini_diffretriever.pipeline.encode_corpus` into dense (FAISS), multi-vector and impact folders at
once. Peak = max(RSS sampled every 2 ms, ``ru_maxrss``) of the child during ``encode_corpus``; the JVM,
torch, the model and the tokenizer are all inside it. ``growth`` = peak - RSS just before encoding.

Usage: ``python benchmarks/b4_memory.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

K = 1
BATCH = 128
WORDS_PER_DOC = 12
REPRESENTATIONS = ("dense", "multi", "impact")


def write_corpus(path: Path, n: int, seed: int = 3) -> Path:
    words = C.cranfield_words()
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            start = rng.randrange(0, len(words) - WORDS_PER_DOC)
            handle.write(
                json.dumps({"id": f"doc{i}", "contents": " ".join(words[start : start + WORDS_PER_DOC])}) + "\n"
            )
    return path


def child(model_dir: Path, corpus: Path, output: Path) -> dict:
    """Runs in the child process: encode ``corpus`` and report memory and time."""
    C.set_threads(2)
    from pyserini_diffretriever.corpus import JsonlCorpusReader
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder
    from pyserini_diffretriever.pipeline import encode_corpus

    encoder = DiffRetrieverDocumentEncoder(str(model_dir), k=K, max_length=96, batch_size=BATCH)
    encoder.encode_all(["warm up the encoder and the content-word filter"] * 4)
    reader = JsonlCorpusReader(corpus, ["text"])
    with C.PeakRSS() as memory:
        start = time.perf_counter()
        encode_corpus(
            encoder, reader, output, REPRESENTATIONS, batch_size=BATCH, overwrite=True, progress=False, allow_empty=True
        )  # random weights: some passages get no positive impact
        seconds = time.perf_counter() - start
    return {
        "num_docs": reader.count(),
        "peak_rss_bytes": memory.peak,
        "baseline_rss_bytes": memory.baseline,
        "growth_bytes": memory.peak - memory.baseline,
        "seconds": seconds,
        "docs_per_second": reader.count() / seconds,
    }


def run(quick: bool, workdir: Path) -> dict:
    from pyserini_diffretriever.fixtures import write_tiny_dream

    sizes = (2_000, 20_000) if quick else (10_000, 100_000)
    model_dir = workdir / "tiny-dream"
    if not (model_dir / "model.safetensors").exists():
        write_tiny_dream(model_dir, overwrite=True)
    env = dict(os.environ, PYTHONPATH=str(C.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    points = []
    for n in sizes:
        corpus = write_corpus(workdir / f"corpus-{n}.jsonl", n)
        output = workdir / f"encoded-{n}"
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(model_dir), str(corpus), str(output)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"b4 child for {n} documents failed: {done.stderr[-3000:]}")
        point = json.loads(done.stdout.strip().splitlines()[-1])
        points.append(point)
        print(
            f"  {n} docs: peak {point['peak_rss_bytes'] / 2**20:.0f} MiB, growth "
            f"{point['growth_bytes'] / 2**20:.1f} MiB, {point['docs_per_second']:.0f} docs/s",
            flush=True,
        )
    return {
        "benchmark": "b4_memory",
        "quick": quick,
        "model": "tiny Dream fixture (hidden 64, 2 layers, vocab 152064)",
        "k": K,
        "batch_size": BATCH,
        "words_per_doc": WORDS_PER_DOC,
        "representations": list(REPRESENTATIONS),
        "points": points,
        "machine": C.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.out is None:
        parser.error("--out is required")
    with tempfile.TemporaryDirectory(prefix="pdr-b4-") as tmp:
        C.write_json(args.out, run(args.quick, args.workdir or Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
