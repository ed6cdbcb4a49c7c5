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

An optional fourth group, ``ray --workers N [--address auto] [--gpus-per-worker G] [--cpus-per-worker C]
[--block-size B]``, runs the forward passes on N model replicas of a Ray cluster (``pip install
'pyserini-diffretriever[ray]'``); the output is byte-identical to the plain command's
(:mod:`pyserini_diffretriever.pipeline.distributed`).

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
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ..corpus import DEFAULT_MAX_RECORD_BYTES, ON_ERROR_CHOICES, CorpusError, JsonlCorpusReader
from ..layouts import PROGRESS_NAME, SKIPPED_REPORT_NAME
from ..pipeline.distributed import (
    DEFAULT_BLOCK_SIZE,
    RayOptions,
    RayUnavailableError,
    WorkerOutOfMemoryError,
    encode_corpus_on_ray,
)
from ..pipeline.encoding import (  # re-exported: the library's driver, formerly defined here
    DEFAULT_CHECKPOINT_EVERY,
    MAX_SKIP_WARNINGS,
    encode_corpus,
    expected_query_settings,
    run_settings,
    shard_range,
)
from ..settings import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, DEFAULT_QUANTIZATION, REPRESENTATIONS, EncoderSettings
from ..writers import (
    ManifestError,
    OutputExistsError,
    ResumeError,
    WriterError,
    check_output_free,
    verify_output,
)
from . import configure_logging, parse_groups, positive_int

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "MAX_SKIP_WARNINGS",
    "REPRESENTATIONS",
    "ResumeError",
    "build_parsers",
    "encode_corpus",
    "expected_query_settings",
    "load_encoder",
    "main",
    "parse_args",
    "run_settings",
]

PROGRAM = "python -m pyserini_diffretriever.encode"
ENCODED_FIELDS = ("title", "text")
_ENCODER_OPTIONS = (  # encoder group options that are EncoderSettings fields of the same name (None: default)
    "k",
    "prompt",
    "dtype",
    "adapter",
    "logits",
    "denoise_steps",
    "title_separator",
    "sparse_top_k",
    "quantization",
    "rounding",
)
assert set(_ENCODER_OPTIONS) <= set(EncoderSettings.names())


_HELP = __doc__.split("\n", 1)[1].strip().replace("``", "")


def _input_parser() -> argparse.ArgumentParser:
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
    return input_parser


def _encoder_parser() -> argparse.ArgumentParser:
    """The ``encoder`` group: the document encoder's options, then the query record's (:func:`_add_query_options`)."""
    encoder_parser = argparse.ArgumentParser(prog=f"{PROGRAM} encoder", description="the DiffRetriever encoder")
    encoder_parser.add_argument("--encoder", required=True, help="Dream/LLaDA checkpoint folder or hub id")
    encoder_parser.add_argument(
        "--representation",
        nargs="+",
        choices=REPRESENTATIONS,
        default=["dense"],
        help="one or more of dense, multi, impact (several: one forward pass, subfolders OUT/<representation>)",
    )
    encoder_parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"passages per forward pass (default {DEFAULT_BATCH_SIZE})",
    )
    encoder_parser.add_argument(
        "--max-length",
        type=positive_int,
        default=DEFAULT_MAX_LENGTH,
        help=f"token budget for prompt + passage (default {DEFAULT_MAX_LENGTH})",
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
    encoder_parser.add_argument(
        "--k", type=positive_int, default=None, help="mask slots per passage (default per backbone)"
    )
    encoder_parser.add_argument("--prompt", default=None, help="one, few (default), three, or a prompt YAML path")
    _add_query_options(encoder_parser)
    return encoder_parser


def _add_query_options(encoder_parser: argparse.ArgumentParser) -> None:
    """What the index expects of its queries (the manifest's ``query`` record), then the read-out and impact options."""
    encoder_parser.add_argument(
        "--query-k",
        "--k-query",
        type=positive_int,
        default=None,
        help="query mask slots K_q the index expects, recorded in the manifest "
        "(default per backbone: 4 for Dream and LLaDA; --k-query is an alias)",
    )
    encoder_parser.add_argument(
        "--query-prompt",
        default=None,
        help="query prompt the index expects: one, few, three or a query prompt YAML "
        "(default: the documents' variant, few for a custom passage YAML)",
    )
    encoder_parser.add_argument(
        "--query-max-length",
        type=positive_int,
        default=None,
        help=f"query token budget recorded in the manifest (default {DEFAULT_MAX_LENGTH})",
    )
    encoder_parser.add_argument("--adapter", default=None, help="LoRA adapter folder merged into the backbone")
    encoder_parser.add_argument(
        "--logits",
        default=None,
        choices=("unshifted", "shifted"),
        help="vocabulary read-out alignment (default unshifted)",
    )
    encoder_parser.add_argument(
        "--denoise-steps", type=positive_int, default=None, help="denoising steps S (default 1)"
    )
    encoder_parser.add_argument(
        "--title-separator", default=None, help="joins title and text when --fields has title (default '. ')"
    )
    encoder_parser.add_argument(
        "--sparse-top-k", type=positive_int, default=None, help="impact: vocabulary entries kept per slot (default 128)"
    )
    encoder_parser.add_argument(
        "--quantization",
        type=float,
        default=None,
        help=f"impact: integer scale of the weights (default {DEFAULT_QUANTIZATION:g})",
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


def _output_parser() -> argparse.ArgumentParser:
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
        "--multi-codec",
        default=None,
        metavar="CODEC",
        help="write multi as codes of this trained codec.faiss (from `index compress` on a sample of the corpus): "
        "a multi-compressed folder, ~450 bytes per 3584-d vector, no float copy",
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
    return output_parser


def _ray_parser() -> argparse.ArgumentParser:
    """The optional ``ray`` group: encode on a Ray cluster (same output bytes; see pipeline.distributed)."""
    ray_parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} ray", description="encode on a Ray cluster: many model replicas, the same output"
    )
    ray_parser.add_argument(
        "--address",
        default=None,
        help="auto: the cluster started with `ray start` on this node; ray://HOST:10001 a remote one "
        "(default: start a local cluster on this machine)",
    )
    ray_parser.add_argument("--workers", type=int, default=1, help="model replicas (Ray actors) (default 1)")
    ray_parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="GPUs per replica (default: 1 when the cluster has GPUs, else 0)",
    )
    ray_parser.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs per replica, also its torch threads (default 1)"
    )
    ray_parser.add_argument(
        "--block-size",
        type=int,
        default=DEFAULT_BLOCK_SIZE,
        help=f"records per unit of work, rounded up to whole batches (default {DEFAULT_BLOCK_SIZE})",
    )
    ray_parser.add_argument(
        "--max-restarts", type=int, default=3, help="restarts of a dead worker, its blocks retried (default 3)"
    )
    return ray_parser


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """One parser per group; names and defaults follow ``python -m pyserini.encode`` where they overlap."""
    return {"input": _input_parser(), "encoder": _encoder_parser(), "output": _output_parser(), "ray": _ray_parser()}


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
    if args.output.records_per_file < 1:
        problems.append("output --records-per-file must be >= 1")
    if args.output.checkpoint_every < 1:
        problems.append("output --checkpoint-every must be >= 1")
    if args.input.max_record_bytes < 0:
        problems.append("input --max-record-bytes must be >= 0")
    if args.ray is not None:
        for name in ("workers", "block_size"):
            if getattr(args.ray, name) < 1:
                problems.append(f"ray --{name.replace('_', '-')} must be >= 1 (got {getattr(args.ray, name)})")
        if args.ray.cpus_per_worker <= 0 or (args.ray.gpus_per_worker or 0) < 0 or args.ray.max_restarts < 0:
            problems.append("ray --cpus-per-worker must be > 0, --gpus-per-worker and --max-restarts >= 0")
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

    settings = EncoderSettings.given(
        representation=args.representation[0],
        max_length=args.max_length,
        device=resolve_device(args.device, backend="torch"),
        batch_size=args.batch_size,
        **{name: getattr(args, name) for name in _ENCODER_OPTIONS},
    )
    return DiffRetrieverDocumentEncoder(args.encoder, settings=settings)


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
        shard_range(reader, shard)  # an empty shard fails before the encoder is loaded
        encode_options = {
            "batch_size": args.encoder.batch_size,
            "shard": shard,
            "max_length": args.encoder.max_length,
            "fp16": args.encoder.fp16,
            "multi_dtype": args.output.multi_dtype,
            "allow_empty": args.output.allow_empty,
            "records_per_file": args.output.records_per_file,
            "multi_codec": args.output.multi_codec,
            "overwrite": args.output.overwrite,
            "progress": not args.output.no_progress,
            "checkpoint_every": args.output.checkpoint_every,
            "restart": args.output.restart,
        }
        query_options = {
            "k": args.encoder.query_k,
            "prompt": args.encoder.query_prompt,
            "max_length": args.encoder.query_max_length,
        }
        if args.ray is not None:
            folders = _encode_on_ray(args, reader, encode_options, query_options)
        else:
            try:
                encoder = load_encoder(args.encoder)
                query = expected_query_settings(encoder, **query_options)
            except (ValueError, TypeError, OSError) as error:  # bad checkpoint path, prompt, k, dtype, ...
                logger.error("cannot load encoder %r: %s", args.encoder.encoder, error)
                return 1
            folders = encode_corpus(encoder, reader, output, args.encoder.representation, query=query, **encode_options)
    except (RayUnavailableError, WorkerOutOfMemoryError) as error:
        logger.error("%s%s", error, _resume_hint(output))
        return 1
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


def _encode_on_ray(
    args: argparse.Namespace, reader: JsonlCorpusReader, encode_options: dict[str, Any], query_options: dict[str, Any]
) -> dict[str, Path]:
    """The ``ray`` group given: the same encode, with the model replicas on Ray workers."""
    options = RayOptions(
        address=args.ray.address,
        workers=args.ray.workers,
        gpus_per_worker=args.ray.gpus_per_worker,
        cpus_per_worker=args.ray.cpus_per_worker,
        block_size=args.ray.block_size,
        max_restarts=args.ray.max_restarts,
    )
    return encode_corpus_on_ray(
        partial(load_encoder, args.encoder),
        reader,
        args.output.embeddings,
        args.encoder.representation,
        ray_options=options,
        query_options=query_options,
        **encode_options,
    )


def _resume_hint(output: str | os.PathLike) -> str:
    from ..writers import partial_path

    partial = partial_path(output)
    if (partial / PROGRESS_NAME).is_file():
        return f"; the unfinished output is kept in {partial}: rerun the same command to resume"
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
