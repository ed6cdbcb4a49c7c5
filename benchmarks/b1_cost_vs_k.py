"""B1: encode time per text vs K (1, 2, 4, 8, 16), diffusion (DiffRetriever) vs autoregressive (PromptReps).

Both encoders are :class:`pyserini_diffretriever.encoders.DiffRetrieverModel` s over networks with identical
weights (see :mod:`_common`), fed the same passage texts truncated to exactly 32 / 128 / 512 tokens, the same
"few" prompt, the same batch size and float32 on the same threads. Every (family, K) case is timed in
round-robin repeats after a warm-up; the figure is the median seconds per text.

Series:

``latency``      batch size 1, real vocabulary (152,064), all three representations (dense, multi, impact):
                 the per-text latency the paper's latency figure reports.
``throughput``   batch size 8 at 128 tokens: corpus encoding.
``proportional`` batch size 1 at 128 tokens, head-proportioned network (Dream-7B's head/trunk cost ratio;
                 dense + multi only), i.e. what the ratio looks like when the trunk dominates as in a 7B model.

Also recorded: forward passes per text (counted), and the trunk-only time (``hidden_states`` on the batch the
encoder builds) for K=1 and K=16, which separates the cost of K extra positions from the K-row LM head.

Usage: ``python benchmarks/b1_cost_vs_k.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

KS = (1, 2, 4, 8, 16)
FAMILIES = ("diffusion", "autoregressive")
ALL = ("dense", "multi", "impact")


def prompt_tokens(model, k: int = 1) -> int:
    builder = model.input_builder("passage", k, "few", 4096)
    return len(builder.prefix_ids) + len(builder.suffix_ids)


def count_forward_passes(model, texts, k, max_length, representations) -> int:
    """Backbone forward passes while encoding ``texts`` one per batch (instance-level wrappers, then removed)."""
    net = model.backbone.model
    calls = []
    names = ["causal_forward"] if model.autoregressive else ["hidden_states"]
    originals = {name: getattr(net, name) for name in names}
    for name, original in originals.items():
        setattr(net, name, lambda *a, _o=original, **kw: calls.append(1) or _o(*a, **kw))
    try:
        model.encode_side(
            texts, "passage", k=k, prompt="few", max_length=max_length, batch_size=1, representations=representations
        )
    finally:
        for name in names:
            delattr(net, name)
    return len(calls)


def time_series(name, models, lengths, ks, *, batch_size, n_texts, repeats, representations, vocab) -> dict:
    diffusion = models["diffusion"]
    prompt = prompt_tokens(diffusion)
    if prompt != prompt_tokens(models["autoregressive"]):
        raise RuntimeError("diffusion and autoregressive prompts differ in length")
    points = []
    for length in lengths:
        texts = C.texts_with_tokens(diffusion.tokenizer, length, n_texts, seed=length)
        max_length = prompt + length
        cases = {}
        for k in ks:
            for family in FAMILIES:
                model = models[family]
                cases[(family, k)] = lambda m=model, kk=k, texts=texts, max_length=max_length: m.encode_side(
                    texts,
                    "passage",
                    k=kk,
                    prompt="few",
                    max_length=max_length,
                    batch_size=batch_size,
                    representations=representations,
                )
        times = C.interleaved(cases, repeats)
        for (family, k), values in times.items():
            per_text = [v / n_texts for v in values]
            points.append(
                {
                    "length": length,
                    "family": family,
                    "k": k,
                    "seconds_per_text": C.median(per_text),
                    "samples": per_text,
                }
            )
        print(
            f"  {name} length {length}: "
            + ", ".join(f"{f[0]}K{k}={C.median(times[(f, k)]) / n_texts * 1000:.0f}ms" for k in ks for f in FAMILIES),
            flush=True,
        )
    return {
        "name": name,
        "batch_size": batch_size,
        "n_texts": n_texts,
        "repeats": repeats,
        "representations": list(representations),
        "vocab_size": vocab,
        "prompt_tokens": prompt,
        "points": points,
    }


def trunk_only(model, length: int, repeats: int) -> dict:
    """``hidden_states`` on the exact K=1 and K=16 batches (one text) and the K-row head alone."""
    import torch

    text = C.texts_with_tokens(model.tokenizer, length, 1, seed=length)
    max_length = prompt_tokens(model) + length
    net = model.backbone.model
    batches = {k: model.input_builder("passage", k, "few", max_length).build(text) for k in (1, 16)}
    rows = {k: torch.randn(k, model.hidden_size) for k in (1, 16)}

    def forward(k):
        with torch.inference_mode():
            net.hidden_states(batches[k].input_ids, batches[k].attention_mask)

    def head(k):
        with torch.inference_mode():
            net.vocab_logits(rows[k])

    times = C.interleaved(
        {
            "trunk_k1": lambda: forward(1),
            "trunk_k16": lambda: forward(16),
            "head_k1": lambda: head(1),
            "head_k16": lambda: head(16),
        },
        repeats,
    )
    return {name: C.median(values) for name, values in times.items()} | {
        "tokens_k1": int(batches[1].input_ids.shape[1]),
        "tokens_k16": int(batches[16].input_ids.shape[1]),
    }


def run(quick: bool, workdir: Path) -> dict:
    C.set_threads(2)
    diffusion, autoregressive = C.load_pair(workdir / "models")
    models = {"diffusion": diffusion, "autoregressive": autoregressive}
    vocab = diffusion.spec.vocab_size
    lengths = (32, 128) if quick else (32, 128, 512)
    result = {
        "benchmark": "b1_cost_vs_k",
        "quick": quick,
        "network": C.NET,
        "dtype": "float32",
        "threads": 2,
        "prompt": "few (passage side)",
        "series": [],
    }
    result["series"].append(
        time_series(
            "latency",
            models,
            lengths,
            KS,
            batch_size=1,
            n_texts=1 if quick else 2,
            repeats=2 if quick else 5,
            representations=ALL,
            vocab=vocab,
        )
    )
    result["series"].append(
        time_series(
            "throughput",
            models,
            (128,),
            KS,
            batch_size=8,
            n_texts=8,
            repeats=1 if quick else 3,
            representations=ALL,
            vocab=vocab,
        )
    )
    proportional_v = C.proportional_vocab()
    proportioned = {family: C.head_proportioned(model, proportional_v) for family, model in models.items()}
    result["series"].append(
        time_series(
            "proportional",
            proportioned,
            (128,),
            KS,
            batch_size=1,
            n_texts=1 if quick else 2,
            repeats=2 if quick else 5,
            representations=("dense", "multi"),
            vocab=proportional_v,
        )
    )
    max_length = prompt_tokens(diffusion) + 128
    text = C.texts_with_tokens(diffusion.tokenizer, 128, 1, seed=128)
    result["forward_passes_per_text"] = {
        family: {str(k): count_forward_passes(models[family], text, k, max_length, ALL) for k in KS}
        for family in FAMILIES
    }
    result["trunk_only_128"] = trunk_only(diffusion, 128, 3 if quick else 5)
    result["head_over_trunk"] = {
        "benchmark_network": C.head_over_trunk({**{"num_hidden_layers": C.NET["num_layers"]}, **C.NET}, vocab),
        "proportional_network": C.head_over_trunk(
            {**{"num_hidden_layers": C.NET["num_layers"]}, **C.NET}, proportional_v
        ),
        "dream_7b": C.dream7b_head_over_trunk(),
        "proportional_vocab": proportional_v,
    }
    result["machine"] = C.machine()
    return result


def main(argv: list[str] | None = None) -> int:
    return C.bench_main(run, __doc__, "pdr-b1-", argv)


if __name__ == "__main__":
    sys.exit(main())
