"""Supervised LoRA fine-tuning of DiffRetriever backbones (docs/method.md §8): the paper's recipe, the released layout.

Four concerns, four modules: :mod:`.data` (Tevatron JSONL groups, deterministic sampling), :mod:`.collator`
(groups -> the encoders' exact inputs), :mod:`.loss` (dense MaxSim + sparse contrastive loss, cross-process
gathering) and :mod:`.trainer` (the HF Trainer driving :class:`~.model.DiffRetrieverForTraining`); :mod:`.export`
writes the adapter folder and the merged weights. The command line is ``python -m pyserini_diffretriever.train``.
"""

from .config import LORA_TARGETS, TrainingSettings
from .data import TevatronGroups, TrainingDataError, TrainingGroup, sample_passages
from .export import merge_adapter, save_adapter
from .loss import LossConfig, LossParts, contrastive_loss
from .model import DiffRetrieverForTraining
from .trainer import TrainingResult, train

__all__ = [
    "LORA_TARGETS",
    "DiffRetrieverForTraining",
    "LossConfig",
    "LossParts",
    "TevatronGroups",
    "TrainingDataError",
    "TrainingGroup",
    "TrainingResult",
    "TrainingSettings",
    "contrastive_loss",
    "merge_adapter",
    "sample_passages",
    "save_adapter",
    "train",
]
