"""PromptReps read-out (docs/method.md §9): the AR input layout, cached generation == recomputation, forward-call
count, stop truncation at ``"`` / special tokens, and the shared sparse/dense downstream."""

from __future__ import annotations

import pytest
import torch

from pyserini_diffretriever.backbones import load_backbone
from pyserini_diffretriever.fixtures import write_tiny_llama, write_tiny_qwen2
from pyserini_diffretriever.representation.generation import ar_stop_token_ids, generate_representatives
from pyserini_diffretriever.representation.inputs import EncodedBatch, InputBuilder, InputError
from pyserini_diffretriever.representation.readout import ReadoutConfig

TEXTS = ["what is the boundary layer", "lift", "heat transfer to a blunt body in hypersonic flow at mach six"]


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("ar")
    return {
        "qwen2": load_backbone(write_tiny_qwen2(root / "qwen2")),
        "llama": load_backbone(write_tiny_llama(root / "llama")),
    }


def builder(lb, k=4, prompt="few", side="query", max_length=128):
    return InputBuilder(lb.tokenizer, lb.spec, prompt, k, max_length, side, autoregressive=True)


class Counting:
    """Wraps a backbone and counts its forward passes (``causal_forward`` calls)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.spec = model.spec

    def parameters(self):
        return self.model.parameters()

    def causal_forward(self, *args, **kwargs):
        self.calls += 1
        return self.model.causal_forward(*args, **kwargs)

    def vocab_logits(self, hidden):
        return self.model.vocab_logits(hidden)


# -- input layout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_rows_end_with_the_opening_quote_and_have_no_masks_or_tail(backbones, which):
    lb = backbones[which]
    b = builder(lb, k=4)
    batch = b.build(TEXTS)
    assert batch.autoregressive and batch.k == 4
    quote = lb.tokenizer.encode('"', add_special_tokens=False)
    for i, text in enumerate(TEXTS):
        row = batch.input_ids[i][batch.attention_mask[i].bool()].tolist()
        text_ids = lb.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert row == b.prefix_ids + text_ids + b.suffix_ids
        assert lb.tokenizer.decode(row).endswith('The words are: "')
        assert row[-1:] == quote or lb.tokenizer.decode(row[-1:]).endswith('"')
    with pytest.raises(InputError, match="no mask slots"):
        _ = batch.mask_start


def test_wording_is_not_adapted_to_k(backbones):
    """The zero-shot PromptReps class keeps the YAML text (§9); DiffRetriever would write "four words"."""
    lb = backbones["qwen2"]
    text = lb.tokenizer.decode(builder(lb, k=4, prompt="one").suffix_ids)
    assert "Use one word to represent the query" in text and text.endswith('The word is: "')


def test_fingerprint_is_stable_and_follows_n(backbones):
    lb = backbones["qwen2"]
    assert builder(lb, k=4).fingerprint() == builder(lb, k=4).fingerprint()
    assert builder(lb, k=4).fingerprint() != builder(lb, k=5).fingerprint()


def test_diffusion_layout_needs_a_mask_token(backbones):
    lb = backbones["llama"]
    with pytest.raises(InputError, match="no mask token"):
        InputBuilder(lb.tokenizer, lb.spec, "few", 4, 64, "query")


def test_text_budget_counts_the_prompt(backbones):
    lb = backbones["llama"]
    b = builder(lb, max_length=60)
    batch = b.build(["word " * 200])
    assert batch.truncated == (True,) and batch.input_ids.shape[1] == 60


# -- generation == recomputation --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_kv_cache_generation_equals_recomputation(backbones, which):
    """Each slot's hidden state and logits equal an uncached forward over prompt + generated tokens."""
    lb = backbones[which]
    n = 5
    batch = builder(lb, k=n).build(TEXTS)
    out = generate_representatives(lb.model, batch, n, keep_logits=True)
    assert out.slot_mask.all()
    for i in range(len(TEXTS)):
        prompt = batch.input_ids[i][batch.attention_mask[i].bool()].tolist()
        generated = out.decoded_ids[i, : n - 1].tolist()  # token k = argmax of slot k-1
        full = torch.tensor([prompt + generated])
        hidden = lb.model.hidden_states(full, torch.ones_like(full))[0]
        positions = [len(prompt) - 1 + k for k in range(n)]
        torch.testing.assert_close(out.dense[i], hidden[positions], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            out.logits[i], lb.model.vocab_logits(hidden[positions]).float(), atol=1e-5, rtol=1e-5
        )
        assert out.decoded_ids[i].tolist() == out.logits[i].argmax(-1).tolist()


def test_slot_zero_is_the_quote_position_of_the_prompt_pass(backbones):
    lb = backbones["qwen2"]
    batch = builder(lb).build(TEXTS)
    out = generate_representatives(lb.model, batch, 1)
    torch.testing.assert_close(out.dense[:, 0], lb.model.hidden_states(batch.input_ids, batch.attention_mask)[:, -1])


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_forward_calls_are_one_prompt_pass_plus_one_per_generated_token(backbones, n):
    lb = backbones["llama"]
    counted = Counting(lb.model)
    generate_representatives(counted, builder(lb, k=n).build(TEXTS), n)  # no stop ids: nothing can stop
    assert counted.calls == 1 + (n - 1)


def test_padding_does_not_change_a_text(backbones):
    lb = backbones["qwen2"]
    b = builder(lb, k=3)
    together = generate_representatives(lb.model, b.build(TEXTS), 3, stop_ids=ar_stop_token_ids(lb.tokenizer))
    for i, text in enumerate(TEXTS):
        alone = generate_representatives(lb.model, b.build([text]), 3, stop_ids=ar_stop_token_ids(lb.tokenizer))
        torch.testing.assert_close(together.dense[i], alone.dense[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(together.decoded_ids[i], alone.decoded_ids[0])


# -- stop truncation (a scripted causal model: each token's logits pick a fixed successor) ----------------

QUOTE, SPECIAL, VOCAB = 1, 15, 16
SUCCESSOR = {5: 6, 6: QUOTE, QUOTE: 9, 7: SPECIAL, SPECIAL: 2, 8: 9, 9: 10, 10: 11, 11: 12, 12: 13, 13: 3, 2: 3, 3: 4}


class Scripted(torch.nn.Module):
    """hidden = one-hot(token); logits pick ``SUCCESSOR[token]``: the generated chain is known in advance."""

    spec = type("Spec", (), {"vocab_size": VOCAB})()

    def __init__(self):
        super().__init__()
        self.table = torch.full((VOCAB, VOCAB), -5.0)
        for token, successor in SUCCESSOR.items():
            self.table[token, successor] = 5.0
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def causal_forward(self, ids, mask, cache=None):
        self.calls += 1
        return torch.nn.functional.one_hot(ids, VOCAB).float(), cache

    def vocab_logits(self, hidden):
        return hidden @ self.table


def scripted_batch(last_tokens: list[int]) -> EncodedBatch:
    ids = torch.tensor([[4, t] for t in last_tokens])
    return EncodedBatch(
        ids, torch.ones_like(ids), 5, (1,) * len(last_tokens), (False,) * len(last_tokens), autoregressive=True
    )


def test_stop_at_quote_and_special_zeroes_that_slot_and_later_ones():
    model = Scripted()
    content = [[6, 1, 9, 2, 10, 11]] * 3
    # row 0: slots read at tokens 5, 6, '"' -> generated token 2 is '"' -> slots 2.. zeroed
    # row 1: slot 0 read at 7 predicts SPECIAL -> generated token 1 stops -> only slot 0 kept
    # row 2: 8 -> 9 -> 10 -> 11 -> 12, never stops
    out = generate_representatives(model, scripted_batch([5, 7, 8]), 5, stop_ids={QUOTE, SPECIAL}, content_ids=content)
    assert out.slot_mask.tolist() == [[True, True, False, False, False], [True, False, False, False, False], [True] * 5]
    assert out.decoded_ids[2].tolist() == [9, 10, 11, 12, 13]
    assert out.decoded_ids[0, :2].tolist() == [6, QUOTE]
    assert (out.dense[0, 2:] == 0).all() and (out.dense[1, 1:] == 0).all() and (out.dense[2] != 0).any(-1).all()
    assert (out.sparse_weights[0, 2:] == 0).all() and (out.sparse_weights[1, 1:] == 0).all()
    pooled = out.sparse()
    assert set(pooled[0]) == {6, 1}  # slots 0-1 predict 6 and '"'; slot 2's prediction (9) is dropped
    assert set(pooled[1]) == set()  # slot 0 predicts SPECIAL, which is not a content id here
    assert set(pooled[2]) == {9, 10, 11}  # content ids among the predictions 9..13
    assert model.calls == 5


def test_all_rows_stopped_skips_the_remaining_steps():
    model = Scripted()
    out = generate_representatives(model, scripted_batch([5, 7]), 5, stop_ids={QUOTE, SPECIAL})
    assert model.calls == 2  # prompt pass + the step of token 1; token 2 stops the last live row
    assert out.slot_mask.tolist() == [[True, True, False, False, False], [True, False, False, False, False]]


def test_without_stop_ids_nothing_is_truncated():
    out = generate_representatives(Scripted(), scripted_batch([5, 7]), 5)
    assert out.slot_mask.all()


def test_stop_ids_of_the_real_tokenizers(backbones):
    qwen = ar_stop_token_ids(backbones["qwen2"].tokenizer)
    assert {151643, 151644, 151645, 1} <= qwen  # <|endoftext|>, <|im_start|>, <|im_end|>, '"'
    assert 151657 not in qwen  # <tool_call> is an added token but not a special one
    llama = ar_stop_token_ids(backbones["llama"].tokenizer)
    assert set(range(128000, 128256)) | {1} == llama  # all 256 Llama-3 special tokens and '"'


# -- argument checks -----------------------------------------------------------------------------------


def test_rejects_diffusion_batches_and_settings(backbones):
    lb = backbones["qwen2"]
    batch = builder(lb).build(TEXTS[:1])
    diffusion = EncodedBatch(batch.input_ids, batch.attention_mask, 4, (1,), (False,))
    with pytest.raises(ValueError, match="autoregressive batch"):
        generate_representatives(lb.model, diffusion, 4)
    with pytest.raises(ValueError, match="denoise_steps"):
        generate_representatives(lb.model, batch, 4, config=ReadoutConfig(denoise_steps=2))
    with pytest.raises(ValueError, match="unshifted"):
        generate_representatives(lb.model, batch, 4, config=ReadoutConfig(logits="shifted"))
    with pytest.raises(ValueError, match="n=0"):
        generate_representatives(lb.model, batch, 0)
