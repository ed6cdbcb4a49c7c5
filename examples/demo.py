"""The end-to-end demo (``make demo``): Cranfield through BM25 and every DiffRetriever mode, one table.

Every stage runs the same command-line tools a user would run (printed as it goes), so this script is also
the recipe: Anserini BM25 through Pyserini; DiffRetriever encoding (dense, multi-vector and impact from ONE
forward pass per batch); a Lucene impact index; dense (FAISS), multi-vector (MaxSim), impact (Lucene) and
hybrid search; fusion of DiffRetriever with the BM25 run (``python -m pyserini.fusion``); and
``trec_eval`` (through Pyserini) on every run.

Offline, the default model is a tiny checkpoint with RANDOM weights in Dream's real on-disk layout (real
tokenizer, real config keys and tensor names): it exercises every step, but its effectiveness numbers mean
nothing. ``make demo MODEL=<hub id or local dir>`` runs a real Dream/LLaDA checkpoint through the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRANFIELD = REPO / "examples" / "cranfield"
METRICS = (("ndcg_cut_10", "nDCG@10"), ("map", "MAP"), ("recall_100", "R@100"))


@dataclass
class Stage:
    name: str
    seconds: float


@dataclass
class Demo:
    workdir: Path
    python: str = sys.executable
    stages: list[Stage] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    def run(self, stage: str, *args: str | os.PathLike) -> str:
        """Run one documented command, print it, time it, fail loudly with its output."""
        cmd = [self.python, *map(str, args)]
        shown = " ".join(shlex.quote(a) for a in ["python", *cmd[1:]])
        print(f"\n[{stage}] $ {shown}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"demo stage {stage!r} failed with exit code {proc.returncode}")
        self.stages.append(Stage(stage, elapsed))
        print(f"[{stage}] done in {elapsed:.1f} s", flush=True)
        return proc.stdout


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Dream/LLaDA hub id or local dir (default: tiny random fixture)")
    parser.add_argument("--workdir", default=str(REPO / "build" / "demo"), help="where indexes and runs go")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256, help="prompt + text tokens per passage")
    parser.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    parser.add_argument("--keep", action="store_true", help="reuse an existing workdir instead of starting afresh")
    return parser.parse_args(argv)


def trec_eval(demo: Demo, run: Path, name: str) -> dict[str, float]:
    out = demo.run(
        f"eval {name}",
        "-m",
        "pyserini_diffretriever.run",
        "pyserini.eval.trec_eval",
        "-c",
        "-m",
        "ndcg_cut.10",
        "-m",
        "map",
        "-m",
        "recall.100",
        CRANFIELD / "qrels.txt",
        run,
    )
    values: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "all":
            values[parts[0]] = float(parts[2])
    missing = [m for m, _ in METRICS if m not in values]
    if missing:
        raise SystemExit(f"trec_eval output for {run} lacks {missing}:\n{out}")
    return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    work = Path(args.workdir)
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    demo = Demo(workdir=work, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})

    random_weights = args.model is None
    model = args.model
    if random_weights:
        model = str(work / "tiny-dream")
        demo.run("fixture", "-m", "pyserini_diffretriever.fixtures", "tiny-dream", model)
    banner = (
        "MODEL: tiny Dream-layout checkpoint with RANDOM weights (offline stand-in) -- the pipeline is real, "
        "the DiffRetriever scores below are NOT meaningful; run `make demo MODEL=<hub id or dir>` for a real model"
        if random_weights
        else f"MODEL: {model}"
    )
    print("\n" + banner, flush=True)

    # 1. BM25 baseline with Anserini (Pyserini's own CLIs; `run` only supplies Java >= 21).
    bm25_docs = work / "bm25-collection"
    bm25_docs.mkdir(exist_ok=True)
    with open(CRANFIELD / "corpus.jsonl", encoding="utf-8") as src, open(bm25_docs / "docs.jsonl", "w") as dst:
        for line in src:
            doc = json.loads(line)
            dst.write(json.dumps({"id": doc["id"], "contents": f"{doc['title']}\n{doc['text']}".strip()}) + "\n")
    demo.run(
        "bm25 index",
        "-m",
        "pyserini_diffretriever.run",
        "pyserini.index.lucene",
        "--collection",
        "JsonCollection",
        "--input",
        bm25_docs,
        "--index",
        work / "indexes" / "bm25",
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        str(args.threads),
        "--storeDocvectors",
    )
    demo.run(
        "bm25 search",
        "-m",
        "pyserini_diffretriever.run",
        "pyserini.search.lucene",
        "--index",
        work / "indexes" / "bm25",
        "--topics",
        CRANFIELD / "topics.tsv",
        "--bm25",
        "--hits",
        "1000",
        "--threads",
        str(args.threads),
        "--batch-size",
        "64",
        "--output",
        runs / "bm25.trec",
    )

    # 2. DiffRetriever: one encoding pass gives dense, multi-vector and impact representations.
    enc = work / "encodings"
    demo.run(
        "encode corpus",
        "-m",
        "pyserini_diffretriever.encode",
        # Cranfield has two empty documents (471, 995): skip them, counted and listed in skipped-records.jsonl.
        "input",
        "--corpus",
        CRANFIELD / "corpus.jsonl",
        "--fields",
        "title",
        "text",
        "--on-error",
        "skip",
        "encoder",
        "--encoder",
        model,
        "--representation",
        "dense",
        "multi",
        "impact",
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "output",
        "--embeddings",
        enc,
        "--allow-empty",
        "--no-progress",
    )
    skipped = json.loads((enc / "dense" / "manifest.json").read_text()).get("num_skipped_records", 0)
    if skipped:
        print(
            f"[encode corpus] skipped {skipped} record(s) with no text, listed in {enc / 'dense' / 'skipped-records.jsonl'}"
        )
    demo.run(
        "impact index",
        "-m",
        "pyserini_diffretriever.index",
        "lucene",
        "--input",
        enc / "impact",
        "--index",
        work / "indexes" / "impact",
        "--threads",
        str(args.threads),
    )

    # 3. Search every representation, and the paper's hybrid (min-max, 0.5/0.5 over the union).
    common = [
        "--topics",
        CRANFIELD / "topics.tsv",
        "--hits",
        "1000",
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--batch-size",
        "32",
        "--threads",
        str(args.threads),
    ]
    searches = {
        "dense": ["--index", enc / "dense"],
        "multi": ["--index", enc / "multi"],
        "impact": ["--index", work / "indexes" / "impact"],
        "hybrid-dense+impact": [
            "--dense-index",
            enc / "dense",
            "--impact-index",
            work / "indexes" / "impact",
            "--fusion",
            "minmax",
        ],
        "hybrid-multi+impact": [
            "--multi-index",
            enc / "multi",
            "--impact-index",
            work / "indexes" / "impact",
            "--fusion",
            "minmax",
        ],
    }
    for name, index_args in searches.items():
        demo.run(
            f"search {name}",
            "-m",
            "pyserini_diffretriever.search",
            *index_args,
            *common,
            "--output",
            runs / f"{name}.trec",
            "--run-tag",
            name,
        )

    # 4. Fuse DiffRetriever with the Anserini BM25 run, exactly as with any other Pyserini run.
    demo.run(
        "fuse bm25+hybrid",
        "-m",
        "pyserini.fusion",
        "--runs",
        runs / "bm25.trec",
        runs / "hybrid-multi+impact.trec",
        "--output",
        runs / "bm25+hybrid-multi+impact.trec",
        "--method",
        "rrf",
        "--k",
        "1000",
        "--depth",
        "1000",
    )

    # 5. Evaluate everything with trec_eval.
    names = ["bm25", *searches, "bm25+hybrid-multi+impact"]
    scores = {name: trec_eval(demo, runs / f"{name}.trec", name) for name in names}
    stage_time = {s.name: s.seconds for s in demo.stages}

    print("\n" + banner)
    header = f"{'run':<26}" + "".join(f"{label:>9}" for _, label in METRICS) + f"{'search s':>10}"
    print(header)
    print("-" * len(header))
    for name in names:
        search_s = stage_time.get(
            f"search {name}", stage_time.get("bm25 search" if name == "bm25" else "fuse bm25+hybrid", 0.0)
        )
        print(f"{name:<26}" + "".join(f"{scores[name][m]:>9.4f}" for m, _ in METRICS) + f"{search_s:>10.1f}")
    print("\nTime per stage (s):")
    for stage in demo.stages:
        if not stage.name.startswith("eval "):
            print(f"  {stage.name:<28}{stage.seconds:8.1f}")
    print(f"  {'evaluation (all runs)':<28}{sum(s.seconds for s in demo.stages if s.name.startswith('eval ')):8.1f}")
    total = time.perf_counter() - started
    print(f"  {'total':<28}{total:8.1f}")
    (work / "results.json").write_text(
        json.dumps(
            {
                "model": model,
                "random_weights": random_weights,
                "scores": scores,
                "stages": stage_time,
                "total_seconds": total,
            },
            indent=2,
        )
    )
    print(f"\nRuns in {runs}; table data in {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
