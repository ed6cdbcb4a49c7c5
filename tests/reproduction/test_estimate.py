"""Token counts and GPU time of the dry run."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.collections.cranfield import export_beir, load_cranfield
from pyserini_diffretriever.reproduction import estimate
from pyserini_diffretriever.reproduction.configurations import CONFIGURATIONS
from pyserini_diffretriever.reproduction.estimate import (
    PAPER_SECONDS_PER_TEXT,
    PAPER_SECONDS_PER_TOKEN,
    Cost,
    count_tokens,
    describe,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = export_beir(
        tmp_path_factory.mktemp("beir") / "cran",
        load_cranfield(),
        queries=["1"],
        documents=[str(i) for i in range(1, 9)],
    )
    return folder / "corpus.jsonl"


def test_tokens_are_prompt_text_masks_and_tail(corpus, tiny_dream_dir) -> None:
    from pyserini_diffretriever.representation.inputs import render_prompt_ids
    from pyserini_diffretriever.representation.prompts import prompt_for

    config = CONFIGURATIONS["dream-zs-multi"]
    tokenizer = estimate._load_tokenizer(tiny_dream_dir)  # cached: the count below reuses it
    prefix, suffix = render_prompt_ids(tokenizer, prompt_for("few", "passage", 16))
    prompt = len(prefix) + len(suffix)
    budget = 64 - prompt
    texts = []
    for line in corpus.read_text().splitlines():
        doc = json.loads(line)
        texts.append(f"{doc['title']}. {doc['text']}")
    expected = sum(
        min(len(tokenizer(t, add_special_tokens=False)["input_ids"]), budget) + prompt + 16 + 3 for t in texts
    )
    count = count_tokens(corpus, config, str(tiny_dream_dir), max_length=64)
    assert (count.documents, count.sampled, count.tokens) == (8, 8, expected)
    assert count.tokenizer == config.backbone
    sampled = count_tokens(corpus, config, str(tiny_dream_dir), max_length=64, sample=2)
    assert sampled.sampled == 2 and sampled.documents == 8
    assert sampled.tokens > 8 * (prompt + 16 + 3)


def test_unavailable_tokenizer_falls_back_to_dreams_and_says_so(corpus, tiny_dream_dir, monkeypatch) -> None:
    monkeypatch.setattr(estimate, "SHIPPED_TOKENIZER", tiny_dream_dir)  # the same files; loaded once already
    count = count_tokens(corpus, CONFIGURATIONS["llada-zs-single"], "/nonexistent/llada", max_length=64)
    assert "approximating GSAI-ML/LLaDA-8B-Instruct" in count.tokenizer and count.tokens > 0


def test_cost_and_description() -> None:
    paper = Cost(PAPER_SECONDS_PER_TOKEN, PAPER_SECONDS_PER_TEXT, "paper")
    assert paper.seconds(32, 1) == pytest.approx(0.015)
    assert paper.seconds(800, 1) == pytest.approx(0.030)
    from pyserini_diffretriever.reproduction.estimate import TokenCount

    lines = describe([("c", "d", TokenCount(10, 3_600_000, 10, "tok"))], {"c": Cost(0.001, 0.0, "given")})
    assert any(line.startswith("| c | d | 10 | 3,600,000 (tok) | 1.00 (3,600 s) |") for line in lines)
    assert lines[-1] == "all configurations: 1.00 GPU hours"
