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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import CorpusError, CorpusRecord, JsonlCorpusReader, SkippedRecord, shard_bounds
from ..layouts import PROGRESS_NAME, SKIPPED_REPORT_NAME
from ..representation.bucketing import TokenBudgetError, TokenCount
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
    "DEFAULT_SORT_WINDOW",
    "MAX_SKIP_WARNINGS",
    "encode_corpus",
    "expected_query_settings",
    "run_settings",
    "shard_range",
]

DEFAULT_CHECKPOINT_EVERY = 1000
#: Batches per length-sorting window: CISI-like lengths then compute 1.03-1.04x their real tokens instead of
#: 1.5-1.8x in corpus order (docs/scale.md), and memory holds 32 batches of records and vectors.
DEFAULT_SORT_WINDOW = 32
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
    sort_window: int = DEFAULT_SORT_WINDOW,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Everything that changes the bytes of an encode's output; a resumed run must match it exactly.

    ``sort_window`` and ``max_tokens`` are in: they decide which records share a forward pass, and padding
    changes vectors in the last float bits (within 1e-5).

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
        "sort_window": sort_window,
        "max_tokens": max_tokens,
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


def _check_request(
    representations: Sequence[str], batch_size: int, checkpoint_every: int, sort_window: int, max_tokens: int | None
) -> list[str]:
    representations = list(representations)
    unknown = [name for name in representations if name not in REPRESENTATIONS]
    if unknown or not representations or len(set(representations)) != len(representations):
        raise ValueError(f"representations must be distinct names from {REPRESENTATIONS}, got {representations}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("checkpoint_every", checkpoint_every)
    check_positive_int("sort_window", sort_window)
    if max_tokens is not None:
        check_positive_int("max_tokens", max_tokens)
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
    sort_window: int = DEFAULT_SORT_WINDOW,
    max_tokens: int | None = None,
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
    at least ``checkpoint_every`` records, at a window boundary, and calling this again with the same arguments
    after a crash or kill continues from the last commit; the finished folders are byte-identical to those of an
    uninterrupted run. Bad records raise (``reader.on_error == "strict"``) or are listed in every folder's
    ``skipped-records.jsonl`` (``"skip"``).

    ``encoder`` needs ``encode_all(texts, titles=, max_length=, fp16=)`` returning the requested ``dense`` /
    ``multi`` / ``impact`` attributes (or, for one representation, Pyserini's ``encode``). ``output`` is the folder
    (one representation) or the parent of ``<representation>/`` subfolders. The keyword options are the encode
    CLI's options of the same names (``sort_window``: batches per length-sorting window, 1 for corpus order;
    ``max_tokens``: most computed tokens per forward pass, ``batch_size`` staying a cap; ``multi_codec``: write the ``multi`` representation as codes of that trained
    codec, kind ``multi-compressed``, instead of float vectors); ``query`` is the manifests' ``query`` record (default:
    :func:`expected_query_settings` of ``encoder``). ``loop_factory`` replaces the single-process
    :class:`EncodeLoop` (the Ray driver's block loop) and ``manifest_extra`` adds keys to every manifest (its
    record of the workers); neither changes the bytes of the vectors.

    Raises
    ------
    CorpusError
        A bad record in strict mode (file, line and problem named), or an empty shard.
    TokenBudgetError
        A record longer than ``max_tokens`` (prompt + text + slots; the document is named).
    WriterError, OutputExistsError
        An output that cannot be written (an empty impact vector without ``allow_empty``); ``output`` exists and
        ``overwrite`` is false.
    ResumeError
        ``OUT.partial`` of an earlier run has other settings or another corpus prefix (use ``restart``), or another
        process is writing it (:class:`~pyserini_diffretriever.writers.OutputLockedError`).
    OSError
        A write failed (e.g. a full disk); ``OUT.partial`` is kept for a rerun when progress was committed.
    """
    representations = _check_request(representations, batch_size, checkpoint_every, sort_window, max_tokens)
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
        sort_window,
        max_tokens,
    )
    output_options = {
        "multi_dtype": multi_dtype,
        "allow_empty": allow_empty,
        "records_per_file": records_per_file,
        "multi_codec": multi_codec,
    }
    settings = run_settings(
        encoder,
        reader,
        representations,
        shard,
        bounds,
        batch_size,
        max_length,
        fp16,
        **output_options,
        query=query,
        sort_window=sort_window,
        max_tokens=max_tokens,
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
    sort_window: int = DEFAULT_SORT_WINDOW
    max_tokens: int | None = None

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


def counts_tokens(encoder: Any) -> bool:
    """Whether ``encoder`` can measure lengths: ``tokenize`` plus an ``encode_all`` that batches by length.

    Such encoders (:class:`~pyserini_diffretriever.encoders.DiffRetrieverDocumentEncoder`) get whole windows and
    sort them; others (Pyserini-style encoders, test doubles) get corpus-order batches of ``batch_size``.
    """
    return hasattr(encoder, "tokenize") and hasattr(encoder, "encode_all")


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


def check_token_budget(ids: Sequence[str], lengths: Sequence[int], max_tokens: int | None) -> None:
    """Refuse a token budget below one record's input row, naming the first such record."""
    if max_tokens is None:
        return
    for docid, length in zip(ids, lengths):
        if length > max_tokens:
            raise TokenBudgetError(
                f"document {docid!r} is {length} tokens long (prompt + text + slots), more than --max-tokens "
                f"{max_tokens}; raise --max-tokens to at least {length} or lower --max-length"
            )


def encode_window(
    encoder: Any,
    representations: Sequence[str],
    ids: list[str],
    texts: list[str],
    titles: list[str] | None,
    options: WindowOptions,
    tokenized: Any = None,
) -> tuple[dict[str, Any], TokenCount | None]:
    """All requested representations of one window of records, in corpus order, and the tokens it cost.

    An encoder that :func:`counts_tokens` gets the whole window at once and batches it by length (longest first,
    ``batch_size`` cap, ``max_tokens`` budget); ``tokenized`` is its ``tokenize`` result, when computed ahead.
    Others get corpus-order batches of ``batch_size`` and no tokens are counted (``max_tokens`` is refused).
    """
    if counts_tokens(encoder):
        if tokenized is None:
            tokenized = encoder.tokenize(texts, titles, max_length=options.max_length)
        check_token_budget(ids, tokenized.lengths, options.max_tokens)
        batch = encoder.encode_all(
            texts,
            titles,
            max_length=options.max_length,
            fp16=options.fp16,
            batch_size=options.batch_size,
            max_tokens=options.max_tokens,
            tokenized=tokenized,
            representations=list(representations),
        )
        return {name: getattr(batch, name) for name in representations}, batch.tokens
    if options.max_tokens is not None:
        raise ValueError(
            f"max_tokens needs an encoder that counts tokens (tokenize()); {type(encoder).__name__} cannot"
        )
    parts = [
        encode_batch(
            encoder,
            representations,
            texts[start : start + options.batch_size],
            None if titles is None else titles[start : start + options.batch_size],
            options.max_length,
            options.fp16,
        )
        for start in range(0, len(texts), options.batch_size)
    ]
    return {name: _concatenate([part[name] for part in parts]) for name in representations}, None


def _concatenate(parts: list[Any]) -> Any:
    """One window's vectors from its batches' (``[B, H]`` arrays are stacked, lists joined)."""
    if isinstance(parts[0], np.ndarray) and parts[0].ndim == 2:
        return np.concatenate(parts)
    return [item for part in parts for item in part]


@dataclass(frozen=True)
class WindowOptions:
    """How a window is encoded: what the Ray workers receive too (``batch_size`` caps a forward pass)."""

    batch_size: int
    max_tokens: int | None
    max_length: int | None
    fp16: bool


@dataclass
class RecordWindow:
    """Up to ``batch_size x sort_window`` good records in corpus order, the bad records among them, and where the
    window ends in the shard (records consumed, corpus hash): a window never spans a commit."""

    records: list[CorpusRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    end: int = 0
    digest: str = ""
    tokenized: Future | None = None


class EncodeLoop:
    """The encode loop of one run: resume the writers, skip committed records, encode window by window, commit.

    ``committed`` is the last checkpoint of an interrupted run (empty for a fresh one): its records are read again
    only to check, by hash, that the corpus prefix did not change.

    Records are grouped into windows of ``batch_size x sort_window`` good records, in corpus order; an encoder
    that counts tokens sorts each window by length into batches and returns it in corpus order (so memory is
    bounded by a window, and a resumed run, which starts at a window boundary, forms the same windows).
    Three things overlap: a background thread tokenizes the next window while the model encodes this one, and
    another writes (and commits) the previous one; the main thread reads the corpus and runs the model. At most
    one window is being tokenized, one encoded and one written.
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
        self.window_size = run.batch_size * run.sort_window
        self.options = WindowOptions(run.batch_size, run.max_tokens, run.max_length, run.fp16)
        self.done = int(committed.get("records_done", 0))
        self.batches = int(committed.get("batches_done", 0))
        self.tokens = TokenCount.from_record(committed.get("tokens"))
        # tokens are reported while every window came with its count (Ray: counted on the workers)
        self.counted = not committed or "tokens" in committed
        self.digest = hashlib.sha256()
        self.consumed, self.last_commit, self.skipped = 0, self.done, 0
        self.window = RecordWindow()
        self.queued: RecordWindow | None = None  # tokenizing in the background, encoded when the next window closes
        self.bar: Any = None
        self._tokenizer: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future | None = None

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
        self._tokenizer = ThreadPoolExecutor(1, thread_name_prefix="encode-tokenize")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="encode-write")
        try:
            self._resume_writers(opened)
            self._consume_corpus()
            self._finish()
        except BaseException:
            self._drain_writes()
            self._stop_threads()  # nothing may write while the writers are aborted
            for writer in opened:
                writer.abort()
            raise
        finally:
            self._stop_threads()
            self.bar.close()

    def _drain_writes(self) -> None:
        """Let the window already encoded reach its writers and its commit before an abort.

        Why: a one-thread run wrote and committed every batch encoded before a failure; cancelling the queued write
        would lose a finished window and make a rerun encode it again.
        """
        if self._writing is None:
            return
        try:
            self._writing.result()
        except BaseException:  # the write itself failed: the failure being raised already reports the run
            logger.debug("the last queued window could not be written before the abort", exc_info=True)
        self._writing = None

    def _stop_threads(self) -> None:
        for pool in (self._tokenizer, self._writer):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

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
        self.window.skipped.append(entry)

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
        self.window.records.append(record)
        if len(self.window.records) == self.window_size:
            self._close_window()

    def _close_window(self) -> None:
        """Stamp the window's end, start tokenizing it, and encode the window queued before it."""
        window, self.window = self.window, RecordWindow()
        window.end, window.digest = self.consumed, self.digest.hexdigest()
        if window.records and counts_tokens(self.encoder):
            texts, titles = batch_texts(window.records, self.reader.fields)
            window.tokenized = self._tokenizer.submit(self.encoder.tokenize, texts, titles, self.max_length)
        previous, self.queued = self.queued, window
        if previous is not None:
            self._encode(previous)

    def _encode(self, window: RecordWindow) -> None:
        """Encode one window (its tokenization ran while the model was busy) and hand it to the writer thread."""
        encoded, tokens = None, None
        if window.records:
            texts, titles = batch_texts(window.records, self.reader.fields)
            ids = [record.docid for record in window.records]
            tokenized = window.tokenized.result() if window.tokenized is not None else None
            encoded, tokens = encode_window(
                self.encoder, list(self.writers), ids, texts, titles, self.options, tokenized
            )
        if self._writing is not None:
            self._writing.result()  # one window written at a time; its failure surfaces here
        self._writing = self._writer.submit(self._write_window, window, encoded, tokens)

    def _write_window(self, window: RecordWindow, encoded: Mapping[str, Any] | None, tokens: TokenCount | None) -> None:
        """Write one window (bad records, then vectors) and commit when ``checkpoint_every`` records have passed."""
        for entry in window.skipped:
            self._write_skipped(entry)
        if encoded is not None:
            self._write_batch([record.docid for record in window.records], encoded, tokens)
        if window.end - self.last_commit >= self.checkpoint_every:
            self._commit("encoding", window.end, window.digest)
            self.last_commit = window.end

    def _write_batch(self, ids: list[str], encoded: Mapping[str, Any], tokens: TokenCount | None = None) -> None:
        """Hand one encoded window, every representation, to its writer; count its tokens."""
        for name, writer in self.writers.items():
            writer.write({"id": ids, "vector": encoded[name]})
        self.batches += 1
        if tokens is None:
            self.counted = False
        else:
            self.tokens += tokens
        self.bar.update(len(ids))

    def _commit(self, stage: str, records_done: int | None = None, corpus_sha256: str | None = None) -> None:
        """Commit progress: by default everything consumed so far (the Ray loop commits up to a block's end)."""
        state = {
            "stage": stage,
            "records_done": self.consumed if records_done is None else records_done,
            "batches_done": self.batches,
            "corpus_sha256": self.digest.hexdigest() if corpus_sha256 is None else corpus_sha256,
            "writers": {name: writer.checkpoint() for name, writer in self.writers.items()},
        }
        if self.counted:
            state["tokens"] = self.tokens.record()
        self.out.commit(state)

    def _flush_remaining(self) -> None:
        """Close the last, partial window and encode and write everything still queued."""
        if self.window.records or self.window.skipped:
            self._close_window()
        if self.queued is not None:
            queued, self.queued = self.queued, None
            self._encode(queued)
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def _finish(self) -> None:
        """Encode the last window, commit, finish and verify every folder, and mark the run finished."""
        self._flush_remaining()
        self._commit("encoding")
        for writer in self.writers.values():
            if self.counted:
                writer.manifest_extra["tokens"] = self.tokens.record()
            writer.finish()
            verify_output(writer.directory, writer.kind, ignore_temporary=True)
        self._commit("finished")
