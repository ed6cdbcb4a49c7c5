"""Test doubles: a scripted backbone whose hidden states and logits the tests control exactly."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pyserini_diffretriever.backbones.base import BackboneSpec


def small_spec(
    vocab_size: int = 12, hidden_size: int = 4, *, mask_token_id: int = 11, logits_shifted: bool = True
) -> BackboneSpec:
    return BackboneSpec(
        model_type="Dream",
        family="diffusion",
        mask_token_id=mask_token_id,
        pad_token_id=0,
        eos_token_id=1,
        chat_end_token_id=2,
        hidden_size=hidden_size,
        vocab_size=vocab_size,
        logits_shifted=logits_shifted,
        name_or_path="scripted",
    )


class ScriptedBackbone(nn.Module):
    """``hidden[b, p] = [p, ids[b, p], b, 1]`` and ``vocab_logits = logits_fn(hidden)``.

    Every call is recorded (``forward_ids`` = the ids of each pass, ``logit_shapes`` = shapes given to
    ``vocab_logits``), so tests can check positions, chunking and what the denoising loop wrote.
    """

    def __init__(self, spec: BackboneSpec, logits_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.spec = spec
        self.logits_fn = logits_fn
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.forward_ids: list[torch.Tensor] = []
        self.logit_shapes: list[tuple[int, ...]] = []

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.forward_ids.append(input_ids.clone())
        batch, length = input_ids.shape
        positions = torch.arange(length, dtype=torch.float32).expand(batch, length)
        rows = torch.arange(batch, dtype=torch.float32)[:, None].expand(batch, length)
        return torch.stack([positions, input_ids.float(), rows, torch.ones(batch, length)], dim=-1)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        self.logit_shapes.append(tuple(hidden.shape))
        return self.logits_fn(hidden)


def one_hot_logits(vocab_size: int, target: Callable[[torch.Tensor], torch.Tensor], scale: float = 10.0):
    """``logits_fn`` whose argmax is ``target(hidden)`` (an integer tensor of shape ``hidden[..., 0]``)."""

    def fn(hidden: torch.Tensor) -> torch.Tensor:
        ids = target(hidden).long() % vocab_size
        return torch.nn.functional.one_hot(ids, vocab_size).float() * scale

    return fn
