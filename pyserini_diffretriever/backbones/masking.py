"""The one statement of diffusion-backbone mask semantics: bidirectional, pads masked as keys only.

Both Dream and LLaDA see every real token from every position. Left padding must not change a text's
states, so padded positions are removed as attention *keys* and position ids count real tokens only
(``cumsum(mask) - 1``); RoPE then gives a padded text exactly the positions it has when encoded alone.
"""

from __future__ import annotations

import torch


def positions_and_key_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Position ids ``[B, L]`` and a ``[B, 1, 1, L]`` bool key mask (True = attend; None if nothing is padded)."""
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            "input_ids and attention_mask must both be [B, L]; "
            f"got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
        )
    mask = attention_mask.to(device=input_ids.device, dtype=torch.bool)
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("every row of attention_mask needs at least one real token")
    position_ids = (mask.long().cumsum(-1) - 1).clamp_min(0)
    key_mask = None if bool(mask.all()) else mask[:, None, None, :]
    return position_ids, key_mask
