"""B10: encoding throughput by batching order -- corpus order, length-bucketed windows, token budget.

The real encode pipeline (:func:`pyserini_diffretriever.pipeline.encode_corpus`: read, tokenize ahead, encode,
write behind, commit) encodes two collections into a dense + multi-vector folder three ways:

``corpus``    ``--sort-window 1``: batches of 32 in file order (what ``pyserini.encode`` does);
``bucketed``  ``--sort-window 32``: sorted by token length within windows of 32 batches (the default);
``budget``    bucketed, plus ``--max-tokens`` = 32 x the mean row length, ``--batch-size 128`` as a cap: the
              same tokens per pass on average, batch sizes following lengths.

Collections: Cranfield abstracts (shipped; CISI-like lengths) and an MS MARCO-like synthetic collection (words per
passage log-normal, mean ~60, long tail to 250; Cranfield's vocabulary). The network is B1's benchmark trunk
with a head proportioned like Dream-7B's (``_common.head_proportioned``), so the cost is the trunk, as at 7B;
the 64-wide test fixture's cost is its K-slot vocabulary head, which does not depend on length.

Reported per case: computed / real tokens (from the manifests' ``tokens`` record), documents per second (wall
clock of the whole encode, median of the repeats; the 1-minute load average before and after each run is recorded, since
other work on the machine distorts the ratio), peak RSS of the process during the encode. The timed subsets
are small (a CPU encodes ~1 document/s of this network), smaller than one 32-batch window; the computed / real
token ratios of whole collections (all 1,400 Cranfield records, 8,192 MS MARCO-like passages) come from the
pipeline's own batch plan (``plan_batches`` over the same windows), which the timed runs check against their
manifests.

Usage: ``python benchmarks/b10_encode.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BATCH = 32
WINDOW = 32
MODES = ("corpus", "bucketed", "budget")


def cranfield_corpus(path: Path, n: int) -> Path:
    """The first ``n`` shipped Cranfield records (``title`` + ``text``)."""
    lines = (C.REPO / "examples" / "cranfield" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def msmarco_like_corpus(path: Path, n: int, seed: int = 11) -> Path:
    """``n`` passages whose word counts follow MS MARCO's shape: log-normal, mean ~60 words, tail to 250."""
    rng = random.Random(seed)
    words = C.cranfield_words()
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            count = min(250, max(8, int(rng.lognormvariate(3.95, 0.55))))
            text = " ".join(rng.choice(words) for _ in range(count))
            handle.write(json.dumps({"_id": f"p{i}", "title": "", "text": text}) + "\n")
    return path


def word_stats(path: Path) -> dict:
    counts = sorted(len(json.loads(line)["text"].split()) for line in path.read_text().splitlines())
    return {
        "documents": len(counts),
        "mean_words": sum(counts) / len(counts),
        "p95_words": counts[int(0.95 * (len(counts) - 1))],
        "max_words": counts[-1],
    }


def planned_tokens(lengths: list[int], mode: str, budget: int) -> dict:
    """Real and computed tokens of the pipeline's batch plan over a whole collection (no model run).

    The same windows (corpus order, ``batch x sort_window`` records) and the same
    :func:`~pyserini_diffretriever.representation.bucketing.plan_batches` the pipeline uses: the timed runs check
    that their manifests' tokens equal this plan for their subset.
    """
    from pyserini_diffretriever.representation.bucketing import TokenCount, batch_cost, plan_batches

    cap, window, max_tokens = {
        "corpus": (BATCH, 1, None),
        "bucketed": (BATCH, WINDOW, None),
        "budget": (4 * BATCH, WINDOW // 4, budget),
    }[mode]
    total = TokenCount()
    for start in range(0, len(lengths), cap * window):
        part = lengths[start : start + cap * window]
        for batch in plan_batches(part, cap, max_tokens):
            total += batch_cost([part[i] for i in batch])
    return {"real": total.real, "computed": total.computed, "computed_over_real": total.ratio}


def encode_case(encoder, corpus: Path, out: Path, mode: str, budget: int) -> dict:
    from pyserini_diffretriever.corpus import JsonlCorpusReader
    from pyserini_diffretriever.pipeline import encode_corpus
    from pyserini_diffretriever.writers import read_manifest

    options = {
        "corpus": {"batch_size": BATCH, "sort_window": 1},
        "bucketed": {"batch_size": BATCH, "sort_window": WINDOW},
        "budget": {"batch_size": 4 * BATCH, "sort_window": WINDOW // 4, "max_tokens": budget},
    }[mode]
    shutil.rmtree(out, ignore_errors=True)
    reader = JsonlCorpusReader(corpus, ["title", "text"])
    load_before = os.getloadavg()[0]
    with C.PeakRSS() as rss:
        start, cpu_start = time.perf_counter(), time.process_time()
        encode_corpus(encoder, reader, out, ("dense", "multi"), progress=False, **options)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = read_manifest(out / "dense")["tokens"]
    return {
        "mode": mode,
        "options": options,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "documents_per_s": reader.count() / seconds,
        "tokens": tokens,
        "computed_over_real": tokens["computed"] / tokens["real"],
        "peak_rss_bytes": rss.peak,
        "rss_over_baseline_bytes": rss.peak - rss.baseline,
    }


def run(quick: bool, workdir: Path) -> dict:
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    C.set_threads(2)
    diffusion, _ = C.load_pair(workdir / "models")
    vocab = C.proportional_vocab()
    proportioned = C.head_proportioned(diffusion, vocab)
    encoder = DiffRetrieverDocumentEncoder(proportioned, representation="dense", max_length=512, batch_size=BATCH)
    n = 64 if quick else 384
    repeats = 1 if quick else 2
    collections = {
        "cranfield": cranfield_corpus(workdir / "cranfield.jsonl", n),
        "msmarco_like": msmarco_like_corpus(workdir / "msmarco_like.jsonl", n),
    }
    whole = {  # the token plans cover whole collections: windows of 32 batches need more than the timed subset
        "cranfield": cranfield_corpus(workdir / "cranfield-all.jsonl", 10**6),
        "msmarco_like": msmarco_like_corpus(workdir / "msmarco_like-all.jsonl", 8192),
    }
    result = {
        "benchmark": "b10_encode",
        "quick": quick,
        "network": C.NET,
        "proportional_vocab": vocab,
        "batch_size": BATCH,
        "sort_window": WINDOW,
        "k_p": encoder.k,
        "repeats": repeats,
        "collections": {},
    }
    encoder.encode_all(["warm up the threads"] * 4, representations=("dense", "multi"))
    for name, corpus in collections.items():
        texts = [json.loads(line) for line in corpus.read_text().splitlines()]
        lengths = encoder.tokenize([t["text"] for t in texts], [t["title"] for t in texts]).lengths
        budget = BATCH * round(sum(lengths) / len(lengths))
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for repeat in range(repeats):  # round robin, order reversed every other repeat: a load that rises or
            for mode in MODES if repeat % 2 == 0 else MODES[::-1]:  # falls during the run favours no mode
                runs[mode].append(encode_case(encoder, corpus, workdir / f"{name}-{mode}", mode, budget))
                print(f"  {name} {mode}: {runs[mode][-1]['documents_per_s']:.1f} docs/s", flush=True)
        cases = {}
        for mode, samples in runs.items():
            best = dict(samples[0])
            best["documents_per_s"] = C.median([s["documents_per_s"] for s in samples])
            best["documents_per_s_samples"] = [s["documents_per_s"] for s in samples]
            best["load_average_1min_samples"] = [s["load_average_1min"] for s in samples]
            best["peak_rss_bytes"] = max(s["peak_rss_bytes"] for s in samples)
            cases[mode] = best
        for mode, case in cases.items():  # the timed runs computed exactly what the plan says
            if planned_tokens(lengths, mode, budget)["computed"] != case["tokens"]["computed"]:
                raise RuntimeError(f"{name} {mode}: manifest tokens differ from the pipeline's batch plan")
        records = [json.loads(line) for line in whole[name].read_text().splitlines()]
        all_lengths = encoder.tokenize([r["text"] for r in records], [r["title"] for r in records]).lengths
        all_budget = BATCH * round(sum(all_lengths) / len(all_lengths))
        result["collections"][name] = {
            "whole_collection": {
                "words": word_stats(whole[name]),
                "row_tokens": {
                    "mean": sum(all_lengths) / len(all_lengths),
                    "p95": sorted(all_lengths)[int(0.95 * (len(all_lengths) - 1))],
                    "max": max(all_lengths),
                },
                "max_tokens": all_budget,
                "planned_tokens": {mode: planned_tokens(all_lengths, mode, all_budget) for mode in MODES},
            },
            "words": word_stats(corpus),
            "row_tokens": {"mean": sum(lengths) / len(lengths), "max": max(lengths), "min": min(lengths)},
            "max_tokens": budget,
            "cases": cases,
        }
    cran, marco = result["collections"]["cranfield"]["cases"], result["collections"]["msmarco_like"]["cases"]
    plans = [result["collections"][name]["whole_collection"]["planned_tokens"] for name in collections]
    result["summary"] = {
        "encode_computed_over_real_tokens": max(plan["bucketed"]["computed_over_real"] for plan in plans),
        "encode_corpus_order_computed_over_real_tokens": max(plan["corpus"]["computed_over_real"] for plan in plans),
        "encode_budget_computed_over_real_tokens": max(plan["budget"]["computed_over_real"] for plan in plans),
        "encode_timed_subset_computed_over_real_tokens": max(
            cran["bucketed"]["computed_over_real"], marco["bucketed"]["computed_over_real"]
        ),
        "encode_bucketed_over_corpus_order": min(
            cases_["bucketed"]["documents_per_s"] / cases_["corpus"]["documents_per_s"] for cases_ in (cran, marco)
        ),
        "encode_budget_over_corpus_order": min(
            cases_["budget"]["documents_per_s"] / cases_["corpus"]["documents_per_s"] for cases_ in (cran, marco)
        ),
        "encode_bucketed_peak_rss_over_corpus_order": max(
            cases_["bucketed"]["peak_rss_bytes"] / cases_["corpus"]["peak_rss_bytes"] for cases_ in (cran, marco)
        ),
    }
    result["machine"] = C.machine()
    return result


def main(argv: list[str] | None = None) -> int:
    return C.bench_main(run, __doc__, "pdr-b10-", argv)


if __name__ == "__main__":
    sys.exit(main())
