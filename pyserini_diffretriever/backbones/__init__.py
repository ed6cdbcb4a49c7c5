"""Backbone registry and :func:`load_backbone`.

Backbones are native modules (no ``trust_remote_code``) selected by the ``model_type`` of the
checkpoint's ``config.json``. Adding a backbone means writing one module that defines ``MODEL_TYPE``,
``DEFAULT_K`` (``{"query": K_q, "passage": K_p}``), ``STOP_SET`` (one of :data:`STOP_SETS`), ``LORA_TARGETS`` and
``LORA_TASK_TYPE``, ``build_model``, ``load_tokenizer`` and ``make_spec`` (see :mod:`.dream`, :mod:`.llada`;
:mod:`.autoregressive` defines two such namespaces) and adding one line to :data:`BACKBONES`. Nothing else in the
package is keyed by ``model_type``: the encoders take K and the stop set, and fine-tuning the LoRA targets, from
the registry entry (:func:`resolve_k` is the one rule for K).

Diffusion families (``spec.family == "diffusion"``): Dream, LLaDA. Autoregressive families
(``spec.family == "autoregressive"``, the PromptReps baseline of ``docs/method.md`` §9): ``qwen2``, ``llama``.

Registry keys are the exact (case-sensitive) ``model_type`` strings (``"Dream"``, ``"llada"``, ``"qwen2"``,
``"llama"``);
:func:`get_family` also accepts them in any letter case when the exact key is absent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
from torch import nn

from . import autoregressive, dream, llada
from .adapters import (
    AdapterError,
    AdapterInfo,
    attach_and_merge,
    default_base_model,
    is_adapter_dir,
    read_adapter,
)
from .base import Backbone, BackboneSpec, LoadedBackbone
from .loading import (
    BackboneLoadError,
    BackboneNotFoundError,
    CheckpointFormatError,
    CheckpointMismatchError,
    read_config,
    resolve_dtype,
    resolve_model_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "STOP_SETS",
    "AdapterError",
    "Backbone",
    "BackboneFamily",
    "BackboneLoadError",
    "BackboneNotFoundError",
    "BackboneSpec",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "LoadedBackbone",
    "UnsupportedBackboneError",
    "default_k",
    "get_family",
    "load_backbone",
    "resolve_k",
]


STOP_SETS = ("special-except-mask", "special-and-quote")
"""Stop-token sets a family can name (``docs/method.md`` §3, §9): the tokenizer's special ids except the mask id
(diffusion), or the special ids plus the id(s) of ``"`` (autoregressive PromptReps)."""


class UnsupportedBackboneError(BackboneLoadError, ValueError):
    """``config.json`` names a ``model_type`` that no registered family implements."""


@dataclass(frozen=True)
class BackboneFamily:
    """How to build, tokenize and describe one ``model_type``, and the encoders' defaults for it.

    Attributes
    ----------
    default_k : mapping
        ``{"query": K_q, "passage": K_p}``: representative tokens per side when the user gives no K.
    stop_set : str
        One of :data:`STOP_SETS`: which decoded slot ids truncate the slots.
    lora_targets : tuple of str
        LoRA target module names (``docs/method.md`` §1.6); PEFT matches them as name suffixes.
    lora_task_type : str
        The reference's PEFT task type, recorded in an exported ``adapter_config.json``.
    """

    model_type: str
    build_model: Callable[..., nn.Module]  # (model_dir, config, *, dtype, device, attn_implementation)
    load_tokenizer: Callable[[Path], object]
    make_spec: Callable[..., BackboneSpec]  # (model, config, tokenizer, *, name_or_path, revision, adapter, extra)
    default_k: Mapping[str, int]
    stop_set: str
    lora_targets: tuple[str, ...]
    lora_task_type: str

    def __post_init__(self) -> None:
        if self.stop_set not in STOP_SETS:
            raise ValueError(f"{self.model_type}: stop_set={self.stop_set!r}, expected one of {STOP_SETS}")
        if set(self.default_k) != {"query", "passage"} or min(self.default_k.values()) < 1:
            raise ValueError(f"{self.model_type}: default_k must give K >= 1 for 'query' and 'passage'")
        if not self.lora_targets:
            raise ValueError(f"{self.model_type}: lora_targets must name at least one module")

    @classmethod
    def from_module(cls, module: ModuleType | SimpleNamespace) -> BackboneFamily:
        return cls(
            module.MODEL_TYPE,
            module.build_model,
            module.load_tokenizer,
            module.make_spec,
            dict(module.DEFAULT_K),
            module.STOP_SET,
            tuple(module.LORA_TARGETS),
            module.LORA_TASK_TYPE,
        )


BACKBONES: dict[str, BackboneFamily] = {
    dream.MODEL_TYPE: BackboneFamily.from_module(dream),
    llada.MODEL_TYPE: BackboneFamily.from_module(llada),
    autoregressive.QWEN2.MODEL_TYPE: BackboneFamily.from_module(autoregressive.QWEN2),
    autoregressive.LLAMA.MODEL_TYPE: BackboneFamily.from_module(autoregressive.LLAMA),
}


def get_family(model_type: str | None) -> BackboneFamily:
    """Registry lookup: exact ``model_type`` first, then a case-insensitive match."""
    if model_type in BACKBONES:
        return BACKBONES[model_type]
    lowered = {key.lower(): fam for key, fam in BACKBONES.items()}
    if isinstance(model_type, str) and model_type.lower() in lowered:
        return lowered[model_type.lower()]
    raise UnsupportedBackboneError(f"unsupported backbone model_type {model_type!r}; supported: {sorted(BACKBONES)}")


def default_k(model_type: str, side: str) -> int:
    """The registry's K of ``side`` (``"query"`` or ``"passage"``) for ``model_type``.

    Raises
    ------
    ValueError
        An unknown side, or an unregistered ``model_type`` (pass K explicitly for those).
    """
    try:
        family = get_family(model_type)
    except UnsupportedBackboneError:
        raise ValueError(
            f"no default K for backbone model_type {model_type!r}; pass k explicitly (defaults exist for "
            f"{sorted(BACKBONES)})"
        ) from None
    if side not in family.default_k:
        raise ValueError(f"side={side!r}: expected one of {sorted(family.default_k)}")
    return int(family.default_k[side])


def resolve_k(spec: BackboneSpec, side: str, k: int | None = None) -> int:
    """The K of ``side`` for a loaded backbone: the one rule, used by the encoders and by fine-tuning.

    ``k`` when given; else what a merged adapter was trained with (its ``retriever_config.json``
    ``n_gen_q_tokens`` / ``n_gen_p_tokens``, recorded as ``spec.extra["adapter_k"]``; a released single-vector
    adapter says K=1); else the registry's :func:`default_k`.
    """
    if k is not None:
        return k
    trained = spec.extra.get("adapter_k")
    if isinstance(trained, Mapping) and trained.get(side):
        return int(trained[side])
    return default_k(spec.model_type, side)


def load_backbone(
    name_or_path: str | os.PathLike | None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    adapter: str | os.PathLike | None = None,
    revision: str | None = None,
    adapter_revision: str | None = None,
    attn_implementation: str = "sdpa",
) -> LoadedBackbone:
    """Load a Dream, LLaDA, Qwen2 or Llama checkpoint natively, optionally merging a LoRA adapter.

    Parameters
    ----------
    name_or_path:
        Local checkpoint directory or Hugging Face Hub id of the base model. It may also be a released
        adapter folder/id (``adapter_config.json`` and no model weights): that adapter is then loaded
        onto its base, chosen from ``retriever_config.json``'s ``model_type`` or else the adapter's
        ``base_model_name_or_path``; ``revision`` then pins the adapter and the base is taken at its
        default revision. ``None`` requires ``adapter`` and picks the base the same way.
    dtype:
        ``"float32"``, ``"bfloat16"``, ``"float16"`` or a ``torch.dtype`` for all floating weights.
    device:
        Where the weights are placed (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).
    adapter:
        Optional PEFT LoRA adapter (path or hub id), merged into the weights after loading.
    revision, adapter_revision:
        Hub revisions of the base model and of the adapter.
    attn_implementation:
        ``"sdpa"`` (default) or ``"eager"``.

    Returns
    -------
    LoadedBackbone
        Frozen module in eval mode on ``device``, left-padding tokenizer, and its :class:`BackboneSpec`.

    Raises
    ------
    BackboneNotFoundError, CheckpointFormatError, CheckpointMismatchError, UnsupportedBackboneError,
    AdapterError
    """
    torch_dtype = resolve_dtype(dtype)
    name_or_path, model_dir, info, revision, adapter_revision = _resolve_checkpoint(
        name_or_path, adapter, revision, adapter_revision
    )
    config = read_config(model_dir)
    family = get_family(config.get("model_type"))
    _check_adapter_family(info, family, name_or_path)
    model = family.build_model(
        model_dir, config, dtype=torch_dtype, device=device, attn_implementation=attn_implementation
    )
    tokenizer = family.load_tokenizer(model_dir)
    extra: dict = {"model_dir": str(model_dir)}
    if info is not None:
        model = attach_and_merge(model, info, device=device)
        extra.update(info.summary(), adapter_revision=adapter_revision)
    spec = family.make_spec(
        model,
        config,
        tokenizer,
        name_or_path=os.fspath(name_or_path),
        revision=revision,
        adapter=info.source if info is not None else None,
        extra=extra,
    )
    if spec.mask_token_id is not None and spec.pad_token_id == spec.mask_token_id:
        raise BackboneLoadError(
            f"{name_or_path}: pad id {spec.pad_token_id} equals the mask id; padding would read as masks"
        )
    model.spec = spec
    model.requires_grad_(False)
    model.eval()
    _log_loaded(spec, torch_dtype, device)
    return LoadedBackbone(model=model, tokenizer=tokenizer, spec=spec)


def _resolve_checkpoint(name_or_path, adapter, revision, adapter_revision):
    """The base checkpoint folder and the adapter to merge, when either argument names an adapter.

    Returns ``(name_or_path, model_dir, adapter_info, revision, adapter_revision)``: for an adapter given as the
    model, ``revision`` pinned the adapter repository, so it becomes ``adapter_revision`` and the base is taken at
    its default revision.
    """
    info: AdapterInfo | None = read_adapter(adapter, revision=adapter_revision) if adapter is not None else None
    if name_or_path is None:
        if info is None:
            raise ValueError("load_backbone needs name_or_path, adapter, or both")
        name_or_path = default_base_model(info)
        logger.info("adapter %s: using base model %s", info.source, name_or_path)
    model_dir = resolve_model_dir(name_or_path, revision=revision)
    if is_adapter_dir(model_dir):
        if info is not None:
            raise AdapterError(f"{name_or_path!r} is itself an adapter; pass the base model with adapter={adapter!r}")
        info = replace(read_adapter(model_dir), source=os.fspath(name_or_path))
        adapter_revision, revision = revision, None  # ``revision`` pinned the adapter repo, not its base
        name_or_path = default_base_model(info)
        logger.info("adapter %s: using base model %s", info.source, name_or_path)
        model_dir = resolve_model_dir(name_or_path, revision=revision)
    return name_or_path, model_dir, info, revision, adapter_revision


def _check_adapter_family(info: AdapterInfo | None, family: BackboneFamily, name_or_path) -> None:
    if info is not None and info.backbone_model_type not in (None, family.model_type):
        raise AdapterError(
            f"adapter {info.source!r} was trained for a {info.backbone_model_type!r} backbone "
            f"({info.retriever_model_type!r} in {info.path / 'retriever_config.json'}) "
            f"but the base model {os.fspath(name_or_path)!r} is {family.model_type!r}"
        )


def _log_loaded(spec: BackboneSpec, torch_dtype: torch.dtype, device) -> None:
    logger.info(
        "loaded %s backbone %s (%s, %s, H=%d, V=%d%s)",
        spec.model_type,
        spec.name_or_path,
        torch_dtype,
        device,
        spec.hidden_size,
        spec.vocab_size,
        f", adapter {spec.adapter}" if spec.adapter else "",
    )
