"""Checkpoint resolution and strict safetensors loading."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from pyserini_diffretriever.backbones import load_backbone
from pyserini_diffretriever.backbones.loading import (
    BackboneNotFoundError,
    CheckpointFormatError,
    CheckpointMismatchError,
    resolve_dtype,
    resolve_model_dir,
    safetensors_files,
)
from pyserini_diffretriever.fixtures import write_tiny_llada


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite(model_dir, edit):
    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    "given,want",
    [
        ("float32", torch.float32),
        ("bf16", torch.bfloat16),
        ("torch.float16", torch.float16),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_resolve_dtype(given, want):
    assert resolve_dtype(given) is want


@pytest.mark.parametrize("bad", ["int8", "float64x", torch.int64])
def test_resolve_dtype_rejects(bad):
    with pytest.raises(ValueError):
        resolve_dtype(bad)


def test_local_directory_is_used_as_is(tiny_llada_dir):
    assert resolve_model_dir(tiny_llada_dir) == tiny_llada_dir
    assert resolve_model_dir(str(tiny_llada_dir)) == tiny_llada_dir


def test_missing_local_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(BackboneNotFoundError, match="does not exist"):
        load_backbone(str(missing))


def test_file_instead_of_directory(tiny_llada_dir):
    with pytest.raises(BackboneNotFoundError, match="not a directory"):
        resolve_model_dir(tiny_llada_dir / "config.json")


def test_hub_id_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BackboneNotFoundError) as err:
        load_backbone("nobody-owner/no-such-diffusion-model")
    message = str(err.value)
    assert "nobody-owner/no-such-diffusion-model" in message and "HF_HUB_OFFLINE" in message
    assert isinstance(err.value.__cause__, FileNotFoundError)  # the hub's LocalEntryNotFoundError, no network used


def test_sharded_checkpoint_loads_like_single_file(tmp_path, tiny_llada_dir):
    sharded = write_tiny_llada(tmp_path / "sharded", shards=3)
    assert len(safetensors_files(sharded)) == 3
    a = load_backbone(sharded).model.state_dict()
    b = load_backbone(tiny_llada_dir).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_index_naming_a_missing_shard(tmp_path):
    sharded = write_tiny_llada(tmp_path / "sharded", shards=2)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointFormatError, match="model-00002-of-00002"):
        load_backbone(sharded)


def test_missing_tensor_is_named(tmp_path, tiny_llada_dir):
    model_dir = _copy(tiny_llada_dir, tmp_path / "m")
    _rewrite(model_dir, lambda t: t.pop("model.transformer.blocks.1.up_proj.weight"))
    with pytest.raises(CheckpointMismatchError, match=r"missing.*model\.transformer\.blocks\.1\.up_proj\.weight"):
        load_backbone(model_dir)


def test_unexpected_tensor_is_named(tmp_path, tiny_dream_dir):
    model_dir = _copy(tiny_dream_dir, tmp_path / "m")
    _rewrite(model_dir, lambda t: t.__setitem__("model.layers.0.extra.weight", torch.zeros(2)))
    with pytest.raises(CheckpointMismatchError, match=r"not used.*model\.layers\.0\.extra\.weight"):
        load_backbone(model_dir)


def test_wrong_shape_is_named(tmp_path, tiny_dream_dir):
    model_dir = _copy(tiny_dream_dir, tmp_path / "m")
    _rewrite(model_dir, lambda t: t.__setitem__("model.norm.weight", torch.ones(3, dtype=torch.bfloat16)))
    with pytest.raises(CheckpointMismatchError, match=r"model\.norm\.weight \(3,\)"):
        load_backbone(model_dir)


def test_pickled_weights_are_not_loaded(tmp_path, tiny_llada_dir):
    model_dir = _copy(tiny_llada_dir, tmp_path / "m")
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointFormatError, match="pytorch_model.bin"):
        load_backbone(model_dir)


def test_missing_config_is_named(tmp_path, tiny_llada_dir):
    model_dir = _copy(tiny_llada_dir, tmp_path / "m")
    (model_dir / "config.json").unlink()
    with pytest.raises(CheckpointFormatError, match="config.json"):
        load_backbone(model_dir)


class _Tokenizer:
    """Just what :func:`special_tokens` reads of a tokenizer; ``pad_token`` assignments are recorded."""

    unk_token_id = 0

    def __init__(self, eos=None, pad=None, mask=None, vocab=None):
        self.eos_token_id, self.pad_token_id, self.mask_token_id = eos, pad, mask
        self.vocab = vocab or {}

    def convert_tokens_to_ids(self, token):
        return self.vocab.get(token, self.unk_token_id)

    def convert_ids_to_tokens(self, token_id):
        return f"<id {token_id}>"

    @property
    def pad_token(self):
        return None if self.pad_token_id is None else f"<id {self.pad_token_id}>"

    @pad_token.setter
    def pad_token(self, token):
        self.pad_token_id = int(token.removeprefix("<id ").removesuffix(">"))


def test_special_tokens_one_rule():
    from pyserini_diffretriever.backbones.loading import special_tokens

    tokenizer = _Tokenizer(eos=None, pad=None, mask=None, vocab={"<|im_end|>": 9})
    config = {"eos_token_id": [7, 8], "mask_token_id": 3}  # Llama-3 style EOS list: the first is taken
    ids = special_tokens(tokenizer, config, "m", chat_end_token="<|im_end|>", needs_mask=True)
    assert (ids.mask, ids.eos, ids.pad, ids.chat_end) == (3, 7, 7, 9) and tokenizer.pad_token_id == 7
    ids = special_tokens(_Tokenizer(eos=5), {"pad_token_id": 2}, "m", chat_end_token="<x>", needs_mask=False)
    assert (ids.mask, ids.eos, ids.pad, ids.chat_end) == (None, 5, 2, None)  # config pad before EOS; unknown end


@pytest.mark.parametrize("family", ["Dream", "llada", "qwen2", "llama"])
def test_every_family_refuses_a_checkpoint_without_eos(family):
    """Dream used to crash with ``int(None)`` here; every family now raises the same BackboneLoadError."""
    from types import SimpleNamespace

    from pyserini_diffretriever.backbones import BackboneLoadError, get_family

    model = SimpleNamespace(config=None)  # never reached: the special ids are collected first
    with pytest.raises(BackboneLoadError, match="m: no eos token in the tokenizer or config.json"):
        get_family(family).make_spec(
            model,
            {"mask_token_id": 3},
            _Tokenizer(eos=None, pad=1),
            name_or_path="m",
            revision=None,
            adapter=None,
            extra={},
        )


@pytest.mark.parametrize("family", ["Dream", "llada"])
def test_diffusion_families_refuse_a_checkpoint_without_mask(family):
    from types import SimpleNamespace

    from pyserini_diffretriever.backbones import BackboneLoadError, get_family

    with pytest.raises(BackboneLoadError, match="m: no mask_token_id in config.json or tokenizer"):
        get_family(family).make_spec(
            SimpleNamespace(config=None), {}, _Tokenizer(eos=2), name_or_path="m", revision=None, adapter=None, extra={}
        )
