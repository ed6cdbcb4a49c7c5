"""Build a compressed multi-vector index from a float ``multi`` folder: train the codec, stream the codes.

``python -m pyserini_diffretriever.index compress --input ENC/multi --output ENC/multi-sq8`` runs
:func:`compress_multivector`:

1. **sample** ``train_size`` vectors uniformly from ``vectors.npy`` (a memory map; sorted rows, one read);
2. **train** the codec (:mod:`.codec`: uncentred projection + IVF + residual code), or load one (``codec=``);
3. **encode** the documents in order, ``docs_per_step`` at a time, through
   :class:`~pyserini_diffretriever.writers.compressed.CompressedMultiVectorWriter`; memory is one step of
   float32 rows, whatever the corpus size;
4. **commit** progress every ``checkpoint_every`` documents: the output is resumable exactly like encoding
   (``OUT.partial`` + ``progress.json``; a killed build rerun with the same arguments continues and gives the
   same bytes, the trained codec is kept, not retrained);
5. **finish**: ``codes.npy`` header, ``offsets.npy``, manifest (encoder settings and query record copied from the
   source, so query-encoder compatibility checks work unchanged; ``source`` records the float folder for
   optional exact re-ranking), then the rename to ``OUT``;
6. **recall measured at build time** (issue 17): ``estimate_queries`` pseudo-queries drawn from the collection
   (:func:`~.compress_warp.pseudo_queries`, as the ``multi-warp`` build draws them) get their exact float32 MaxSim
   top-100 over *every* document while step 3 streams the floats anyway; the finished folder is then searched with
   the default :class:`~pyserini_diffretriever.search.MultiVectorSearcher` (no float reads) and with the float
   re-rank tier, and both recalls go into the manifest (``recall_estimate``), the log, and a warning below
   ``min_recall`` naming the setting that reaches it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..layouts import CODEC_FILE
from ..writers.checkpoint import PROGRESS_NAME, ResumableOutput
from ..writers.compressed import CompressedMultiVectorWriter
from ..writers.manifest import write_manifest
from ..writers.multivector import MultiVectorFolder, sample_rows
from .codec import DEFAULT_RESIDUAL_CODE, MultiVectorCodec, train_codec
from .compress_warp import (
    DEFAULT_ESTIMATE_QUERIES,
    DEFAULT_MIN_RECALL,
    DEFAULT_PERTURBATION,
    DEFAULT_QUERY_VECTORS,
    RECALL_DEPTH,
    RunningTop,
    exact_block_scores,
    pseudo_queries,
    recall_at,
)

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_SIZE = 65_536
"""Training vectors (k-means needs ~40 per list; the projection converges with far fewer)."""

ESTIMATE_RERANK = 300
"""Float re-rank depth whose recall the build also measures (benchmark B5's re-rank setting)."""


def _settings(source: MultiVectorFolder, options: Mapping[str, Any]) -> dict[str, Any]:
    """What decides the output bytes (a resumed run must match it)."""
    return {
        "input": str(source.directory.resolve()),
        "input_num_vectors": int(source.manifest.get("num_vectors", len(source.vectors))),
        "input_created": source.manifest.get("created"),
        **options,
    }


def _train_or_load(
    source: MultiVectorFolder, partial: Path, resumed: bool, options: Mapping[str, Any]
) -> tuple[MultiVectorCodec, dict[str, Any]]:
    if resumed:  # the codec trained by the interrupted run is part of its committed files
        return MultiVectorCodec.load(partial / CODEC_FILE), dict(options.get("codec_facts") or {})
    if options["codec"]:
        codec = MultiVectorCodec.load(options["codec"])
        if codec.dimension != source.vectors.shape[1]:
            raise ValueError(
                f"{options['codec']}: codec for {codec.dimension}-dim vectors, {source.directory} holds "
                f"{source.vectors.shape[1]}-dim vectors"
            )
        return codec, {"factory": "given", "codec_file": str(options["codec"])}
    sample = sample_rows(source.vectors, options["train_size"], options["seed"])
    return train_codec(
        sample,
        reduced_dimension=options["reduced_dimension"],
        residual_code=options["residual_code"],
        nlist=options["nlist"],
        num_vectors=len(source.vectors),
        seed=options["seed"],
    )


def compress_multivector(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    reduced_dimension: int | None = None,
    residual_code: str = DEFAULT_RESIDUAL_CODE,
    nlist: int | None = None,
    train_size: int = DEFAULT_TRAIN_SIZE,
    codec: str | os.PathLike | None = None,
    seed: int = 0,
    docs_per_step: int = 1024,
    checkpoint_every: int = 65_536,
    estimate_queries: int = DEFAULT_ESTIMATE_QUERIES,
    min_recall: float = DEFAULT_MIN_RECALL,
    overwrite: bool = False,
    restart: bool = False,
) -> dict[str, Any]:
    """Compress a float multi-vector folder into a ``multi-compressed`` one (module docstring); return its manifest.

    Parameters
    ----------
    input_dir, output_dir : str or PathLike
        The float ``multi`` folder and the folder to create.
    reduced_dimension, residual_code, nlist, train_size, seed
        Codec training (:func:`~.codec.train_codec`); ignored when ``codec`` is given.
    codec : str or PathLike, optional
        A trained ``codec.faiss`` to use instead of training (e.g. one codec for every shard of a corpus).
    docs_per_step, checkpoint_every : int
        Documents encoded per step, and between two commits.
    estimate_queries, min_recall
        Pseudo-queries of the build-time recall@100 estimate (0: none), and the recall below which it warns.
    overwrite, restart : bool
        Replace an existing output; discard an unfinished one instead of resuming it.
    """
    source = MultiVectorFolder(input_dir)
    options = {
        "reduced_dimension": int(reduced_dimension) if reduced_dimension else None,
        "residual_code": residual_code,
        "nlist": nlist,
        "train_size": int(train_size),
        "codec": str(codec) if codec else None,
        "seed": int(seed),
        "docs_per_step": int(docs_per_step),
        "estimate_queries": int(estimate_queries),
    }
    if estimate_queries < 0 or not 0.0 <= min_recall <= 1.0:
        raise ValueError(
            f"estimate_queries must be >= 0 (got {estimate_queries}), min_recall in [0, 1] (got {min_recall})"
        )
    with ResumableOutput(output_dir, _settings(source, options), overwrite=overwrite, restart=restart) as out:
        progress = out.progress or {}
        trained, facts = _train_or_load(source, out.partial, bool(progress), {**options, **progress})
        extra = {key: source.manifest[key] for key in ("query",) if key in source.manifest}
        extra["source"] = os.path.relpath(source.directory.resolve(), Path(output_dir).resolve())
        writer = CompressedMultiVectorWriter(
            out.partial, trained, source.manifest.get("encoder", {}), manifest_extra=extra, codec_facts=facts
        )
        writer.open(progress.get("writer"), preserve=(PROGRESS_NAME,))
        if not progress:  # records the encoder skipped stay listed (and counted) in the compressed folder
            writer.copy_skipped_report(source.directory)
        done = int(progress.get("docs_done", 0))
        queries = _pseudo_queries(source, int(estimate_queries), int(seed))
        truth = RunningTop(len(queries), min(RECALL_DEPTH, len(source)), progress.get("truth"))
        since_commit = 0
        for begin in range(done, len(source), max(int(docs_per_step), 1)):
            stop = min(begin + int(docs_per_step), len(source))
            batch = source.batch(begin, stop)
            _write_step(writer, batch)
            if len(queries):
                rows = np.concatenate(batch["vector"]).astype(np.float32)
                truth.add(exact_block_scores(queries, rows, np.array([len(v) for v in batch["vector"]])), begin)
            since_commit += stop - begin
            if since_commit >= checkpoint_every or stop == len(source):
                state = {"writer": writer.checkpoint(), "docs_done": stop, "codec_facts": facts}
                out.commit({**state, "truth": truth.state()})
                since_commit = 0
                logger.info("compressed %d of %d documents", stop, len(source))
        manifest = writer.finish()
        writer.cleanup()
        if len(queries):
            manifest = {**manifest, "recall_estimate": estimate_codec_recall(out.partial, source, queries, truth)}
            _warn_below(manifest["recall_estimate"], min_recall)
            write_manifest(out.partial, manifest)
        out.finalize()
    return manifest


def _write_step(writer: CompressedMultiVectorWriter, batch: dict[str, list]) -> None:
    """Encode one step's documents (one contiguous read of their rows)."""
    writer.write(batch)


def _pseudo_queries(source: MultiVectorFolder, count: int, seed: int) -> np.ndarray:
    """Deterministic pseudo-queries (the same on resume), drawn from ``count`` random documents."""
    if count == 0:
        return np.empty((0, DEFAULT_QUERY_VECTORS, source.vectors.shape[1]), dtype=np.float32)
    rng = np.random.default_rng([seed, 23])
    picked = rng.choice(len(source), size=min(len(source), max(count, 64)), replace=False)
    documents = [np.asarray(source.document(int(i)), dtype=np.float32) for i in np.sort(picked)]
    documents = [document for document in documents if len(document)]  # all slots stop-truncated: no vectors
    if not documents:
        return np.empty((0, DEFAULT_QUERY_VECTORS, source.vectors.shape[1]), dtype=np.float32)
    queries, _ = pseudo_queries(documents, count, DEFAULT_QUERY_VECTORS, DEFAULT_PERTURBATION, seed)
    return queries


def estimate_codec_recall(
    folder: Path, source: MultiVectorFolder, queries: np.ndarray, truth: RunningTop
) -> dict[str, Any]:
    """Recall@100 of ``queries`` on the compressed ``folder``: default search (no float reads) and float re-rank."""
    from ..search.multivector import MultiVectorSearcher

    position = {docid: i for i, docid in enumerate(source.docids)}
    depth = truth.docs.shape[1]
    rows = []
    for rerank in (0, ESTIMATE_RERANK):
        searcher = MultiVectorSearcher(folder, rerank=rerank, rerank_index=source.directory if rerank else None)
        hits = [np.array([position[h.docid] for h in searcher.search(q, k=depth)]) for q in queries]
        per_query = recall_at(hits, truth.docs)
        rows.append({"rerank": rerank, "recall": float(per_query.mean()), "min": float(per_query.min())})
    estimate = {"depth": depth, "queries": len(queries), "query_vectors": int(queries.shape[1])}
    estimate |= {"documents": len(source), "default": rows[0], "settings": rows}
    logger.info(
        "estimated recall@%d (%d pseudo-queries, exact MaxSim over all %d documents): %s",
        depth,
        len(queries),
        len(source),
        "; ".join(f"rerank {r['rerank']}: {r['recall']:.3f}" for r in rows),
    )
    return estimate


def _warn_below(estimate: Mapping[str, Any], min_recall: float) -> None:
    default, rerank = estimate["settings"]
    if default["recall"] >= min_recall:
        return
    hint = (
        f"search with --rerank {rerank['rerank']} (reads the float folder; estimated {rerank['recall']:.3f})"
        if rerank["recall"] >= min_recall
        else "the codec and candidate generation both limit it: build with a larger --dim, or search with "
        "--rerank and a larger --centroid-candidates"
    )
    logger.warning(
        "estimated recall@%d of the default search is %.3f, below --min-recall %.2f: %s",
        estimate["depth"],
        default["recall"],
        min_recall,
        hint,
    )
