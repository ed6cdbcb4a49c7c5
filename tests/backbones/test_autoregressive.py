"""Autoregressive backbones (Qwen2 / Llama): loading, spec, causal attention, padding, the cached forward."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from pyserini_diffretriever.backbones import Backbone, BackboneLoadError, LoadedBackbone, load_backbone
from pyserini_diffretriever.fixtures import write_tiny_llama, write_tiny_qwen2


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory):
    return write_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2") / "model")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="module")
def backbones(qwen2_dir, llama_dir) -> dict[str, LoadedBackbone]:
    return {"qwen2": load_backbone(qwen2_dir), "llama": load_backbone(llama_dir)}


def _pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.tensor(row)
        mask[i, length - len(row) :] = 1
    return ids, mask


def _rows(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(10, 5000, (n,), generator=gen).tolist() for n in lengths]


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_contract_and_spec(backbones, which):
    lb = backbones[which]
    assert isinstance(lb.model, Backbone) and lb.model.spec is lb.spec
    assert not lb.model.training and not any(p.requires_grad for p in lb.model.parameters())
    assert lb.tokenizer.padding_side == "left"
    assert lb.spec.family == "autoregressive" and lb.spec.mask_token_id is None
    assert lb.spec.logits_shifted is True  # a causal LM's logits at i predict token i+1
    assert lb.spec.hidden_size == 64
    assert lb.spec.vocab_size == lb.model.vocab_logits(torch.zeros(1, 64)).shape[-1]


def test_spec_ids_are_the_released_models(backbones):
    """Qwen2.5-Instruct: eos <|im_end|>, pad <|endoftext|>; Llama-3-Instruct: eos <|eot_id|>, no pad -> eos."""
    q, llama = backbones["qwen2"].spec, backbones["llama"].spec
    assert (q.model_type, q.eos_token_id, q.pad_token_id, q.chat_end_token_id, q.vocab_size) == (
        "qwen2",
        151645,
        151643,
        151645,
        152064,
    )
    assert (llama.model_type, llama.eos_token_id, llama.pad_token_id, llama.chat_end_token_id, llama.vocab_size) == (
        "llama",
        128009,
        128009,
        128009,
        128256,
    )


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_attention_is_causal(backbones, which):
    model = backbones[which].model
    row = _rows([12])[0]
    ids = torch.tensor([row])
    changed = ids.clone()
    changed[0, -1] = 4242
    mask = torch.ones_like(ids)
    a, b = model.hidden_states(ids, mask), model.hidden_states(changed, mask)
    assert torch.equal(a[0, :-1], b[0, :-1])  # earlier states ignore a later token
    assert not torch.allclose(a[0, -1], b[0, -1])


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_left_padding_does_not_change_a_text(backbones, which):
    lb = backbones[which]
    rows = _rows([3, 11, 7], seed=1)
    ids, mask = _pad(rows, lb.spec.pad_token_id)
    batch = lb.model.hidden_states(ids, mask)
    for i, row in enumerate(rows):
        alone = lb.model.hidden_states(torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long))
        torch.testing.assert_close(batch[i, -len(row) :], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_cached_forward_continues_the_prompt(backbones, which):
    """A prompt pass + one cached token equals one uncached pass over both, for left-padded rows."""
    lb = backbones[which]
    rows = _rows([4, 9], seed=2)
    ids, mask = _pad(rows, lb.spec.pad_token_id)
    hidden, cache = lb.model.causal_forward(ids, mask)
    torch.testing.assert_close(hidden, lb.model.hidden_states(ids, mask), atol=1e-5, rtol=1e-5)
    new = torch.tensor([[77], [88]])
    grown = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
    step, cache = lb.model.causal_forward(new, grown, cache)
    assert step.shape == (2, 1, 64) and cache.get_seq_length() == ids.shape[1] + 1
    for i, row in enumerate(rows):
        full = torch.tensor([row + [int(new[i, 0])]])
        again = lb.model.hidden_states(full, torch.ones_like(full))
        torch.testing.assert_close(step[i, 0], again[0, -1], atol=1e-5, rtol=1e-5)


def test_cached_forward_checks_the_mask_length(backbones):
    model = backbones["qwen2"].model
    ids = torch.tensor([[11, 12, 13]])
    _, cache = model.causal_forward(ids, torch.ones_like(ids))
    with pytest.raises(ValueError, match="cache holds 3"):
        model.causal_forward(torch.tensor([[5]]), torch.ones(1, 3, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="at least one real token"):
        model.hidden_states(ids, torch.zeros_like(ids))


def test_loads_in_bfloat16(qwen2_dir):
    lb = load_backbone(qwen2_dir, dtype="bfloat16")
    assert lb.dtype == torch.bfloat16
    out = lb.model.hidden_states(torch.tensor([[11, 12]]), torch.ones(1, 2, dtype=torch.long))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_tied_checkpoint_shares_the_embedding(tmp_path):
    """Small Qwen2.5 / Llama-3.2 checkpoints tie the head to the embedding and store no lm_head.weight."""
    folder = write_tiny_qwen2(tmp_path / "tied", num_layers=1)
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["lm_head.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    lb = load_backbone(folder)
    assert lb.model.lm_head.weight is lb.model.model.embed_tokens.weight
    h = torch.randn(2, 64)
    torch.testing.assert_close(lb.model.vocab_logits(h), h @ tensors["model.embed_tokens.weight"].float().T)


def test_sliding_window_is_refused(tmp_path):
    folder = write_tiny_qwen2(tmp_path / "sw", num_layers=1)
    config = json.loads((folder / "config.json").read_text())
    config["use_sliding_window"] = True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackboneLoadError, match="use_sliding_window"):
        load_backbone(folder)


def test_missing_tensor_is_reported(tmp_path):
    folder = write_tiny_llama(tmp_path / "broken", num_layers=1)
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["model.layers.0.self_attn.k_proj.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BackboneLoadError, match="k_proj"):
        load_backbone(folder)
