"""LLaDA-8B (``model_type: "llada"``) as a small native PyTorch module, read top to bottom.

The network is a Llama-style pre-norm transformer (OLMo ``block_type: "llama"``) run bidirectionally.
Parameter names equal the checkpoint's (``model.transformer.wte``, ``model.transformer.blocks.N.q_proj``
... ``model.transformer.ff_out``), so the safetensors load strictly and PEFT adapters trained on the
remote-code ``LLaDAModelLM`` (keys ``base_model.model.model.transformer...``) apply unchanged.

Unlike the original remote code, padding is masked as keys and position ids count real tokens only,
so a text's states do not depend on its batch (docs/method.md §11 item 2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import PreTrainedTokenizerFast

from .base import BackboneSpec
from .loading import BackboneLoadError, assert_materialised, load_safetensors_into, special_tokens
from .masking import positions_and_key_mask

logger = logging.getLogger(__name__)

MODEL_TYPE = "llada"
DEFAULT_K = {"query": 4, "passage": 4}  # the paper's selected (K_q, K_p) for LLaDA
STOP_SET = "special-except-mask"
#: LoRA targets (docs/method.md §1.6). PEFT matches names as suffixes: ``ff_out`` also adapts the vocabulary
#: projection ``model.transformer.ff_out``, as the reference's adapters do (§11 item 3).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
LORA_TASK_TYPE = "CAUSAL_LM"
CHAT_END_TOKEN = "<|eot_id|>"
CHAT_END_FALLBACK_ID = 126348  # the reference code's literal fallback when the tokenizer lacks <|eot_id|>
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass(frozen=True)
class LLaDAConfig:
    """The fields of LLaDA's ``config.json`` that the forward pass uses."""

    d_model: int
    n_heads: int
    n_kv_heads: int
    n_layers: int
    mlp_hidden_size: int
    vocab_size: int
    embedding_size: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    include_bias: bool = False
    include_qkv_bias: bool = False
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, cfg: dict) -> LLaDAConfig:
        """Validate a ``config.json`` dict: refuse options this module does not implement."""
        unsupported = {
            "block_type": ("llama", cfg.get("block_type", "llama")),
            "activation_type": ("silu", cfg.get("activation_type", "silu")),
            "layer_norm_type": ("rms", cfg.get("layer_norm_type", "rms")),
            "rope": (True, cfg.get("rope", True)),
            "alibi": (False, cfg.get("alibi", False)),
            "attention_layer_norm": (False, cfg.get("attention_layer_norm", False)),
            "input_emb_norm": (False, cfg.get("input_emb_norm", False)),
            "weight_tying": (False, cfg.get("weight_tying", False)),
            "layer_norm_with_affine": (True, cfg.get("layer_norm_with_affine", True)),
            "bias_for_layer_norm": (False, bool(cfg.get("bias_for_layer_norm") or False)),
            "scale_logits": (False, cfg.get("scale_logits", False)),
        }
        bad = {k: got for k, (want, got) in unsupported.items() if got != want}
        if bad:
            raise BackboneLoadError(f"LLaDA config options not supported by the native module: {bad}")
        n_heads = int(cfg["n_heads"])
        n_kv_heads = cfg.get("n_kv_heads") or (1 if cfg.get("multi_query_attention") else n_heads)
        d_model = int(cfg["d_model"])
        if d_model % n_heads or n_heads % int(n_kv_heads):
            raise BackboneLoadError(
                f"LLaDA config: d_model={d_model}, n_heads={n_heads}, n_kv_heads={n_kv_heads} do not divide"
            )
        mlp_hidden = cfg.get("mlp_hidden_size") or int(cfg.get("mlp_ratio", 4)) * d_model
        vocab = int(cfg["vocab_size"])
        return cls(
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(n_kv_heads),
            n_layers=int(cfg["n_layers"]),
            mlp_hidden_size=int(mlp_hidden),
            vocab_size=vocab,
            embedding_size=int(cfg.get("embedding_size") or vocab),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
            rope_theta=float(cfg.get("rope_theta", 10000.0)),
            include_bias=bool(cfg.get("include_bias", False)),
            include_qkv_bias=bool(cfg.get("include_qkv_bias", False)),
            mask_token_id=cfg.get("mask_token_id"),
            eos_token_id=cfg.get("eos_token_id"),
            pad_token_id=cfg.get("pad_token_id"),
        )


class RMSNorm(nn.Module):
    """``weight * (x / rms(x))`` with the normalisation in fp32, cast back before the weight (as LLaDA)."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos, sin`` of shape ``[B, 1, L, head_dim]`` for per-row positions (half-split layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float) / head_dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate in full precision and cast back (LLaDA's ``rope_full_precision``)."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class LLaDABlock(nn.Module):
    """Pre-norm block: ``x += attn_out(attn(attn_norm(x)))``, then
    ``x += ff_out(silu(ff_proj(h)) * up_proj(h))`` with ``h = ff_norm(x)``."""

    def __init__(self, cfg: LLaDAConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.cfg = cfg
        self.attn_implementation = attn_implementation
        qkv_bias = cfg.include_bias or cfg.include_qkv_bias
        kv_dim = cfg.n_kv_heads * cfg.head_dim
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.include_bias)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.ff_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=cfg.include_bias)
        self.up_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=cfg.include_bias)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, cfg.d_model, bias=cfg.include_bias)

    def attention(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Bidirectional multi-head attention; ``key_mask`` is ``[B,1,1,L]`` bool (True = attend) or None."""
        b, length, _ = x.shape
        hd, groups = self.cfg.head_dim, self.cfg.n_heads // self.cfg.n_kv_heads
        q = self.q_proj(x).view(b, length, self.cfg.n_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, length, self.cfg.n_kv_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, length, self.cfg.n_kv_heads, hd).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        if self.attn_implementation == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=False)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
            out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        return out.transpose(1, 2).reshape(b, length, self.cfg.d_model)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn_out(self.attention(self.attn_norm(x), cos, sin, key_mask))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDATrunk(nn.Module):
    """Holds ``transformer = {wte, blocks, ln_f, ff_out}``: the checkpoint's ``model.`` sub-tree."""

    def __init__(self, cfg: LLaDAConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg.embedding_size, cfg.d_model),
                "blocks": nn.ModuleList(LLaDABlock(cfg, attn_implementation) for _ in range(cfg.n_layers)),
                "ln_f": RMSNorm(cfg.d_model, cfg.rms_norm_eps),
                "ff_out": nn.Linear(cfg.d_model, cfg.embedding_size, bias=cfg.include_bias),
            }
        )


class LLaDABackbone(nn.Module):
    """LLaDA with the :class:`~.base.Backbone` protocol; ``spec`` is attached by ``load_backbone``."""

    spec: BackboneSpec

    def __init__(self, cfg: LLaDAConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation {attn_implementation!r} not supported for LLaDA; "
                f"use one of {ATTN_IMPLEMENTATIONS}"
            )
        self.config = cfg
        self.model = LLaDATrunk(cfg, attn_implementation)
        self.gradient_checkpointing = False

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute every block in the backward pass (non-reentrant ``torch.utils.checkpoint``), for training.

        Same name as transformers' method, so training code treats every backbone alike; only non-reentrant
        checkpointing is offered (reentrant needs inputs that require gradients, which frozen embeddings lack).
        """
        if (activation_checkpointing_kwargs or {}).get("use_reentrant", False):
            raise ValueError("LLaDA supports only non-reentrant gradient checkpointing (use_reentrant=False)")
        self.gradient_checkpointing = True

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Post-``ln_f`` states ``[B, L, H]``; padded keys masked, positions = ``cumsum(mask) - 1``."""
        position_ids, key_mask = positions_and_key_mask(input_ids, attention_mask)
        cos, sin = rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        t = self.model.transformer
        x = t["wte"](input_ids)
        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in t["blocks"]:
            if checkpointed:
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, key_mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, key_mask)
        return t["ln_f"](x)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head ``model.transformer.ff_out`` on the given rows only."""
        return self.model.transformer["ff_out"](hidden)


def build_model(
    model_dir: Path, config: dict, *, dtype: torch.dtype, device: str | torch.device, attn_implementation: str
) -> LLaDABackbone:
    """Build on the meta device and assign the checkpoint tensors (strict names and shapes)."""
    cfg = LLaDAConfig.from_dict(config)
    with torch.device("meta"):
        model = LLaDABackbone(cfg, attn_implementation)
    load_safetensors_into(model, model_dir, dtype=dtype, device=device)
    assert_materialised(model)
    model.eval()
    return model


def load_tokenizer(model_dir: Path):
    """``PreTrainedTokenizerFast`` from ``tokenizer.json`` (AutoTokenizer wants remote code here)."""
    if not (Path(model_dir) / "tokenizer.json").is_file():
        raise BackboneLoadError(f"{model_dir} has no tokenizer.json (LLaDA ships a fast tokenizer only)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    return tokenizer


def make_spec(
    model: LLaDABackbone,
    config: dict,
    tokenizer,
    *,
    name_or_path: str,
    revision: str | None,
    adapter: str | None,
    extra: dict,
) -> BackboneSpec:
    """Collect LLaDA's special ids; pad falls back to EOS and must differ from the mask id."""
    cfg = model.config
    ids = special_tokens(tokenizer, config, name_or_path, chat_end_token=CHAT_END_TOKEN, needs_mask=True)
    chat_end = ids.chat_end
    if chat_end is None and cfg.embedding_size > CHAT_END_FALLBACK_ID:
        logger.warning(
            "%s: tokenizer has no %s; using id %d as the reference does",
            name_or_path,
            CHAT_END_TOKEN,
            CHAT_END_FALLBACK_ID,
        )
        chat_end = CHAT_END_FALLBACK_ID
    return BackboneSpec(
        model_type=MODEL_TYPE,
        family="diffusion",
        mask_token_id=ids.mask,
        pad_token_id=ids.pad,
        eos_token_id=ids.eos,
        chat_end_token_id=chat_end,
        hidden_size=cfg.d_model,
        vocab_size=cfg.embedding_size,
        logits_shifted=False,
        name_or_path=name_or_path,
        revision=revision,
        adapter=adapter,
        extra=extra,
    )
