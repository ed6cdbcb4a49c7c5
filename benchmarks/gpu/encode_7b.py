"""GPU check: encoding throughput of 7B-shaped Dream and LLaDA -- passages/s, tokens/s, MFU, latency, memory.

Not run in CI or ``make bench`` (it needs a CUDA GPU with ~40 GB). Each network has the released model's exact
shape (the packaged config.json files: Dream-v0-Instruct-7B, LLaDA-8B-Instruct) with RANDOM weights built
directly on the device in bfloat16 and sdpa attention (nothing is downloaded); costs do not depend on the weight
values. Passages follow MS MARCO's length distribution (log-normal words per passage, mean ~60, long tail; the
B10 generator), K_p = 16, the "few" prompt, all three representations from one pass, and token-budget batches
(``--max-tokens``, longest first, ``--batch-size`` as a cap): the encode pipeline's own
:meth:`DiffRetrieverDocumentEncoder.encode_all <pyserini_diffretriever.encoders.DiffRetrieverDocumentEncoder.encode_all>`.

Reported per backbone:

* passages/s and tokens/s (real: prompt + text + slots; computed: padding included);
* MFU: useful FLOPs (real tokens through the trunk and attention, plus the K-row vocabulary head) per second over
  the device's dense bf16 peak (a table of known GPUs, or ``--peak-tflops``);
* per-text latency at batch 1 (the paper reports 15-30 ms), median over ``--latency-texts`` passages;
* peak GPU memory (allocated and reserved).

Usage::

    python benchmarks/gpu/encode_7b.py --out results/encode_7b.json          # on a GPU machine
    python benchmarks/gpu/encode_7b.py --tiny --out /tmp/encode_tiny.json    # end-to-end check on CPU, tiny shape
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import b10_encode  # noqa: E402  (the MS MARCO-like length generator)
import train_7b  # noqa: E402  (the 7B-shaped random Dream)

#: Dense bf16 tensor-core peaks (TFLOPS, no sparsity) by device name fragment, most specific first.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
)
TINY_LLADA = dict(d_model=64, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=128)
FAMILIES = ("dream", "llada")
K_P = 16


def random_llada(tiny: bool, device: str, workdir: Path):
    """A :class:`LoadedBackbone`: LLaDA-8B's config (or a tiny shape), random bf16 weights on ``device``."""
    import torch

    from pyserini_diffretriever.backbones import llada
    from pyserini_diffretriever.backbones.base import LoadedBackbone
    from pyserini_diffretriever.fixtures.llada_tokenizer import write_llada_standin_tokenizer

    folder = resources.files("pyserini_diffretriever").joinpath("resources", "llada")
    config = json.loads(folder.joinpath("config.json").read_text(encoding="utf-8"))
    if tiny:
        config.update(TINY_LLADA)
    tokenizer_dir = workdir / "llada-tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (tokenizer_dir / name).write_text(folder.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    write_llada_standin_tokenizer(tokenizer_dir)
    dtype = torch.float32 if tiny and device == "cpu" else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = llada.LLaDABackbone(llada.LLaDAConfig.from_dict(config), "sdpa")
    finally:
        torch.set_default_dtype(previous)
    model.eval().requires_grad_(False)
    tokenizer = llada.load_tokenizer(tokenizer_dir)
    spec = llada.make_spec(
        model, config, tokenizer, name_or_path="random/llada-8b-shaped", revision=None, adapter=None, extra={}
    )
    model.spec = spec
    return LoadedBackbone(model=model, tokenizer=tokenizer, spec=spec)


def flops_per_passage(backbone, real_tokens: float, row_length: float) -> float:
    """Useful forward FLOPs of one passage: 2 x trunk weights per real token, attention over its row, K-row head."""
    model = backbone.model
    embedding = backbone.spec.vocab_size * backbone.spec.hidden_size
    total = sum(p.numel() for p in model.parameters())
    trunk = total - 2 * embedding  # input embedding and output head are not matrix work per token
    layers = getattr(model.config, "num_hidden_layers", None) or model.config.n_layers  # Qwen2Config / LLaDAConfig
    attention = 4 * layers * backbone.spec.hidden_size * row_length  # QK^T and AV per token
    head = 2 * K_P * embedding
    return (2 * trunk + attention) * real_tokens + head


def peak_tflops(name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    return next((value for fragment, value in PEAK_BF16_TFLOPS if fragment in name), None)


def measure(family: str, args, device: str, workdir: Path, texts: list[str]) -> dict:
    import torch

    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder, DiffRetrieverModel

    cuda = device == "cuda"
    backbone = (
        train_7b.random_dream(args.tiny, device) if family == "dream" else random_llada(args.tiny, device, workdir)
    )
    model = DiffRetrieverModel(backbone)
    encoder = DiffRetrieverDocumentEncoder(model, k=K_P, max_length=512, batch_size=args.batch_size)

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    tokenized = encoder.tokenize(texts)
    warm = texts[: min(len(texts), args.batch_size)]
    encoder.encode_all(warm, max_tokens=args.max_tokens)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    start = time.perf_counter()
    batch = encoder.encode_all(texts, max_tokens=args.max_tokens, tokenized=tokenized)
    synchronize()
    seconds = time.perf_counter() - start
    lengths = sorted(tokenized.lengths)
    median_text = texts[tokenized.lengths.index(lengths[len(lengths) // 2])]
    latencies = []
    for _ in range(args.latency_texts):
        synchronize()
        begin = time.perf_counter()
        encoder.encode_all([median_text], batch_size=1)
        synchronize()
        latencies.append(time.perf_counter() - begin)
    mean_real = batch.tokens.real / len(texts)
    flops = flops_per_passage(backbone, mean_real, mean_real) * len(texts)
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_tflops(name, args.peak_tflops) if cuda else None
    report = {
        "family": family,
        "model_type": backbone.spec.model_type,
        "parameters": sum(p.numel() for p in backbone.model.parameters()),
        "passages": len(texts),
        "seconds": seconds,
        "passages_per_s": len(texts) / seconds,
        "real_tokens_per_s": batch.tokens.real / seconds,
        "computed_tokens_per_s": batch.tokens.computed / seconds,
        "tokens": batch.tokens.record(),
        "computed_over_real": batch.tokens.ratio,
        "row_tokens": {"mean": mean_real, "median": lengths[len(lengths) // 2], "max": lengths[-1]},
        "useful_tflops_per_s": flops / seconds / 1e12,
        "peak_bf16_tflops": peak,
        "mfu": flops / seconds / (peak * 1e12) if peak else None,
        "latency_batch1_ms": 1000 * statistics.median(latencies),
        "latency_batch1_samples_ms": [1000 * value for value in latencies],
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
    }
    del encoder, model, backbone, batch
    if cuda:
        torch.cuda.empty_cache()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (checks the script end to end)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--passages", type=int, default=4096, help="MS MARCO-like passages timed (default 4096)")
    parser.add_argument("--max-tokens", type=int, default=32768, help="token budget per forward pass")
    parser.add_argument("--batch-size", type=int, default=512, help="passages per forward pass, a cap")
    parser.add_argument("--latency-texts", type=int, default=16, help="batch-1 encodes timed for the latency")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, for a GPU not in the table")
    args = parser.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        parser.error("no CUDA device: run on a GPU machine, or pass --tiny for the CPU check")
    if args.tiny:
        args.passages, args.max_tokens, args.batch_size, args.latency_texts = 24, 2048, 8, 2
    device = "cuda" if cuda else "cpu"
    with tempfile.TemporaryDirectory(prefix="pdr-encode-7b-") as tmp:
        corpus = b10_encode.msmarco_like_corpus(Path(tmp) / "passages.jsonl", args.passages)
        texts = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()]
        report = {
            "shape": "tiny" if args.tiny else "7b",
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "dtype": "bfloat16" if cuda else "float32",
            "attention": "sdpa",
            "k_passage": K_P,
            "max_tokens": args.max_tokens,
            "batch_size_cap": args.batch_size,
            "words": b10_encode.word_stats(corpus),
            "families": {family: measure(family, args, device, Path(tmp), texts) for family in args.families},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
