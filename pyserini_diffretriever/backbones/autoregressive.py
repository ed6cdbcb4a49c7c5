"""Autoregressive backbones (Qwen2 / Llama causal LMs) for the PromptReps baseline (docs/method.md §9).

Why: the paper's claim is a cost claim (K representative tokens from one diffusion pass vs K sequential
decoding steps of an autoregressive LM), so the baseline must run through the same encoder classes, CLI and
read-out on our own code. These modules host ``Qwen/Qwen2.5-7B-Instruct``-style (``model_type: "qwen2"``) and
``meta-llama/Meta-Llama-3-8B-Instruct``-style (``model_type: "llama"``) checkpoints in transformers'
:class:`~transformers.Qwen2ForCausalLM` / :class:`~transformers.LlamaForCausalLM` (no remote code, strict
safetensors loading), with *causal* attention, left padding masked as keys and position ids that count
real tokens only (``cumsum(mask) - 1``), so a text's states do not depend on its batch.

Beyond the :class:`~.base.Backbone` protocol (``hidden_states``, ``vocab_logits``) they expose
:meth:`CausalBackboneMixin.causal_forward`, one forward pass that takes and returns a KV cache: the
PromptReps read-out (:mod:`pyserini_diffretriever.representation.generation`) runs one prompt pass and then
one single-token pass per generated token.

Each family is registered from a namespace object (:data:`QWEN2`, :data:`LLAMA`) with the attributes
:class:`~pyserini_diffretriever.backbones.BackboneFamily.from_module` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from .base import BackboneSpec
from .loading import (
    BackboneLoadError,
    assert_materialised,
    load_safetensors_into,
    network_config_kwargs,
    special_tokens,
)

logger = logging.getLogger(__name__)

FAMILY = "autoregressive"
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
AR_DEFAULT_K = {"query": 4, "passage": 4}  # PromptReps' N on both sides, the fine-tuned PromptReps cap
AR_STOP_SET = "special-and-quote"  # special ids plus the id(s) of '"' (docs/method.md §9)
AR_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # method §1.6


class CausalBackboneMixin:
    """The :class:`~.base.Backbone` protocol for a transformers causal LM, plus a cached forward pass.

    Mixed into a ``*ForCausalLM`` class, so ``self.model`` is the trunk and ``self.lm_head`` the head.
    ``spec`` is attached by :func:`pyserini_diffretriever.backbones.load_backbone`.
    """

    spec: BackboneSpec

    def causal_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache=None,
    ) -> tuple[torch.Tensor, object]:
        """One causal pass over ``input_ids`` ``[B, q]`` given everything already in ``cache``.

        Parameters
        ----------
        input_ids:
            The new tokens, ``[B, q]`` (the whole left-padded prompt, or one generated token per row).
        attention_mask:
            ``[B, P + q]`` 0/1 mask over the cached tokens *and* the new ones (it grows by one per step).
        cache:
            A transformers ``Cache`` from the previous call, or None for the first (prompt) pass.

        Returns
        -------
        hidden, cache:
            Post-final-norm states ``[B, q, H]`` of the new tokens and the updated cache.

        Position ids are ``cumsum(mask) - 1`` at the new columns, so generated tokens continue each row's
        own numbering regardless of how much left padding the batch has.
        """
        if input_ids.dim() != 2 or attention_mask.dim() != 2 or attention_mask.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"input_ids must be [B, q] and attention_mask [B, P+q]; got {tuple(input_ids.shape)} and "
                f"{tuple(attention_mask.shape)}"
            )
        query = input_ids.shape[1]
        past = cache.get_seq_length() if cache is not None else 0
        if attention_mask.shape[1] != past + query:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[1]} tokens but the cache holds {past} and {query} are new"
            )
        mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("every row of attention_mask needs at least one real token")
        position_ids = (mask.cumsum(-1) - 1).clamp_min(0)[:, past:]
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        return out.last_hidden_state, out.cache

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Post-final-norm states ``[B, L, H]`` of one causal pass (no cache kept).

        Unlike the diffusion backbones attention is causal; padded keys are masked and positions count
        real tokens, so a left-padded text gets the states it has alone.
        """
        mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
        if input_ids.dim() != 2 or mask.shape != input_ids.shape:
            raise ValueError(
                "input_ids and attention_mask must both be [B, L]; "
                f"got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("every row of attention_mask needs at least one real token")
        position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``lm_head`` applied to the given rows only (``[..., H] -> [..., V]``)."""
        return self.lm_head(hidden)


class Qwen2CausalBackbone(CausalBackboneMixin, Qwen2ForCausalLM):
    """A Qwen2 / Qwen2.5 causal LM implementing the backbone protocol."""


class LlamaCausalBackbone(CausalBackboneMixin, LlamaForCausalLM):
    """A Llama / Llama-3 causal LM implementing the backbone protocol."""


def hf_config(config: dict, config_class: type[PretrainedConfig], attn_implementation: str) -> PretrainedConfig:
    """Translate a ``config.json`` dict into a transformers config (packaging keys dropped)."""
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation {attn_implementation!r} not supported for autoregressive backbones; "
            f"use one of {ATTN_IMPLEMENTATIONS}"
        )
    if config.get("use_sliding_window"):
        raise BackboneLoadError(f"{config.get('model_type')} config with use_sliding_window=true is not supported")
    hcfg = config_class(**network_config_kwargs(config, use_cache=True))
    hcfg._attn_implementation = attn_implementation
    return hcfg


def _build(
    model_class: type[nn.Module],
    config_class: type[PretrainedConfig],
    rotary_class: type[nn.Module],
    model_dir: Path,
    config: dict,
    *,
    dtype: torch.dtype,
    device: str | torch.device,
    attn_implementation: str,
) -> nn.Module:
    """Build on the meta device, assign the checkpoint tensors strictly, rebuild rotary buffers.

    Tied checkpoints (``tie_word_embeddings: true``, e.g. the small Qwen2.5 / Llama-3.2 models) store no
    ``lm_head.weight``: the head is detached while loading and then shares the embedding matrix.
    """
    hcfg = hf_config(config, config_class, attn_implementation)
    tied = bool(getattr(hcfg, "tie_word_embeddings", False))
    with torch.device("meta"):
        model = model_class(hcfg)
    head = model.lm_head
    if tied:
        model.lm_head = None  # not in the checkpoint: keep it out of the strict name check
    load_safetensors_into(model, model_dir, dtype=dtype, device=device)
    if tied:
        head = nn.Linear(hcfg.hidden_size, hcfg.vocab_size, bias=False, device="meta")
        head.weight = model.model.embed_tokens.weight
        model.lm_head = head
    # rotary inv_freq is a non-persistent buffer (not in the checkpoint): rebuild it for real, in fp32.
    model.model.rotary_emb = rotary_class(config=hcfg).to(device)
    assert_materialised(model)
    model.eval()
    return model


def build_qwen2(
    model_dir: Path, config: dict, *, dtype: torch.dtype, device: str | torch.device, attn_implementation: str
) -> Qwen2CausalBackbone:
    """A :class:`Qwen2CausalBackbone` from a ``model_type: "qwen2"`` folder."""
    return _build(
        Qwen2CausalBackbone,
        Qwen2Config,
        Qwen2RotaryEmbedding,
        model_dir,
        config,
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
    )


def build_llama(
    model_dir: Path, config: dict, *, dtype: torch.dtype, device: str | torch.device, attn_implementation: str
) -> LlamaCausalBackbone:
    """A :class:`LlamaCausalBackbone` from a ``model_type: "llama"`` folder."""
    return _build(
        LlamaCausalBackbone,
        LlamaConfig,
        LlamaRotaryEmbedding,
        model_dir,
        config,
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
    )


def load_tokenizer(model_dir: Path):
    """The checkpoint's own tokenizer through ``AutoTokenizer`` (never remote code), left padding."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise BackboneLoadError(f"{model_dir}: cannot load its tokenizer: {error}") from error
    tokenizer.padding_side = "left"
    return tokenizer


def _spec_maker(model_type: str, chat_end_token: str):
    def make_spec(
        model: nn.Module,
        config: dict,
        tokenizer,
        *,
        name_or_path: str,
        revision: str | None,
        adapter: str | None,
        extra: dict,
    ) -> BackboneSpec:
        """Special ids of a causal LM; pad falls back to EOS (as the reference's PromptReps does)."""
        ids = special_tokens(tokenizer, config, name_or_path, chat_end_token=chat_end_token, needs_mask=False)
        return BackboneSpec(
            model_type=model_type,
            family=FAMILY,
            mask_token_id=None,
            pad_token_id=ids.pad,
            eos_token_id=ids.eos,
            chat_end_token_id=ids.chat_end,
            hidden_size=int(model.config.hidden_size),
            vocab_size=int(model.lm_head.out_features),
            logits_shifted=True,
            name_or_path=name_or_path,
            revision=revision,
            adapter=adapter,
            extra=extra,
        )

    return make_spec


QWEN2 = SimpleNamespace(
    MODEL_TYPE="qwen2",
    build_model=build_qwen2,
    load_tokenizer=load_tokenizer,
    make_spec=_spec_maker("qwen2", "<|im_end|>"),
    DEFAULT_K=AR_DEFAULT_K,
    STOP_SET=AR_STOP_SET,
    LORA_TARGETS=AR_LORA_TARGETS,
    LORA_TASK_TYPE="CAUSAL_LM",
)
"""Registry entry of ``model_type: "qwen2"`` (Qwen2 / Qwen2.5 causal LMs)."""

LLAMA = SimpleNamespace(
    MODEL_TYPE="llama",
    build_model=build_llama,
    load_tokenizer=load_tokenizer,
    make_spec=_spec_maker("llama", "<|eot_id|>"),
    DEFAULT_K=AR_DEFAULT_K,
    STOP_SET=AR_STOP_SET,
    LORA_TARGETS=AR_LORA_TARGETS,
    LORA_TASK_TYPE="CAUSAL_LM",
)
"""Registry entry of ``model_type: "llama"`` (Llama / Llama-3 causal LMs)."""
