"""``python -m pyserini_diffretriever.encode``: corpus -> DiffRetriever encoder -> index folders.

Shaped like ``python -m pyserini.encode`` (the same ``input`` / ``encoder`` / ``output`` groups and option
names), because Pyserini's own CLI cannot load third-party encoders::

    python -m pyserini_diffretriever.encode \\
      input   --corpus corpus.jsonl --fields title text --shard-id 0 --shard-num 1 \\
      encoder --encoder Dream-org/Dream-v0-Instruct-7B --representation dense multi impact \\
              --batch-size 16 --max-length 512 --device cuda:0 --dtype bfloat16 \\
      output  --embeddings runs/cranfield-dream

One ``--representation`` writes its folder at ``--embeddings``; several come from ONE forward pass per batch
and go to ``OUT/dense``, ``OUT/multi``, ``OUT/impact``:

* ``dense``  -> ``index`` + ``docid`` (open with ``pyserini.search.faiss.FaissSearcher(OUT, query_encoder)``);
* ``multi``  -> ``vectors.npy`` + ``offsets.npy`` + ``docid`` (for the MultiVectorSearcher);
* ``impact`` -> ``vectors/part-*.jsonl`` (JsonVectorCollection; index with
  ``python -m pyserini_diffretriever.index lucene --input OUT --index IDX``).

Every folder has a ``manifest.json``. Besides the document encoder's settings it records what the index expects
of its queries (``"query": {"k", "prompt", "prompt_sha256", "max_length"}``): by default the backbone's query K
(Dream 4) and the documents' prompt variant; ``encoder --query-k/--query-prompt/--query-max-length`` declare
others. Searchers build their query encoder from that record and refuse one that differs in K or prompt.
Shards (``--shard-id/--shard-num``, a contiguous split as in Pyserini)
are joined with ``python -m pyserini_diffretriever.index merge --inputs OUT0 OUT1 ... --output OUT``.

Reliability:

* Bad records (invalid JSON or UTF-8, missing id or text, duplicate ids, ...; see
  pyserini_diffretriever.corpus) stop the run with file, line and problem (``input --on-error strict``, the
  default), or are left out, listed in ``OUT/skipped-records.jsonl`` and counted in the manifest
  (``--on-error skip``).
* Output is written to ``OUT.partial`` and renamed to ``OUT`` only when complete. Progress is committed every
  ``--checkpoint-every`` records (at a batch boundary); a run that is killed (SIGKILL included) or fails
  (a full disk) keeps ``OUT.partial``, and rerunning the same command continues from the last commit with
  output byte-identical to an uninterrupted run. A rerun with other settings is refused (it names them);
  ``--restart`` discards the unfinished run. Two runs of the same output at once are refused.
* With ``SOURCE_DATE_EPOCH`` set, the manifests' ``created`` time stamp is fixed and two runs of the same
  command give byte-identical folders (CPU, float32).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..corpus import (
    DEFAULT_MAX_RECORD_BYTES,
    ON_ERROR_CHOICES,
    CorpusError,
    CorpusRecord,
    JsonlCorpusReader,
    SkippedRecord,
    shard_bounds,
)
from ..writers import (
    SKIPPED_REPORT_NAME,
    WRITERS,
    JsonVectorWriter,
    ManifestError,
    MultiVectorWriter,
    OutputExistsError,
    ResumableOutput,
    ResumeError,
    VectorWriter,
    WriterError,
    check_output_free,
    verify_output,
)
from ..writers.checkpoint import PROGRESS_NAME
from ..writers.manifest import package_versions
from . import configure_logging, parse_groups

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.encode"
REPRESENTATIONS = tuple(WRITERS)
ENCODED_FIELDS = ("title", "text")
DEFAULT_CHECKPOINT_EVERY = 1000
MAX_SKIP_WARNINGS = 20  # bad records logged one by one; all of them are in skipped-records.jsonl


_HELP = __doc__.split("\n", 1)[1].strip().replace("``", "")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """One parser per group; names and defaults follow ``python -m pyserini.encode`` where they overlap."""
    input_parser = argparse.ArgumentParser(prog=f"{PROGRAM} input", description="the corpus to encode")
    input_parser.add_argument(
        "--corpus", required=True, help="JSON-lines file, or a folder of .jsonl/.json files (read in name order)"
    )
    input_parser.add_argument(
        "--fields",
        nargs="+",
        default=["text"],
        help="fields of each record, in order; 'text' is required, 'title' optional "
        "(default: text). BEIR-style corpora: --fields title text",
    )
    input_parser.add_argument(
        "--docid-field", default=None, help="key of the document id (default: first of id, _id, docid)"
    )
    input_parser.add_argument(
        "--delimiter",
        default="\n",
        help="separator of the fields inside 'contents' (default: newline; '\\n' is unescaped)",
    )
    input_parser.add_argument("--shard-id", type=int, default=0, help="0-based shard to encode (default 0)")
    input_parser.add_argument("--shard-num", type=int, default=1, help="number of contiguous shards (default 1)")
    input_parser.add_argument(
        "--on-error",
        choices=ON_ERROR_CHOICES,
        default="strict",
        help="bad records: stop at the first with file, line and problem (strict, default), "
        "or leave them out and list them in OUT/skipped-records.jsonl (skip)",
    )
    input_parser.add_argument(
        "--max-record-bytes",
        type=int,
        default=DEFAULT_MAX_RECORD_BYTES,
        help="longest accepted corpus line in bytes; longer records are bad records "
        f"(default {DEFAULT_MAX_RECORD_BYTES}; 0: no limit)",
    )

    encoder_parser = argparse.ArgumentParser(prog=f"{PROGRAM} encoder", description="the DiffRetriever encoder")
    encoder_parser.add_argument("--encoder", required=True, help="Dream/LLaDA checkpoint folder or hub id")
    encoder_parser.add_argument(
        "--representation",
        nargs="+",
        choices=REPRESENTATIONS,
        default=["dense"],
        help="one or more of dense, multi, impact (several: one forward pass, subfolders OUT/<representation>)",
    )
    encoder_parser.add_argument("--batch-size", type=int, default=16, help="passages per forward pass (default 16)")
    encoder_parser.add_argument(
        "--max-length", type=int, default=512, help="token budget for prompt + passage (default 512)"
    )
    encoder_parser.add_argument(
        "--device", default="cuda:0", help="cpu or cuda[:N] (default cuda:0; falls back to cpu like Pyserini)"
    )
    encoder_parser.add_argument("--fp16", action="store_true", help="float16 autocast on CUDA (as in Pyserini)")
    encoder_parser.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "bfloat16", "float16"),
        help="weight dtype of the backbone (default: the encoder's, float32)",
    )
    encoder_parser.add_argument("--k", type=int, default=None, help="mask slots per passage (default per backbone)")
    encoder_parser.add_argument("--prompt", default=None, help="one, few (default), three, or a prompt YAML path")
    encoder_parser.add_argument(
        "--query-k",
        type=int,
        default=None,
        help="query mask slots K_q the index expects, recorded in the manifest "
        "(default per backbone: 4 for Dream and LLaDA)",
    )
    encoder_parser.add_argument(
        "--query-prompt",
        default=None,
        help="query prompt the index expects: one, few, three or a query prompt YAML "
        "(default: the documents' variant, few for a custom passage YAML)",
    )
    encoder_parser.add_argument(
        "--query-max-length", type=int, default=None, help="query token budget recorded in the manifest (default 512)"
    )
    encoder_parser.add_argument("--adapter", default=None, help="LoRA adapter folder merged into the backbone")
    encoder_parser.add_argument(
        "--logits",
        default=None,
        choices=("unshifted", "shifted"),
        help="vocabulary read-out alignment (default unshifted)",
    )
    encoder_parser.add_argument("--denoise-steps", type=int, default=None, help="denoising steps S (default 1)")
    encoder_parser.add_argument(
        "--title-separator", default=None, help="joins title and text when --fields has title (default '. ')"
    )
    encoder_parser.add_argument(
        "--sparse-top-k", type=int, default=None, help="impact: vocabulary entries kept per slot (default 128)"
    )
    encoder_parser.add_argument(
        "--quantization", type=float, default=None, help="impact: integer scale of the weights (default 100)"
    )
    encoder_parser.add_argument(
        "--rounding",
        default=None,
        choices=("truncate", "round"),
        help="impact: how scaled weights become integers (default truncate)",
    )
    encoder_parser.add_argument(
        "--fields",
        nargs="+",
        default=None,
        help="accepted for Pyserini compatibility; the encoded fields are input --fields",
    )

    output_parser = argparse.ArgumentParser(prog=f"{PROGRAM} output", description="where to write")
    output_parser.add_argument(
        "--embeddings", required=True, help="output folder (one representation) or parent of OUT/<representation>"
    )
    output_parser.add_argument(
        "--to-faiss",
        action="store_true",
        help="accepted for Pyserini compatibility: dense output is always a FAISS folder",
    )
    output_parser.add_argument(
        "--multi-dtype",
        default="float32",
        choices=("float32", "float16"),
        help="storage dtype of multi-vector vectors.npy (default float32)",
    )
    output_parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="impact: leave out documents with an empty vector and list them in "
        "empty-vector-docids.txt instead of failing",
    )
    output_parser.add_argument(
        "--records-per-file",
        type=int,
        default=100_000,
        help="impact: records per vectors/part-*.jsonl file (default 100000)",
    )
    output_parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder once the new one is complete"
    )
    output_parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        help="commit progress (fsync) after at least this many records, at a batch "
        f"boundary; a killed run resumes from there (default {DEFAULT_CHECKPOINT_EVERY})",
    )
    output_parser.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished OUT.partial of an earlier run instead of resuming it",
    )
    output_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return {"input": input_parser, "encoder": encoder_parser, "output": output_parser}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``input ... encoder ... output ...``; exit with a usage message on errors."""
    args = parse_groups(PROGRAM, _HELP, build_parsers(), argv, required=("input", "encoder", "output"))
    args.input.delimiter = args.input.delimiter.replace("\\n", "\n").replace("\\t", "\t")
    problems = []
    fields = args.input.fields
    if "text" not in fields or any(name not in ENCODED_FIELDS for name in fields) or len(set(fields)) != len(fields):
        problems.append(f"input --fields must be 'text' or 'title text' (got {fields}); other keys are not encoded")
    if len(set(args.encoder.representation)) != len(args.encoder.representation):
        problems.append(f"encoder --representation lists a representation twice: {args.encoder.representation}")
    if args.input.shard_num < 1 or not 0 <= args.input.shard_id < args.input.shard_num:
        problems.append(f"need 0 <= --shard-id < --shard-num (got {args.input.shard_id}, {args.input.shard_num})")
    for name in ("batch_size", "max_length", "k", "denoise_steps", "sparse_top_k", "query_k", "query_max_length"):
        value = getattr(args.encoder, name)
        if value is not None and value < 1:
            problems.append(f"encoder --{name.replace('_', '-')} must be >= 1 (got {value})")
    if args.output.records_per_file < 1:
        problems.append("output --records-per-file must be >= 1")
    if args.output.checkpoint_every < 1:
        problems.append("output --checkpoint-every must be >= 1")
    if args.input.max_record_bytes < 0:
        problems.append("input --max-record-bytes must be >= 0")
    if args.encoder.fields is not None and args.encoder.fields != fields:
        problems.append(f"encoder --fields {args.encoder.fields} differs from input --fields {fields}")
    if problems:
        print(f"{PROGRAM}: error: " + "; ".join(problems), file=sys.stderr)
        sys.exit(2)
    return args


def load_encoder(args: argparse.Namespace) -> Any:
    """Build the :class:`DiffRetrieverDocumentEncoder` from the ``encoder`` group (unset options keep defaults)."""
    from pyserini.util import resolve_device

    from ..encoders import DiffRetrieverDocumentEncoder

    optional = {
        "k": args.k,
        "prompt": args.prompt,
        "dtype": args.dtype,
        "adapter": args.adapter,
        "logits": args.logits,
        "denoise_steps": args.denoise_steps,
        "title_separator": args.title_separator,
        "sparse_top_k": args.sparse_top_k,
        "quantization": args.quantization,
        "rounding": args.rounding,
    }
    kwargs = {key: value for key, value in optional.items() if value is not None}
    return DiffRetrieverDocumentEncoder(
        args.encoder,
        representation=args.representation[0],
        max_length=args.max_length,
        device=resolve_device(args.device, backend="torch"),
        batch_size=args.batch_size,
        **kwargs,
    )


def expected_query_settings(
    encoder: Any, k: int | None = None, prompt: str | os.PathLike | None = None, max_length: int | None = None
) -> dict[str, Any] | None:
    """What an index written by ``encoder`` expects of its queries: the manifest's ``query`` record.

    Why a record at all: the query K and prompt legitimately differ from the documents' (Dream: K_q=4, K_p=16),
    so a searcher cannot compare them with the document settings; it compares them with this record instead.
    The values are those of a ``DiffRetrieverQueryEncoder`` built on the same loaded model, so a searcher's query
    encoder reports exactly the same ``k`` and ``prompt_sha256`` when it uses the defaults.

    Parameters
    ----------
    encoder : DiffRetrieverDocumentEncoder or compatible
        The document encoder; without a DiffRetriever ``model`` (test doubles) there is no record.
    k : int, optional
        Query K (default: :func:`~pyserini_diffretriever.encoders.model.default_k` of the backbone, ``"query"``).
    prompt : str or PathLike, optional
        Query prompt variant or query prompt YAML (default: the documents' variant, ``few`` for a custom YAML).
    max_length : int, optional
        Query token budget (default: the query encoder's, 512).

    Returns
    -------
    dict or None
        ``{"k": int, "prompt": variant | "sha256:<YAML content hash>", "prompt_sha256": hex (the K-adapted
        prompt, as the query encoder's ``settings()``), "max_length": int}``, plus ``"prompt_file"`` (absolute
        path) for a custom YAML; ``None`` when ``encoder`` has no DiffRetriever model.

    Raises
    ------
    ValueError
        An invalid K, prompt or max_length (checked by the query encoder), or query options for an encoder
        without a DiffRetriever model.
    """
    model = getattr(encoder, "model", None)
    if model is not None:  # imported only then: the encoders pull in torch and transformers
        from ..encoders import DiffRetrieverModel, DiffRetrieverQueryEncoder
        from ..representation.prompts import PROMPT_VARIANTS, load_prompt
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
    record: dict[str, Any] = {
        "k": settings["k"],
        "prompt": settings["prompt"],
        "prompt_sha256": settings["prompt_sha256"],
        "max_length": settings["max_length"],
    }
    if settings["prompt"] not in PROMPT_VARIANTS:  # a YAML: its path may not exist where the index is searched
        record["prompt"] = "sha256:" + load_prompt(prompt, "query").sha256()
        record["prompt_file"] = str(Path(prompt).resolve())
    return record


def _settings_for(encoder: Any, representation: str) -> dict[str, Any]:
    settings = dict(encoder.settings()) if hasattr(encoder, "settings") else {"class": type(encoder).__name__}
    if "representation" in settings:
        settings["representation"] = representation  # this folder's representation, whatever the encoder's default
    return settings


def _make_writer(
    representation: str,
    directory: Path,
    settings: Mapping[str, Any],
    shard: tuple[int, int],
    extra: Mapping[str, Any],
    multi_dtype: str,
    allow_empty: bool,
    records_per_file: int,
) -> VectorWriter:
    if representation == "multi":
        return MultiVectorWriter(directory, settings, dtype=multi_dtype, shard=shard, manifest_extra=extra)
    if representation == "impact":
        return JsonVectorWriter(
            directory,
            settings,
            quantization=settings.get("quantization", 100),
            strict=not allow_empty,
            records_per_file=records_per_file,
            shard=shard,
            manifest_extra=extra,
        )
    return WRITERS[representation](directory, settings, shard=shard, manifest_extra=extra)


def _encode_batch(
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
) -> dict[str, Any]:
    """Everything that changes the bytes of an encode's output; a resumed run must match it exactly.

    Left out on purpose: ``--overwrite``, ``--restart``, ``--checkpoint-every`` and the progress bar (they
    change how, not what, is written) and the corpus files' sizes and times (records not encoded yet may
    change; the records already encoded are checked by hash).
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
        "versions": package_versions(),
    }


def encode_corpus(
    encoder: Any,
    reader: JsonlCorpusReader,
    output: str | os.PathLike,
    representations: Sequence[str] = ("dense",),
    *,
    batch_size: int = 16,
    shard: tuple[int, int] = (0, 1),
    max_length: int | None = None,
    fp16: bool = False,
    multi_dtype: str = "float32",
    allow_empty: bool = False,
    records_per_file: int = 100_000,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    restart: bool = False,
    query: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Encode one shard of a corpus into output folders, resumably and atomically; return ``{representation: folder}``.

    Work happens in ``OUT.partial`` (see :mod:`pyserini_diffretriever.writers.checkpoint`): progress is committed
    after at least ``checkpoint_every`` records, always at a batch boundary, and calling this again with the same
    arguments after a crash or kill continues from the last commit; the finished folders are byte-identical to
    those of an uninterrupted run. Bad corpus records raise (``reader.on_error == "strict"``) or are listed in
    ``skipped-records.jsonl`` of every output folder (``"skip"``).

    Parameters
    ----------
    encoder : DiffRetrieverDocumentEncoder or compatible
        Needs ``encode_all(texts, titles=, max_length=, fp16=)`` returning an object with the requested
        ``dense`` / ``multi`` / ``impact`` attributes (or, for one representation, Pyserini's ``encode``).
    reader : JsonlCorpusReader
        The corpus (its ``on_error`` and ``max_record_bytes`` apply).
    output : str or PathLike
        The folder (one representation) or the parent of ``<representation>/`` subfolders (several).
    representations : sequence of {"dense", "multi", "impact"}
    batch_size, shard, max_length, fp16
        As the CLI options of the same names.
    multi_dtype, allow_empty, records_per_file, overwrite, progress, checkpoint_every, restart
        Output options (see the CLI help).
    query : mapping, optional
        The manifests' ``query`` record (:func:`expected_query_settings`); default: that function's defaults
        for ``encoder`` (no record for an encoder without a DiffRetriever model).

    Raises
    ------
    CorpusError
        A bad record in strict mode (file, line and problem named), or an empty shard.
    WriterError
        An encoder output that cannot be written (e.g. an empty impact vector without ``allow_empty``).
    OutputExistsError
        ``output`` exists and ``overwrite`` is false.
    ResumeError
        ``OUT.partial`` of an earlier run has other settings or another corpus prefix (use ``restart``), or
        another process is writing it (:class:`~pyserini_diffretriever.writers.OutputLockedError`).
    OSError
        A write failed (e.g. a full disk); ``OUT.partial`` is kept for a rerun when progress was committed.
    """
    representations = list(representations)
    unknown = [name for name in representations if name not in REPRESENTATIONS]
    if unknown or not representations or len(set(representations)) != len(representations):
        raise ValueError(f"representations must be distinct names from {REPRESENTATIONS}, got {representations}")
    if batch_size < 1 or checkpoint_every < 1:
        raise ValueError(f"batch_size and checkpoint_every must be >= 1, got {batch_size}, {checkpoint_every}")
    check_output_free(output, overwrite)
    total = reader.count()
    start, end = shard_bounds(total, *shard)
    if end <= start:
        raise CorpusError(reader.path, None, f"shard {shard[0]}/{shard[1]} has no documents (corpus has {total})")
    corpus_info = {
        "path": str(reader.path.resolve()),
        "fields": list(reader.fields),
        "docid_field": reader.docid_field,
        "delimiter": reader.delimiter,
        "num_records": total,
        "shard_range": [start, end],
        "on_error": reader.on_error,
    }
    if query is None:
        query = expected_query_settings(encoder)
    extra: dict[str, Any] = {"corpus": corpus_info}
    if query is not None:
        extra["query"] = dict(query)
    settings = run_settings(
        encoder,
        reader,
        representations,
        shard,
        (start, end),
        batch_size,
        max_length,
        fp16,
        multi_dtype,
        allow_empty,
        records_per_file,
        query,
    )
    single = len(representations) == 1
    with ResumableOutput(output, settings, overwrite=overwrite, restart=restart) as out:
        folders = {name: out.partial if single else out.partial / name for name in representations}
        writers = {
            name: _make_writer(
                name,
                folders[name],
                _settings_for(encoder, name),
                shard,
                extra,
                multi_dtype,
                allow_empty,
                records_per_file,
            )
            for name in representations
        }
        committed = out.progress or {}
        if committed.get("stage") != "finished":
            _encode_into(
                encoder,
                reader,
                writers,
                out,
                committed,
                (start, end),
                batch_size,
                max_length,
                fp16,
                checkpoint_every,
                progress,
            )
        for writer in writers.values():
            writer.cleanup()
        out.finalize()
    final = Path(output)
    return {name: final if single else final / name for name in representations}


def _encode_into(
    encoder: Any,
    reader: JsonlCorpusReader,
    writers: Mapping[str, VectorWriter],
    out: ResumableOutput,
    committed: Mapping[str, Any],
    shard_range: tuple[int, int],
    batch_size: int,
    max_length: int | None,
    fp16: bool,
    checkpoint_every: int,
    progress: bool,
) -> None:
    """The encode loop: resume the writers, skip committed records, encode batch by batch, commit, finish."""
    from tqdm import tqdm

    start, end = shard_range
    done = int(committed.get("records_done", 0))
    states = committed.get("writers", {})
    representations = list(writers)
    titles_used = "title" in reader.fields
    digest = hashlib.sha256()
    consumed, last_commit, skipped = 0, done, 0
    batches = int(committed.get("batches_done", 0))
    pending: list[CorpusRecord] = []

    def commit(stage: str) -> None:
        out.commit(
            {
                "stage": stage,
                "records_done": consumed,
                "batches_done": batches,
                "corpus_sha256": digest.hexdigest(),
                "writers": {name: writer.checkpoint() for name, writer in writers.items()},
            }
        )

    def flush() -> None:
        nonlocal batches
        texts = [record.fields["text"] for record in pending]
        titles = [record.fields["title"] for record in pending] if titles_used else None
        encoded = _encode_batch(encoder, representations, texts, titles, max_length, fp16)
        ids = [record.docid for record in pending]
        for name, writer in writers.items():
            writer.write({"id": ids, "vector": encoded[name]})
        batches += 1
        bar.update(len(pending))
        pending.clear()

    opened: list[VectorWriter] = []
    bar = tqdm(total=end - start, initial=done, unit="doc", desc=f"encode {start}..{end}", disable=not progress)
    try:
        for name, writer in writers.items():
            writer.open(states.get(name) if committed else None, preserve=(PROGRESS_NAME,))
            opened.append(writer)
        for entry in reader.iter_entries(start, end, digest=digest):
            consumed += 1
            if consumed <= done:  # encoded by the interrupted run: only its bytes are checked
                if consumed == done and digest.hexdigest() != committed["corpus_sha256"]:
                    raise ResumeError(
                        f"the first {done} records of {reader.path} (shard {start}..{end}) changed since "
                        f"the unfinished run in {out.partial} encoded them; restart it (--restart)"
                    )
                continue
            if isinstance(entry, SkippedRecord):
                if reader.on_error == "strict":
                    raise entry.error()
                skipped += 1
                if skipped <= MAX_SKIP_WARNINGS:
                    logger.warning("skipping %s, line %d: %s", entry.path, entry.line, entry.problem)
                if skipped == MAX_SKIP_WARNINGS:
                    logger.warning("further bad records are listed in %s only", SKIPPED_REPORT_NAME)
                for writer in writers.values():
                    writer.record_skipped(entry)
                bar.update(1)
            else:
                pending.append(entry)
                if len(pending) == batch_size:
                    flush()
                    if consumed - last_commit >= checkpoint_every:
                        commit("encoding")
                        last_commit = consumed
        if consumed < done:
            raise ResumeError(
                f"{reader.path} has fewer records than the unfinished run in {out.partial} already "
                "encoded; restart it (--restart)"
            )
        if pending:
            flush()
        commit("encoding")
        for writer in writers.values():
            writer.finish()
            verify_output(writer.directory, writer.kind, ignore_temporary=True)
        commit("finished")
    except BaseException:
        for writer in opened:
            writer.abort()
        raise
    finally:
        bar.close()


def _summary(folders: Mapping[str, Path]) -> str:
    """One line for the log: documents, representations, skipped records and where they are listed."""
    first = next(iter(folders.values()))
    manifest = verify_output(first)
    line = (
        f"encoded {manifest['num_docs']} documents into {', '.join(str(p) for p in folders.values())} "
        f"({', '.join(folders)})"
    )
    skipped = manifest.get("num_skipped_records", 0)
    if skipped:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in manifest.get("skipped_by_problem", {}).items())
        reports = ", ".join(str(folder / SKIPPED_REPORT_NAME) for folder in folders.values())
        line += f"; skipped {skipped} bad records ({kinds}), listed in {reports}"
    else:
        line += "; no bad records"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the encode CLI; return the exit status (0 ok, 1 bad input/output or failure, 2 usage, 130 interrupted)."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    output = args.output.embeddings
    try:
        reader = JsonlCorpusReader(
            args.input.corpus,
            args.input.fields,
            args.input.docid_field,
            args.input.delimiter,
            on_error=args.input.on_error,
            max_record_bytes=args.input.max_record_bytes,
        )
        check_output_free(output, args.output.overwrite)
        shard = (args.input.shard_id, args.input.shard_num)
        start, end = shard_bounds(reader.count(), *shard)
        if end <= start:
            raise CorpusError(
                reader.path, None, f"shard {shard[0]}/{shard[1]} has no documents (corpus has {reader.count()})"
            )
        try:
            encoder = load_encoder(args.encoder)
            query = expected_query_settings(
                encoder, args.encoder.query_k, args.encoder.query_prompt, args.encoder.query_max_length
            )
        except (ValueError, TypeError, OSError) as error:  # bad checkpoint path, prompt, k, dtype, ...
            logger.error("cannot load encoder %r: %s", args.encoder.encoder, error)
            return 1
        folders = encode_corpus(
            encoder,
            reader,
            output,
            args.encoder.representation,
            batch_size=args.encoder.batch_size,
            shard=shard,
            max_length=args.encoder.max_length,
            fp16=args.encoder.fp16,
            multi_dtype=args.output.multi_dtype,
            allow_empty=args.output.allow_empty,
            records_per_file=args.output.records_per_file,
            overwrite=args.output.overwrite,
            progress=not args.output.no_progress,
            checkpoint_every=args.output.checkpoint_every,
            restart=args.output.restart,
            query=query,
        )
    except (CorpusError, WriterError, ManifestError, OutputExistsError, ResumeError) as error:
        logger.error("%s", error)
        return 1
    except OSError as error:  # a full disk, a read-only folder, ...
        logger.error("cannot write %s: %s%s", output, error, _resume_hint(output))
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted%s", _resume_hint(output))
        return 130
    except Exception:  # an encoder bug, CUDA out of memory, ...: the traceback follows this line
        logger.error("encoding failed unexpectedly%s", _resume_hint(output))
        raise
    logger.info("%s", _summary(folders))
    return 0


def _resume_hint(output: str | os.PathLike) -> str:
    from ..writers import partial_path

    partial = partial_path(output)
    if (partial / PROGRESS_NAME).is_file():
        return f"; the unfinished output is kept in {partial}: rerun the same command to resume"
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
