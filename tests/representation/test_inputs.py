"""Exact input layout (docs/method.md §2.3-§2.4) against the real Dream tokenizer.

The expected ids are built independently of the package: the Qwen chat template is written out by hand
and the K-adapted prompt wording comes from the hand-written table in ``test_prompts``.
"""

from __future__ import annotations

import pytest
import torch

from pyserini_diffretriever.backbones.base import BackboneSpec
from pyserini_diffretriever.representation.inputs import InputBuilder, InputError, join_title

from .test_prompts import SYSTEM, expected_suffix

MASK, QUOTE, SPACE_QUOTE, IM_END, EOS = 151666, 1, 330, 151645, 151643

DREAM_SPEC = BackboneSpec(
    model_type="Dream",
    family="diffusion",
    mask_token_id=MASK,
    pad_token_id=EOS,
    eos_token_id=EOS,
    chat_end_token_id=IM_END,
    hidden_size=8,
    vocab_size=152064,
    logits_shifted=True,
    name_or_path="dream-test",
)
TEXTS = [
    "The Earth orbits the Sun.",
    "x",
    "Diffusion language models denoise masked tokens in parallel; DiffRetriever reads K of them at once. " * 3,
]


def expected_row(tok, side: str, variant: str, k: int, text: str) -> list[int]:
    label = "Query" if side == "query" else "Passage"
    user_suffix, assistant_prefix = expected_suffix(variant, side, k)
    before = f'<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{label}: "'
    after = f"{user_suffix}<|im_end|>\n<|im_start|>assistant\n{assistant_prefix}"
    return (
        tok.encode(before, add_special_tokens=False)
        + tok.encode(text, add_special_tokens=False)
        + tok.encode(after, add_special_tokens=False)
        + [MASK] * k
        + [QUOTE, IM_END, EOS]
    )


@pytest.mark.parametrize("side", ["query", "passage"])
@pytest.mark.parametrize("variant", ["one", "few", "three"])
@pytest.mark.parametrize("k", [1, 4, 16])
def test_layout_matches_hand_built_ids(dream_tokenizer, side, variant, k):
    builder = InputBuilder(dream_tokenizer, DREAM_SPEC, variant, k, 512, side)
    batch = builder.build(TEXTS)
    length = batch.input_ids.shape[1]
    for row, text in enumerate(TEXTS):
        expected = expected_row(dream_tokenizer, side, variant, k, text)
        real = batch.attention_mask[row].bool()
        assert batch.input_ids[row, real].tolist() == expected
        assert batch.input_ids[row, : length - len(expected)].eq(EOS).all()  # left padding with the pad id
        assert batch.attention_mask[row].tolist() == [0] * (length - len(expected)) + [1] * len(expected)
    assert list(batch.mask_positions) == list(range(length - k - 3, length - 3))
    assert batch.input_ids[:, length - k - 3 : length - 3].eq(MASK).all()
    # the quotation position (last suffix token) holds ' "' (id 330, with its leading space), not '"' (id 1)
    assert batch.input_ids[:, length - k - 4].eq(SPACE_QUOTE).all()
    assert batch.input_ids[:, -3:].tolist() == [[QUOTE, IM_END, EOS]] * len(TEXTS)


def test_prompt_rendering_text(dream_tokenizer):
    builder = InputBuilder(dream_tokenizer, DREAM_SPEC, "few", 4, 512, "query")
    assert dream_tokenizer.decode(builder.prefix_ids) == (
        f'<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nQuery: "'
    )
    assert dream_tokenizer.decode(builder.suffix_ids) == (
        '". Use a few words to represent the query in a retrieval task. Make sure your words are in lowercase.'
        '<|im_end|>\n<|im_start|>assistant\nThe words are: "'
    )
    assert builder.prefix_ids[0] == 151644 and builder.suffix_ids[-1] == SPACE_QUOTE


def test_mixed_lengths_and_truncation_touch_only_text(dream_tokenizer):
    k, max_length = 4, 60
    builder = InputBuilder(dream_tokenizer, DREAM_SPEC, "few", k, max_length, "passage")
    long_text = " ".join(f"word{i}" for i in range(200))
    batch = builder.build(["short", long_text, ""])
    prompt_len = len(builder.prefix_ids) + len(builder.suffix_ids)
    budget = max_length - prompt_len
    assert builder.text_budget == budget
    assert batch.truncated == (False, True, False)
    assert batch.n_text_tokens[1] == budget
    length = batch.input_ids.shape[1]
    assert length == max_length + k + 3  # the truncated row fills the budget exactly
    text_ids = dream_tokenizer.encode(long_text, add_special_tokens=False)
    assert batch.input_ids[1].tolist() == (
        builder.prefix_ids + text_ids[:budget] + builder.suffix_ids + [MASK] * k + [QUOTE, IM_END, EOS]
    )
    empty_row = batch.input_ids[2, batch.attention_mask[2].bool()].tolist()
    assert empty_row == builder.prefix_ids + builder.suffix_ids + [MASK] * k + [QUOTE, IM_END, EOS]
    for row in range(3):
        assert batch.input_ids[row, length - k - 3 : length - 3].eq(MASK).all()


def test_no_room_for_text_fails_loudly(dream_tokenizer):
    with pytest.raises(InputError, match="leaves no room for text"):
        InputBuilder(dream_tokenizer, DREAM_SPEC, "few", 4, 40, "query")
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k=0"),
        ({"max_length": 0}, "max_length=0"),
        ({"side": "doc"}, "side='doc'"),
    ],
)
def test_invalid_arguments(dream_tokenizer, kwargs, message):
    args = {"prompt": "few", "k": 4, "max_length": 512, "side": "query"} | kwargs
    with pytest.raises(ValueError, match=message):
        InputBuilder(dream_tokenizer, DREAM_SPEC, **args)


def test_backbone_without_mask_is_refused(dream_tokenizer):
    spec = BackboneSpec(**{**DREAM_SPEC.__dict__, "mask_token_id": None, "family": "autoregressive"})
    with pytest.raises(InputError, match="no mask token"):
        InputBuilder(dream_tokenizer, spec, "few", 4, 512, "query")


def test_tail_falls_back_to_eos_without_chat_end(dream_tokenizer):
    spec = BackboneSpec(**{**DREAM_SPEC.__dict__, "chat_end_token_id": None})
    assert InputBuilder(dream_tokenizer, spec, "few", 2, 512, "query").tail_ids == [QUOTE, EOS, EOS]
    spec = BackboneSpec(**{**DREAM_SPEC.__dict__, "chat_end_token_id": EOS})
    assert InputBuilder(dream_tokenizer, spec, "few", 2, 512, "query").tail_ids == [QUOTE, EOS, EOS]


def test_template_none(dream_tokenizer, tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("system: s\nuser_prefix: 'Q: '\nuser_suffix: ' end.'\nassistant_prefix: ' A:'\ntemplate: none\n")
    builder = InputBuilder(dream_tokenizer, DREAM_SPEC, path, 2, 100, "query")
    assert builder.prefix_ids == dream_tokenizer.encode("Q: ", add_special_tokens=False)
    assert builder.suffix_ids == dream_tokenizer.encode(" end. A:", add_special_tokens=False)


def test_titles(dream_tokenizer):
    assert join_title("Title", "Body") == "Title. Body"
    assert join_title(None, "Body") == "Body"
    assert join_title("  ", "Body") == "Body"
    assert join_title("Title", "") == "Title"
    assert join_title("Title", "Body", separator=" ") == "Title Body"
    builder = InputBuilder(dream_tokenizer, DREAM_SPEC, "few", 4, 512, "passage", title_separator=" | ")
    with_titles = builder.build(["Body"], titles=["Title"])
    plain = builder.build(["Title | Body"])
    assert torch.equal(with_titles.input_ids, plain.input_ids)
    with pytest.raises(InputError, match="2 titles for 1 texts"):
        builder.build(["Body"], titles=["a", "b"])


def test_fingerprint_tracks_layout(dream_tokenizer):
    def make(**kw):
        return InputBuilder(
            dream_tokenizer, DREAM_SPEC, **({"prompt": "few", "k": 4, "max_length": 512, "side": "query"} | kw)
        ).fingerprint()

    assert make() == make()
    assert len({make(), make(k=5), make(max_length=300), make(prompt="one"), make(side="passage")}) == 5
