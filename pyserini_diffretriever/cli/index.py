"""``python -m pyserini_diffretriever.index``: build Lucene (impact, dense) or compressed FAISS indexes, merge shards.

``lucene`` wraps Pyserini's indexer for the ``impact`` output of ``python -m pyserini_diffretriever.encode``::

    python -m pyserini_diffretriever.index lucene --input OUT/impact --index IDX --threads 4

which runs the plain Pyserini command

    python -m pyserini.index.lucene --collection JsonVectorCollection --input OUT/impact/vectors --index IDX \\
        --generator DefaultLuceneDocumentGenerator --threads 4 --impact --pretokenized

(through ``python -m pyserini_diffretriever.run`` so that Java >= 21 is prepared), then checks that every record
was indexed (Anserini silently skips empty documents) and stores the manifest as
``IDX/diffretriever-manifest.json``. Search it with ``pyserini.search.lucene.LuceneImpactSearcher(IDX, encoder)``.

``faiss`` builds a compressed or approximate (ANN) FAISS index from the flat ``dense`` folder, streaming
(bounded memory; flags as in ``python -m pyserini.index.faiss`` plus IVF and factory strings)::

    python -m pyserini_diffretriever.index faiss --input OUT/dense --output OUT/dense-ivfpq

``lucene-dense`` puts the dense vectors into a Lucene HNSW (default) or flat index with Anserini's
``IndexHnswDenseVectors`` / ``IndexFlatDenseVectors`` (a ``JsonDenseVectorCollection`` written from the
dense folder)::

    python -m pyserini_diffretriever.index lucene-dense --input OUT/dense --index IDX --M 16 --efC 100

Both are searched with ``python -m pyserini_diffretriever.search --index ...`` (kind from the manifest).

``compress`` turns a float ``multi`` folder into a compressed one, resumably. The default engine ``codec`` writes a
``multi-compressed`` folder (FAISS IVF residual codec, ~457 bytes per 3584-d vector); ``--engine warp`` writes a
cell-major ``multi-warp`` index (120 bytes per vector, an optional 3,584-byte re-rank tier, memory-mapped, and a
recall@100 estimate measured at build time, which also tunes its default nprobe and candidates). The codec
ranked higher on benchmark B5's 100k passages (recall@100 0.99; warp 0.96 and 0.94 on B9's two geometries at 100k)
but keeps every code in RAM and scans the whole collection per query; warp's memory and work per query stay
bounded as the collection grows (README "Multi-vector search at scale")::

    python -m pyserini_diffretriever.index compress --input OUT/multi --output OUT/multi-sq8
    python -m pyserini_diffretriever.index compress --engine warp --input OUT/multi --output OUT/multi-warp

``merge`` joins the folders of ``encode ... --shard-id i --shard-num n`` runs (dense, multi or impact)::

    python -m pyserini_diffretriever.index merge --inputs OUT0 OUT1 OUT2 --output OUT

after checking that their manifests agree (same encoder settings, shards 0..n-1); the result equals an
unsharded run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..writers import ManifestError, OutputExistsError, ResumeError, WriterError
from . import configure_logging

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.index"


def build_parser() -> argparse.ArgumentParser:
    text = __doc__.replace("``", "")
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=text.split("\n\n")[0].split(": ", 1)[1],
        epilog=text.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{lucene,lucene-dense,faiss,compress,merge}"
    )

    lucene = commands.add_parser(
        "lucene",
        help="Lucene impact index from an impact output folder",
        description="Index OUT/impact with `python -m pyserini.index.lucene --collection JsonVectorCollection "
        "--input OUT/impact/vectors --index IDX --generator DefaultLuceneDocumentGenerator "
        "--threads N --impact --pretokenized`, verify the document count, and copy the manifest "
        "to IDX/diffretriever-manifest.json.",
    )
    lucene.add_argument("--input", required=True, help="impact output folder (holds manifest.json and vectors/)")
    lucene.add_argument("--index", required=True, help="Lucene index folder to create")
    lucene.add_argument("--threads", type=int, default=1, help="indexing threads (default 1)")
    lucene.add_argument("--optimize", action="store_true", help="merge into one segment (faster search)")
    lucene.add_argument("--overwrite", action="store_true", help="replace an existing index once the new one is built")

    _add_faiss_parser(commands)
    _add_lucene_dense_parser(commands)
    _add_compress_parser(commands)

    merge = commands.add_parser(
        "merge",
        help="merge shard outputs of one encode run",
        description="Concatenate the dense, multi or impact folders of `encode ... --shard-id i --shard-num n` "
        "(all shards, any order) into one folder equal to an unsharded run.",
    )
    merge.add_argument("--inputs", nargs="+", required=True, help="shard folders (each with manifest.json)")
    merge.add_argument("--output", required=True, help="merged folder to create")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output once merged")
    return parser


WARP_ONLY = ("residual", "bits", "subvector_dims", "rerank_tier", "train_docs", "nprobe", "candidates")
CODEC_ONLY = ("code", "train_size", "codec")


def _add_compress_parser(commands: Any) -> None:
    from ..indexing.warp_codec import RERANK_TIERS

    compress = commands.add_parser(
        "compress",
        help="compressed multi-vector index from a multi output folder (FAISS residual codec, or WARP-style cells)",
        description="Engine 'warp' (kind multi-warp): uncentred projection + k-means cells + PQ (or 2/4-bit) "
        "residual codes stored cell-major (112 bytes per vector at 448 dims), an optional full-dimension "
        "SQ8 re-rank tier, and recall@100 estimated at build time from pseudo-queries against exact MaxSim "
        "(printed, recorded in the manifest, a warning below --min-recall); the same estimate tunes the default "
        "--nprobe and --candidates. Engine 'codec' (kind "
        "multi-compressed, the default): the FAISS IVF residual codec. Both are resumable: rerun the same command "
        "after an interruption.",
    )
    compress.add_argument("--input", required=True, help="float multi-vector folder (vectors.npy, offsets.npy, ...)")
    compress.add_argument("--output", required=True, help="compressed folder to create")
    compress.add_argument(
        "--engine",
        choices=("codec", "warp"),
        default="codec",
        help="codec (default, multi-compressed) or warp (multi-warp: 4x smaller codes, memory-mapped, work per "
        "query sub-linear in the collection; the one for large collections)",
    )
    compress.add_argument("--dim", type=int, default=None, help="projected dimension (default min(448, H))")
    compress.add_argument("--nlist", type=int, default=None, help="cells / IVF lists (default ~2 sqrt(vectors))")
    compress.add_argument(
        "--residual",
        choices=("pq", "sq"),
        default=None,
        help="warp: residual code, pq (product quantiser, one byte per --subvector-dims dims; default) or sq "
        "(per-dimension --bits buckets)",
    )
    compress.add_argument("--bits", type=int, choices=(2, 4), default=None, help="warp, sq: bits per dimension (2)")
    compress.add_argument(
        "--subvector-dims", type=int, default=None, help="warp, pq: projected dimensions per code byte (4)"
    )
    compress.add_argument(
        "--rerank-tier",
        choices=RERANK_TIERS,
        default=None,
        help="warp: the tier read for the best --rerank candidates: sq8 (every dimension at 8 bits, H bytes per "
        "vector; default), split4 / split2 (the projection at 8 bits + every dimension at 4 / 2 bits: 2,240 / "
        "1,344 bytes at H 3584), none",
    )
    compress.add_argument("--train-docs", type=int, default=None, help="warp: training documents (8192)")
    compress.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="warp: default cells per query vector (default: tuned by the build-time recall estimate)",
    )
    compress.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="warp: default number of WARP candidates re-scored by their whole small-tier MaxSim (default: tuned)",
    )
    compress.add_argument(
        "--estimate-queries",
        type=int,
        default=None,
        help="pseudo-queries of the build-time recall@100 estimate (64; 0: none)",
    )
    compress.add_argument("--min-recall", type=float, default=None, help="warn below this estimated recall@100 (0.95)")
    compress.add_argument("--code", default=None, help="codec: residual code SQ8 (default), SQ4, SQ6, PQ<m>x<bits>")
    compress.add_argument("--train-size", type=int, default=None, help="codec: training vectors (default 65536)")
    compress.add_argument("--codec", default=None, help="codec: use this trained codec.faiss instead of training")
    compress.add_argument("--seed", type=int, default=0, help="sampling and k-means seed")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing output once done")
    compress.add_argument("--restart", action="store_true", help="discard an unfinished output instead of resuming")


def _add_faiss_parser(commands: Any) -> None:
    from ..indexing import dense_recall as dr
    from ..indexing import faiss_dense as fd

    faiss = commands.add_parser(
        "faiss",
        help="compressed/ANN FAISS index from a flat dense folder (streaming)",
        description="Train a FAISS codec on a sample of OUT/dense and add every vector chunk by chunk (bounded "
        f"memory). Default codec: {fd.DEFAULT_FACTORY} (measured: README 'Dense indexes at scale'); --pq / --hnsw "
        "as in `python -m pyserini.index.faiss`; --factory for any FAISS index_factory string.",
    )
    faiss.add_argument("--input", required=True, help="flat dense folder (index, docid, manifest.json)")
    faiss.add_argument("--output", required=True, help="folder to create (kind dense-ann)")
    faiss.add_argument("--hnsw", action="store_true", help="HNSW graph (IndexHNSWFlat; with --pq IndexHNSWPQ)")
    faiss.add_argument("--M", type=int, default=fd.DEFAULT_HNSW_M, help=f"HNSW M (default {fd.DEFAULT_HNSW_M})")
    faiss.add_argument(
        "--efC",
        type=int,
        default=fd.DEFAULT_EF_CONSTRUCTION,
        help=f"HNSW efConstruction (default {fd.DEFAULT_EF_CONSTRUCTION})",
    )
    faiss.add_argument("--pq", action="store_true", help="product quantisation (IndexPQ; with --hnsw IndexHNSWPQ)")
    faiss.add_argument(
        "--pq-m",
        type=int,
        default=fd.DEFAULT_PQ_M,
        help=f"PQ sub-vectors, must divide the dimension (default {fd.DEFAULT_PQ_M})",
    )
    faiss.add_argument("--pq-nbits", type=int, default=8, help="bits per PQ sub-vector code (default 8)")
    faiss.add_argument("--factory", default=None, help="FAISS index_factory string ({nlist} is replaced)")
    faiss.add_argument("--nlist", type=int, default=None, help="IVF lists (default: ~4 sqrt(N), a power of 2)")
    faiss.add_argument(
        "--train-size",
        type=int,
        default=fd.DEFAULT_TRAIN_SIZE,
        help=f"training sample (default {fd.DEFAULT_TRAIN_SIZE})",
    )
    faiss.add_argument(
        "--chunk-size",
        type=int,
        default=fd.DEFAULT_CHUNK_SIZE,
        help=f"vectors added per step (default {fd.DEFAULT_CHUNK_SIZE})",
    )
    faiss.add_argument(
        "--nprobe", type=int, default=None, help=f"default IVF nprobe to record (default {fd.DEFAULT_NPROBE})"
    )
    faiss.add_argument(
        "--ef-search", type=int, default=None, help=f"default HNSW efSearch to record (default {fd.DEFAULT_EF_SEARCH})"
    )
    faiss.add_argument(
        "--recall-queries",
        type=int,
        default=dr.DEFAULT_RECALL_QUERIES,
        help="pseudo-queries drawn from the collection for the recall@100 estimate recorded in the manifest "
        f"(exact top 100 over every vector; 0 skips it; default {dr.DEFAULT_RECALL_QUERIES})",
    )
    faiss.add_argument(
        "--min-recall",
        type=float,
        default=dr.DEFAULT_MIN_RECALL,
        help="warn, naming an option measured to reach it, when the estimated recall@100 is below this "
        f"(default {dr.DEFAULT_MIN_RECALL})",
    )
    faiss.add_argument("--threads", type=int, default=None, help="FAISS threads (default: all cores)")
    faiss.add_argument("--seed", type=int, default=0, help="sample and k-means seed (default 0)")
    faiss.add_argument("--overwrite", action="store_true", help="replace an existing output once the new one is built")


def _add_lucene_dense_parser(commands: Any) -> None:
    from ..indexing import lucene_dense as ld

    lucene = commands.add_parser(
        "lucene-dense",
        help="Lucene HNSW or flat dense-vector index from a flat dense folder (Anserini)",
        description="Write OUT/dense as a JsonDenseVectorCollection ({'docid': ..., 'vector': [...]}) and index "
        "it with Anserini's IndexHnswDenseVectors (default) or IndexFlatDenseVectors; verify the document count "
        "and store the manifest as IDX/diffretriever-manifest.json.",
    )
    lucene.add_argument("--input", required=True, help="flat dense folder (index, docid, manifest.json)")
    lucene.add_argument("--index", required=True, help="Lucene index folder to create")
    kind = lucene.add_mutually_exclusive_group()
    kind.add_argument("--hnsw", dest="flat", action="store_false", help="HNSW graph (default)")
    kind.add_argument("--flat", dest="flat", action="store_true", help="flat (exhaustive) vectors")
    lucene.set_defaults(flat=False)
    lucene.add_argument("--M", type=int, default=ld.DEFAULT_M, help=f"HNSW M (default {ld.DEFAULT_M})")
    lucene.add_argument(
        "--efC",
        type=int,
        default=ld.DEFAULT_EF_CONSTRUCTION,
        help=f"HNSW efConstruction (default {ld.DEFAULT_EF_CONSTRUCTION})",
    )
    lucene.add_argument(
        "--ef-search",
        type=int,
        default=ld.DEFAULT_EF_SEARCH,
        help=f"default efSearch to record (default {ld.DEFAULT_EF_SEARCH})",
    )
    lucene.add_argument("--quantize-sqv", action="store_true", help="int8 scalar-quantised vectors (-quantize.sqv)")
    lucene.add_argument("--threads", type=int, default=1, help="indexing threads (default 1)")
    lucene.add_argument("--optimize", action="store_true", help="merge into one segment (faster search)")
    lucene.add_argument(
        "--keep-collection", default=None, metavar="DIR", help="write the JsonDenseVectorCollection here and keep it"
    )
    lucene.add_argument("--overwrite", action="store_true", help="replace an existing index once the new one is built")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the index CLI; return the exit status (0 ok, 1 failed, 2 usage)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    from ..indexing.faiss_dense import DenseIndexError
    from ..indexing.lucene_dense import DenseLuceneIndexError
    from ..indexing.lucene_impact import ImpactIndexError

    handlers = {
        "faiss": _faiss,
        "lucene-dense": _lucene_dense,
        "lucene": _lucene,
        "compress": _compress,
        "merge": _merge,
    }
    try:
        handlers[args.command](args)
    except (
        ManifestError,
        WriterError,
        OutputExistsError,
        ImpactIndexError,
        ResumeError,
        DenseIndexError,
        DenseLuceneIndexError,
        ValueError,
    ) as error:
        logger.error("%s", error)
        return 1
    return 0


def _faiss(args: argparse.Namespace) -> None:
    from ..indexing.faiss_dense import build_faiss_index

    manifest = build_faiss_index(
        args.input,
        args.output,
        factory=args.factory,
        hnsw=args.hnsw,
        M=args.M,
        ef_construction=args.efC,
        pq=args.pq,
        pq_m=args.pq_m,
        pq_nbits=args.pq_nbits,
        nlist=args.nlist,
        train_size=args.train_size,
        chunk_size=args.chunk_size,
        threads=args.threads,
        nprobe=args.nprobe,
        ef_search=args.ef_search,
        seed=args.seed,
        overwrite=args.overwrite,
        recall_queries=args.recall_queries,
        min_recall=args.min_recall,
    )
    index = manifest["index"]
    recall = manifest.get("recall_estimate", {})
    logger.info(
        "FAISS %s index %s: %d documents, %d bytes per vector, estimated recall@100 %s",
        index["factory"],
        args.output,
        manifest["num_docs"],
        index["bytes_per_vector"],
        recall.get("recall_at_100", "not measured"),
    )


def _lucene_dense(args: argparse.Namespace) -> None:
    from ..indexing.lucene_dense import build_dense_lucene_index

    manifest = build_dense_lucene_index(
        args.input,
        args.index,
        hnsw=not args.flat,
        M=args.M,
        ef_construction=args.efC,
        ef_search=args.ef_search,
        quantize_sqv=args.quantize_sqv,
        threads=args.threads,
        optimize=args.optimize,
        keep_collection=args.keep_collection,
        overwrite=args.overwrite,
    )
    logger.info("Lucene dense index %s: %d documents", args.index, manifest["num_docs"])


def _lucene(args: argparse.Namespace) -> None:
    from ..indexing import build_impact_index

    manifest = build_impact_index(
        args.input, args.index, threads=args.threads, optimize=args.optimize, overwrite=args.overwrite
    )
    logger.info("Lucene impact index %s: %d documents", args.index, manifest["num_docs"])


def _merge(args: argparse.Namespace) -> None:
    from ..writers import merge_outputs

    manifest = merge_outputs(args.inputs, args.output, overwrite=args.overwrite)
    logger.info("Merged %s folder %s: %d documents", manifest["kind"], args.output, manifest["num_docs"])


def _compress(args: argparse.Namespace) -> None:
    foreign = WARP_ONLY if args.engine == "codec" else CODEC_ONLY
    given = [f"--{name.replace('_', '-')}" for name in foreign if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} do(es) not apply to --engine {args.engine}")
    if args.engine == "warp":
        _compress_warp(args)
        return
    from ..indexing.compress_multi import compress_multivector

    options = {
        "reduced_dimension": args.dim,
        "residual_code": args.code,
        "nlist": args.nlist,
        "train_size": args.train_size,
        "estimate_queries": args.estimate_queries,
        "min_recall": args.min_recall,
    }
    manifest = compress_multivector(
        args.input,
        args.output,
        codec=args.codec,
        seed=args.seed,
        overwrite=args.overwrite,
        restart=args.restart,
        **{key: value for key, value in options.items() if value is not None},
    )
    logger.info(
        "Compressed multi-vector index %s: %d documents, %d vectors, %d bytes per vector",
        args.output,
        manifest["num_docs"],
        manifest["num_vectors"],
        manifest["code_size"],
    )


def _compress_warp(args: argparse.Namespace) -> None:
    from ..indexing.compress_warp import compress_multivector_warp

    options = {
        "reduced_dimension": args.dim,
        "nlist": args.nlist,
        "residual": args.residual,
        "bits": args.bits,
        "subvector_dims": args.subvector_dims,
        "rerank_tier": args.rerank_tier,
        "train_docs": args.train_docs,
        "nprobe": args.nprobe,
        "candidates": args.candidates,
        "estimate_queries": args.estimate_queries,
        "min_recall": args.min_recall,
    }
    manifest = compress_multivector_warp(
        args.input,
        args.output,
        seed=args.seed,
        overwrite=args.overwrite,
        restart=args.restart,
        **{key: value for key, value in options.items() if value is not None},
    )
    codec = manifest["codec"]
    estimate = manifest.get("recall_estimate", {}).get("default")
    logger.info(
        "Multi-warp index %s: %d documents, %d vectors, %d cells, %d + 8 bytes per vector (re-rank tier: %s)%s",
        args.output,
        manifest["num_docs"],
        manifest["num_vectors"],
        codec["nlist"],
        codec["code_bytes"],
        codec["rerank_tier"],
        f", estimated recall@100 {estimate['recall']:.3f} at nprobe {estimate['nprobe']}, "
        f"candidates {estimate['candidates']}"
        if estimate
        else "",
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
