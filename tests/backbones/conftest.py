"""Fixtures for backbone tests: loaded tiny backbones, batch builders and an independent reference forward.

The reference forward is written from the formulas in backbones.md (§1.3 Dream, §2.3 LLaDA) in plain
torch, one sequence at a time with its padding *removed* and positions 0..n-1. It shares no code with
the package: explicit softmax attention, RoPE written as a pairwise rotation, GQA by index arithmetic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pyserini_diffretriever.backbones import load_backbone


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists into ``[B, L]`` ids and a 0/1 mask."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.tensor(row)
        mask[i, length - len(row) :] = 1
    return ids, mask


def random_rows(lengths: list[int], seed: int, high: int = 5000) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(10, high, (n,), generator=gen).tolist() for n in lengths]


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate pairs (i, i + d/2) of ``x [heads, n, d]`` by angle ``pos * theta^(-2i/d)``, pos = 0..n-1."""
    d = x.shape[-1]
    half = d // 2
    pos = torch.arange(x.shape[1], dtype=torch.float32)[:, None]
    angle = pos * torch.pow(torch.tensor(theta, dtype=torch.float32), -torch.arange(half, dtype=torch.float32) * 2 / d)
    c, s = torch.cos(angle), torch.sin(angle)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def _reference_sequence(
    layers: list[dict], emb, norm_w, ids: list[int], *, heads: int, kv_heads: int, eps: float, theta: float
):
    x = emb[torch.tensor(ids)]
    n, width = x.shape
    hd = width // heads
    for p in layers:
        h = _rms(x, p["attn_norm"], eps)
        q = (h @ p["q"].T + p.get("q_b", 0)).view(n, heads, hd).transpose(0, 1)
        k = (h @ p["k"].T + p.get("k_b", 0)).view(n, kv_heads, hd).transpose(0, 1)
        v = (h @ p["v"].T + p.get("v_b", 0)).view(n, kv_heads, hd).transpose(0, 1)
        q, k = _rope(q, theta), _rope(k, theta)
        outs = []
        for head in range(heads):
            kv = head // (heads // kv_heads)
            weights = torch.softmax(q[head] @ k[kv].T / math.sqrt(hd), dim=-1)  # no causal mask
            outs.append(weights @ v[kv])
        x = x + torch.cat(outs, dim=-1) @ p["o"].T
        h = _rms(x, p["ff_norm"], eps)
        gate = h @ p["gate"].T
        x = x + ((gate * torch.sigmoid(gate)) * (h @ p["up"].T)) @ p["down"].T
    return _rms(x, norm_w, eps)


def reference_hidden(
    model_dir: Path, ids: torch.Tensor, mask: torch.Tensor, *, weights: dict | None = None
) -> torch.Tensor:
    """Independent fp32 post-final-norm states for a Dream or LLaDA folder; pad rows are left at 0."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    sd = weights if weights is not None else load_file(str(Path(model_dir) / "model.safetensors"))
    sd = {k: v.float() for k, v in sd.items()}
    if cfg["model_type"] == "Dream":
        layers = [
            {
                "attn_norm": sd[f"model.layers.{i}.input_layernorm.weight"],
                "q": sd[f"model.layers.{i}.self_attn.q_proj.weight"],
                "q_b": sd[f"model.layers.{i}.self_attn.q_proj.bias"],
                "k": sd[f"model.layers.{i}.self_attn.k_proj.weight"],
                "k_b": sd[f"model.layers.{i}.self_attn.k_proj.bias"],
                "v": sd[f"model.layers.{i}.self_attn.v_proj.weight"],
                "v_b": sd[f"model.layers.{i}.self_attn.v_proj.bias"],
                "o": sd[f"model.layers.{i}.self_attn.o_proj.weight"],
                "ff_norm": sd[f"model.layers.{i}.post_attention_layernorm.weight"],
                "gate": sd[f"model.layers.{i}.mlp.gate_proj.weight"],
                "up": sd[f"model.layers.{i}.mlp.up_proj.weight"],
                "down": sd[f"model.layers.{i}.mlp.down_proj.weight"],
            }
            for i in range(cfg["num_hidden_layers"])
        ]
        emb, norm_w = sd["model.embed_tokens.weight"], sd["model.norm.weight"]
        kw = dict(
            heads=cfg["num_attention_heads"],
            kv_heads=cfg["num_key_value_heads"],
            eps=cfg["rms_norm_eps"],
            theta=cfg["rope_theta"],
        )
    else:
        b = "model.transformer.blocks"
        layers = [
            {
                "attn_norm": sd[f"{b}.{i}.attn_norm.weight"],
                "q": sd[f"{b}.{i}.q_proj.weight"],
                "k": sd[f"{b}.{i}.k_proj.weight"],
                "v": sd[f"{b}.{i}.v_proj.weight"],
                "o": sd[f"{b}.{i}.attn_out.weight"],
                "ff_norm": sd[f"{b}.{i}.ff_norm.weight"],
                "gate": sd[f"{b}.{i}.ff_proj.weight"],
                "up": sd[f"{b}.{i}.up_proj.weight"],
                "down": sd[f"{b}.{i}.ff_out.weight"],
            }
            for i in range(cfg["n_layers"])
        ]
        emb, norm_w = sd["model.transformer.wte.weight"], sd["model.transformer.ln_f.weight"]
        kw = dict(heads=cfg["n_heads"], kv_heads=cfg["n_kv_heads"], eps=cfg["rms_norm_eps"], theta=cfg["rope_theta"])
    out = torch.zeros(ids.shape[0], ids.shape[1], emb.shape[1])
    with torch.no_grad():
        for row in range(ids.shape[0]):
            real = mask[row].bool()
            out[row, real] = _reference_sequence(layers, emb, norm_w, ids[row, real].tolist(), **kw)
    return out


@pytest.fixture(scope="session")
def dream_fp32(tiny_dream_dir):
    """A float32 tiny Dream backbone shared read-only by tests (never attach adapters to it)."""
    return load_backbone(tiny_dream_dir, dtype="float32")


@pytest.fixture(scope="session")
def llada_fp32(tiny_llada_dir):
    """A float32 tiny LLaDA backbone shared read-only by tests (never attach adapters to it)."""
    return load_backbone(tiny_llada_dir, dtype="float32")


@pytest.fixture
def make_batch() -> Callable:
    return left_pad


@pytest.fixture
def rows() -> Callable:
    return random_rows


@pytest.fixture
def reference() -> Callable:
    return reference_hidden
