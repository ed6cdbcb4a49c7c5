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
   optional exact re-ranking), then the rename to ``OUT``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..layouts import CODEC_FILE
from ..writers.checkpoint import PROGRESS_NAME, ResumableOutput
from ..writers.compressed import CompressedMultiVectorWriter
from ..writers.multivector import MultiVectorFolder, sample_rows
from .codec import DEFAULT_RESIDUAL_CODE, MultiVectorCodec, train_codec

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_SIZE = 65_536
"""Training vectors (k-means needs ~40 per list; the projection converges with far fewer)."""


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
    }
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
        since_commit = 0
        for begin in range(done, len(source), max(int(docs_per_step), 1)):
            stop = min(begin + int(docs_per_step), len(source))
            _write_step(writer, source, begin, stop)
            since_commit += stop - begin
            if since_commit >= checkpoint_every or stop == len(source):
                out.commit({"writer": writer.checkpoint(), "docs_done": stop, "codec_facts": facts})
                since_commit = 0
                logger.info("compressed %d of %d documents", stop, len(source))
        manifest = writer.finish()
        writer.cleanup()
        out.finalize()
    return manifest


def _write_step(writer: CompressedMultiVectorWriter, source: MultiVectorFolder, begin: int, stop: int) -> None:
    """Encode documents ``begin..stop-1`` (one contiguous read of their rows)."""
    writer.write(source.batch(begin, stop))
