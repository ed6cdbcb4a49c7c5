"""Finding a checkpoint on disk or on the Hub and loading its safetensors into a native module.

Kept separate from the model code so that every backbone family loads weights the same strict way:
the tensor names in the checkpoint must equal the module's state-dict names (no silent random init of
a missing tensor, no silently ignored extra tensor), and only safetensors files are ever read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Files fetched from the Hub: configs, tokenizers and safetensors weights, never remote code or pickles.
HUB_ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken")
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
_MAX_LISTED = 20

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


class BackboneLoadError(RuntimeError):
    """Base class of the errors raised while loading a backbone."""


class BackboneNotFoundError(BackboneLoadError, FileNotFoundError):
    """A model directory or hub id could not be resolved to local files."""


class CheckpointFormatError(BackboneLoadError):
    """A checkpoint folder is missing a file or holds a file we do not read (e.g. only ``.bin`` weights)."""


class CheckpointMismatchError(BackboneLoadError):
    """Checkpoint tensor names or shapes differ from the native module's parameters."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32" | "bfloat16" | "float16"`` (or a ``torch.dtype``) to a floating ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point type, got {dtype}")
        return dtype
    try:
        return _DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16") from None


def _looks_like_path(name: str) -> bool:
    """True for strings that can only be meant as a filesystem path, never as a hub ``owner/name`` id."""
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or name in (".", "..")
        or name.count("/") > 1
        or os.path.exists(name)
    )


def resolve_model_dir(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    allow_patterns: Iterable[str] = HUB_ALLOW_PATTERNS,
) -> Path:
    """Return a local directory for a local path or a Hugging Face Hub repo id.

    A hub id is fetched with :func:`huggingface_hub.snapshot_download` (or taken from its cache, e.g.
    with ``HF_HUB_OFFLINE=1``); only configs, tokenizer files and safetensors are downloaded.

    Raises
    ------
    BackboneNotFoundError
        If the path does not exist, or the id cannot be fetched (offline, unknown repo, bad revision).
    """
    name = os.fspath(name_or_path)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return Path(expanded)
    if _looks_like_path(name):
        kind = "is a file, not a directory" if os.path.exists(expanded) else "does not exist"
        raise BackboneNotFoundError(f"model directory {name!r} {kind}")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(name, revision=revision, allow_patterns=list(allow_patterns))
    except Exception as err:  # noqa: BLE001 - every hub failure (offline, 404, bad id) means the same to us
        raise BackboneNotFoundError(
            f"{name!r} is not a local directory and could not be fetched from the Hugging Face Hub "
            f"(revision={revision!r}): {type(err).__name__}: {str(err).rstrip('.')}. "
            "If this machine is offline, download the "
            f"repository elsewhere (`hf download {name}`) and pass its local directory, or populate the hub "
            f"cache and set HF_HUB_OFFLINE=1."
        ) from err
    return Path(local)


def read_json(path: Path) -> dict:
    """Read a JSON object from ``path``, naming the file in any error."""
    if not path.is_file():
        raise CheckpointFormatError(f"{path} not found")
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise CheckpointFormatError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointFormatError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_config(model_dir: Path) -> dict:
    """Return the parsed ``config.json`` of a checkpoint directory."""
    return read_json(Path(model_dir) / "config.json")


#: config.json keys that describe (remote-code) packaging rather than the network.
PACKAGING_KEYS = (
    "auto_map",
    "architectures",
    "model_type",
    "_name_or_path",
    "transformers_version",
    "torch_dtype",
    "dtype",
)


def network_config_kwargs(config: dict, *, use_cache: bool) -> dict:
    """Keyword arguments for a transformers config class: ``config`` minus :data:`PACKAGING_KEYS`.

    Shared by the families hosted in transformers' own modules, so they drop the same keys.
    """
    kwargs = {k: v for k, v in config.items() if k not in PACKAGING_KEYS}
    kwargs["use_cache"] = use_cache
    return kwargs


def known_token_id(tokenizer, token: str) -> int | None:
    """Id of ``token`` or None when the tokenizer does not know it (maps to unk or nothing)."""
    tid = tokenizer.convert_tokens_to_ids(token)
    return None if tid is None or tid == tokenizer.unk_token_id else int(tid)


@dataclass(frozen=True)
class SpecialTokens:
    """The special ids a :class:`~.base.BackboneSpec` records (``mask`` is ``None`` for autoregressive models)."""

    mask: int | None
    pad: int
    eos: int
    chat_end: int | None


def _first_id(value) -> int | None:
    """A config's token id: an int, or the first of a list (Llama-3 lists several EOS ids), or ``None``."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return None if value is None else int(value)


def special_tokens(
    tokenizer, config: Mapping, name_or_path: str, *, chat_end_token: str, needs_mask: bool
) -> SpecialTokens:
    """Collect a checkpoint's special ids from its tokenizer and ``config.json``; the one rule for every family.

    The tokenizer wins over ``config.json`` for EOS; ``config.json`` wins for the mask id (Dream's tokenizer files
    name no mask token). A tokenizer without a pad token gets ``config.json``'s ``pad_token_id``, else EOS (as the
    reference code does), set on ``tokenizer`` so that batches are padded with it.

    Raises
    ------
    BackboneLoadError
        No EOS id anywhere, or no mask id for a family that needs one (``needs_mask``).
    """
    mask = None
    if needs_mask:
        mask = _first_id(config.get("mask_token_id"))
        if mask is None:
            mask = _first_id(getattr(tokenizer, "mask_token_id", None))
        if mask is None:
            raise BackboneLoadError(f"{name_or_path}: no mask_token_id in config.json or tokenizer")
    eos = _first_id(tokenizer.eos_token_id)
    if eos is None:
        eos = _first_id(config.get("eos_token_id"))
    if eos is None:
        raise BackboneLoadError(f"{name_or_path}: no eos token in the tokenizer or config.json")
    if tokenizer.pad_token_id is None:
        pad = _first_id(config.get("pad_token_id"))
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(eos if pad is None else pad)
    return SpecialTokens(mask, int(tokenizer.pad_token_id), eos, known_token_id(tokenizer, chat_end_token))


def safetensors_files(model_dir: Path) -> dict[Path, list[str] | None]:
    """List the safetensors files of a checkpoint and, for sharded ones, the names the index assigns.

    Returns ``{file: names_from_index_or_None}``. Only ``model.safetensors`` or
    ``model.safetensors.index.json`` + shards are accepted: pickled ``*.bin`` weights are never loaded.
    """
    model_dir = Path(model_dir)
    index_path = model_dir / SAFETENSORS_INDEX_FILE
    single = model_dir / SAFETENSORS_FILE
    if index_path.is_file():
        weight_map = read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointFormatError(f"{index_path} has no 'weight_map'")
        files: dict[Path, list[str] | None] = {}
        for tensor_name, shard in weight_map.items():
            files.setdefault(model_dir / shard, []).append(tensor_name)  # type: ignore[union-attr]
        missing = [str(p.name) for p in files if not p.is_file()]
        if missing:
            raise CheckpointFormatError(f"{index_path} names shard files that are missing: {missing}")
        return files
    if single.is_file():
        return {single: None}
    found = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(p.name for p in model_dir.glob("*.pt"))
    hint = f" (found {found}; pickled weights are not loaded, convert them to safetensors)" if found else ""
    raise CheckpointFormatError(f"{model_dir} has neither {SAFETENSORS_FILE} nor {SAFETENSORS_INDEX_FILE}{hint}")


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{len(names)}: {shown}{more}"


def checkpoint_tensor_names(model_dir: Path) -> dict[str, Path]:
    """Map every tensor name in the checkpoint to the file that stores it (checking index vs. shards)."""
    from safetensors import safe_open

    where: dict[str, Path] = {}
    for path, index_names in safetensors_files(model_dir).items():
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            names = list(fh.keys())
        if index_names is not None:
            absent = set(index_names) - set(names)
            if absent:
                raise CheckpointFormatError(
                    f"{SAFETENSORS_INDEX_FILE} places tensors in {path.name} that it does not hold ({_listing(absent)})"
                )
        for name in names:
            if name in where:
                raise CheckpointFormatError(f"tensor {name!r} is stored in both {where[name].name} and {path.name}")
            where[name] = path
    return where


def load_safetensors_into(
    module: nn.Module,
    model_dir: Path,
    *,
    dtype: torch.dtype,
    device: str | torch.device = "cpu",
) -> None:
    """Load a checkpoint's safetensors into ``module`` (typically built on the meta device), strictly.

    The set of checkpoint tensor names must equal the module's state-dict names and every shape must
    match; otherwise :class:`CheckpointMismatchError` lists the missing / unexpected / mis-shaped
    tensors. Floating tensors are cast to ``dtype``; tensors are placed on ``device`` and *assigned*
    (no copy into pre-allocated parameters), so a meta-device module costs no random initialisation.
    """
    from safetensors import safe_open

    model_dir = Path(model_dir)
    expected = module.state_dict()
    where = checkpoint_tensor_names(model_dir)
    missing = set(expected) - set(where)
    unexpected = set(where) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint ({_listing(missing)})")
        if unexpected:
            parts.append(f"not used by the {type(module).__name__} module ({_listing(unexpected)})")
        raise CheckpointMismatchError(f"checkpoint {model_dir} does not match the model: " + "; ".join(parts))

    device = torch.device(device)
    state: dict[str, torch.Tensor] = {}
    bad_shapes: list[str] = []
    by_file: dict[Path, list[str]] = {}
    for name, path in where.items():
        by_file.setdefault(path, []).append(name)
    for path, names in by_file.items():
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in names:
                tensor = fh.get_tensor(name)
                if tuple(tensor.shape) != tuple(expected[name].shape):
                    bad_shapes.append(f"{name} {tuple(tensor.shape)} != {tuple(expected[name].shape)}")
                    continue
                target_dtype = dtype if tensor.is_floating_point() else tensor.dtype
                state[name] = tensor.to(device=device, dtype=target_dtype)
    if bad_shapes:
        raise CheckpointMismatchError(
            f"checkpoint {model_dir} has tensors of the wrong shape (checkpoint != model): {_listing(bad_shapes)}"
        )
    module.load_state_dict(state, strict=True, assign=True)
    logger.info("loaded %d tensors from %s (%s, %s)", len(state), model_dir, dtype, device)


def assert_materialised(module: nn.Module) -> None:
    """Fail if any parameter or buffer is still on the meta device after loading (a builder bug)."""
    left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if left:
        raise BackboneLoadError(f"tensors left on the meta device after loading: {_listing(left)}")
