"""Dream hosted in transformers' Qwen2 modules: weights, bidirectionality, padding, reference agreement."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyserini_diffretriever
from pyserini_diffretriever.backbones import BackboneLoadError, load_backbone
from pyserini_diffretriever.backbones.dream import DreamBackbone, qwen2_config
from pyserini_diffretriever.backbones.loading import read_json

REAL_CONFIG = Path(pyserini_diffretriever.__file__).parent / "resources" / "dream" / "config.json"


def test_parameter_names_are_the_checkpoint_names(dream_fp32, tiny_dream_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_dream_dir / "model.safetensors"), "pt") as fh:
        names = set(fh.keys())
    assert set(dict(dream_fp32.model.named_parameters())) == names
    assert isinstance(dream_fp32.model, DreamBackbone)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loads_in_dtype_and_runs(tiny_dream_dir, dtype, make_batch, rows):
    lb = load_backbone(tiny_dream_dir, dtype=dtype)
    want = getattr(torch, dtype)
    assert {p.dtype for p in lb.model.parameters()} == {want}
    assert lb.dtype == want and lb.device == torch.device("cpu")
    ids, mask = make_batch(rows([5, 9], seed=1), lb.spec.pad_token_id)
    with torch.no_grad():
        h = lb.model.hidden_states(ids, mask)
    assert h.shape == (2, 9, lb.spec.hidden_size) and h.dtype == want
    assert torch.isfinite(h).all()


def test_rotary_buffer_is_real_fp32(dream_fp32):
    inv_freq = dream_fp32.model.model.rotary_emb.inv_freq
    assert not inv_freq.is_meta and inv_freq.dtype == torch.float32
    assert all(not layer.self_attn.is_causal for layer in dream_fp32.model.model.layers)


def test_matches_independent_reference_without_padding(dream_fp32, tiny_dream_dir, make_batch, rows, reference):
    ids, mask = make_batch(rows([10, 10], seed=2), dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        got = dream_fp32.model.hidden_states(ids, mask)
    assert (got - reference(tiny_dream_dir, ids, mask)).abs().max().item() < 1e-5


def test_matches_independent_reference_with_left_padding(dream_fp32, tiny_dream_dir, make_batch, rows, reference):
    ids, mask = make_batch(rows([2, 12, 6], seed=3), dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        got = dream_fp32.model.hidden_states(ids, mask)
    want = reference(tiny_dream_dir, ids, mask)
    assert (got - want)[mask.bool()].abs().max().item() < 1e-5


def test_padding_invariance(dream_fp32, make_batch, rows):
    texts = rows([4, 13, 8], seed=4)
    ids, mask = make_batch(texts, dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        batch = dream_fp32.model.hidden_states(ids, mask)
        for i, text in enumerate(texts):
            alone = dream_fp32.model.hidden_states(torch.tensor([text]), torch.ones(1, len(text), dtype=torch.long))
            assert (batch[i, -len(text) :] - alone[0]).abs().max().item() < 1e-5


def test_bidirectional_last_token_changes_first_position(dream_fp32, rows):
    text = rows([10], seed=5)[0]
    ids = torch.tensor([text, text[:-1] + [text[-1] + 1]])
    with torch.no_grad():
        h = dream_fp32.model.hidden_states(ids, torch.ones_like(ids))
    assert (h[0, 0] - h[1, 0]).abs().max().item() > 1e-4


def test_bidirectional_with_padding_too(dream_fp32, make_batch, rows):
    text = rows([8], seed=11)[0]
    ids, mask = make_batch([text, text[:-1] + [text[-1] + 1], [5] * 12], dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        h = dream_fp32.model.hidden_states(ids, mask)
    first = ids.shape[1] - len(text)
    assert (h[0, first] - h[1, first]).abs().max().item() > 1e-4


def test_vocab_logits_on_rows_equals_full_head(dream_fp32, make_batch, rows):
    ids, mask = make_batch(rows([6, 9], seed=7), dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        h = dream_fp32.model.hidden_states(ids, mask)
        got = dream_fp32.model.vocab_logits(h[:, -3:])
        want = h @ dream_fp32.model.state_dict()["lm_head.weight"].T
    assert got.shape == (2, 3, dream_fp32.spec.vocab_size)
    assert torch.allclose(got, want[:, -3:], atol=1e-5, rtol=0)


def test_eager_attention_agrees_with_sdpa(tiny_dream_dir, dream_fp32, make_batch, rows):
    eager = load_backbone(tiny_dream_dir, attn_implementation="eager")
    ids, mask = make_batch(rows([5, 10], seed=8), dream_fp32.spec.pad_token_id)
    with torch.no_grad():
        a = eager.model.hidden_states(ids, mask)
        b = dream_fp32.model.hidden_states(ids, mask)
    assert (a - b)[mask.bool()].abs().max().item() < 1e-5


def test_unknown_attention_implementation_is_refused(tiny_dream_dir):
    with pytest.raises(ValueError, match="flash_attention_2"):
        load_backbone(tiny_dream_dir, attn_implementation="flash_attention_2")


def test_qwen2_config_from_the_real_dream_config():
    cfg = qwen2_config(read_json(REAL_CONFIG))
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        3584,
        28,
        28,
        4,
    )
    assert cfg.rope_parameters["rope_theta"] == 1e6 and cfg.rms_norm_eps == 1e-6
    assert set(cfg.layer_types) == {"full_attention"}
    with torch.device("meta"):
        model = DreamBackbone(cfg)
    index = read_json(REAL_CONFIG.parent / "model.safetensors.index.json")
    assert set(model.state_dict()) == set(index["weight_map"])  # the real 339 names, exactly


def test_sliding_window_config_is_refused():
    cfg = read_json(REAL_CONFIG) | {"use_sliding_window": True}
    with pytest.raises(BackboneLoadError, match="sliding"):
        qwen2_config(cfg)


def test_tokenizer_and_special_ids(dream_fp32, tiny_dream_dir):
    tok, spec = dream_fp32.tokenizer, dream_fp32.spec
    config = read_json(tiny_dream_dir / "config.json")
    assert tok.padding_side == "left"
    assert spec.mask_token_id == config["mask_token_id"] and tok.convert_ids_to_tokens(spec.mask_token_id) == "<|mask|>"
    assert tok.convert_ids_to_tokens(spec.chat_end_token_id) == "<|im_end|>"
    assert spec.eos_token_id == tok.eos_token_id and tok.convert_ids_to_tokens(spec.eos_token_id) == "<|endoftext|>"
    assert spec.pad_token_id == tok.pad_token_id != spec.mask_token_id
    assert spec.logits_shifted is True and spec.family == "diffusion"
    assert tok("Hello world")["input_ids"] == [9707, 1879]  # backbones.md §1.4, DreamTokenizer docstring
