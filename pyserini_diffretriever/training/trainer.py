"""The training driver: the HF Trainer runs the loop (AdamW, schedule, clipping, bf16, DDP, checkpoints, resume).

What this module adds to ``transformers.Trainer``:

* the loss of :class:`~.model.DiffRetrieverForTraining` (its forward returns it), with the dense and sparse terms
  logged next to it;
* a non-finite loss skips the optimizer step: the gradients of the step are dropped, and AdamW leaves parameters
  without a gradient (and their moments) untouched; the log says so, and the count is kept;
* checkpoints hold only the LoRA tensors (plus the Trainer's optimizer, scheduler, RNG and data position),
  never the base weights; ``resume=True`` continues from the last one in ``OUTPUT/checkpoints``;
* the epoch number reaches the dataset, whose group sampling depends on it.

Multiple GPUs: launch with ``torchrun --nproc-per-node N -m pyserini_diffretriever.train ...``; every process
gathers the others' representations (:func:`~.loss.gather_representations`). A single process that sees several
GPUs is refused (the Trainer would fall back to ``nn.DataParallel``, which cannot split query and passage batches).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .config import TrainingSettings
from .data import TevatronGroups
from .export import MERGED_DIR, merge_adapter, save_adapter
from .model import DiffRetrieverForTraining

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
SUMMARY_FILE = "training_summary.json"


class EpochCallback(TrainerCallback):
    """Tells the dataset which epoch starts (also after a resume in the middle of one)."""

    def __init__(self, dataset: TevatronGroups) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor(state.epoch + 1e-6))


class DiffRetrieverTrainer(Trainer):
    """``transformers.Trainer`` for :class:`~.model.DiffRetrieverForTraining` (see the module docstring)."""

    loss_is_scaled_for_ga = False  # the model returns a per-batch mean

    def __init__(self, *args, base_model: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.base_model = base_model
        self.skipped_steps = 0
        self._nonfinite = False
        self._terms: dict[str, list[float]] = {"dense_loss": [], "sparse_loss": []}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        loss = outputs["loss"]
        self._nonfinite = not bool(torch.isfinite(loss.detach()).all())
        if self._nonfinite:
            logger.warning(
                "step %d: non-finite loss (dense %.4g, sparse %.4g); skipping this optimizer step",
                self.state.global_step + 1,
                float(outputs["dense_loss"]),
                float(outputs["sparse_loss"]),
            )
        else:
            for key in self._terms:
                self._terms[key].append(float(outputs[key]))
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._nonfinite:
            self.skipped_steps += 1
            for parameter in model.parameters():
                parameter.grad = None
        return loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        for key, values in self._terms.items():
            if values and "loss" in logs:
                logs[key] = round(sum(values) / len(values), 4)
                values.clear()
        if self.skipped_steps:
            logs["skipped_nonfinite_steps"] = self.skipped_steps
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """Checkpoints and final saves hold the adapter folder only (never the base weights)."""
        if self.args.should_save:
            save_adapter(self.accelerator.unwrap_model(self.model), output_dir or self.args.output_dir, self.base_model)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        model = self.accelerator.unwrap_model(model or self.model)
        weights = load_file(os.path.join(resume_from_checkpoint, "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model.peft_model, weights)
        if result.unexpected_keys:
            raise ValueError(f"{resume_from_checkpoint}: unexpected adapter tensors {result.unexpected_keys[:5]}")
        logger.info("resumed adapter weights from %s", resume_from_checkpoint)


@dataclass
class TrainingResult:
    """Where the adapter went, how the run ended, and the trained model (in eval mode, LoRA unmerged)."""

    adapter_dir: Path
    merged_dir: Path | None
    global_step: int
    skipped_steps: int
    final_loss: float | None
    model: DiffRetrieverForTraining | None = field(default=None, repr=False)


def training_arguments(settings: TrainingSettings) -> TrainingArguments:
    """The HF TrainingArguments of a run (checkpoints in ``OUTPUT/checkpoints``)."""
    use_cpu = settings.device == "cpu" or not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(Path(settings.output_dir) / CHECKPOINTS_DIR),
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=settings.lr_scheduler,
        max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        seed=settings.seed,
        data_seed=settings.sampling_seed,
        bf16=settings.bf16,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to="none",
        remove_unused_columns=False,
        use_cpu=use_cpu,
        optim="adamw_torch" if use_cpu else "adamw_torch_fused",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
    )


def _check_output(settings: TrainingSettings) -> str | None:
    """The checkpoint to resume from (``None``: a fresh run); refuses to mix a new run with an old one."""
    checkpoints = Path(settings.output_dir) / CHECKPOINTS_DIR
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if settings.resume:
        if last is None:
            raise FileNotFoundError(f"--resume: no checkpoint-* folder in {checkpoints} to resume from")
        return last
    if last is not None:
        raise FileExistsError(
            f"{checkpoints} already holds checkpoints of an earlier run; pass --resume to continue it "
            "or choose another --output-dir"
        )
    return None


def train(settings: TrainingSettings, *, backbone=None, callbacks=()) -> TrainingResult:
    """Fine-tune a backbone with LoRA on Tevatron data and write the adapter to ``settings.output_dir``.

    Parameters
    ----------
    settings:
        All options (:class:`~.config.TrainingSettings`).
    backbone:
        An already loaded :class:`~pyserini_diffretriever.backbones.base.LoadedBackbone` (e.g. a shaped random
        network for a benchmark); ``None`` loads ``settings.model``.
    callbacks:
        Extra ``transformers.TrainerCallback`` s.
    """
    from transformers import set_seed

    from ..backbones import load_backbone

    resume_from = _check_output(settings)
    args = training_arguments(settings)
    if args.n_gpu > 1:
        raise RuntimeError(
            f"{args.n_gpu} GPUs visible to one process: launch with torchrun --nproc-per-node {args.n_gpu} "
            "(DDP), or restrict CUDA_VISIBLE_DEVICES to one GPU"
        )
    dataset = TevatronGroups(
        settings.train_data,
        n_negatives=settings.n_negatives,
        seed=settings.sampling_seed,
        title_separator=settings.title_separator,
    )
    set_seed(settings.seed)  # LoRA initialisation
    if backbone is None:
        backbone = load_backbone(settings.model, dtype="bfloat16" if settings.bf16 else "float32", device=args.device)
    model = DiffRetrieverForTraining(backbone, settings)
    trainer = DiffRetrieverTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=model.collator(),
        callbacks=[EpochCallback(dataset), *callbacks],
        base_model=str(settings.model),
    )
    output = trainer.train(resume_from_checkpoint=resume_from)
    model.eval()
    result = TrainingResult(
        adapter_dir=Path(settings.output_dir),
        merged_dir=None,
        global_step=trainer.state.global_step,
        skipped_steps=trainer.skipped_steps,
        final_loss=output.training_loss,
        model=model,
    )
    if trainer.is_world_process_zero():
        save_adapter(model, settings.output_dir, str(settings.model))
        if settings.merge:
            dtype = "bfloat16" if settings.bf16 else "float32"
            result.merged_dir = merge_adapter(settings.output_dir, Path(settings.output_dir) / MERGED_DIR, dtype=dtype)
        _write_summary(settings, result, trainer)
    return result


def _write_summary(settings: TrainingSettings, result: TrainingResult, trainer: Trainer) -> None:
    summary = {
        "settings": {
            key: (str(value) if isinstance(value, os.PathLike) else value) for key, value in asdict(settings).items()
        },
        "global_step": result.global_step,
        "skipped_nonfinite_steps": result.skipped_steps,
        "training_loss": result.final_loss,
        "log_history": trainer.state.log_history,
    }
    path = Path(settings.output_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
