"""The trainable retriever: a native backbone with PEFT LoRA layers, whose forward pass returns the loss.

One ``nn.Module`` holds the PEFT model and the two input builders, so the HF Trainer (and DDP under torchrun) can
drive it like any model: ``forward(**collated_batch) -> {"loss", "dense_loss", "sparse_loss"}``.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from ..backbones import resolve_k
from ..backbones.base import LoadedBackbone
from ..representation.inputs import InputBuilder
from ..representation.trainable import TrainableRepresentations, trainable_representations
from .collator import GroupCollator, encoded_batch
from .config import TrainingSettings
from .loss import LossParts, contrastive_loss, gather_representations

logger = logging.getLogger(__name__)


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def add_lora(module: nn.Module, settings: TrainingSettings, model_type: str):
    """Wrap ``module`` in a ``peft.PeftModel`` with the settings' LoRA layers (only those are trainable).

    The base ``PeftModel`` is used (no task wrapper: those add generation heads a native module lacks); the
    reference's task type is written to ``adapter_config.json`` at export.
    """
    from peft import LoraConfig, get_peft_model

    targets, _ = settings.targets(model_type)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        bias="none",
    )
    with warnings.catch_warnings():  # peft probes transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(module, config)


class DiffRetrieverForTraining(nn.Module):
    """A loaded backbone made trainable with LoRA, plus the inputs and loss of docs/method.md §8.1.

    Parameters
    ----------
    backbone:
        From :func:`~pyserini_diffretriever.backbones.load_backbone`; its module is wrapped in place.
    settings:
        K per side, prompt, lengths, LoRA, loss and gradient-checkpointing options.
    """

    def __init__(self, backbone: LoadedBackbone, settings: TrainingSettings) -> None:
        super().__init__()
        spec = backbone.spec
        self.spec, self.tokenizer, self.settings = spec, backbone.tokenizer, settings
        autoregressive = spec.family == "autoregressive"
        self.builders = {
            side: InputBuilder(
                backbone.tokenizer,
                spec,
                settings.prompt,
                resolve_k(spec, side, k),
                length,
                side,
                title_separator=settings.title_separator,
                autoregressive=autoregressive,
            )
            for side, k, length in (
                ("query", settings.k_query, settings.query_max_length or settings.max_length),
                ("passage", settings.k_passage, settings.max_length),
            )
        }
        if settings.gradient_checkpointing:
            backbone.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.peft_model = add_lora(backbone.model, settings, spec.model_type)
        self.group_size = 1 + settings.n_negatives
        self.loss_config = settings.loss_config()

    @property
    def backbone(self) -> nn.Module:
        """The native module with its live (unmerged) LoRA layers; it implements the Backbone protocol."""
        return self.peft_model.get_base_model()

    def loaded_backbone(self) -> LoadedBackbone:
        """The trained model as a :class:`LoadedBackbone`, e.g. to encode with it before exporting."""
        return LoadedBackbone(model=self.backbone, tokenizer=self.tokenizer, spec=self.spec)

    def collator(self) -> GroupCollator:
        return GroupCollator(self.builders["query"], self.builders["passage"])

    def represent(self, side: str, input_ids, attention_mask, content_ids, content_valid) -> TrainableRepresentations:
        """Differentiable representations of one side's collated tensors."""
        batch = encoded_batch(input_ids, attention_mask, self.builders[side])
        return trainable_representations(
            self.backbone, batch, (content_ids, content_valid), logits=self.settings.logits
        )

    def loss(self, queries: TrainableRepresentations, passages: TrainableRepresentations) -> LossParts:
        """The loss over the global batch (representations gathered from every process)."""
        return contrastive_loss(
            gather_representations(queries), gather_representations(passages), self.group_size, self.loss_config
        )

    def forward(
        self,
        query_input_ids: torch.Tensor,
        query_attention_mask: torch.Tensor,
        query_content_ids: torch.Tensor,
        query_content_valid: torch.Tensor,
        passage_input_ids: torch.Tensor,
        passage_attention_mask: torch.Tensor,
        passage_content_ids: torch.Tensor,
        passage_content_valid: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``loss`` (times the world size, so DDP's averaging gives the global loss's gradient) and its terms."""
        queries = self.represent("query", query_input_ids, query_attention_mask, query_content_ids, query_content_valid)
        passages = self.represent(
            "passage", passage_input_ids, passage_attention_mask, passage_content_ids, passage_content_valid
        )
        parts = self.loss(queries, passages)
        return {"loss": parts.total * world_size(), "dense_loss": parts.dense, "sparse_loss": parts.sparse}
