"""``python -m pyserini_diffretriever.search``: search DiffRetriever indexes and write a TREC run.

One index (its kind -- dense, dense-ann, dense-lucene-index, multi or impact -- comes from its manifest)::

    python -m pyserini_diffretriever.search --index indexes/cranfield.multi \\
        --topics topics.tsv --output runs/multi.trec --hits 1000

Hybrid: a dense or multi-vector index (any kind of it: flat, ANN, Lucene, compressed) plus an impact index,
fused with the paper's min-max fusion (default, alpha weighs the dense side) or Pyserini's ``HybridSearcher``
(``--fusion pyserini``, alpha weighs the sparse side as in ``python -m pyserini.search.hybrid``)::

    python -m pyserini_diffretriever.search --multi-index indexes/c.multi --impact-index indexes/c.impact \\
        --fusion minmax --alpha 0.5 --depth 1000 --topics topics.tsv --output runs/hybrid.trec

Search options (--mode, --candidates, --nprobe, --ef-search, --rerank...) go to the indexes whose kind has
them (the table in pyserini_diffretriever.search.kinds); one that no given index has is refused, naming both.

The query encoder is rebuilt from each index's manifest (backbone, adapter, read-out, quantisation, and the
query K, prompt and max length the index expects); ``--encoder`` overrides the checkpoint location. A query K or
prompt other than the index expects (``--k``/``--prompt``) is refused unless ``--ignore-mismatch k prompt``.
Indexes that share a backbone share one loaded model. Runs are ``qid Q0 docid rank score tag`` (6 decimals),
ordered by (-score, docid); evaluate with
``python -m pyserini_diffretriever.run pyserini.eval.trec_eval -c -m ndcg_cut.10 QRELS RUN``.
"""

from __future__ import annotations

import os

# torch and faiss-cpu each bring an OpenMP runtime; with the default spinning wait policy a FAISS search in a
# process that also runs torch pays ~10 ms per call (benchmarks/REPORT.md). Set before either is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..search.factory import MISMATCH_KEYS
from ..search.fusion import DEFAULT_DEPTH, FUSIONS
from ..search.index_format import IndexFormatError, IndexMismatchError, ManifestError
from ..search.kinds import REPRESENTATIONS, KindOptionError
from ..search.runs import OUTPUT_FORMATS, RunWriter
from ..search.topics import ON_ERROR_CHOICES as TOPICS_ON_ERROR
from ..search.topics import TopicsFormatError, read_topics
from . import configure_logging

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.search"
SEARCH_OPTIONS = (
    "mode",
    "candidates",
    "centroid_candidates",
    "nprobe",
    "ef_search",
    "token_index",
    "rerank",
    "rerank_index",
    "min_idf",
)
"""Options passed to the indexes whose kind has them (refused when none has)."""


def build_parser() -> argparse.ArgumentParser:
    """Options named as in ``python -m pyserini.search.faiss`` / ``pyserini.search.hybrid`` where they overlap."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__.split("\n", 1)[0].split(": ", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 1)[1].replace("``", "").replace("::", ":").strip(),
    )
    _add_index_options(parser)
    _add_run_options(parser)
    _add_encoder_options(parser)
    _add_search_options(parser)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    """Which indexes, and how two are fused."""
    where = parser.add_argument_group("indexes (--index, or one or two of --dense/--multi/--impact-index)")
    where.add_argument("--index", help="one index folder written by this package (kind from its manifest)")
    for side in REPRESENTATIONS:
        where.add_argument(f"--{side}-index", help=f"{side} index folder, of any {side} kind (hybrid: give two)")
    where.add_argument(
        "--fusion",
        choices=FUSIONS,
        default="minmax",
        help="hybrid fusion: minmax = the paper's (default), pyserini = Pyserini's HybridSearcher",
    )
    where.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="fusion weight (minmax: of the dense/multi side, default 0.5; pyserini: of the sparse side, default 0.1)",
    )
    where.add_argument(
        "--depth", type=int, default=DEFAULT_DEPTH, help=f"hits per side that are fused (default {DEFAULT_DEPTH})"
    )
    where.add_argument("--normalization", action="store_true", help="pyserini fusion: its score normalisation")
    where.add_argument("--weight-on-dense", action="store_true", help="pyserini fusion: alpha weighs the dense side")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Topics, run file and batching."""
    run = parser.add_argument_group("topics and output")
    run.add_argument("--topics", required=True, help="local topics: .tsv/.txt (qid<TAB>text), .json or .jsonl")
    run.add_argument(
        "--topics-on-error",
        choices=TOPICS_ON_ERROR,
        default="strict",
        help="bad topic records: stop with file, line and problem (strict, default) or leave them out "
        "with a warning each (skip)",
    )
    run.add_argument("--output", required=True, help="run file to write")
    run.add_argument("--output-format", choices=OUTPUT_FORMATS, default="trec", help="trec (default) or msmarco")
    run.add_argument("--run-tag", default="DiffRetriever", help="TREC run tag (default DiffRetriever)")
    run.add_argument("--hits", type=int, default=1000, help="hits per query (default 1000)")
    run.add_argument("--batch-size", type=int, default=16, help="queries per batch_search call (default 16)")
    run.add_argument("--threads", type=int, default=1, help="search threads (default 1)")
    run.add_argument("--remove-query", action="store_true", help="drop a hit whose docid equals the qid (BEIR)")


def _add_encoder_options(parser: argparse.ArgumentParser) -> None:
    """The query encoder (defaults from each index's manifest)."""
    encoder = parser.add_argument_group("query encoder (defaults from each index's manifest)")
    encoder.add_argument("--encoder", default=None, help="checkpoint folder or hub id (default: manifest backbone)")
    encoder.add_argument(
        "--k",
        type=int,
        default=None,
        help="query mask slots K_q (default: the index's expected query K, else per backbone)",
    )
    encoder.add_argument(
        "--prompt", default=None, help="one, few, three or a query YAML (default: the index's expected query prompt)"
    )
    encoder.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    encoder.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "bfloat16", "float16"),
        help="backbone weight dtype (default float32)",
    )
    encoder.add_argument(
        "--max-length", type=int, default=None, help="query token budget (default: the index's expected one, else 512)"
    )
    encoder.add_argument("--encoder-batch-size", type=int, default=None, help="queries per forward pass")
    encoder.add_argument(
        "--ignore-mismatch",
        nargs="+",
        default=(),
        metavar="KEY",
        choices=MISMATCH_KEYS,
        help="settings not to compare with the index (e.g. backbone for a moved folder, k prompt "
        f"for other query settings on purpose); any of: {', '.join(MISMATCH_KEYS)}",
    )


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """Search options of particular index kinds (each refused for an index of another kind)."""
    multi = parser.add_argument_group(
        "search options of particular index kinds (given for an index whose kind lacks it: an error)"
    )
    multi.add_argument(
        "--mode",
        choices=("default", "exact"),
        default=None,
        help="multi, multi-compressed: candidates + exact MaxSim (default) or exhaustive MaxSim",
    )
    multi.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="multi, multi-compressed: documents per candidate source; multi-warp: WARP candidates re-scored by "
        "their whole small-tier MaxSim (default: the manifest's, 2000)",
    )
    multi.add_argument(
        "--centroid-candidates",
        type=int,
        default=None,
        help="multi-compressed: documents kept by centroid interaction (default 4000)",
    )
    multi.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists / cells probed per query vector (multi token index; multi-compressed; multi-warp; dense-ann "
        "IVF index, default: its manifest's)",
    )
    multi.add_argument(
        "--ef-search",
        type=int,
        default=None,
        help="HNSW search beam of a dense-ann HNSW, dense-lucene-index HNSW or multi HNSW token index "
        "(default: the manifest's)",
    )
    multi.add_argument(
        "--token-index",
        choices=("auto", "flat", "ivf", "hnsw"),
        default=None,
        help="multi: token index kind used or built (default auto)",
    )
    multi.add_argument(
        "--rerank",
        type=int,
        default=None,
        metavar="N",
        help="multi-compressed: re-score the best N exactly from the float multi folder the codes came from",
    )
    multi.add_argument(
        "--rerank-index",
        default=None,
        help="multi-compressed with --rerank: that float multi folder (default: the one its manifest records)",
    )
    multi.add_argument("--min-idf", type=float, default=None, help="impact: LuceneImpactSearcher min_idf (default 0)")


def _indexes(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[tuple[str | None, Path]]:
    """``[(side, folder)]`` (side: ``None`` for ``--index``, whose kind comes from the manifest)."""
    named = [(side, Path(getattr(args, f"{side}_index"))) for side in REPRESENTATIONS if getattr(args, f"{side}_index")]
    if args.index and named:
        parser.error("give --index or --dense/--multi/--impact-index, not both")
    if args.index:
        return [(None, Path(args.index))]
    if not named:
        parser.error("no index: give --index or --dense-index/--multi-index/--impact-index")
    if len(named) > 2:
        parser.error("fusion combines two runs: give at most two of --dense-index, --multi-index, --impact-index")
    return named


def _check_values(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name in (
        "hits",
        "batch_size",
        "threads",
        "depth",
        "k",
        "max_length",
        "encoder_batch_size",
        "candidates",
        "centroid_candidates",
        "nprobe",
        "ef_search",
        "rerank",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0 and args.fusion == "minmax":
        parser.error(f"--alpha must be in [0, 1] for minmax fusion (got {args.alpha})")
    if args.fusion == "minmax" and (args.normalization or args.weight_on_dense):
        parser.error("--normalization and --weight-on-dense are options of --fusion pyserini")
    if args.rerank_index is not None and args.rerank is None:
        parser.error("--rerank-index needs --rerank N")


def _searcher(indexes: list[tuple[str | None, Path]], args: argparse.Namespace) -> Any:
    """The (possibly fused) searcher; indexes built from the same checkpoint share one loaded model."""
    from ..search.factory import open_searchers

    return open_searchers(
        indexes,
        fusion=args.fusion,
        alpha=args.alpha,
        depth=args.depth,
        normalization=args.normalization,
        weight_on_dense=args.weight_on_dense,
        encoder=args.encoder,
        search_options={name: getattr(args, name) for name in SEARCH_OPTIONS},
        query_slots=args.k,
        prompt=args.prompt,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.encoder_batch_size,
        ignore_mismatch=args.ignore_mismatch,
    )


def run_search(args: argparse.Namespace, indexes: list[tuple[str | None, Path]]) -> int:
    """Search every topic and write the run; returns the number of queries written."""
    topics = read_topics(args.topics, on_error=args.topics_on_error)
    searcher = _searcher(indexes, args)
    qids, texts = list(topics), list(topics.values())
    started, lines = time.perf_counter(), 0
    with RunWriter(args.output, args.output_format, args.run_tag, args.hits) as writer:
        for lo in range(0, len(qids), args.batch_size):
            batch_ids, batch_texts = qids[lo : lo + args.batch_size], texts[lo : lo + args.batch_size]
            results = searcher.batch_search(batch_texts, batch_ids, k=args.hits, threads=args.threads)
            for qid in batch_ids:
                hits = list(results.get(qid, []))
                if args.remove_query:
                    hits = [hit for hit in hits if str(hit.docid).strip() != qid]
                lines += writer.write(qid, hits)
            logger.info("searched %d/%d queries", min(lo + args.batch_size, len(qids)), len(qids))
    logger.info(
        "wrote %s: %d queries, %d lines in %.1f s", args.output, len(qids), lines, time.perf_counter() - started
    )
    return len(qids)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pyserini_diffretriever.search``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    indexes = _indexes(args, parser)
    _check_values(args, parser)
    configure_logging(args.verbose)
    try:
        run_search(args, indexes)
    except KindOptionError as error:  # a usage error, found once the index kinds are known
        print(f"{PROGRAM}: error: --{error.option.replace('_', '-')}: {error}", file=sys.stderr)
        return 2
    except (IndexFormatError, IndexMismatchError, ManifestError, TopicsFormatError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
