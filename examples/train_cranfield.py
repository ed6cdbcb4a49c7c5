"""Fine-tune on Cranfield, then encode, index, search and evaluate before and after (the training mechanics end to end).

Query split (documented, deterministic): Cranfield queries **1-150 train** and queries **151-225 evaluate**; the
evaluation uses only the judgements of queries 151-225 (``qrels-eval.txt``), so no evaluation query is seen in
training. Training groups are written in Tevatron's JSONL format: per training query, every document judged
relevant (gain >= 1) is a positive and 30 unjudged documents drawn with a fixed seed are its negative pool.

Stages (each a command a user would run, printed as it goes):

1. ``python -m pyserini_diffretriever.train`` -> an adapter folder (released layout);
2. for the base model and for base + adapter: ``encode`` (multi-vector and impact from one pass), ``index lucene``
   (impact), ``search`` (multi, impact, and the paper's min-max hybrid) on the evaluation queries;
3. ``trec_eval`` (through Pyserini) -> one table, before vs after.

Offline, the default model is the tiny Dream-layout checkpoint with RANDOM weights: the table shows that the
pipeline runs and that training changes the rankings, **not** what fine-tuning does for a real model (a few dozen
CPU steps on a 64-wide random network). ``--model <Dream/LLaDA dir or hub id> --device cuda`` runs the same steps on
a real backbone. Not part of ``make demo``.

Usage: ``python examples/train_cranfield.py [--model DIR] [--workdir build/train-cranfield] [--epochs 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import CRANFIELD, Demo  # noqa: E402  (the demo's command runner)

TRAIN_QIDS = range(1, 151)
EVAL_QIDS = range(151, 226)
NEGATIVE_POOL = 30
METRICS = (("ndcg_cut_10", "nDCG@10"), ("map", "MAP"), ("recall_100", "R@100"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Dream/LLaDA dir or hub id (default: tiny random fixture)")
    parser.add_argument("--workdir", default="build/train-cranfield", help="where data, adapter, indexes and runs go")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=4, help="training queries per step")
    parser.add_argument("--n-negatives", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="1e-3 for the tiny fixture; paper: 1e-4")
    parser.add_argument("--max-length", type=int, default=128, help="prompt + text tokens per passage")
    parser.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    return parser.parse_args(argv)


def write_split(work: Path) -> tuple[Path, Path, Path]:
    """Tevatron training JSONL (queries 1-150), evaluation topics and qrels (queries 151-225)."""
    docs = {}
    with (CRANFIELD / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["text"].strip():
                docs[doc["id"]] = doc
    topics = dict(line.rstrip("\n").split("\t", 1) for line in (CRANFIELD / "topics.tsv").open(encoding="utf-8"))
    qrels = [line.split() for line in (CRANFIELD / "qrels.txt").read_text(encoding="utf-8").splitlines()]
    judged: dict[str, dict[str, int]] = {}
    for qid, _, docid, gain in qrels:
        judged.setdefault(qid, {})[docid] = int(gain)
    rng = random.Random(0)
    train = work / "train.jsonl"
    with train.open("w", encoding="utf-8") as out:
        for qid in map(str, TRAIN_QIDS):
            positives = [d for d, gain in sorted(judged.get(qid, {}).items()) if gain >= 1 and d in docs]
            if not positives:
                continue
            unjudged = sorted(set(docs) - set(judged.get(qid, {})))
            negatives = rng.sample(unjudged, NEGATIVE_POOL)

            def passage(docid: str) -> dict:
                return {"docid": docid, "title": docs[docid]["title"], "text": docs[docid]["text"]}

            record = {
                "query_id": qid,
                "query": topics[qid],
                "positive_passages": [passage(d) for d in positives],
                "negative_passages": [passage(d) for d in negatives],
            }
            out.write(json.dumps(record) + "\n")
    eval_topics, eval_qrels = work / "topics-eval.tsv", work / "qrels-eval.txt"
    eval_ids = set(map(str, EVAL_QIDS))
    eval_topics.write_text("".join(f"{q}\t{topics[q]}\n" for q in map(str, EVAL_QIDS)), encoding="utf-8")
    eval_qrels.write_text("".join(" ".join(row) + "\n" for row in qrels if row[0] in eval_ids), encoding="utf-8")
    return train, eval_topics, eval_qrels


def evaluate(demo: Demo, run: Path, qrels: Path, name: str) -> dict[str, float]:
    out = demo.run(
        f"eval {name}",
        *("-m", "pyserini_diffretriever.run", "pyserini.eval.trec_eval", "-c"),
        *("-m", "ndcg_cut.10", "-m", "map", "-m", "recall.100", qrels, run),
    )
    values = {parts[0]: float(parts[2]) for parts in map(str.split, out.splitlines()) if len(parts) == 3}
    return {metric: values[metric] for metric, _ in METRICS}


def encode_index_search(demo: Demo, args, model: str, adapter: Path | None, tag: str, topics: Path) -> dict[str, Path]:
    """Encode the corpus (multi + impact), index the impacts, search the evaluation topics; the runs by name."""
    work = demo.workdir / tag
    adapter_args = ["--adapter", adapter] if adapter is not None else []
    demo.run(
        f"encode {tag}",
        *("-m", "pyserini_diffretriever.encode", "input", "--corpus", CRANFIELD / "corpus.jsonl"),
        *("--fields", "title", "text", "--on-error", "skip"),
        *("encoder", "--encoder", model, *adapter_args, "--representation", "multi", "impact"),
        *("--max-length", str(args.max_length), "--device", args.device),
        *("output", "--embeddings", work / "enc", "--allow-empty", "--no-progress"),
    )
    demo.run(
        f"index {tag}",
        *("-m", "pyserini_diffretriever.index", "lucene", "--input", work / "enc" / "impact"),
        *("--index", work / "impact-index", "--threads", str(args.threads)),
    )
    searches = {
        "multi": ["--index", work / "enc" / "multi"],
        "impact": ["--index", work / "impact-index"],
        "hybrid": ["--multi-index", work / "enc" / "multi", "--impact-index", work / "impact-index"],
    }
    runs = {}
    for name, index_args in searches.items():
        runs[name] = work / f"{name}.trec"
        fusion = ["--fusion", "minmax"] if name == "hybrid" else []
        demo.run(
            f"search {tag} {name}",
            *("-m", "pyserini_diffretriever.search", *index_args, *fusion, "--topics", topics),
            *("--hits", "1000", "--device", args.device, "--threads", str(args.threads), "--output", runs[name]),
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    work = Path(args.workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    demo = Demo(workdir=work, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    model = args.model
    if model is None:
        model = str(work / "tiny-dream")
        demo.run("fixture", "-m", "pyserini_diffretriever.fixtures", "tiny-dream", model)
        print("\nMODEL: tiny Dream-layout checkpoint with RANDOM weights -- the mechanics are real, the scores are not")
    train, topics, qrels = write_split(work)
    adapter = work / "adapter"
    demo.run(
        "train",
        *("-m", "pyserini_diffretriever.train", "--model", model, "--train-data", train, "--output-dir", adapter),
        *("--epochs", str(args.epochs), "--per-device-batch-size", str(args.batch_size)),
        *("--n-negatives", str(args.n_negatives), "--learning-rate", str(args.learning_rate)),
        *("--max-length", str(args.max_length), "--logging-steps", "5"),
        *(["--device", "cpu"] if args.device == "cpu" else []),
    )
    table = {}
    for tag, adapter_dir in (("before", None), ("after", adapter)):
        runs = encode_index_search(demo, args, model, adapter_dir, tag, topics)
        table[tag] = {name: evaluate(demo, run, qrels, f"{tag} {name}") for name, run in runs.items()}
    print(f"\nCranfield queries 151-225 ({len(EVAL_QIDS)}), trained on queries 1-150; model {model}")
    print(f"{'run':<10}" + "".join(f"{label + ' before':>16}{label + ' after':>15}" for _, label in METRICS))
    for name in table["before"]:
        cells = "".join(f"{table['before'][name][m]:>16.4f}{table['after'][name][m]:>15.4f}" for m, _ in METRICS)
        print(f"{name:<10}{cells}")
    (work / "results.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults in {work / 'results.json'}; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
