"""Native LLaDA module: weights, bidirectionality, padding invariance, from-formula reference agreement."""

from __future__ import annotations

import json

import pytest
import torch

from pyserini_diffretriever.backbones import BackboneLoadError, load_backbone
from pyserini_diffretriever.backbones.llada import LLaDABackbone, LLaDAConfig
from pyserini_diffretriever.fixtures import write_tiny_llada


def test_parameter_names_are_the_checkpoint_names(llada_fp32, tiny_llada_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_llada_dir / "model.safetensors"), "pt") as fh:
        names = set(fh.keys())
    assert set(dict(llada_fp32.model.named_parameters())) == names
    assert "model.transformer.ff_out.weight" in names and "model.transformer.blocks.1.ff_out.weight" in names


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loads_in_dtype_and_runs(tiny_llada_dir, dtype, make_batch, rows):
    lb = load_backbone(tiny_llada_dir, dtype=dtype)
    assert {p.dtype for p in lb.model.parameters()} == {dtype}
    ids, mask = make_batch(rows([5, 9], seed=1), lb.spec.pad_token_id)
    with torch.no_grad():
        h = lb.model.hidden_states(ids, mask)
    assert h.shape == (2, 9, lb.spec.hidden_size) and h.dtype == dtype
    assert torch.isfinite(h).all()


def test_weights_equal_the_checkpoint_cast_to_dtype(llada_fp32, tiny_llada_dir):
    from safetensors.torch import load_file

    sd = load_file(str(tiny_llada_dir / "model.safetensors"))
    got = llada_fp32.model.state_dict()
    for name, tensor in sd.items():
        assert torch.equal(got[name], tensor.float()), name


def test_matches_independent_reference_without_padding(llada_fp32, tiny_llada_dir, make_batch, rows, reference):
    ids, mask = make_batch(rows([12, 12], seed=2), llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        got = llada_fp32.model.hidden_states(ids, mask)
    want = reference(tiny_llada_dir, ids, mask)
    assert (got - want).abs().max().item() < 1e-5


def test_matches_independent_reference_with_left_padding(llada_fp32, tiny_llada_dir, make_batch, rows, reference):
    ids, mask = make_batch(rows([3, 11, 7], seed=3), llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        got = llada_fp32.model.hidden_states(ids, mask)
    want = reference(tiny_llada_dir, ids, mask)
    real = mask.bool()
    assert (got[real] - want[real]).abs().max().item() < 1e-5


def test_padding_invariance(llada_fp32, make_batch, rows):
    texts = rows([4, 13, 8], seed=4)
    ids, mask = make_batch(texts, llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        batch = llada_fp32.model.hidden_states(ids, mask)
        for i, text in enumerate(texts):
            alone = llada_fp32.model.hidden_states(torch.tensor([text]), torch.ones(1, len(text), dtype=torch.long))
            assert (batch[i, -len(text) :] - alone[0]).abs().max().item() < 1e-5


def test_bidirectional_last_token_changes_first_position(llada_fp32, rows):
    text = rows([10], seed=5)[0]
    ids = torch.tensor([text, text[:-1] + [text[-1] + 1]])
    with torch.no_grad():
        h = llada_fp32.model.hidden_states(ids, torch.ones_like(ids))
    assert (h[0, 0] - h[1, 0]).abs().max().item() > 1e-4


def test_pad_token_value_does_not_matter(llada_fp32, make_batch, rows):
    ids, mask = make_batch(rows([3, 9], seed=6), llada_fp32.spec.pad_token_id)
    other = ids.masked_fill(mask == 0, 7)
    with torch.no_grad():
        a = llada_fp32.model.hidden_states(ids, mask)
        b = llada_fp32.model.hidden_states(other, mask)
    assert torch.equal(a[mask.bool()], b[mask.bool()])


def test_vocab_logits_on_rows_equals_full_head(llada_fp32, make_batch, rows):
    ids, mask = make_batch(rows([6, 9], seed=7), llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        h = llada_fp32.model.hidden_states(ids, mask)
        rows_k = h[:, -3:]
        got = llada_fp32.model.vocab_logits(rows_k)
        head = llada_fp32.model.state_dict()["model.transformer.ff_out.weight"]
        want = h @ head.T
    assert got.shape == (2, 3, llada_fp32.spec.vocab_size)
    assert torch.allclose(got, want[:, -3:], atol=1e-5, rtol=0)


def test_eager_attention_agrees_with_sdpa(tiny_llada_dir, llada_fp32, make_batch, rows):
    eager = load_backbone(tiny_llada_dir, attn_implementation="eager")
    ids, mask = make_batch(rows([5, 10], seed=8), llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        a = eager.model.hidden_states(ids, mask)
        b = llada_fp32.model.hidden_states(ids, mask)
    assert (a - b)[mask.bool()].abs().max().item() < 1e-5


def test_grouped_query_attention_matches_reference(tmp_path, make_batch, rows, reference):
    model_dir = write_tiny_llada(tmp_path / "gqa", n_heads=4, n_kv_heads=2, dtype=torch.float32)
    lb = load_backbone(model_dir)
    ids, mask = make_batch(rows([4, 9], seed=9), lb.spec.pad_token_id)
    with torch.no_grad():
        got = lb.model.hidden_states(ids, mask)
    want = reference(model_dir, ids, mask)
    assert (got - want)[mask.bool()].abs().max().item() < 1e-5


def test_bf16_is_close_to_fp32(tiny_llada_dir, llada_fp32, make_batch, rows):
    lb = load_backbone(tiny_llada_dir, dtype="bfloat16")
    ids, mask = make_batch(rows([5, 9], seed=10), llada_fp32.spec.pad_token_id)
    with torch.no_grad():
        a = lb.model.hidden_states(ids, mask).float()
        b = llada_fp32.model.hidden_states(ids, mask)
    cos = torch.nn.functional.cosine_similarity(a[mask.bool()], b[mask.bool()], dim=-1)
    assert cos.min().item() > 0.99


def test_rejects_a_row_without_real_tokens(llada_fp32):
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="at least one real token"):
        llada_fp32.model.hidden_states(ids, torch.tensor([[1, 1, 1], [0, 0, 0]]))


def test_config_from_dict_reads_the_real_config():
    from pathlib import Path

    import pyserini_diffretriever
    from pyserini_diffretriever.backbones.loading import read_json

    real = read_json(Path(pyserini_diffretriever.__file__).parent / "resources" / "llada" / "config.json")
    cfg = LLaDAConfig.from_dict(real)
    assert (cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.n_layers) == (4096, 32, 32, 32)
    assert (cfg.mlp_hidden_size, cfg.embedding_size, cfg.head_dim) == (12288, 126464, 128)
    assert cfg.rope_theta == 500000.0 and cfg.rms_norm_eps == 1e-5 and not cfg.include_bias
    with torch.device("meta"):
        model = LLaDABackbone(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params - 8.02e9) < 0.01e9  # backbones.md §2.2: about 8.02B parameters


@pytest.mark.parametrize("key,value", [("alibi", True), ("block_type", "sequential"), ("weight_tying", True)])
def test_unsupported_config_options_are_refused(tmp_path, tiny_llada_dir, key, value):
    cfg = json.loads((tiny_llada_dir / "config.json").read_text())
    cfg[key] = value
    with pytest.raises(BackboneLoadError, match=key):
        LLaDAConfig.from_dict(cfg)


def test_tokenizer_is_left_padding_with_distinct_pad_and_mask(llada_fp32):
    tok, spec = llada_fp32.tokenizer, llada_fp32.spec
    assert tok.padding_side == "left"
    assert spec.pad_token_id == tok.pad_token_id == tok.eos_token_id
    assert spec.pad_token_id != spec.mask_token_id
    assert tok.convert_ids_to_tokens(spec.mask_token_id) == "<|mdm_mask|>"
    assert tok.convert_ids_to_tokens(spec.chat_end_token_id) == "<|eot_id|>"
