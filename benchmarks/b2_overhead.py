"""B2: our encoder's time over the bare backbone forward pass on identical batches (the physical floor).

For one side's texts the encoder (:meth:`DiffRetrieverModel.encode_side`) tokenises, builds and left-pads the
batches, runs the backbone once per batch, applies the LM head to the K slot rows only, decodes and truncates,
builds the sparse (content filter, top-k, quantise, pool, term strings) and dense/multi outputs. The floor is
``backbone.hidden_states(ids, mask)`` on exactly the batches it builds (same order, same padding), timed alone.
Three cases per scenario, timed round-robin after a warm-up, medians reported:

``forward``   ``hidden_states`` on the prebuilt batches (the floor);
``readout``   :func:`read_out` on the prebuilt batches without the sparse part (forward + K-row LM head +
              argmax + stop truncation);
``encoder``   the full encoder call on the texts (all representations the network allows).

``overhead = encoder / forward``; ``head_share = (readout - forward) / forward`` is the LM head's part of it.

Scenarios: passages (K=16, 128-token texts, batch 8) and queries (K=4, 32-token texts, batch 1), on the
benchmark network with the real vocabulary and on its head-proportioned variant (see :mod:`_common`).

Usage: ``python benchmarks/b2_overhead.py --out results.json [--quick] [--workdir DIR]``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCENARIOS = (
    {"name": "passages", "side": "passage", "k": 16, "length": 128, "batch_size": 8, "n_texts": 16},
    {"name": "queries", "side": "query", "k": 4, "length": 32, "batch_size": 1, "n_texts": 8},
)


def measure(model, scenario: dict, repeats: int, representations) -> dict:
    import torch

    from pyserini_diffretriever.representation.readout import ReadoutConfig, read_out

    side, k, batch_size = scenario["side"], scenario["k"], scenario["batch_size"]
    texts = C.texts_with_tokens(model.tokenizer, scenario["length"], scenario["n_texts"], seed=scenario["length"])
    probe = model.input_builder(side, k, "few", 4096)
    max_length = len(probe.prefix_ids) + len(probe.suffix_ids) + scenario["length"]
    builder = model.input_builder(side, k, "few", max_length)
    # the batches encode_side builds: same sort (longest first, stable) and the same slicing
    text_ids = builder.tokenize(builder.join(texts))
    order = sorted(range(len(texts)), key=lambda i: -min(len(text_ids[i]), builder.text_budget))
    batches = [
        builder.collate([text_ids[i] for i in order[s : s + batch_size]]) for s in range(0, len(texts), batch_size)
    ]
    net = model.backbone.model
    config = ReadoutConfig()

    def forward():
        with torch.inference_mode():
            for batch in batches:
                net.hidden_states(batch.input_ids, batch.attention_mask)

    def readout():
        with torch.inference_mode():
            for batch in batches:
                read_out(net, batch, config=config, stop_ids=model.stop_ids)

    def encoder():
        model.encode_side(
            texts,
            side,
            k=k,
            prompt="few",
            max_length=max_length,
            batch_size=batch_size,
            representations=representations,
        )

    times = C.interleaved({"forward": forward, "readout": readout, "encoder": encoder}, repeats)
    med = {name: C.median(values) for name, values in times.items()}
    return {
        **scenario,
        "representations": list(representations),
        "repeats": repeats,
        "tokens_per_row": int(batches[0].input_ids.shape[1]),
        "seconds": med,
        "samples": times,
        "overhead": med["encoder"] / med["forward"],
        "head_share": (med["readout"] - med["forward"]) / med["forward"],
        "rest_share": (med["encoder"] - med["readout"]) / med["forward"],
    }


def run(quick: bool, workdir: Path) -> dict:
    C.set_threads(2)
    diffusion, _ = C.load_pair(workdir / "models")
    proportional_v = C.proportional_vocab()
    networks = {
        f"vocab_{diffusion.spec.vocab_size}": (diffusion, ("dense", "multi", "impact")),
        f"proportional_vocab_{proportional_v}": (C.head_proportioned(diffusion, proportional_v), ("dense", "multi")),
    }
    repeats = 3 if quick else 7
    results = []
    for network, (model, representations) in networks.items():
        for scenario in SCENARIOS:
            if quick:
                scenario = {**scenario, "n_texts": max(scenario["batch_size"], scenario["n_texts"] // 2)}
            point = measure(model, scenario, repeats, representations)
            point["network"] = network
            results.append(point)
            print(
                f"  {network} {scenario['name']}: overhead {point['overhead']:.3f} "
                f"(head {point['head_share']:+.3f}, rest {point['rest_share']:+.3f})",
                flush=True,
            )
    return {
        "benchmark": "b2_overhead",
        "quick": quick,
        "network": C.NET,
        "dtype": "float32",
        "threads": 2,
        "family": "diffusion (Dream layout)",
        "results": results,
        "machine": C.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    return C.bench_main(run, __doc__, "pdr-b2-", argv)


if __name__ == "__main__":
    sys.exit(main())
