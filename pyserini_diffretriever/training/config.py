"""Fine-tuning settings: one definition of the options, their defaults (the paper's recipe) and their checks.

The defaults are docs/method.md §8.1: LoRA r 16, alpha 64, dropout 0.05 on the per-backbone targets of §1.6;
groups of 1 positive + 15 negatives; temperature 0.01; sparse weight 1.0; AdamW, learning rate 1e-4, weight
decay 0.01, warmup 6 % of the steps, cosine schedule, gradient clipping at 1.0; one epoch; seed 42.
The CLI (:mod:`pyserini_diffretriever.cli.train`) and :func:`~pyserini_diffretriever.training.train` take them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..representation.readout import LOGITS_MODES
from ..settings import DEFAULT_MAX_LENGTH, check_positive_int
from .data import DEFAULT_N_NEGATIVES
from .loss import DEFAULT_SPARSE_WEIGHT, DEFAULT_TEMPERATURE, LossConfig


@dataclass(frozen=True)
class TrainingSettings:
    """Every option of a fine-tuning run (the CLI's flags, same names with ``-`` for ``_``).

    Attributes
    ----------
    model, train_data, output_dir
        Base checkpoint (folder or hub id), Tevatron JSONL file or folder, where the adapter is written.
    k_query, k_passage
        Mask slots per side; ``None``: the backbone's defaults (Dream 4/16, LLaDA 4/4, autoregressive 4/4).
    prompt, max_length, query_max_length, title_separator, logits
        As for the encoders (``query_max_length`` defaults to ``max_length``).
    n_negatives
        Negatives per query (group = 1 positive + ``n_negatives``).
    temperature, sparse_weight, dense_weight
        Loss settings (:class:`~pyserini_diffretriever.training.loss.LossConfig`).
    lora_r, lora_alpha, lora_dropout, lora_target_modules
        LoRA settings; ``lora_target_modules=None`` takes the backbone registry entry's ``lora_targets``.
    learning_rate, weight_decay, warmup_ratio, lr_scheduler, max_grad_norm
        AdamW and its schedule.
    epochs, max_steps, per_device_batch_size, gradient_accumulation_steps
        Queries per device per micro-batch; ``max_steps > 0`` overrides ``epochs``.
    seed, data_seed
        Initialisation / dropout seed and the group-sampling and shuffling seed (``None``: ``seed``).
    gradient_checkpointing, bf16, device
        Memory and precision; ``device="cpu"`` forces the CPU.
    save_steps, save_total_limit, logging_steps, resume, merge
        Checkpoint cadence, ``--resume`` from the last checkpoint, and a merged-weights export.
    """

    model: str | os.PathLike
    train_data: str | os.PathLike
    output_dir: str | os.PathLike
    k_query: int | None = None
    k_passage: int | None = None
    prompt: Any = "few"
    max_length: int = DEFAULT_MAX_LENGTH
    query_max_length: int | None = None
    title_separator: str = ". "
    logits: str = "unshifted"
    n_negatives: int = DEFAULT_N_NEGATIVES
    temperature: float = DEFAULT_TEMPERATURE
    sparse_weight: float = DEFAULT_SPARSE_WEIGHT
    dense_weight: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    epochs: float = 1.0
    max_steps: int = -1
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    seed: int = 42
    data_seed: int | None = None
    gradient_checkpointing: bool = False
    bf16: bool = False
    device: str | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    resume: bool = False
    merge: bool = False

    def __post_init__(self) -> None:
        for name in ("max_length", "lora_r", "per_device_batch_size", "gradient_accumulation_steps", "save_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("k_query", "k_passage", "query_max_length"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.n_negatives < 0:
            raise ValueError(f"n_negatives={self.n_negatives}: expected >= 0")
        if self.logits not in LOGITS_MODES:
            raise ValueError(f"logits={self.logits!r}: expected one of {LOGITS_MODES}")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("lora_dropout and warmup_ratio must be in [0, 1)")
        if not self.learning_rate > 0 or self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("learning_rate must be > 0, and epochs or max_steps positive")
        self.loss_config()  # checks temperature and weights

    def replace(self, **changes: Any) -> TrainingSettings:
        return dataclasses.replace(self, **changes)

    def loss_config(self) -> LossConfig:
        return LossConfig(self.temperature, self.sparse_weight, self.dense_weight)

    @property
    def sampling_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def targets(self, model_type: str) -> tuple[list[str], str | None]:
        """``(target module names, task type)`` for a backbone ``model_type`` (its registry entry's by default)."""
        from ..backbones import UnsupportedBackboneError, get_family

        try:
            family = get_family(model_type)
        except UnsupportedBackboneError as error:
            if self.lora_target_modules is None:
                raise ValueError(f"no default LoRA targets: {error}; pass lora_target_modules") from None
            return list(self.lora_target_modules), None
        modules = family.lora_targets if self.lora_target_modules is None else self.lora_target_modules
        return list(modules), family.lora_task_type
