"""Supervised LoRA fine-tuning of DiffRetriever backbones (docs/method.md §8): the paper's recipe, the released layout.

Four concerns, four modules: :mod:`.data` (Tevatron JSONL groups, deterministic sampling), :mod:`.collator`
(groups -> the encoders' exact inputs), :mod:`.loss` (dense MaxSim + sparse contrastive loss, cross-process
gathering) and :mod:`.trainer` (the HF Trainer driving :class:`~.model.DiffRetrieverForTraining`); :mod:`.export`
writes the adapter folder and the merged weights. The command line is ``python -m pyserini_diffretriever.train``.

Names are resolved lazily, so importing one module (e.g. :mod:`.loss` in a worker process) does not load the HF
Trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_LAZY = {
    "TrainingSettings": "config",
    "TevatronGroups": "data",
    "TrainingDataError": "data",
    "TrainingGroup": "data",
    "sample_passages": "data",
    "merge_adapter": "export",
    "save_adapter": "export",
    "LossConfig": "loss",
    "LossParts": "loss",
    "contrastive_loss": "loss",
    "DiffRetrieverForTraining": "model",
    "TrainingResult": "trainer",
    "train": "trainer",
}

__all__ = [
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
assert set(__all__) == set(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainingSettings
    from .data import TevatronGroups, TrainingDataError, TrainingGroup, sample_passages
    from .export import merge_adapter, save_adapter
    from .loss import LossConfig, LossParts, contrastive_loss
    from .model import DiffRetrieverForTraining
    from .trainer import TrainingResult, train
