"""GPU time of a reproduction, estimated before it runs from corpus token counts and a per-token cost.

Tokens per passage = prompt prefix + text (truncated to ``max_length`` minus the prompt) + prompt suffix + K_p
masks + 3 tail tokens, counted with the configuration's tokenizer (or, when that checkpoint is not on this
machine, Dream's shipped Qwen2 tokenizer, and the estimate says so). Large corpora are counted on an even sample
of ``sample`` passages and scaled up. Cost = tokens x ``seconds_per_token`` + passages x ``seconds_per_text``.

Default cost: the paper's single-H100 encoding latency (``docs/method.md`` §10: ~15 ms for a 32-token text,
~30 ms for 800 tokens, one text at a time), i.e. 19.5 us per token + 14.4 ms per text. Batched encoding is faster,
so this is an upper bound; ``--seconds-per-token`` gives a cost of your own and ``--measure-cost N`` measures it
by encoding N passages with the real model on ``--device``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .configurations import Configuration

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_SECONDS_PER_TEXT",
    "PAPER_SECONDS_PER_TOKEN",
    "Cost",
    "TokenCount",
    "count_tokens",
    "measure_cost",
]

PAPER_SECONDS_PER_TOKEN = 15e-3 / 768
"""(30 ms - 15 ms) / (800 - 32) tokens: the slope of the paper's H100 encoding latency."""

PAPER_SECONDS_PER_TEXT = 15e-3 - 32 * PAPER_SECONDS_PER_TOKEN
"""The intercept of the same line: fixed cost per text at batch size 1."""

N_TAIL = 3
SHIPPED_TOKENIZER = Path(__file__).resolve().parents[1] / "resources" / "dream"


@dataclass(frozen=True)
class Cost:
    """A per-token and per-text encoding cost, and where it comes from."""

    seconds_per_token: float
    seconds_per_text: float
    source: str

    def seconds(self, tokens: int, texts: int) -> float:
        return tokens * self.seconds_per_token + texts * self.seconds_per_text


@dataclass(frozen=True)
class TokenCount:
    """Passages and tokens the encoder will process for one corpus and configuration."""

    documents: int
    tokens: int
    sampled: int
    tokenizer: str


@functools.lru_cache(maxsize=4)
def _load_tokenizer(folder: Path) -> Any:
    """The tokenizer of a checkpoint folder, loaded the way its backbone family loads it (never remote code).

    Cached: building Dream's tokenizer from vocab.json + merges.txt takes seconds.
    """
    from ..backbones import get_family
    from ..backbones.loading import read_config

    return get_family(read_config(folder).get("model_type")).load_tokenizer(folder)


def _tokenizer(config: Configuration, source: str) -> tuple[Any, str]:
    """The configuration's tokenizer when its checkpoint is on this machine, else Dream's shipped one."""
    candidates: list[Path] = []
    if Path(source).expanduser().is_dir():
        candidates.append(Path(source).expanduser())
    else:
        try:
            from huggingface_hub import snapshot_download

            candidates.append(
                Path(snapshot_download(source, local_files_only=True, allow_patterns=["*.json", "*.txt", "*.model"]))
            )
        except Exception:  # noqa: BLE001 - not cached: fall back below
            pass
    for folder in candidates:
        try:
            return _load_tokenizer(folder), config.backbone
        except Exception as error:  # noqa: BLE001 - an unreadable tokenizer: fall back, say so
            logger.warning("cannot load the tokenizer of %s (%s); counting with Dream's", folder, error)
    return _load_tokenizer(SHIPPED_TOKENIZER), f"Dream's tokenizer, approximating {config.backbone}'s"


def _prompt_tokens(tokenizer: Any, config: Configuration) -> int:
    from ..representation.inputs import render_prompt_ids
    from ..representation.prompts import prompt_for

    prefix, suffix = render_prompt_ids(tokenizer, prompt_for(config.prompt or "few", "passage", config.k_passage))
    return len(prefix) + len(suffix)


def _texts(corpus: Path, sample: int) -> tuple[int, list[str]]:
    """(number of documents, an even sample of at most ``sample`` 'title. text' strings)."""
    with corpus.open(encoding="utf-8") as handle:
        total = sum(1 for line in handle if line.strip())
    step = max(1, -(-total // sample)) if sample > 0 else 1
    texts: list[str] = []
    with corpus.open(encoding="utf-8") as handle:
        index = 0
        for line in handle:
            if not line.strip():
                continue
            if index % step == 0:
                record = json.loads(line)
                title, text = record.get("title") or "", record.get("text") or ""
                texts.append(f"{title}. {text}" if title.strip() and text else (text or title))
            index += 1
    return total, texts


def count_tokens(corpus: Path, config: Configuration, source: str, max_length: int, sample: int = 20_000) -> TokenCount:
    """Tokens the encoder processes for ``corpus`` under ``config`` (module docstring)."""
    tokenizer, name = _tokenizer(config, source)
    prompt = _prompt_tokens(tokenizer, config)
    total, texts = _texts(corpus, sample)
    budget = max(1, max_length - prompt)
    text_tokens = 0
    for lo in range(0, len(texts), 1024):
        for ids in tokenizer(texts[lo : lo + 1024], add_special_tokens=False)["input_ids"]:
            text_tokens += min(len(ids), budget)
    per_doc = prompt + config.k_passage + N_TAIL + (text_tokens / len(texts) if texts else 0)
    return TokenCount(documents=total, tokens=round(per_doc * total), sampled=len(texts), tokenizer=name)


def measure_cost(
    config: Configuration,
    sources: tuple[str, str | None],
    corpus: Path,
    *,
    passages: int,
    device: str,
    dtype: str | None,
    batch_size: int,
    max_length: int,
) -> Cost:
    """Seconds per token of the real encoder on ``device``: encode ``passages`` passages after one warm-up batch."""
    from ..encoders import DiffRetrieverDocumentEncoder
    from ..settings import EncoderSettings

    backbone, adapter = sources
    settings = EncoderSettings.given(
        representation="multi" if config.multi else "dense",
        k=config.k_passage,
        prompt=config.prompt or "few",
        max_length=max_length,
        device=device,
        dtype=dtype or "float32",
        adapter=adapter,
        batch_size=batch_size,
    )
    encoder = DiffRetrieverDocumentEncoder(backbone, settings=settings)
    _, texts = _texts(corpus, passages)
    texts = texts[:passages]
    tokens = count_tokens(corpus, config, backbone, max_length, sample=passages).tokens
    documents = sum(1 for _ in corpus.open(encoding="utf-8")) or 1
    measured_tokens = tokens * len(texts) / documents
    encoder.encode(texts=texts[:batch_size])  # warm-up: kernels, caches
    started = time.perf_counter()
    for lo in range(0, len(texts), batch_size):
        encoder.encode(texts=texts[lo : lo + batch_size])
    elapsed = time.perf_counter() - started
    return Cost(
        seconds_per_token=elapsed / max(measured_tokens, 1.0),
        seconds_per_text=0.0,
        source=f"measured: {len(texts)} passages of {corpus} on {device} in {elapsed:.2f} s",
    )


def describe(counts: Sequence[tuple[str, str, TokenCount]], cost: dict[str, Cost]) -> list[str]:
    """Lines for the dry run: one per (configuration, dataset), then a total per configuration."""
    lines = ["| configuration | dataset | passages | tokens (counted with) | GPU hours |", "|---|---|---:|---|---:|"]
    totals: dict[str, float] = {}
    for config, dataset, count in counts:
        seconds = cost[config].seconds(count.tokens, count.documents)
        totals[config] = totals.get(config, 0.0) + seconds
        sampled = "" if count.sampled >= count.documents else f", sample of {count.sampled}"
        lines.append(
            f"| {config} | {dataset} | {count.documents:,} | {count.tokens:,} ({count.tokenizer}{sampled}) | "
            f"{seconds / 3600:.2f} ({seconds:,.0f} s) |"
        )
    lines.append("")
    for config, seconds in totals.items():
        lines.append(f"{config}: {seconds / 3600:.2f} GPU hours, {seconds:,.0f} s ({cost[config].source})")
    lines.append(f"all configurations: {sum(totals.values()) / 3600:.2f} GPU hours")
    return lines
