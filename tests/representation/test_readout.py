"""One-pass read-out (docs/method.md §3): positions, K-row logits, stop-token truncation, denoising, padding invariance."""

from __future__ import annotations

import pytest
import torch

from pyserini_diffretriever.representation.content_words import content_token_ids
from pyserini_diffretriever.representation.inputs import EncodedBatch, InputBuilder
from pyserini_diffretriever.representation.readout import (
    ReadoutConfig,
    ReadoutError,
    commit_schedule,
    read_out,
    stop_token_ids,
    stop_truncation,
)

from .fakes import ScriptedBackbone, one_hot_logits, small_spec

V, MASK, STOP = 12, 11, 1


def scripted_batch(rows: int, length: int, k: int) -> EncodedBatch:
    """Ids ``3`` everywhere, masks at L-K-3..L-4, one pad column on the left of row 0."""
    ids = torch.full((rows, length), 3, dtype=torch.long)
    ids[:, length - k - 3 : length - 3] = MASK
    mask = torch.ones((rows, length), dtype=torch.long)
    ids[0, 0], mask[0, 0] = 0, 0
    return EncodedBatch(ids, mask, k, (1,) * rows, (False,) * rows)


def by_position(hidden: torch.Tensor) -> torch.Tensor:
    return hidden[..., 0]


@pytest.mark.parametrize("mode, offset", [("unshifted", 0), ("shifted", -1)])
def test_reads_the_k_mask_slots_and_applies_the_head_to_k_rows_only(mode, offset):
    k, length = 3, 10
    backbone = ScriptedBackbone(small_spec(), one_hot_logits(V, by_position))
    out = read_out(backbone, scripted_batch(2, length, k), config=ReadoutConfig(logits=mode), keep_logits=True)
    start = length - k - 3
    assert out.dense.shape == (2, k, 4) and out.dense.dtype == torch.float32
    for b in range(2):
        assert out.dense[b, :, 0].tolist() == [start, start + 1, start + 2]  # hidden rows L-K-3 .. L-4
        assert out.dense[b, :, 1].eq(MASK).all()
    assert out.decoded_ids.tolist() == [[start + j + offset for j in range(k)]] * 2  # logits row p (or p-1)
    assert out.logits.shape == (2, k, V)
    assert backbone.logit_shapes == [(2, k, 4)]  # never [B, L, H]
    assert out.slot_mask.all()


def test_logit_chunks_bound_memory_without_changing_results():
    k = 2
    whole = ScriptedBackbone(small_spec(), one_hot_logits(V, by_position))
    chunked = ScriptedBackbone(small_spec(), one_hot_logits(V, by_position))
    batch = scripted_batch(3, 9, k)
    a = read_out(whole, batch, keep_logits=True)
    b = read_out(chunked, batch, config=ReadoutConfig(max_logits_bytes=k * V * 4), keep_logits=True)
    assert chunked.logit_shapes == [(1, k, 4)] * 3
    assert torch.equal(a.dense, b.dense) and torch.equal(a.logits, b.logits)


def test_stop_truncation_rule():
    decoded = torch.tensor([[5, STOP, 6, 7], [STOP, 5, 6, 7], [5, 6, 7, 8], [5, 6, 7, STOP], [5, 9, STOP, STOP]])
    assert stop_truncation(decoded, {STOP, 9}).tolist() == [
        [True, False, False, False],
        [True, True, True, True],  # c == 0: the model is "confused", keep everything
        [True, True, True, True],
        [True, True, True, False],
        [True, False, False, False],  # the first stop id wins
    ]
    assert stop_truncation(decoded, frozenset()).all()


def test_stop_truncation_zeroes_dense_and_sparse_slots():
    k, length = 4, 11
    start = length - k - 3
    table = torch.tensor([[5, STOP, 6, 7], [STOP, 5, 6, 7], [5, 6, 7, 8]])

    def target(hidden):
        return table[hidden[..., 2].long(), hidden[..., 0].long() - start]

    backbone = ScriptedBackbone(small_spec(), one_hot_logits(V, target))
    content = [[5, 6, 7, 8, STOP]] * 3
    out = read_out(backbone, scripted_batch(3, length, k), stop_ids={STOP}, content_ids=content)
    assert out.slot_mask.tolist() == [[True, False, False, False], [True] * 4, [True] * 4]
    assert out.decoded_ids.tolist() == table.tolist()  # reported before truncation
    assert out.dense[0, 1:].abs().sum() == 0 and out.dense[0, 0].abs().sum() > 0
    assert out.sparse_weights[0, 1:].abs().sum() == 0
    sparse = out.sparse()
    assert set(sparse[0]) == {5}  # only slot 0 survives in row 0
    assert set(sparse[1]) == {STOP, 5, 6, 7} and set(sparse[2]) == {5, 6, 7, 8}


@pytest.mark.parametrize(
    "k, steps, counts",
    [
        (4, 1, [4]),
        (4, 2, [1, 3]),
        (8, 2, [3, 5]),
        (16, 2, [7, 9]),
        (8, 4, [1, 2, 2, 3]),
        (16, 4, [3, 4, 4, 5]),
        (4, 4, [1, 1, 1, 1]),
        (2, 4, [1, 1, 0, 0]),
    ],
)
def test_commit_schedule_matches_the_reference_table(k, steps, counts):
    assert commit_schedule(k, steps) == counts


class PassCountingBackbone(ScriptedBackbone):
    """``hidden[..., 3]`` = index of the forward pass, so captures reveal their step."""

    def hidden_states(self, input_ids, attention_mask):
        hidden = super().hidden_states(input_ids, attention_mask)
        hidden[..., 3] = len(self.forward_ids) - 1
        return hidden


def test_multi_step_denoising_commits_most_confident_first_and_captures_at_commit():
    k, length = 4, 11
    start = length - k - 3

    def logits_fn(hidden):  # argmax = position; the later the slot, the sharper (more confident) the logits
        scale = 1.0 + (hidden[..., 0] - start).clamp_min(0)
        return torch.nn.functional.one_hot(hidden[..., 0].long() % V, V).float() * scale.unsqueeze(-1)

    backbone = PassCountingBackbone(small_spec(), logits_fn)
    out = read_out(backbone, scripted_batch(2, length, k), config=ReadoutConfig(denoise_steps=2), keep_logits=True)
    assert len(backbone.forward_ids) == 2  # schedule (4, 2) -> [1, 3]
    second = backbone.forward_ids[1]
    assert second[:, start + 3].eq(start + 3).all()  # the last slot was committed first and written back
    assert second[:, start : start + 3].eq(MASK).all()
    assert out.dense[:, :, 3].tolist() == [[1.0, 1.0, 1.0, 0.0]] * 2  # captured in pass 1, 1, 1 and 0
    assert out.decoded_ids.tolist() == [[start, start + 1, start + 2, start + 3]] * 2


def test_non_finite_logits_raise():
    backbone = ScriptedBackbone(small_spec(), lambda h: torch.full((*h.shape[:-1], V), float("nan")))
    with pytest.raises(ReadoutError, match=r"non-finite slot logits in batch rows \[0, 1\]"):
        read_out(backbone, scripted_batch(2, 9, 2))


def test_shifted_logits_need_a_shifted_backbone():
    backbone = ScriptedBackbone(small_spec(logits_shifted=False), one_hot_logits(V, by_position))
    with pytest.raises(ValueError, match="logits='shifted'"):
        read_out(backbone, scripted_batch(1, 9, 2), config=ReadoutConfig(logits="shifted"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"logits": "left"},
        {"denoise_steps": 0},
        {"sparse_top_k": 0},
        {"quantization": 0},
        {"rounding": "floor"},
        {"max_logits_bytes": 0},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ReadoutConfig(**kwargs)


# --- end to end on the tiny checkpoints --------------------------------------------------------------

SHORT = "Photosynthesis converts light into chemical energy."
LONGER = [
    "Volcanic eruptions inject sulfate aerosols into the stratosphere and cool the climate for years. " * 4,
    "Diffusion language models predict all masked tokens of a sequence in parallel. " * 2,
]


def encode(loaded, texts, k=4, **config):
    tok, spec = loaded.tokenizer, loaded.spec
    builder = InputBuilder(tok, spec, "few", k, 256, "passage")
    return read_out(
        loaded.model,
        builder.build(texts),
        config=ReadoutConfig(**config),
        stop_ids=stop_token_ids(tok, spec.mask_token_id),
        content_ids=content_token_ids(texts, tok),
    )


@pytest.mark.parametrize("family", ["dream", "llada"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_padding_invariance(tiny_backbones, family, dtype):
    loaded = tiny_backbones(family, dtype)
    alone = encode(loaded, [SHORT])
    batched = encode(loaded, LONGER + [SHORT])
    assert batched.dense.dtype == torch.float32
    diff = (alone.dense[0] - batched.dense[2]).abs().max().item()
    if dtype == "float32":
        assert diff < 1e-5
        assert alone.sparse()[0] == batched.sparse()[2]
        assert torch.equal(alone.decoded_ids[0], batched.decoded_ids[2])
    else:  # bf16 kernels may round differently with padding present; the states must stay close
        assert diff < 0.05 * alone.dense[0].abs().max().item()
        a, b = alone.sparse()[0], batched.sparse()[2]
        assert all(abs(a.get(t, 0) - b.get(t, 0)) <= 2 for t in set(a) | set(b))  # +-1 ulp-level flips only
        assert set(b) <= set(content_token_ids([SHORT], loaded.tokenizer)[0])


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_k_row_head_equals_the_naive_full_logits(tiny_backbones, family, monkeypatch):
    """The K-row read-out gives what the reference's [B, L, V] computation + masked top-128 gives."""
    loaded = tiny_backbones(family)
    model, tok, spec = loaded.model, loaded.tokenizer, loaded.spec
    texts = LONGER + [SHORT]
    k = 4
    builder = InputBuilder(tok, spec, "few", k, 256, "passage")
    batch = builder.build(texts)
    shapes = []
    original = model.vocab_logits

    def recording(hidden):
        shapes.append(tuple(hidden.shape))
        return original(hidden)

    monkeypatch.setattr(model, "vocab_logits", recording)
    content = content_token_ids(texts, tok)
    out = read_out(model, batch, stop_ids=frozenset(), content_ids=content, keep_logits=True)
    assert all(shape[1] == k for shape in shapes)  # the head only ever sees [rows, K, H]

    with torch.no_grad():  # the reference's way: full logits, mask over V, top-128, int(100 v), max-pool
        full = original(model.hidden_states(batch.input_ids, batch.attention_mask)).float()
    start = batch.mask_start
    naive = full[:, start : start + k]
    torch.testing.assert_close(out.logits, naive, rtol=1e-5, atol=1e-5)
    for row, allowed in enumerate(content):
        keep = torch.zeros(naive.shape[-1])
        keep[allowed] = 1.0
        keep[spec.mask_token_id] = 0.0
        acts = torch.log(1 + torch.relu(naive[row] * keep))
        values, ids = acts.topk(128, dim=-1)
        expected: dict[int, int] = {}
        for i, v in zip(ids.flatten().tolist(), (values * 100).int().flatten().tolist()):
            if v > 0:
                expected[i] = max(expected.get(i, 0), v)
        assert out.sparse()[row] == expected
