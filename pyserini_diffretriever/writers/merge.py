"""Merge the shard folders of one sharded encode (``--shard-id i --shard-num n``) into one folder.

Why checks first: concatenating shards written with different encoders, prompts, ``k`` or quantisation would
give an index whose scores are silently inconsistent. All manifests must agree on kind, encoder settings,
dimension / dtype / quantisation, the query settings the index expects (``query``) and shard count, and the
shard ids must be exactly ``0 .. n-1``. Shards are concatenated in shard-id order, so the merged folder equals
an unsharded run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_output_dir
from .faiss import merge_faiss
from .jsonl_vector import merge_jsonl_vectors
from .manifest import ManifestError, read_manifest
from .multivector import merge_multivector
from .verify import verify_output

logger = logging.getLogger(__name__)

_MERGERS: dict[str, Callable[..., int]] = {
    "dense": merge_faiss,
    "multi": merge_multivector,
    "impact-vectors": merge_jsonl_vectors,
}
_MUST_AGREE = ("kind", "encoder", "dimension", "dtype", "quantization", "query")


def check_shards(inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, dict[str, Any]]]:
    """Read the shard manifests and return ``(folder, manifest)`` pairs sorted by shard id.

    Raises
    ------
    ManifestError
        If a manifest is missing, the kinds/settings disagree, or the shard ids are not ``0 .. n-1``.
    CorruptOutputError
        If a shard folder is truncated or inconsistent (:func:`~.verify.verify_output`).
    """
    if not inputs:
        raise ManifestError("no input folders to merge")
    shards = [(Path(folder), verify_output(folder, tuple(_MERGERS))) for folder in inputs]
    reference_path, reference = shards[0]
    for path, manifest in shards[1:]:
        for key in _MUST_AGREE:
            if manifest.get(key) != reference.get(key):
                raise ManifestError(
                    f"cannot merge {path} with {reference_path}: {key!r} differs "
                    f"({manifest.get(key)!r} vs {reference.get(key)!r})"
                )
    nums = {manifest["shard"]["num"] for _, manifest in shards}
    ids = sorted(manifest["shard"]["id"] for _, manifest in shards)
    if len(nums) != 1 or ids != list(range(len(shards))) or nums != {len(shards)}:
        described = ", ".join(f"{p} = shard {m['shard']['id']}/{m['shard']['num']}" for p, m in shards)
        raise ManifestError(f"inputs must be all shards 0..n-1 of one run, each once; got {described}")
    return sorted(shards, key=lambda pair: pair[1]["shard"]["id"])


def merge_outputs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, overwrite: bool = False) -> dict:
    """Merge dense, multi or impact-vectors shard folders into ``output`` (atomically); return its manifest."""
    shards = check_shards(inputs)
    kind = shards[0][1]["kind"]
    corpus = shards[0][1].get("corpus")
    extra = {"merged_from": [str(path.resolve()) for path, _ in shards]}
    if shards[0][1].get("query") is not None:
        extra["query"] = shards[0][1]["query"]
    if corpus is not None:
        extra["corpus"] = {key: value for key, value in corpus.items() if key not in ("shard_range",)}
    if all("tokens" in manifest for _, manifest in shards):  # what encoding the shards cost, summed
        extra["tokens"] = {
            count: sum(int(manifest["tokens"][count]) for _, manifest in shards) for count in ("real", "computed")
        }
    with atomic_output_dir(output, overwrite) as partial:
        num_docs = _MERGERS[kind]([path for path, _ in shards], partial, manifest_extra=extra)
        expected = sum(manifest["num_docs"] for _, manifest in shards)
        if num_docs != expected:
            raise ManifestError(f"merged {num_docs} documents but the shard manifests list {expected}")
    logger.info("Merged %d %s shards (%d documents) into %s", len(shards), kind, num_docs, output)
    return read_manifest(output)
