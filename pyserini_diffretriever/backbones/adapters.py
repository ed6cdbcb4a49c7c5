"""Attaching a PEFT LoRA adapter to a native backbone and merging it into the weights.

The released DiffRetriever checkpoints are LoRA adapters (r=16, alpha=64) trained on the remote-code
classes. Our native modules keep those classes' module paths, so ``PeftModel.from_pretrained`` applies
them directly; :func:`attach_and_merge` then checks that *every* adapter tensor was consumed (PEFT only
warns about mismatches) and merges, returning the plain native module: after merging,
``hidden_states`` still returns hidden states (docs/method.md §11 item 3 -- the reference's hook broke there).
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .loading import BackboneLoadError, read_json, resolve_model_dir

logger = logging.getLogger(__name__)

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
RETRIEVER_CONFIG_FILE = "retriever_config.json"
_PEFT_PREFIX = "base_model.model."

#: ``retriever_config.json`` ``model_type`` (reference adapter names, lower-cased)
#: -> (backbone ``model_type`` of config.json, base hub id).
RETRIEVER_BASE_MODELS = {
    "dream": ("Dream", "Dream-org/Dream-v0-Instruct-7B"),
    "llada": ("llada", "GSAI-ML/LLaDA-8B-Instruct"),
    "llada1": ("llada", "GSAI-ML/LLaDA-8B-Instruct"),
    "qwen2": ("qwen2", "Qwen/Qwen2.5-7B-Instruct"),
    "llama": ("llama", "meta-llama/Meta-Llama-3-8B-Instruct"),
}

#: Rewrites tried, in order, when adapter module paths do not exist in the native module:
#: identity (released adapters), adapter trained on the inner trunk (``model.`` missing), and adapter
#: trained on a wrapper one level deeper (extra leading ``model.``). Patterns are PEFT ``key_mapping``s.
_KEY_MAPPINGS: tuple[dict[str, str], ...] = ({}, {r"^": "model."}, {r"^model\.": ""})


class AdapterError(BackboneLoadError):
    """An adapter folder is incomplete, of an unsupported kind, or does not fit the base model."""


@dataclass(frozen=True)
class AdapterInfo:
    """A resolved adapter folder and what its config files say about it."""

    source: str  # what the user passed (path or hub id)
    path: Path
    config: dict
    retriever_config: dict | None = None
    tensor_names: tuple[str, ...] = field(default=(), repr=False)

    @property
    def base_model(self) -> str | None:
        """``base_model_name_or_path`` from adapter_config.json (may be a training-cluster path)."""
        return self.config.get("base_model_name_or_path") or None

    @property
    def retriever_model_type(self) -> str | None:
        return (self.retriever_config or {}).get("model_type")

    @property
    def backbone_model_type(self) -> str | None:
        """The config.json ``model_type`` the adapter was trained for, if ``retriever_config.json`` says."""
        return _retriever_entry(self)[0] if self.retriever_model_type is not None else None

    @property
    def sha256(self) -> str:
        """sha256 of ``adapter_model.safetensors``: names the trained weights whatever folder they sit in."""
        digest = hashlib.sha256()
        with (self.path / ADAPTER_WEIGHTS_FILE).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @property
    def trained_k(self) -> dict[str, int] | None:
        """``{"query": K_q, "passage": K_p}`` the adapter was trained with (``retriever_config.json``), if recorded."""
        config = self.retriever_config or {}
        k = {"query": config.get("n_gen_q_tokens"), "passage": config.get("n_gen_p_tokens")}
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in k.values()):
            return k
        return None

    def summary(self) -> dict:
        """What a manifest should record about the adapter."""
        return {
            "adapter_k": self.trained_k,
            "adapter": self.source,
            "adapter_sha256": self.sha256,
            "adapter_base_model": self.base_model,
            "adapter_peft_type": self.config.get("peft_type"),
            "adapter_r": self.config.get("r"),
            "adapter_alpha": self.config.get("lora_alpha"),
            "adapter_target_modules": self.config.get("target_modules"),
            "adapter_merged": True,
            "retriever_model_type": self.retriever_model_type,
        }


def is_adapter_dir(path: Path) -> bool:
    """A PEFT adapter folder without full model weights (the released layout).

    Weights, not ``config.json``, decide: a released repo may also carry a remote-code ``config.json``.
    """
    path = Path(path)
    has_weights = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    return (path / ADAPTER_CONFIG_FILE).is_file() and not has_weights


def read_adapter(adapter: str | Path, *, revision: str | None = None) -> AdapterInfo:
    """Resolve an adapter path or hub id and read its config; only safetensors weights are accepted."""
    path = resolve_model_dir(adapter, revision=revision)
    if not (path / ADAPTER_CONFIG_FILE).is_file():
        raise AdapterError(f"adapter {adapter!r}: {path} has no {ADAPTER_CONFIG_FILE}")
    config = read_json(path / ADAPTER_CONFIG_FILE)
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"adapter {adapter!r}: peft_type {config.get('peft_type')!r} is not supported (LORA only)")
    weights = path / ADAPTER_WEIGHTS_FILE
    if not weights.is_file():
        found = sorted(p.name for p in path.glob("adapter_model*"))
        raise AdapterError(
            f"adapter {adapter!r}: {weights} not found"
            + (f" (found {found}; pickled weights are not loaded)" if found else "")
        )
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt", device="cpu") as fh:
        names = tuple(fh.keys())
    retriever = read_json(path / RETRIEVER_CONFIG_FILE) if (path / RETRIEVER_CONFIG_FILE).is_file() else None
    return AdapterInfo(source=str(adapter), path=path, config=config, retriever_config=retriever, tensor_names=names)


def default_base_model(info: AdapterInfo) -> str:
    """Pick the base checkpoint for an adapter given without one.

    ``retriever_config.json``'s ``base_model_name_or_path`` first (written by this package's trainer), then its
    ``model_type`` (released layout: its adapter_config may name a training-cluster path); otherwise
    adapter_config's ``base_model_name_or_path``.
    """
    trained_on = (info.retriever_config or {}).get("base_model_name_or_path")
    if trained_on:
        return str(trained_on)
    if info.retriever_model_type is not None:
        return _retriever_entry(info)[1]
    if info.base_model:
        return info.base_model
    raise AdapterError(
        f"adapter {info.source!r} names no base model "
        f"(no base_model_name_or_path, no {RETRIEVER_CONFIG_FILE}); "
        "pass the base model explicitly"
    )


def _retriever_entry(info: AdapterInfo) -> tuple[str, str]:
    rtype = info.retriever_model_type
    try:
        return RETRIEVER_BASE_MODELS[str(rtype).lower()]
    except KeyError:
        raise AdapterError(
            f"adapter {info.source!r}: {RETRIEVER_CONFIG_FILE} model_type {rtype!r} is unknown "
            f"(known: {sorted(RETRIEVER_BASE_MODELS)}); pass the base model explicitly"
        ) from None


def _module_path(key: str) -> str:
    """``base_model.model.a.b.lora_A.weight`` -> ``a.b`` (the module the LoRA tensor belongs to)."""
    key = key.removeprefix(_PEFT_PREFIX)
    return key.split(".lora_", 1)[0] if ".lora_" in key else key.rsplit(".", 1)[0]


def _apply_mapping(path: str, mapping: dict[str, str]) -> str:
    for pattern, replacement in mapping.items():
        new, n = re.subn(pattern, replacement, path, count=1)
        if n:
            return new
    return path


def choose_key_mapping(model: nn.Module, info: AdapterInfo) -> dict[str, str]:
    """The first PEFT ``key_mapping`` under which every adapter tensor names a module of ``model``."""
    modules = {name for name, _ in model.named_modules()}
    paths = {_module_path(k) for k in info.tensor_names}
    if not paths:
        raise AdapterError(f"adapter {info.source!r}: {ADAPTER_WEIGHTS_FILE} holds no tensors")
    for mapping in _KEY_MAPPINGS:
        if all(_apply_mapping(p, mapping) in modules for p in paths):
            return mapping
    unknown = sorted(p for p in paths if p not in modules)
    raise AdapterError(
        f"adapter {info.source!r} targets modules that {type(model).__name__} does not have "
        f"({len(unknown)}, e.g. {unknown[:5]}); module paths look like {sorted(modules)[1:4]}"
    )


def attach_and_merge(model: nn.Module, info: AdapterInfo, *, device: str | torch.device = "cpu") -> nn.Module:
    """Attach the adapter with ``PeftModel.from_pretrained``, verify it fully loaded, merge, unwrap.

    Returns the same native module class (LoRA folded into its weights), so the Backbone methods work.
    """
    from peft import LoraConfig, PeftModel, get_peft_model_state_dict

    mapping = choose_key_mapping(model, info)
    config = LoraConfig.from_pretrained(str(info.path))
    # The task wrappers (CAUSAL_LM, FEATURE_EXTRACTION) only add generation/heads we never call and
    # need methods a native module lacks; the base PeftModel injects the same LoRA layers.
    config.task_type = None
    with warnings.catch_warnings():
        # peft probes the deprecated transformers ``is_gradient_checkpointing``; not actionable here.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = PeftModel.from_pretrained(
            model,
            str(info.path),
            config=config,
            key_mapping=mapping or None,
            torch_device=str(torch.device(device)),
        )
    # The LoRA tensors only. peft's default ("auto") would also look for a resized vocabulary by loading the base
    # model's config through our module's config class: a hub request for a hub id, and transformers' "You are
    # using a model of type `Dream` to instantiate a model of type `qwen2`" warning for Dream, where that is
    # expected (Dream is hosted in the Qwen2 modules). A native module's vocabulary is the base config's anyway.
    loaded = set(get_peft_model_state_dict(peft_model, save_embedding_layers=False).keys())
    given = {_PEFT_PREFIX + _apply_mapping(k.removeprefix(_PEFT_PREFIX), mapping) for k in info.tensor_names}
    missing, unexpected = loaded - given, given - loaded
    if missing or unexpected:
        raise AdapterError(
            f"adapter {info.source!r} does not match the LoRA layers its config creates: "
            f"missing {sorted(missing)[:10]} ({len(missing)}), "
            f"unused {sorted(unexpected)[:10]} ({len(unexpected)})"
        )
    merged = peft_model.merge_and_unload()
    if type(merged) is not type(model):
        raise AdapterError(
            f"merging adapter {info.source!r} returned {type(merged).__name__}, not {type(model).__name__}"
        )
    logger.info(
        "merged LoRA adapter %s (r=%s, alpha=%s, %d tensors) into %s",
        info.source,
        config.r,
        config.lora_alpha,
        len(info.tensor_names),
        type(model).__name__,
    )
    return merged
