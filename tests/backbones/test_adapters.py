"""LoRA adapters: attach with PEFT, merge, and keep the Backbone contract (docs/method.md §8.2, §11 item 3).

Synthetic adapters have the released shape (r=16, alpha=64, dropout 0.05, the reference target lists,
task types FEATURE_EXTRACTION / CAUSAL_LM in adapter_config.json) with non-zero B matrices, built with
``peft.get_peft_model`` on the native module and saved with ``save_pretrained``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pyserini_diffretriever.backbones import AdapterError, load_backbone
from pyserini_diffretriever.backbones.adapters import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    RETRIEVER_CONFIG_FILE,
    default_base_model,
    read_adapter,
)

TARGETS = {
    "dream": (
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "FEATURE_EXTRACTION",
    ),
    "llada": (["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"], "CAUSAL_LM"),
}


@dataclass
class Adapter:
    """A saved synthetic adapter plus the reference outputs of the unmerged PeftModel."""

    base_dir: Path
    path: Path
    ids: torch.Tensor
    mask: torch.Tensor
    peft_hidden: torch.Tensor
    peft_logits: torch.Tensor
    base_hidden: torch.Tensor


def _ids(pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 5000, (3, 11), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :6] = 0
    mask[2, :2] = 0
    return ids.masked_fill(mask == 0, pad_id), mask


def _write_adapter(base_dir: Path, out: Path, family: str) -> Adapter:
    from peft import LoraConfig, get_peft_model

    targets, task_type = TARGETS[family]
    lb = load_backbone(base_dir)  # a fresh module: peft injects layers in place
    ids, mask = _ids(lb.spec.pad_token_id)
    with torch.no_grad():
        base_hidden = lb.model.hidden_states(ids, mask)
    torch.manual_seed(1)
    config = LoraConfig(
        r=16, lora_alpha=64, lora_dropout=0.05, target_modules=targets, bias="none", init_lora_weights=False
    )
    with warnings.catch_warnings():  # peft probes transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(lb.model, config)
    peft_model.eval()
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # peft's non-identity init is large for width 64; keep the update moderate
                param.mul_(0.2)
        inner = peft_model.get_base_model()  # the native module with live (unmerged) LoRA layers
        peft_hidden = inner.hidden_states(ids, mask)
        peft_logits = inner.vocab_logits(peft_hidden[:, -3:])
    peft_model.save_pretrained(str(out))
    cfg = json.loads((out / ADAPTER_CONFIG_FILE).read_text())
    cfg["task_type"] = task_type  # as in the released adapters
    cfg["base_model_name_or_path"] = None
    (out / ADAPTER_CONFIG_FILE).write_text(json.dumps(cfg))
    return Adapter(base_dir, out, ids, mask, peft_hidden, peft_logits, base_hidden)


@pytest.fixture(scope="module")
def dream_adapter(tiny_dream_dir, tmp_path_factory) -> Adapter:
    return _write_adapter(tiny_dream_dir, tmp_path_factory.mktemp("dream-lora"), "dream")


@pytest.fixture(scope="module")
def llada_adapter(tiny_llada_dir, tmp_path_factory) -> Adapter:
    return _write_adapter(tiny_llada_dir, tmp_path_factory.mktemp("llada-lora"), "llada")


@pytest.fixture(params=["dream", "llada"])
def adapter(request) -> Adapter:
    return request.getfixturevalue(f"{request.param}_adapter")


def _copy_adapter(adapter: Adapter, dst: Path) -> Path:
    return Path(shutil.copytree(adapter.path, dst))


def _edit_adapter_config(path: Path, **changes) -> None:
    cfg = json.loads((path / ADAPTER_CONFIG_FILE).read_text())
    cfg.update(changes)
    (path / ADAPTER_CONFIG_FILE).write_text(json.dumps(cfg))


def _hidden(lb, adapter: Adapter) -> torch.Tensor:
    with torch.no_grad():
        return lb.model.hidden_states(adapter.ids, adapter.mask)


def test_adapter_has_the_released_layout(adapter):
    cfg = json.loads((adapter.path / ADAPTER_CONFIG_FILE).read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["peft_type"]) == (16, 64, "LORA")
    keys = load_file(str(adapter.path / ADAPTER_WEIGHTS_FILE))
    assert all(k.startswith("base_model.model.model.") for k in keys)
    assert any(v.abs().max() > 0 for k, v in keys.items() if "lora_B" in k)


def test_merged_adapter_equals_unmerged_peft_model(adapter):
    lb = load_backbone(adapter.base_dir, adapter=str(adapter.path))
    real = adapter.mask.bool()
    merged = _hidden(lb, adapter)
    assert merged.shape[-1] == lb.spec.hidden_size == 64  # hidden states, not logits, after merging
    assert (merged - adapter.peft_hidden)[real].abs().max().item() < 1e-5
    assert (merged - adapter.base_hidden)[real].abs().max().item() > 1e-2  # the adapter does something
    with torch.no_grad():
        logits = lb.model.vocab_logits(merged[:, -3:])
    assert torch.allclose(logits, adapter.peft_logits, atol=1e-4, rtol=1e-5)


def test_merged_module_is_the_plain_native_class(adapter):
    base = load_backbone(adapter.base_dir)
    lb = load_backbone(adapter.base_dir, adapter=str(adapter.path))
    assert type(lb.model) is type(base.model)
    assert not any("lora" in name for name, _ in lb.model.named_modules())
    assert set(lb.model.state_dict()) == set(base.model.state_dict())
    assert lb.spec.adapter == str(adapter.path)
    assert (lb.spec.extra["adapter_r"], lb.spec.extra["adapter_alpha"], lb.spec.extra["adapter_merged"]) == (
        16,
        64,
        True,
    )
    assert not any(p.requires_grad for p in lb.model.parameters()) and not lb.model.training


def test_llada_ff_out_target_also_adapts_the_lm_head(llada_adapter):
    keys = load_file(str(llada_adapter.path / ADAPTER_WEIGHTS_FILE))
    assert "base_model.model.model.transformer.ff_out.lora_B.weight" in keys  # PEFT suffix-matches the LM head
    base = load_backbone(llada_adapter.base_dir).model.state_dict()["model.transformer.ff_out.weight"]
    merged = load_backbone(llada_adapter.base_dir, adapter=str(llada_adapter.path)).model.state_dict()
    assert not torch.allclose(merged["model.transformer.ff_out.weight"], base)


def test_bf16_base_with_adapter_is_close(dream_adapter):
    lb = load_backbone(dream_adapter.base_dir, dtype="bfloat16", adapter=str(dream_adapter.path))
    assert {p.dtype for p in lb.model.parameters()} == {torch.bfloat16}
    h = _hidden(lb, dream_adapter).float()
    real = dream_adapter.mask.bool()
    cos = torch.nn.functional.cosine_similarity(h[real], dream_adapter.peft_hidden[real], dim=-1)
    assert cos.min().item() > 0.98


def test_released_layout_picks_base_from_adapter_config(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "released")
    _edit_adapter_config(path, base_model_name_or_path=str(dream_adapter.base_dir))
    want = _hidden(load_backbone(dream_adapter.base_dir, adapter=str(path)), dream_adapter)
    for lb in (load_backbone(path), load_backbone(None, adapter=str(path))):
        assert lb.spec.name_or_path == str(dream_adapter.base_dir) and lb.spec.adapter == str(path)
        assert torch.equal(_hidden(lb, dream_adapter), want)


def test_loading_a_dream_adapter_prints_no_model_type_warning(dream_adapter, tmp_path, capfd, caplog):
    """transformers' "model of type `Dream` to instantiate a model of type `qwen2`" reads as a broken model."""
    from transformers.utils import logging as hf_logging

    path = _copy_adapter(dream_adapter, tmp_path / "named-base")
    _edit_adapter_config(path, base_model_name_or_path=str(dream_adapter.base_dir))  # what peft probes
    hf_logging.enable_propagation()  # transformers' records reach caplog too, not only its stderr handler
    try:
        with caplog.at_level("WARNING"):
            load_backbone(dream_adapter.base_dir, adapter=str(path))
    finally:
        hf_logging.disable_propagation()
    printed = capfd.readouterr()
    assert "You are using a model of type" not in printed.err + printed.out
    assert "You are using a model of type" not in caplog.text


def test_released_layout_with_a_remote_code_config_is_still_an_adapter(dream_adapter, tmp_path):
    """Released repos load with AutoModel + remote code, so they may carry a config.json but no weights."""
    path = _copy_adapter(dream_adapter, tmp_path / "released")
    _edit_adapter_config(path, base_model_name_or_path=str(dream_adapter.base_dir))
    remote = {"model_type": "diffretriever", "auto_map": {"AutoModel": "modeling_diffretriever.Retriever"}}
    (path / "config.json").write_text(json.dumps(remote))
    lb = load_backbone(path)
    assert lb.spec.model_type == "Dream" and lb.spec.adapter == str(path)


def test_adapter_without_any_base_is_a_clear_error(dream_adapter):
    with pytest.raises(AdapterError, match="names no base model"):
        load_backbone(None, adapter=str(dream_adapter.path))


@pytest.mark.parametrize(
    "model_type,hub_id",
    [
        ("dream", "Dream-org/Dream-v0-Instruct-7B"),
        ("llada1", "GSAI-ML/LLaDA-8B-Instruct"),
        ("LLaDA", "GSAI-ML/LLaDA-8B-Instruct"),
    ],
)
def test_retriever_config_model_type_picks_the_hub_base(dream_adapter, tmp_path, model_type, hub_id):
    path = _copy_adapter(dream_adapter, tmp_path / "released")
    _edit_adapter_config(path, base_model_name_or_path="/scratch/cluster/path/that/does/not/exist")
    (path / RETRIEVER_CONFIG_FILE).write_text(json.dumps({"model_type": model_type, "lora_rank": 16}))
    assert default_base_model(read_adapter(path)) == hub_id


def test_unknown_retriever_model_type(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "released")
    (path / RETRIEVER_CONFIG_FILE).write_text(json.dumps({"model_type": "llada2"}))
    with pytest.raises(AdapterError, match="llada2"):
        default_base_model(read_adapter(path))


def test_adapter_for_another_backbone_is_refused(llada_adapter, tmp_path):
    path = _copy_adapter(llada_adapter, tmp_path / "released")
    (path / RETRIEVER_CONFIG_FILE).write_text(json.dumps({"model_type": "dream"}))
    with pytest.raises(AdapterError, match="'Dream' backbone"):
        load_backbone(llada_adapter.base_dir, adapter=str(path))


def test_adapter_trained_on_the_inner_trunk_is_remapped(dream_adapter, tmp_path):
    """Keys ``base_model.model.layers...`` (adapter made on Qwen2Model) map onto ``model.layers...``."""
    path = _copy_adapter(dream_adapter, tmp_path / "inner")
    weights = load_file(str(path / ADAPTER_WEIGHTS_FILE))
    renamed = {k.replace("base_model.model.model.", "base_model.model.", 1): v for k, v in weights.items()}
    save_file(renamed, str(path / ADAPTER_WEIGHTS_FILE))
    h = _hidden(load_backbone(dream_adapter.base_dir, adapter=str(path)), dream_adapter)
    real = dream_adapter.mask.bool()
    assert (h - dream_adapter.peft_hidden)[real].abs().max().item() < 1e-5


def test_adapter_for_unknown_modules_is_refused(llada_adapter, tmp_path):
    path = _copy_adapter(llada_adapter, tmp_path / "bad")
    weights = load_file(str(path / ADAPTER_WEIGHTS_FILE))
    renamed = {k.replace("transformer.blocks", "transformer.layers"): v for k, v in weights.items()}
    save_file(renamed, str(path / ADAPTER_WEIGHTS_FILE))
    with pytest.raises(AdapterError, match="transformer.layers"):
        load_backbone(llada_adapter.base_dir, adapter=str(path))


@pytest.mark.filterwarnings("ignore:Found missing adapter keys:UserWarning")  # peft only warns; we raise
def test_adapter_missing_a_tensor_is_refused(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "partial")
    weights = load_file(str(path / ADAPTER_WEIGHTS_FILE))
    dropped = "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"
    del weights[dropped]
    save_file(weights, str(path / ADAPTER_WEIGHTS_FILE))
    with pytest.raises(AdapterError, match=r"missing.*layers\.1\.mlp\.up_proj\.lora_B"):
        load_backbone(dream_adapter.base_dir, adapter=str(path))


def test_adapter_tensor_for_an_untargeted_module_is_refused(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "extra")
    _edit_adapter_config(path, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    with pytest.raises(AdapterError, match=r"unused.*mlp"):
        load_backbone(dream_adapter.base_dir, adapter=str(path))


def test_pickled_adapter_is_not_loaded(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "bin")
    (path / ADAPTER_WEIGHTS_FILE).rename(path / "adapter_model.bin")
    with pytest.raises(AdapterError, match="adapter_model.bin"):
        load_backbone(dream_adapter.base_dir, adapter=str(path))


def test_non_lora_adapter_is_refused(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "ia3")
    _edit_adapter_config(path, peft_type="IA3")
    with pytest.raises(AdapterError, match="IA3"):
        load_backbone(dream_adapter.base_dir, adapter=str(path))


def test_two_adapters_are_refused(dream_adapter, tmp_path):
    path = _copy_adapter(dream_adapter, tmp_path / "released")
    with pytest.raises(AdapterError, match="itself an adapter"):
        load_backbone(path, adapter=str(dream_adapter.path))


def test_missing_adapter_directory(tiny_dream_dir, tmp_path):
    from pyserini_diffretriever.backbones import BackboneNotFoundError

    with pytest.raises(BackboneNotFoundError, match="does not exist"):
        load_backbone(tiny_dream_dir, adapter=str(tmp_path / "nope" / "adapter"))
