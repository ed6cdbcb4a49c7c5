"""``python -m pyserini_diffretriever.index``: build a Lucene impact index, or merge encode shards.

``lucene`` wraps Pyserini's indexer for the ``impact`` output of ``python -m pyserini_diffretriever.encode``::

    python -m pyserini_diffretriever.index lucene --input OUT/impact --index IDX --threads 4

which runs the plain Pyserini command

    python -m pyserini.index.lucene --collection JsonVectorCollection --input OUT/impact/vectors --index IDX \\
        --generator DefaultLuceneDocumentGenerator --threads 4 --impact --pretokenized

(through ``python -m pyserini_diffretriever.run`` so that Java >= 21 is prepared), then checks that every record
was indexed (Anserini silently skips empty documents) and stores the manifest as
``IDX/diffretriever-manifest.json``. Search it with ``pyserini.search.lucene.LuceneImpactSearcher(IDX, encoder)``.

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
    commands = parser.add_subparsers(dest="command", required=True, metavar="{lucene,compress,merge}")

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

    compress = commands.add_parser(
        "compress",
        help="compressed multi-vector index (codec codes) from a multi output folder",
        description="Train a codec (uncentred projection + IVF + residual code) on a sample of OUT/multi and "
        "write every vector as its code: ~385 bytes per vector instead of 7,168 (float16, H=3584). Resumable: "
        "rerun the same command after an interruption.",
    )
    compress.add_argument("--input", required=True, help="float multi-vector folder (vectors.npy, offsets.npy, ...)")
    compress.add_argument("--output", required=True, help="compressed folder to create")
    compress.add_argument("--dim", type=int, default=None, help="projected dimension (default 384)")
    compress.add_argument("--code", default=None, help="residual code: SQ8 (default), SQ4, SQ6, PQ<m>x<bits>")
    compress.add_argument("--nlist", type=int, default=None, help="IVF lists (default ~4 sqrt(vectors))")
    compress.add_argument("--train-size", type=int, default=None, help="training vectors (default 65536)")
    compress.add_argument("--codec", default=None, help="use this trained codec.faiss instead of training one")
    compress.add_argument("--seed", type=int, default=0, help="sampling and k-means seed")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing output once done")
    compress.add_argument("--restart", action="store_true", help="discard an unfinished output instead of resuming")

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the index CLI; return the exit status (0 ok, 1 failed, 2 usage)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    from ..indexing.lucene_impact import ImpactIndexError

    try:
        if args.command == "lucene":
            from ..indexing import build_impact_index

            manifest = build_impact_index(
                args.input, args.index, threads=args.threads, optimize=args.optimize, overwrite=args.overwrite
            )
            logger.info("Lucene impact index %s: %d documents", args.index, manifest["num_docs"])
        elif args.command == "compress":
            manifest = _compress(args)
            logger.info(
                "Compressed multi-vector index %s: %d documents, %d vectors, %d bytes per vector",
                args.output,
                manifest["num_docs"],
                manifest["num_vectors"],
                manifest["code_size"],
            )
        else:
            from ..writers import merge_outputs

            manifest = merge_outputs(args.inputs, args.output, overwrite=args.overwrite)
            logger.info("Merged %s folder %s: %d documents", manifest["kind"], args.output, manifest["num_docs"])
    except (ManifestError, WriterError, OutputExistsError, ImpactIndexError, ResumeError, ValueError) as error:
        logger.error("%s", error)
        return 1
    return 0


def _compress(args: argparse.Namespace) -> dict:
    from ..indexing.compress_multi import compress_multivector

    options = {
        "reduced_dimension": args.dim,
        "residual_code": args.code,
        "nlist": args.nlist,
        "train_size": args.train_size,
    }
    return compress_multivector(
        args.input,
        args.output,
        codec=args.codec,
        seed=args.seed,
        overwrite=args.overwrite,
        restart=args.restart,
        **{key: value for key, value in options.items() if value is not None},
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
