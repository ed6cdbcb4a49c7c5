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

Every folder has a ``manifest.json``. Output is written to ``OUT.partial-*`` and renamed to ``OUT`` only when
complete. Shards (``--shard-id/--shard-num``, a contiguous split as in Pyserini) are joined with
``python -m pyserini_diffretriever.index merge --inputs OUT0 OUT1 ... --output OUT``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..corpus import CorpusError, JsonlCorpusReader, shard_bounds
from ..writers import (
    WRITERS,
    JsonVectorWriter,
    ManifestError,
    MultiVectorWriter,
    OutputExistsError,
    VectorWriter,
    WriterError,
    atomic_output_dir,
    check_output_free,
)
from . import configure_logging, parse_groups

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.encode"
REPRESENTATIONS = tuple(WRITERS)
ENCODED_FIELDS = ("title", "text")


_HELP = __doc__.split("\n", 1)[1].strip().replace("``", "")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """One parser per group; names and defaults follow ``python -m pyserini.encode`` where they overlap."""
    input_parser = argparse.ArgumentParser(prog=f"{PROGRAM} input", description="the corpus to encode")
    input_parser.add_argument("--corpus", required=True,
                              help="JSON-lines file, or a folder of .jsonl/.json files (read in name order)")
    input_parser.add_argument("--fields", nargs="+", default=["text"],
                              help="fields of each record, in order; 'text' is required, 'title' optional "
                                   "(default: text). BEIR-style corpora: --fields title text")
    input_parser.add_argument("--docid-field", default=None,
                              help="key of the document id (default: first of id, _id, docid)")
    input_parser.add_argument("--delimiter", default="\n",
                              help="separator of the fields inside 'contents' (default: newline; '\\n' is unescaped)")
    input_parser.add_argument("--shard-id", type=int, default=0, help="0-based shard to encode (default 0)")
    input_parser.add_argument("--shard-num", type=int, default=1, help="number of contiguous shards (default 1)")

    encoder_parser = argparse.ArgumentParser(prog=f"{PROGRAM} encoder", description="the DiffRetriever encoder")
    encoder_parser.add_argument("--encoder", required=True, help="Dream/LLaDA checkpoint folder or hub id")
    encoder_parser.add_argument("--representation", nargs="+", choices=REPRESENTATIONS, default=["dense"],
                                help="one or more of dense, multi, impact (several: one forward pass, "
                                     "subfolders OUT/<representation>)")
    encoder_parser.add_argument("--batch-size", type=int, default=16, help="passages per forward pass (default 16)")
    encoder_parser.add_argument("--max-length", type=int, default=512,
                                help="token budget for prompt + passage (default 512)")
    encoder_parser.add_argument("--device", default="cuda:0",
                                help="cpu or cuda[:N] (default cuda:0; falls back to cpu like Pyserini)")
    encoder_parser.add_argument("--fp16", action="store_true", help="float16 autocast on CUDA (as in Pyserini)")
    encoder_parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                                help="weight dtype of the backbone (default: the encoder's, float32)")
    encoder_parser.add_argument("--k", type=int, default=None, help="mask slots per passage (default per backbone)")
    encoder_parser.add_argument("--prompt", default=None, help="one, few (default), three, or a prompt YAML path")
    encoder_parser.add_argument("--adapter", default=None, help="LoRA adapter folder merged into the backbone")
    encoder_parser.add_argument("--logits", default=None, choices=("unshifted", "shifted"),
                                help="vocabulary read-out alignment (default unshifted)")
    encoder_parser.add_argument("--denoise-steps", type=int, default=None, help="denoising steps S (default 1)")
    encoder_parser.add_argument("--title-separator", default=None,
                                help="joins title and text when --fields has title (default '. ')")
    encoder_parser.add_argument("--sparse-top-k", type=int, default=None,
                                help="impact: vocabulary entries kept per slot (default 128)")
    encoder_parser.add_argument("--quantization", type=float, default=None,
                                help="impact: integer scale of the weights (default 100)")
    encoder_parser.add_argument("--rounding", default=None, choices=("truncate", "round"),
                                help="impact: how scaled weights become integers (default truncate)")
    encoder_parser.add_argument("--fields", nargs="+", default=None,
                                help="accepted for Pyserini compatibility; the encoded fields are input --fields")

    output_parser = argparse.ArgumentParser(prog=f"{PROGRAM} output", description="where to write")
    output_parser.add_argument("--embeddings", required=True,
                               help="output folder (one representation) or parent of OUT/<representation>")
    output_parser.add_argument("--to-faiss", action="store_true",
                               help="accepted for Pyserini compatibility: dense output is always a FAISS folder")
    output_parser.add_argument("--multi-dtype", default="float32", choices=("float32", "float16"),
                               help="storage dtype of multi-vector vectors.npy (default float32)")
    output_parser.add_argument("--allow-empty", action="store_true",
                               help="impact: leave out documents with an empty vector and list them in "
                                    "empty-vector-docids.txt instead of failing")
    output_parser.add_argument("--records-per-file", type=int, default=100_000,
                               help="impact: records per vectors/part-*.jsonl file (default 100000)")
    output_parser.add_argument("--overwrite", action="store_true",
                               help="replace an existing output folder once the new one is complete")
    output_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return {"input": input_parser, "encoder": encoder_parser, "output": output_parser}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``input ... encoder ... output ...``; exit with a usage message on errors."""
    args = parse_groups(PROGRAM, _HELP, build_parsers(), argv,
                        required=("input", "encoder", "output"))
    args.input.delimiter = args.input.delimiter.replace("\\n", "\n").replace("\\t", "\t")
    problems = []
    fields = args.input.fields
    if "text" not in fields or any(name not in ENCODED_FIELDS for name in fields) or len(set(fields)) != len(fields):
        problems.append(f"input --fields must be 'text' or 'title text' (got {fields}); other keys are not encoded")
    if len(set(args.encoder.representation)) != len(args.encoder.representation):
        problems.append(f"encoder --representation lists a representation twice: {args.encoder.representation}")
    if args.input.shard_num < 1 or not 0 <= args.input.shard_id < args.input.shard_num:
        problems.append(f"need 0 <= --shard-id < --shard-num (got {args.input.shard_id}, {args.input.shard_num})")
    for name in ("batch_size", "max_length", "k", "denoise_steps", "sparse_top_k"):
        value = getattr(args.encoder, name)
        if value is not None and value < 1:
            problems.append(f"encoder --{name.replace('_', '-')} must be >= 1 (got {value})")
    if args.output.records_per_file < 1:
        problems.append("output --records-per-file must be >= 1")
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

    optional = {"k": args.k, "prompt": args.prompt, "dtype": args.dtype, "adapter": args.adapter,
                "logits": args.logits, "denoise_steps": args.denoise_steps, "title_separator": args.title_separator,
                "sparse_top_k": args.sparse_top_k, "quantization": args.quantization, "rounding": args.rounding}
    kwargs = {key: value for key, value in optional.items() if value is not None}
    return DiffRetrieverDocumentEncoder(
        args.encoder, representation=args.representation[0], max_length=args.max_length,
        device=resolve_device(args.device, backend="torch"), batch_size=args.batch_size, **kwargs,
    )


def _settings_for(encoder: Any, representation: str) -> dict[str, Any]:
    settings = dict(encoder.settings()) if hasattr(encoder, "settings") else {"class": type(encoder).__name__}
    if "representation" in settings:
        settings["representation"] = representation  # this folder's representation, whatever the encoder's default
    return settings


def _make_writer(representation: str, directory: Path, settings: Mapping[str, Any], shard: tuple[int, int],
                 extra: Mapping[str, Any], multi_dtype: str, allow_empty: bool, records_per_file: int) -> VectorWriter:
    if representation == "multi":
        return MultiVectorWriter(directory, settings, dtype=multi_dtype, shard=shard, manifest_extra=extra)
    if representation == "impact":
        return JsonVectorWriter(directory, settings, quantization=settings.get("quantization", 100),
                                strict=not allow_empty, records_per_file=records_per_file, shard=shard,
                                manifest_extra=extra)
    return WRITERS[representation](directory, settings, shard=shard, manifest_extra=extra)


def _encode_batch(encoder: Any, representations: Sequence[str], texts: list[str], titles: list[str] | None,
                  max_length: int | None, fp16: bool) -> dict[str, Any]:
    """All requested representations of one batch; ``encode_all`` does a single forward pass."""
    if hasattr(encoder, "encode_all"):
        batch = encoder.encode_all(texts, titles=titles, max_length=max_length, fp16=fp16)
        return {name: getattr(batch, name) for name in representations}
    if len(representations) != 1:
        raise TypeError(f"{type(encoder).__name__} has no encode_all(); encode one representation per run")
    return {representations[0]: encoder.encode(texts=texts, titles=titles, max_length=max_length, fp16=fp16)}


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
) -> dict[str, Path]:
    """Encode one shard of a corpus into output folders, atomically; return ``{representation: folder}``.

    Parameters
    ----------
    encoder : DiffRetrieverDocumentEncoder or compatible
        Needs ``encode_all(texts, titles=, max_length=, fp16=)`` returning an object with the requested
        ``dense`` / ``multi`` / ``impact`` attributes (or, for one representation, Pyserini's ``encode``).
    reader : JsonlCorpusReader
        The corpus.
    output : str or PathLike
        The folder (one representation) or the parent of ``<representation>/`` subfolders (several).
    representations : sequence of {"dense", "multi", "impact"}
    batch_size, shard, max_length, fp16
        As the CLI options of the same names.
    multi_dtype, allow_empty, records_per_file, overwrite, progress
        Output options (see the CLI help).

    Raises
    ------
    CorpusError
        A bad record (file, line and problem named), or an empty shard.
    WriterError
        An encoder output that cannot be written (e.g. an empty impact vector without ``allow_empty``).
    OutputExistsError
        ``output`` exists and ``overwrite`` is false.
    """
    representations = list(representations)
    unknown = [name for name in representations if name not in REPRESENTATIONS]
    if unknown or not representations or len(set(representations)) != len(representations):
        raise ValueError(f"representations must be distinct names from {REPRESENTATIONS}, got {representations}")
    check_output_free(output, overwrite)
    total = reader.count()
    start, end = shard_bounds(total, *shard)
    if end <= start:
        raise CorpusError(reader.path, None, f"shard {shard[0]}/{shard[1]} has no documents (corpus has {total})")
    corpus_info = {"path": str(reader.path.resolve()), "fields": list(reader.fields),
                   "docid_field": reader.docid_field, "delimiter": reader.delimiter,
                   "num_records": total, "shard_range": [start, end]}
    titles_used = "title" in reader.fields
    with atomic_output_dir(output, overwrite) as partial:
        single = len(representations) == 1
        folders = {name: partial if single else partial / name for name in representations}
        writers = {name: _make_writer(name, folders[name], _settings_for(encoder, name), shard,
                                      {"corpus": corpus_info}, multi_dtype, allow_empty, records_per_file)
                   for name in representations}
        with contextlib.ExitStack() as stack:  # every writer is closed; manifests only if all went well
            for writer in writers.values():
                stack.enter_context(writer)
            for batch in reader.iter_batches(batch_size, *shard, progress=progress):
                encoded = _encode_batch(encoder, representations, batch["text"],
                                        batch["title"] if titles_used else None, max_length, fp16)
                for name, writer in writers.items():
                    writer.write({"id": batch["id"], "vector": encoded[name]})
    final = Path(output)
    return {name: final if len(representations) == 1 else final / name for name in representations}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the encode CLI; return the process exit status (0 ok, 1 bad input/output, 2 usage)."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    try:
        reader = JsonlCorpusReader(args.input.corpus, args.input.fields, args.input.docid_field, args.input.delimiter)
        check_output_free(args.output.embeddings, args.output.overwrite)
        shard = (args.input.shard_id, args.input.shard_num)
        start, end = shard_bounds(reader.count(), *shard)
        if end <= start:
            raise CorpusError(reader.path, None, f"shard {shard[0]}/{shard[1]} has no documents "
                                                 f"(corpus has {reader.count()})")
        try:
            encoder = load_encoder(args.encoder)
        except (ValueError, TypeError, OSError) as error:  # bad checkpoint path, prompt, k, dtype, ...
            logger.error("cannot load encoder %r: %s", args.encoder.encoder, error)
            return 1
        folders = encode_corpus(
            encoder, reader, args.output.embeddings, args.encoder.representation, batch_size=args.encoder.batch_size,
            shard=shard, max_length=args.encoder.max_length, fp16=args.encoder.fp16,
            multi_dtype=args.output.multi_dtype, allow_empty=args.output.allow_empty,
            records_per_file=args.output.records_per_file, overwrite=args.output.overwrite,
            progress=not args.output.no_progress,
        )
    except (CorpusError, WriterError, ManifestError, OutputExistsError) as error:
        logger.error("%s", error)
        return 1
    for name, folder in folders.items():
        logger.info("%s: %s", name, folder)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
