"""``python -m pyserini_diffretriever.train``: supervised LoRA fine-tuning with the paper's recipe.

Tevatron-format data in, an adapter folder in the released layout out (docs/method.md §8)::

    python -m pyserini_diffretriever.train \\
      --model Dream-org/Dream-v0-Instruct-7B --train-data msmarco-passage-aug.jsonl \\
      --output-dir adapters/dream-multi --query-k 4 --passage-k 16 \\
      --per-device-batch-size 32 --gradient-checkpointing --bf16

    # several GPUs: the same command under torchrun (DDP; passages gathered across processes)
    torchrun --nproc-per-node 4 -m pyserini_diffretriever.train ...

Defaults are the paper's: LoRA r 16 / alpha 64 / dropout 0.05 on the backbone's targets, 15 negatives per query,
temperature 0.01, sparse weight 1.0, AdamW 1e-4 with weight decay 0.01, warmup 6 %, cosine, clipping 1.0, one
epoch, seed 42. ``--resume`` continues from the last checkpoint in ``OUTPUT/checkpoints``; ``--merge`` also writes
merged weights to ``OUTPUT/merged``. Use the adapter with ``encode ... encoder --adapter OUTPUT``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..settings import DEFAULT_MAX_LENGTH, PROMPT_VARIANTS
from . import configure_logging, positive_int

logger = logging.getLogger(__name__)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument("--model", required=True, help="base checkpoint: folder or hub id (Dream, LLaDA, Qwen2, Llama)")
    group.add_argument("--train-data", required=True, help="Tevatron JSONL file, or a folder of *.jsonl files")
    group.add_argument("--output-dir", required=True, help="adapter folder to write (checkpoints in OUT/checkpoints)")
    group.add_argument(
        "--query-k",
        "--k-query",
        dest="k_query",
        type=positive_int,
        default=None,
        help="query mask slots K_q (default: the backbone's, or the K a given adapter was trained with; "
        "--k-query is an alias)",
    )
    group.add_argument(
        "--passage-k",
        "--k-passage",
        dest="k_passage",
        type=positive_int,
        default=None,
        help="passage mask slots K_p (default as --query-k; --k-passage is an alias)",
    )
    group.add_argument("--prompt", default="few", help=f"{', '.join(PROMPT_VARIANTS)} or a prompt YAML (default few)")
    group.add_argument(
        "--max-length",
        type=positive_int,
        default=DEFAULT_MAX_LENGTH,
        help=f"prompt + passage token budget (default {DEFAULT_MAX_LENGTH})",
    )
    group.add_argument("--query-max-length", type=int, default=None, help="prompt + query budget (default: same)")
    group.add_argument("--title-separator", default=". ", help="joins passage title and text (default '. ')")
    group.add_argument("--logits", choices=("unshifted", "shifted"), default="unshifted", help="slot logit alignment")
    group.add_argument("--n-negatives", type=int, default=15, help="negatives per query (default 15)")


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loss, LoRA and optimisation")
    group.add_argument("--temperature", type=float, default=0.01, help="dense score temperature (default 0.01)")
    group.add_argument("--sparse-weight", type=float, default=1.0, help="weight of the sparse loss (default 1.0)")
    group.add_argument("--lora-r", type=int, default=16)
    group.add_argument("--lora-alpha", type=int, default=64)
    group.add_argument("--lora-dropout", type=float, default=0.05)
    group.add_argument("--lora-target-modules", nargs="+", default=None, help="default: the backbone's (method §1.6)")
    group.add_argument("--learning-rate", type=float, default=1e-4)
    group.add_argument("--weight-decay", type=float, default=0.01)
    group.add_argument("--warmup-ratio", type=float, default=0.06)
    group.add_argument("--lr-scheduler", default="cosine", help="HF scheduler name (default cosine)")
    group.add_argument("--max-grad-norm", type=float, default=1.0)
    group.add_argument("--epochs", type=float, default=1.0)
    group.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    group.add_argument("--per-device-batch-size", type=int, default=32, help="queries per device (default 32)")
    group.add_argument("--gradient-accumulation-steps", type=int, default=1)
    group.add_argument("--seed", type=int, default=42)
    group.add_argument("--data-seed", type=int, default=None, help="sampling/shuffling seed (default: --seed)")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (less memory)")
    group.add_argument("--bf16", action="store_true", help="bfloat16 base weights and autocast")
    group.add_argument("--device", choices=("cpu",), default=None, help="force the CPU (default: CUDA if available)")
    group.add_argument("--save-steps", type=int, default=500, help="checkpoint every N steps (default 500)")
    group.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept (default 2)")
    group.add_argument("--logging-steps", type=int, default=10)
    group.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    group.add_argument("--merge", action="store_true", help="also write merged safetensors weights to OUT/merged")
    group.add_argument("--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_diffretriever.train",
        description="Fine-tune a DiffRetriever backbone with LoRA on Tevatron-format data (docs/method.md §8).",
    )
    _model_arguments(parser)
    _recipe_arguments(parser)
    _run_arguments(parser)
    return parser


def settings_from_args(args: argparse.Namespace):
    """The :class:`~pyserini_diffretriever.training.TrainingSettings` of parsed arguments."""
    from ..training import TrainingSettings

    values = {key: value for key, value in vars(args).items() if key != "verbose"}
    if values["lora_target_modules"] is not None:
        values["lora_target_modules"] = tuple(values["lora_target_modules"])
    return TrainingSettings(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training CLI; return the exit status (0 ok, 1 failed, 2 usage)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose)
    from ..backbones import BackboneLoadError
    from ..training import TrainingDataError, train

    try:
        settings = settings_from_args(args)
        result = train(settings)
    except (TrainingDataError, BackboneLoadError, FileExistsError, FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 1
    logger.info(
        "adapter written to %s (%d steps, %d skipped for a non-finite loss)%s",
        result.adapter_dir,
        result.global_step,
        result.skipped_steps,
        f"; merged weights in {result.merged_dir}" if result.merged_dir else "",
    )
    return 0
