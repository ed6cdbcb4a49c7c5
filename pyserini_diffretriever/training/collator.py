"""Training groups -> tokenised query and passage batches in the encoders' exact layout.

The collator uses the encoders' :class:`~pyserini_diffretriever.representation.inputs.InputBuilder` (prompt,
K masks, tail, truncation, left padding) and content-word filter, so a model is trained on exactly the inputs it
is later encoded with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..representation.content_words import content_token_ids
from ..representation.inputs import EncodedBatch, InputBuilder
from ..representation.sparse import pad_content_ids
from .data import TrainingGroup

SIDE_KEYS = ("input_ids", "attention_mask", "content_ids", "content_valid")


@dataclass
class GroupCollator:
    """``__call__(groups) -> {"query_input_ids", ..., "passage_content_valid"}`` (tensors only).

    Passages are ordered group by group (positive first), as the loss expects.
    """

    query_builder: InputBuilder
    passage_builder: InputBuilder

    def side(self, builder: InputBuilder, texts: Sequence[str], prefix: str) -> dict[str, torch.Tensor]:
        batch = builder.collate(builder.tokenize(list(texts)))
        ids, valid = pad_content_ids(content_token_ids(texts, builder.tokenizer))
        values = (batch.input_ids, batch.attention_mask, ids, valid)
        return {f"{prefix}_{key}": value for key, value in zip(SIDE_KEYS, values)}

    def __call__(self, groups: Sequence[TrainingGroup]) -> dict[str, torch.Tensor]:
        sizes = {len(group.passages) for group in groups}
        if len(sizes) != 1:
            raise ValueError(f"groups of different sizes in one batch: {sorted(sizes)}")
        queries = [group.query for group in groups]
        passages = [text for group in groups for text in group.passages]
        return {
            **self.side(self.query_builder, queries, "query"),
            **self.side(self.passage_builder, passages, "passage"),
        }


def encoded_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor, builder: InputBuilder) -> EncodedBatch:
    """Rebuild the :class:`EncodedBatch` of collated tensors (the layout facts come from the builder)."""
    return EncodedBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        k=builder.k,
        n_text_tokens=(),
        truncated=(),
        autoregressive=builder.autoregressive,
    )
