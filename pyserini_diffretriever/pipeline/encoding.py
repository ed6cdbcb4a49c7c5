"""The encoding driver: one corpus shard -> index folders (dense, multi, impact) from one forward pass per batch.

Callers: the encode command line (:mod:`pyserini_diffretriever.cli.encode`, an argparse layer over
:func:`encode_corpus`), the benchmarks, and any program that encodes a corpus. The phases of a run are named
steps:

1. :func:`shard_range` -- the shard's record range (an empty shard is an error);
2. :func:`expected_query_settings` and :func:`run_settings` -- what the manifests record and what a resumed run
   must match;
3. :func:`_open_writers` -- one writer per representation in ``OUT.partial`` (or ``OUT.partial/<representation>``);
4. :class:`EncodeLoop` -- resume the writers, re-hash the records an interrupted run already encoded, encode batch
   by batch, commit every ``checkpoint_every`` records, finish and verify each folder;
5. :meth:`ResumableOutput.finalize <pyserini_diffretriever.writers.ResumableOutput.finalize>` -- rename
   ``OUT.partial`` to ``OUT``.

Importing this module loads numpy only; the encoders (torch, Pyserini) are imported when a query record is built.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..corpus import CorpusError, CorpusRecord, JsonlCorpusReader, SkippedRecord, shard_bounds
from ..layouts import PROGRESS_NAME, SKIPPED_REPORT_NAME
from ..settings import (
    DEFAULT_BATCH_SIZE,
    PROMPT_HASH_PREFIX,
    PROMPT_VARIANTS,
    REPRESENTATIONS,
    QuerySettings,
    check_positive_int,
)
from ..writers import (
    WRITERS,
    JsonVectorWriter,
    MultiVectorWriter,
    ResumableOutput,
    ResumeError,
    VectorWriter,
    WriterError,
    check_output_free,
    verify_output,
)
from ..writers.manifest import package_versions

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "MAX_SKIP_WARNINGS",
    "encode_corpus",
    "expected_query_settings",
    "run_settings",
    "shard_range",
]

DEFAULT_CHECKPOINT_EVERY = 1000
MAX_SKIP_WARNINGS = 20  # bad records logged one by one; all of them are in skipped-records.jsonl


def shard_range(reader: JsonlCorpusReader, shard: tuple[int, int]) -> tuple[int, int]:
    """Record range ``[start, end)`` of ``shard = (id, num)`` (contiguous, as Pyserini); raise for an empty one."""
    total = reader.count()
    start, end = shard_bounds(total, *shard)
    if end <= start:
        raise CorpusError(reader.path, None, f"shard {shard[0]}/{shard[1]} has no documents (corpus has {total})")
    return start, end


def expected_query_settings(
    encoder: Any, k: int | None = None, prompt: str | os.PathLike | None = None, max_length: int | None = None
) -> dict[str, Any] | None:
    """What an index written by ``encoder`` expects of its queries: the manifest's ``query`` record.

    The query K and prompt legitimately differ from the documents' (Dream: K_q=4, K_p=16), so a searcher compares
    them with this record (:class:`~pyserini_diffretriever.settings.QuerySettings`), not with the document
    settings. The values are those of a ``DiffRetrieverQueryEncoder`` built on the same loaded model, so a
    searcher's query encoder reports exactly the same ``k`` and ``prompt_sha256`` when it uses the defaults.

    Parameters
    ----------
    encoder : DiffRetrieverDocumentEncoder or compatible
        The document encoder; without a DiffRetriever ``model`` (test doubles) there is no record.
    k, prompt, max_length : optional
        Query K (default: ``backbones.resolve_k``: an adapter's, else the registry's), query prompt variant or
        YAML (default: the documents' variant, ``few`` for a custom YAML) and query token budget (default: the query
        encoder's).

    Returns
    -------
    dict or None
        :meth:`QuerySettings.record <pyserini_diffretriever.settings.QuerySettings.record>`; ``prompt`` is
        ``"sha256:<YAML content hash>"`` plus ``prompt_file`` for a custom YAML. ``None`` without a model.

    Raises
    ------
    ValueError
        An invalid K, prompt or max_length (checked by the query encoder), or query options for an encoder
        without a DiffRetriever model.
    """
    model = getattr(encoder, "model", None)
    if model is not None:  # imported only then: the encoders pull in torch and transformers
        from ..encoders import DiffRetrieverModel, DiffRetrieverQueryEncoder
        from ..representation.prompts import load_prompt
    if model is None or not isinstance(model, DiffRetrieverModel):
        if (k, prompt, max_length) != (None, None, None):
            raise ValueError(
                f"{type(encoder).__name__} is not a DiffRetriever encoder: the query K, prompt and "
                "max_length cannot be checked or recorded"
            )
        return None
    if prompt is None:
        documents = encoder.settings().get("prompt") if hasattr(encoder, "settings") else None
        prompt = documents if documents in PROMPT_VARIANTS else "few"
    options = {key: value for key, value in (("k", k), ("max_length", max_length)) if value is not None}
    settings = DiffRetrieverQueryEncoder(model, prompt=prompt, **options).settings()
    query = QuerySettings(settings["k"], settings["prompt"], settings["prompt_sha256"], settings["max_length"])
    if settings["prompt"] not in PROMPT_VARIANTS:  # a YAML: its path may not exist where the index is searched
        query = QuerySettings(
            query.k,
            PROMPT_HASH_PREFIX + load_prompt(prompt, "query").sha256(),
            query.prompt_sha256,
            query.max_length,
            prompt_file=str(Path(prompt).resolve()),
        )
    return query.record()


def encoder_settings(encoder: Any) -> dict[str, Any]:
    """``encoder.settings()``, or the class name of an encoder without settings (test doubles)."""
    return dict(encoder.settings()) if hasattr(encoder, "settings") else {"class": type(encoder).__name__}


def _settings_for(encoder: Any, representation: str) -> dict[str, Any]:
    """The manifest's ``encoder`` record of one folder: ``encoder.settings()`` with that folder's representation."""
    settings = encoder_settings(encoder)
    if "representation" in settings:
        settings["representation"] = representation  # this folder's representation, whatever the encoder's default
    return settings


def run_settings(
    encoder: Any,
    reader: JsonlCorpusReader,
    representations: Sequence[str],
    shard: tuple[int, int],
    shard_range: tuple[int, int],
    batch_size: int,
    max_length: int | None,
    fp16: bool,
    multi_dtype: str,
    allow_empty: bool,
    records_per_file: int,
    query: Mapping[str, Any] | None = None,
    multi_codec: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Everything that changes the bytes of an encode's output; a resumed run must match it exactly.

    Left out on purpose: ``overwrite``, ``restart``, ``checkpoint_every`` and the progress bar (they change how,
    not what, is written) and the corpus files' sizes and times (records not encoded yet may change; the records
    already encoded are checked by hash).
    """
    return {
        "corpus": {
            "files": [str(path.resolve()) for path in reader.files],
            "num_records": reader.count(),
            "fields": list(reader.fields),
            "docid_field": reader.docid_field,
            "delimiter": reader.delimiter,
            "on_error": reader.on_error,
            "max_record_bytes": reader.max_record_bytes,
        },
        "shard": {"id": shard[0], "num": shard[1], "range": list(shard_range)},
        "representations": list(representations),
        "encoder": {name: _settings_for(encoder, name) for name in representations},
        "query": None if query is None else dict(query),
        "batch_size": batch_size,
        "max_length": max_length,
        "fp16": fp16,
        "multi_dtype": multi_dtype,
        "allow_empty": allow_empty,
        "records_per_file": records_per_file,
        "multi_codec": _codec_fingerprint(multi_codec),
        "versions": package_versions(),
    }


def _manifest_extra(
    reader: JsonlCorpusReader, bounds: tuple[int, int], query: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Manifest keys every folder of the run shares: the corpus slice and, when known, the ``query`` record."""
    extra: dict[str, Any] = {
        "corpus": {
            "path": str(reader.path.resolve()),
            "fields": list(reader.fields),
            "docid_field": reader.docid_field,
            "delimiter": reader.delimiter,
            "num_records": reader.count(),
            "shard_range": list(bounds),
            "on_error": reader.on_error,
        }
    }
    if query is not None:
        extra["query"] = dict(query)
    return extra


def _check_request(representations: Sequence[str], batch_size: int, checkpoint_every: int) -> list[str]:
    representations = list(representations)
    unknown = [name for name in representations if name not in REPRESENTATIONS]
    if unknown or not representations or len(set(representations)) != len(representations):
        raise ValueError(f"representations must be distinct names from {REPRESENTATIONS}, got {representations}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("checkpoint_every", checkpoint_every)
    return representations


def _check_codec(multi_codec: str | os.PathLike, representations: Sequence[str]) -> None:
    """Refuse an unusable ``multi_codec`` before any encoding."""
    from ..indexing.codec import MultiVectorCodec

    if "multi" not in representations:
        raise WriterError(f"--multi-codec {multi_codec}: applies to the multi representation, which is not requested")
    try:
        MultiVectorCodec.load(multi_codec)
    except (OSError, ValueError) as error:
        raise WriterError(f"--multi-codec {multi_codec}: {error}") from None


def _codec_fingerprint(path: str | os.PathLike | None) -> dict[str, str] | None:
    """A given multi-vector codec, by content (a resumed run must compress with the very same codec)."""
    if path is None:
        return None
    return {"path": str(Path(path).resolve()), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def _make_writer(
    representation: str,
    directory: Path,
    settings: Mapping[str, Any],
    shard: tuple[int, int],
    extra: Mapping[str, Any],
    multi_dtype: str,
    allow_empty: bool,
    records_per_file: int,
    multi_codec: str | os.PathLike | None = None,
) -> VectorWriter:
    if representation == "multi" and multi_codec is not None:  # codes only: the float vectors are never written
        from ..indexing.codec import MultiVectorCodec
        from ..writers.compressed import CompressedMultiVectorWriter

        codec = MultiVectorCodec.load(multi_codec)
        facts = {"factory": "given", "codec_file": str(multi_codec)}
        return CompressedMultiVectorWriter(directory, codec, settings, shard, extra, codec_facts=facts)
    if representation == "multi":
        return MultiVectorWriter(directory, settings, dtype=multi_dtype, shard=shard, manifest_extra=extra)
    if representation == "impact":
        impact_options = {"quantization": settings["quantization"]} if "quantization" in settings else {}
        return JsonVectorWriter(
            directory,
            settings,
            strict=not allow_empty,
            records_per_file=records_per_file,
            shard=shard,
            manifest_extra=extra,
            **impact_options,
        )
    return WRITERS[representation](directory, settings, shard=shard, manifest_extra=extra)


def _open_writers(
    out: ResumableOutput, encoder: Any, representations: list[str], shard: tuple[int, int], extra, options: dict
) -> dict[str, VectorWriter]:
    """One writer per representation: ``OUT.partial`` itself for one, ``OUT.partial/<representation>`` for several."""
    single = len(representations) == 1
    return {
        name: _make_writer(
            name,
            out.partial if single else out.partial / name,
            _settings_for(encoder, name),
            shard,
            extra,
            options["multi_dtype"],
            options["allow_empty"],
            options["records_per_file"],
            options.get("multi_codec"),
        )
        for name in representations
    }


def encode_corpus(
    encoder: Any,
    reader: JsonlCorpusReader,
    output: str | os.PathLike,
    representations: Sequence[str] = ("dense",),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard: tuple[int, int] = (0, 1),
    max_length: int | None = None,
    fp16: bool = False,
    multi_dtype: str = "float32",
    allow_empty: bool = False,
    records_per_file: int = 100_000,
    multi_codec: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    restart: bool = False,
    query: Mapping[str, Any] | None = None,
    loop_factory: Callable[..., EncodeLoop] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Encode one shard of a corpus into output folders, resumably and atomically; return ``{representation: folder}``.

    Work happens in ``OUT.partial`` (:mod:`pyserini_diffretriever.writers.checkpoint`): progress is committed after
    at least ``checkpoint_every`` records, at a batch boundary, and calling this again with the same arguments
    after a crash or kill continues from the last commit; the finished folders are byte-identical to those of an
    uninterrupted run. Bad records raise (``reader.on_error == "strict"``) or are listed in every folder's
    ``skipped-records.jsonl`` (``"skip"``).

    ``encoder`` needs ``encode_all(texts, titles=, max_length=, fp16=)`` returning the requested ``dense`` /
    ``multi`` / ``impact`` attributes (or, for one representation, Pyserini's ``encode``). ``output`` is the folder
    (one representation) or the parent of ``<representation>/`` subfolders. The keyword options are the encode
    CLI's options of the same names (``multi_codec``: write the ``multi`` representation as codes of that trained
    codec, kind ``multi-compressed``, instead of float vectors); ``query`` is the manifests' ``query`` record (default:
    :func:`expected_query_settings` of ``encoder``). ``loop_factory`` replaces the single-process
    :class:`EncodeLoop` (the Ray driver's block loop) and ``manifest_extra`` adds keys to every manifest (its
    record of the workers); neither changes the bytes of the vectors.

    Raises
    ------
    CorpusError
        A bad record in strict mode (file, line and problem named), or an empty shard.
    WriterError, OutputExistsError
        An output that cannot be written (an empty impact vector without ``allow_empty``); ``output`` exists and
        ``overwrite`` is false.
    ResumeError
        ``OUT.partial`` of an earlier run has other settings or another corpus prefix (use ``restart``), or another
        process is writing it (:class:`~pyserini_diffretriever.writers.OutputLockedError`).
    OSError
        A write failed (e.g. a full disk); ``OUT.partial`` is kept for a rerun when progress was committed.
    """
    representations = _check_request(representations, batch_size, checkpoint_every)
    if multi_codec is not None:
        _check_codec(multi_codec, representations)
    check_output_free(output, overwrite)
    bounds = shard_range(reader, shard)
    if query is None:
        query = expected_query_settings(encoder)
    run = EncodeRun(
        encoder,
        reader,
        Path(output),
        representations,
        bounds,
        batch_size,
        checkpoint_every,
        max_length,
        fp16,
        query,
        dict(manifest_extra or {}),
    )
    output_options = {
        "multi_dtype": multi_dtype,
        "allow_empty": allow_empty,
        "records_per_file": records_per_file,
        "multi_codec": multi_codec,
    }
    settings = run_settings(
        encoder, reader, representations, shard, bounds, batch_size, max_length, fp16, **output_options, query=query
    )
    return run.execute(settings, shard, output_options, overwrite, restart, progress, loop_factory or EncodeLoop)


@dataclass
class EncodeRun:
    """What one encode run needs once its request is checked; :meth:`execute` writes the folders with a loop class.

    The single-process driver (:func:`encode_corpus`) and the Ray driver
    (:mod:`pyserini_diffretriever.pipeline.distributed`) differ only in the loop class; the writers, manifests,
    checkpoints and resume logic are these, so their outputs are byte-identical.
    """

    encoder: Any  # has settings(); for Ray a description of the remote encoders
    reader: JsonlCorpusReader
    output: Path
    representations: list[str]
    bounds: tuple[int, int]
    batch_size: int
    checkpoint_every: int
    max_length: int | None
    fp16: bool
    query: Mapping[str, Any] | None
    manifest_extra: Mapping[str, Any] = field(default_factory=dict)

    def execute(
        self,
        settings: Mapping[str, Any],
        shard: tuple[int, int],
        output_options: dict[str, Any],
        overwrite: bool,
        restart: bool,
        progress: bool,
        loop_factory: Callable[..., EncodeLoop],
    ) -> dict[str, Path]:
        """Open ``OUT.partial``, run the loop (unless a finished run only awaits its rename), finalize."""
        extra = {**_manifest_extra(self.reader, self.bounds, self.query), **self.manifest_extra}
        with ResumableOutput(self.output, settings, overwrite=overwrite, restart=restart) as out:
            writers = _open_writers(out, self.encoder, self.representations, shard, extra, output_options)
            committed = out.progress or {}
            if committed.get("stage") != "finished":
                loop = loop_factory(self, writers, out, committed)
                loop.run(progress)
            for writer in writers.values():
                writer.cleanup()
            out.finalize()
        single = len(self.representations) == 1
        return {name: self.output if single else self.output / name for name in self.representations}


def batch_texts(records: Sequence[CorpusRecord], fields: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """The texts and (when the corpus has them) titles of a batch of records, as the encoders take them."""
    texts = [record.fields["text"] for record in records]
    titles = [record.fields["title"] for record in records] if "title" in fields else None
    return texts, titles


def encode_batch(
    encoder: Any,
    representations: Sequence[str],
    texts: list[str],
    titles: list[str] | None,
    max_length: int | None,
    fp16: bool,
) -> dict[str, Any]:
    """All requested representations of one batch; ``encode_all`` does a single forward pass."""
    if hasattr(encoder, "encode_all"):
        batch = encoder.encode_all(texts, titles=titles, max_length=max_length, fp16=fp16)
        return {name: getattr(batch, name) for name in representations}
    if len(representations) != 1:
        raise TypeError(f"{type(encoder).__name__} has no encode_all(); encode one representation per run")
    return {representations[0]: encoder.encode(texts=texts, titles=titles, max_length=max_length, fp16=fp16)}


class EncodeLoop:
    """The encode loop of one run: resume the writers, skip committed records, encode batch by batch, commit, finish.

    ``committed`` is the last checkpoint of an interrupted run (empty for a fresh one): its records are read again
    only to check, by hash, that the corpus prefix did not change.
    """

    def __init__(
        self,
        run: EncodeRun,
        writers: Mapping[str, VectorWriter],
        out: ResumableOutput,
        committed: Mapping[str, Any],
    ) -> None:
        self.encoder, self.reader, self.writers, self.out = run.encoder, run.reader, writers, out
        self.committed = committed
        self.start, self.end = run.bounds
        self.batch_size, self.checkpoint_every = run.batch_size, run.checkpoint_every
        self.max_length, self.fp16 = run.max_length, run.fp16
        self.done = int(committed.get("records_done", 0))
        self.batches = int(committed.get("batches_done", 0))
        self.digest = hashlib.sha256()
        self.consumed, self.last_commit, self.skipped = 0, self.done, 0
        self.pending: list[CorpusRecord] = []
        self.bar: Any = None

    def run(self, progress: bool) -> None:
        """Encode the shard into the writers; on any failure abort the opened writers and re-raise."""
        from tqdm import tqdm

        opened: list[VectorWriter] = []
        self.bar = tqdm(
            total=self.end - self.start,
            initial=self.done,
            unit="doc",
            desc=f"encode {self.start}..{self.end}",
            disable=not progress,
        )
        try:
            self._resume_writers(opened)
            self._consume_corpus()
            self._finish()
        except BaseException:
            for writer in opened:
                writer.abort()
            raise
        finally:
            self.bar.close()

    def _resume_writers(self, opened: list[VectorWriter]) -> None:
        states = self.committed.get("writers", {})
        for name, writer in self.writers.items():
            writer.open(states.get(name) if self.committed else None, preserve=(PROGRESS_NAME,))
            opened.append(writer)

    def _consume_corpus(self) -> None:
        for entry in self.reader.iter_entries(self.start, self.end, digest=self.digest):
            self.consumed += 1
            if self.consumed <= self.done:  # encoded by the interrupted run: only its bytes are checked
                self._check_prefix()
            elif isinstance(entry, SkippedRecord):
                self._skip(entry)
            else:
                self._add(entry)
        if self.consumed < self.done:
            raise ResumeError(
                f"{self.reader.path} has fewer records than the unfinished run in {self.out.partial} already "
                "encoded; restart it (--restart)"
            )

    def _check_prefix(self) -> None:
        if self.consumed == self.done and self.digest.hexdigest() != self.committed["corpus_sha256"]:
            raise ResumeError(
                f"the first {self.done} records of {self.reader.path} (shard {self.start}..{self.end}) changed since "
                f"the unfinished run in {self.out.partial} encoded them; restart it (--restart)"
            )

    def _skip(self, entry: SkippedRecord) -> None:
        self._report_skip(entry)
        self._write_skipped(entry)

    def _report_skip(self, entry: SkippedRecord) -> None:
        """Raise for a bad record in strict mode; log the first :data:`MAX_SKIP_WARNINGS` in skip mode."""
        if self.reader.on_error == "strict":
            raise entry.error()
        self.skipped += 1
        if self.skipped <= MAX_SKIP_WARNINGS:
            logger.warning("skipping %s, line %d: %s", entry.path, entry.line, entry.problem)
        if self.skipped == MAX_SKIP_WARNINGS:
            logger.warning("further bad records are listed in %s only", SKIPPED_REPORT_NAME)

    def _write_skipped(self, entry: SkippedRecord) -> None:
        for writer in self.writers.values():
            writer.record_skipped(entry)
        self.bar.update(1)

    def _add(self, record: CorpusRecord) -> None:
        self.pending.append(record)
        if len(self.pending) == self.batch_size:
            self._flush()
            if self.consumed - self.last_commit >= self.checkpoint_every:
                self._commit("encoding")
                self.last_commit = self.consumed

    def _flush(self) -> None:
        """Encode the pending records (one forward pass) and hand every representation to its writer."""
        texts, titles = batch_texts(self.pending, self.reader.fields)
        encoded = encode_batch(self.encoder, list(self.writers), texts, titles, self.max_length, self.fp16)
        self._write_batch([record.docid for record in self.pending], encoded)
        self.pending.clear()

    def _write_batch(self, ids: list[str], encoded: Mapping[str, Any]) -> None:
        """Hand one encoded batch, every representation, to its writer."""
        for name, writer in self.writers.items():
            writer.write({"id": ids, "vector": encoded[name]})
        self.batches += 1
        self.bar.update(len(ids))

    def _commit(self, stage: str, records_done: int | None = None, corpus_sha256: str | None = None) -> None:
        """Commit progress: by default everything consumed so far (the Ray loop commits up to a block's end)."""
        self.out.commit(
            {
                "stage": stage,
                "records_done": self.consumed if records_done is None else records_done,
                "batches_done": self.batches,
                "corpus_sha256": self.digest.hexdigest() if corpus_sha256 is None else corpus_sha256,
                "writers": {name: writer.checkpoint() for name, writer in self.writers.items()},
            }
        )

    def _finish(self) -> None:
        """Encode the last partial batch, commit, finish and verify every folder, and mark the run finished."""
        if self.pending:
            self._flush()
        self._commit("encoding")
        for writer in self.writers.values():
            writer.finish()
            verify_output(writer.directory, writer.kind, ignore_temporary=True)
        self._commit("finished")
