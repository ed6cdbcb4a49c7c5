"""GPU check: one LoRA training step of a 7B-shaped Dream at the paper's batch shape -- step time and peak memory.

Not run in CI or ``make bench`` (it needs a CUDA GPU with ~80 GB). The network has Dream-v0-Instruct-7B's exact
shape (the packaged config.json: hidden 3584, 28 layers, 28 heads / 4 KV heads, MLP 18944, vocabulary 152,064)
with RANDOM weights built directly on the device in bfloat16 (nothing is downloaded or written but the adapter);
costs do not depend on the weight values. Training runs through the real path,
:func:`pyserini_diffretriever.training.train` (HF Trainer, bf16 autocast, non-reentrant gradient checkpointing,
LoRA r 16 on q/k/v/o/gate/up/down), on synthetic Tevatron groups: per GPU 32 queries x 16 passages (1 positive +
15 negatives), K_q = 4, K_p = 16, passages of ``--passage-tokens`` text tokens (default 128; MS MARCO passages
average ~80), queries of 16. The first ``--warmup`` steps are excluded from the timing.

Usage::

    python benchmarks/gpu/train_7b.py --out results/train_7b.json            # on a GPU machine
    python benchmarks/gpu/train_7b.py --tiny --out /tmp/train_tiny.json      # end-to-end check on CPU, tiny shape
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as C  # noqa: E402

TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_window_layers=2,
)


def random_dream(tiny: bool, device: str):
    """A :class:`LoadedBackbone`: Dream-7B's config (or the tiny shape), random bf16 weights on ``device``."""
    import torch

    from pyserini_diffretriever.backbones import dream
    from pyserini_diffretriever.backbones.base import LoadedBackbone

    folder = resources.files("pyserini_diffretriever").joinpath("resources", "dream")
    config = json.loads(folder.joinpath("config.json").read_text(encoding="utf-8"))
    if tiny:
        config.update(TINY)
    qcfg = dream.qwen2_config(config)
    dtype = torch.float32 if tiny and device == "cpu" else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = dream.DreamBackbone(qcfg)  # transformers' own random initialisation, on the device
    finally:
        torch.set_default_dtype(previous)
    model.make_bidirectional()
    tokenizer = dream.load_tokenizer(Path(str(folder)))
    spec = dream.make_spec(
        model, config, tokenizer, name_or_path="random/dream-7b-shaped", revision=None, adapter=None, extra={}
    )
    model.spec = spec
    model.requires_grad_(False)
    return LoadedBackbone(model=model, tokenizer=tokenizer, spec=spec)


def synthetic_groups(path: Path, tokenizer, n_queries: int, n_negatives: int, passage_tokens: int) -> None:
    """Tevatron JSONL with passages of at least ``passage_tokens`` tokens (truncated by ``--max-length``)."""
    texts = C.texts_with_tokens(tokenizer, passage_tokens, n_queries * (1 + n_negatives), seed=0)
    queries = C.long_texts(n_queries, 12, seed=1)
    with path.open("w", encoding="utf-8") as handle:
        for i, query in enumerate(queries):
            group = texts[i * (1 + n_negatives) : (i + 1) * (1 + n_negatives)]
            record = {
                "query_id": str(i),
                "query": query,
                "positive_passages": [{"docid": f"{i}-0", "text": group[0]}],
                "negative_passages": [{"docid": f"{i}-{j}", "text": t} for j, t in enumerate(group[1:], 1)],
            }
            handle.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny shape on CPU (checks the script end to end)")
    parser.add_argument("--queries", type=int, default=32, help="queries per GPU per step (paper: 32)")
    parser.add_argument("--negatives", type=int, default=15)
    parser.add_argument("--passage-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from transformers import TrainerCallback

    from pyserini_diffretriever.training import TrainingSettings, train

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        parser.error("no CUDA device: run on a GPU machine, or pass --tiny for the CPU check")
    if args.tiny:
        args.queries, args.negatives, args.passage_tokens, args.steps, args.warmup = 2, 3, 32, 3, 1
    device = "cuda" if cuda else "cpu"
    backbone = random_dream(args.tiny, device)

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="pdr-train-7b-") as tmp:
        data = Path(tmp) / "groups.jsonl"
        synthetic_groups(data, backbone.tokenizer, args.queries * args.steps, args.negatives, args.passage_tokens)
        settings = TrainingSettings(
            model="random/dream-7b-shaped",
            train_data=str(data),
            output_dir=str(Path(tmp) / "adapter"),
            k_query=4,
            k_passage=16,
            max_length=512,
            n_negatives=args.negatives,
            per_device_batch_size=args.queries,
            max_steps=args.steps,
            save_steps=10 * args.steps,
            logging_steps=1,
            gradient_checkpointing=not args.no_gradient_checkpointing,
            bf16=cuda,
            device=None if cuda else "cpu",
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result = train(settings, backbone=backbone, callbacks=[timer])
    timed = timer.seconds[args.warmup :]
    step = sum(timed) / len(timed)
    passages = args.queries * (1 + args.negatives)
    report = {
        "shape": "tiny" if args.tiny else "dream-7b",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "queries_per_step": args.queries,
        "passages_per_step": passages,
        "passage_text_tokens": args.passage_tokens,
        "k_query": 4,
        "k_passage": 16,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "dtype": "bfloat16" if cuda else "float32",
        "step_seconds": timer.seconds,
        "mean_step_seconds": step,
        "seconds_per_passage": step / passages,
        "final_loss": result.final_loss,
        "skipped_steps": result.skipped_steps,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
        "trainable_parameters": sum(p.numel() for p in result.model.parameters() if p.requires_grad),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
