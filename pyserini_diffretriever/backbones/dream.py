"""Dream-v0 (``model_type: "Dream"``) hosted natively in transformers' Qwen2 modules.

Dream is a Qwen2.5 network whose attention is bidirectional. Its checkpoint tensor names
(``model.*``, ``lm_head.weight``) are exactly those of :class:`transformers.Qwen2ForCausalLM`, so we
build that class from the Dream config (no remote code), load the safetensors strictly, switch every
attention layer to non-causal, and always hand the trunk an explicit key-padding mask. LoRA targets
(``q_proj`` ... ``down_proj``) therefore exist under the same paths as in the remote-code ``DreamModel``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from .base import BackboneSpec
from .loading import (
    BackboneLoadError,
    assert_materialised,
    load_safetensors_into,
    network_config_kwargs,
    special_tokens,
)
from .masking import positions_and_key_mask

logger = logging.getLogger(__name__)

MODEL_TYPE = "Dream"
DEFAULT_K = {"query": 4, "passage": 16}  # the paper's selected (K_q, K_p) for Dream
STOP_SET = "special-except-mask"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # docs/method.md §1.6
LORA_TASK_TYPE = "FEATURE_EXTRACTION"
CHAT_END_TOKEN = "<|im_end|>"
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def qwen2_config(config: dict, attn_implementation: str = "sdpa") -> Qwen2Config:
    """Translate a Dream ``config.json`` dict into a :class:`Qwen2Config` (remote-code keys dropped)."""
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation {attn_implementation!r} not supported for Dream; use one of {ATTN_IMPLEMENTATIONS}"
        )
    if config.get("use_sliding_window"):
        raise BackboneLoadError(
            "Dream config with use_sliding_window=true is not supported (bidirectional full attention only)"
        )
    if config.get("tie_word_embeddings"):
        raise BackboneLoadError(
            "Dream config with tie_word_embeddings=true is not supported (released Dream is untied)"
        )
    qcfg = Qwen2Config(**network_config_kwargs(config, use_cache=False))
    qcfg._attn_implementation = attn_implementation
    return qcfg


class DreamBackbone(Qwen2ForCausalLM):
    """Qwen2 weights run bidirectionally: implements the :class:`~.base.Backbone` protocol.

    ``spec`` is attached by :func:`pyserini_diffretriever.backbones.load_backbone`.
    """

    spec: BackboneSpec

    def make_bidirectional(self) -> None:
        """Mark every attention layer non-causal, so SDPA never applies a causal triangle, even unmasked."""
        for layer in self.model.layers:
            layer.self_attn.is_causal = False

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Post-final-norm states ``[B, L, H]`` with bidirectional attention over the real tokens.

        Padded keys are masked out; position ids count real tokens (``cumsum(mask) - 1``), so a
        left-padded text gets the same states as when encoded alone.
        """
        position_ids, key_mask = positions_and_key_mask(input_ids, attention_mask)
        if key_mask is not None and self.config._attn_implementation == "eager":
            # eager attention adds the mask to the scores, so it needs the additive form
            key_mask = torch.zeros(key_mask.shape, dtype=self.dtype, device=key_mask.device).masked_fill(
                ~key_mask, torch.finfo(self.dtype).min
            )
        # A mapping bypasses transformers' causal-mask construction and is used as-is by every layer.
        out = self.model(
            input_ids=input_ids,
            attention_mask={"full_attention": key_mask},
            position_ids=position_ids,
            use_cache=False,
        )
        return out.last_hidden_state

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``lm_head`` applied to the given rows only (``[..., H] -> [..., V]``)."""
        return self.lm_head(hidden)


def build_model(
    model_dir: Path, config: dict, *, dtype: torch.dtype, device: str | torch.device, attn_implementation: str
) -> DreamBackbone:
    """Build the Qwen2 skeleton on the meta device and assign the checkpoint tensors (strict names)."""
    qcfg = qwen2_config(config, attn_implementation)
    with torch.device("meta"):
        model = DreamBackbone(qcfg)
    load_safetensors_into(model, model_dir, dtype=dtype, device=device)
    # rotary inv_freq is a non-persistent buffer (not in the checkpoint): rebuild it for real, in fp32.
    model.model.rotary_emb = Qwen2RotaryEmbedding(config=qcfg).to(device)
    assert_materialised(model)
    model.make_bidirectional()
    model.eval()
    return model


def load_tokenizer(model_dir: Path):
    """``Qwen2Tokenizer`` from the checkpoint folder (AutoTokenizer wants remote code for DreamTokenizer)."""
    tokenizer = Qwen2Tokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    return tokenizer


def make_spec(
    model: DreamBackbone,
    config: dict,
    tokenizer,
    *,
    name_or_path: str,
    revision: str | None,
    adapter: str | None,
    extra: dict,
) -> BackboneSpec:
    """Collect Dream's special ids from config.json and the tokenizer files (:func:`~.loading.special_tokens`)."""
    ids = special_tokens(tokenizer, config, name_or_path, chat_end_token=CHAT_END_TOKEN, needs_mask=True)
    return BackboneSpec(
        model_type=MODEL_TYPE,
        family="diffusion",
        mask_token_id=ids.mask,
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
