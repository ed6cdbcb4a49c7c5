"""Writing a trained adapter in the released layout (docs/method.md §8.2), and a merged-weights export.

Adapter folder (no base weights)::

    adapter_config.json        PEFT LoRA config (r, alpha, targets, the reference's task type, the base model)
    adapter_model.safetensors  the LoRA tensors only
    retriever_config.json      model_type, K per side, prompt, lengths, loss settings, base model
    tokenizer files            the base tokenizer, saved with save_pretrained

It loads natively, without remote code, wherever an adapter is accepted:
``load_backbone(None, adapter=DIR)``, ``DiffRetrieverModel(DIR)``, the encoders' ``adapter=``, the encode CLI's
``--adapter`` and ``open_searcher`` (through the index manifest, which records the adapter and its sha256).

``--merge`` additionally writes ``DIR/merged``: the base ``config.json`` and the LoRA-merged weights as safetensors
(sharded at 5 GB like Hub checkpoints), loadable as a plain checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from ..backbones.adapters import ADAPTER_CONFIG_FILE, RETRIEVER_CONFIG_FILE
from ..representation.inputs import N_TAIL

logger = logging.getLogger(__name__)

#: ``retriever_config.json`` ``model_type`` per backbone ``model_type`` (the reference's adapter names).
RETRIEVER_MODEL_TYPES = {"Dream": "dream", "llada": "llada1", "qwen2": "qwen2", "llama": "llama"}
MERGED_DIR = "merged"


def retriever_config(model, base_model: str) -> dict:
    """The ``retriever_config.json`` of a :class:`~.model.DiffRetrieverForTraining` (reference keys + ours)."""
    spec, settings = model.spec, model.settings
    query, passage = model.builders["query"], model.builders["passage"]
    return {
        "model_type": RETRIEVER_MODEL_TYPES.get(spec.model_type, spec.model_type),
        "backbone_model_type": spec.model_type,
        "base_model_name_or_path": base_model,
        "mask_token_id": spec.mask_token_id,
        "hidden_size": spec.hidden_size,
        "max_length": passage.max_length,
        "query_max_length": query.max_length,
        "n_gen_q_tokens": query.k,
        "n_gen_p_tokens": passage.k,
        "n_gen_tokens": passage.k,
        "num_denoise_steps": 1,
        "n_tail": 0 if passage.autoregressive else N_TAIL,
        "prompt": str(settings.prompt),
        "title_separator": settings.title_separator,
        "logits": settings.logits,
        "temperature": settings.temperature,
        "sparse_weight": settings.sparse_weight,
        "dense_weight": settings.dense_weight,
        "normalize": True,
        "lora_rank": settings.lora_r,
        "lora_alpha": settings.lora_alpha,
        "n_negatives": settings.n_negatives,
    }


def save_adapter(model, out_dir: str | os.PathLike, base_model: str) -> Path:
    """Write the adapter folder for ``model`` (a :class:`~.model.DiffRetrieverForTraining`) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.peft_model.save_pretrained(str(out), safe_serialization=True)
    config_path = out / ADAPTER_CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config["task_type"] = model.settings.targets(model.spec.model_type)[1]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    model.tokenizer.save_pretrained(str(out))
    (out / RETRIEVER_CONFIG_FILE).write_text(
        json.dumps(retriever_config(model, base_model), indent=2) + "\n", encoding="utf-8"
    )
    return out


def _without_tied_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``lm_head.weight`` when it shares storage with the embedding (tied checkpoints do not store it)."""
    head, embed = state.get("lm_head.weight"), state.get("model.embed_tokens.weight")
    if head is not None and embed is not None and head.data_ptr() == embed.data_ptr():
        state = {name: tensor for name, tensor in state.items() if name != "lm_head.weight"}
    return state


def merge_adapter(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "float32") -> Path:
    """Load the base model with the adapter merged and save it as a plain safetensors checkpoint in ``out_dir``."""
    from huggingface_hub import save_torch_state_dict

    from ..backbones import load_backbone

    loaded = load_backbone(None, adapter=adapter_dir, dtype=dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_dir = Path(loaded.spec.extra["model_dir"])
    shutil.copyfile(base_dir / "config.json", out / "config.json")
    state = {name: tensor.contiguous() for name, tensor in loaded.model.state_dict().items()}
    save_torch_state_dict(_without_tied_head(state), str(out), max_shard_size="5GB")
    loaded.tokenizer.save_pretrained(str(out))
    config = json.loads((Path(adapter_dir) / RETRIEVER_CONFIG_FILE).read_text(encoding="utf-8"))
    config["merged_from_adapter"] = str(adapter_dir)
    (out / RETRIEVER_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote merged weights of %s to %s", adapter_dir, out)
    return out
