"""The backbone registry and the load_backbone contract shared by all families."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pyserini_diffretriever.backbones import (
    BACKBONES,
    Backbone,
    LoadedBackbone,
    UnsupportedBackboneError,
    get_family,
    load_backbone,
)


def test_registry_is_keyed_by_config_model_type(tiny_dream_dir, tiny_llada_dir):
    assert set(BACKBONES) == {"Dream", "llada", "qwen2", "llama"}
    for model_dir in (tiny_dream_dir, tiny_llada_dir):
        model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
        assert get_family(model_type) is BACKBONES[model_type]


@pytest.mark.parametrize("name,want", [("dream", "Dream"), ("DREAM", "Dream"), ("LLaDA", "llada")])
def test_case_insensitive_lookup(name, want):
    assert get_family(name).model_type == want


@pytest.mark.parametrize("name", ["mistral", None, "dreamx"])
def test_unknown_model_type_lists_supported(name):
    with pytest.raises(UnsupportedBackboneError) as err:
        get_family(name)
    assert "Dream" in str(err.value) and "llada" in str(err.value)


def test_unknown_model_type_in_checkpoint(tmp_path, tiny_llada_dir):
    model_dir = shutil.copytree(tiny_llada_dir, tmp_path / "m")
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["model_type"] = "mistral"
    (model_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedBackboneError, match="'mistral'"):
        load_backbone(model_dir)


@pytest.mark.parametrize("which", ["dream", "llada"])
def test_loaded_backbone_contract(which, dream_fp32, llada_fp32):
    lb = dream_fp32 if which == "dream" else llada_fp32
    assert isinstance(lb, LoadedBackbone)
    assert isinstance(lb.model, Backbone) and lb.model.spec is lb.spec
    assert not lb.model.training
    assert not any(p.requires_grad for p in lb.model.parameters())
    assert lb.tokenizer.padding_side == "left"
    assert lb.spec.family == "diffusion" and lb.spec.adapter is None
    assert lb.spec.pad_token_id != lb.spec.mask_token_id
    assert lb.spec.hidden_size == 64
    assert lb.spec.vocab_size == lb.model.vocab_logits(torch.zeros(1, 64)).shape[-1]


def _ids(spec):
    fields = ("model_type", "mask_token_id", "chat_end_token_id", "eos_token_id", "pad_token_id")
    return tuple(getattr(spec, f) for f in fields) + (spec.logits_shifted,)


def test_spec_ids_match_the_released_models(dream_fp32, llada_fp32):
    """The ids backbones.md §1.4 / §2.4 lists for the real tokenizers (the fixtures ship the same tables)."""
    assert _ids(dream_fp32.spec) == ("Dream", 151666, 151645, 151643, 151643, True)
    assert _ids(llada_fp32.spec) == ("llada", 126336, 126348, 126081, 126081, False)


def test_name_or_path_is_recorded(tiny_llada_dir):
    lb = load_backbone(str(tiny_llada_dir))
    assert lb.spec.name_or_path == str(tiny_llada_dir) and lb.spec.revision is None


def test_needs_a_model_or_an_adapter():
    with pytest.raises(ValueError, match="name_or_path"):
        load_backbone(None)


def test_registry_entries_hold_k_stop_set_and_lora_targets_only():
    import dataclasses

    from pyserini_diffretriever.backbones import BackboneFamily

    fields = {field.name for field in dataclasses.fields(BackboneFamily)}
    assert fields == {
        "model_type",
        "build_model",
        "load_tokenizer",
        "make_spec",
        "default_k",
        "stop_set",
        "lora_targets",
        "lora_task_type",
    }
    assert (
        BACKBONES["Dream"].lora_targets[-1] == "down_proj" and BACKBONES["Dream"].lora_task_type == "FEATURE_EXTRACTION"
    )
    assert "ff_out" in BACKBONES["llada"].lora_targets and BACKBONES["llada"].lora_task_type == "CAUSAL_LM"


def test_resolve_k_given_then_adapter_then_registry():
    from pyserini_diffretriever.backbones import BackboneSpec, default_k, resolve_k

    spec = BackboneSpec("Dream", "diffusion", 9, 1, 2, None, 8, 16, True, "m")
    assert (
        (resolve_k(spec, "query"), resolve_k(spec, "passage"))
        == (4, 16)
        == (
            default_k("Dream", "query"),
            default_k("dream", "passage"),
        )
    )
    trained = BackboneSpec(
        "Dream", "diffusion", 9, 1, 2, None, 8, 16, True, "m", extra={"adapter_k": {"query": 1, "passage": 1}}
    )
    assert (resolve_k(trained, "query"), resolve_k(trained, "passage"), resolve_k(trained, "query", 3)) == (1, 1, 3)
    with pytest.raises(ValueError, match="no default K for backbone model_type 'mistral'"):
        default_k("mistral", "query")
    with pytest.raises(ValueError, match="side='doc'"):
        default_k("Dream", "doc")
