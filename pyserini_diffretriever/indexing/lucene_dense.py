"""Dense vectors in Lucene, for Anserini users: HNSW or flat indexes built from a flat ``dense`` folder.

Anserini 2.2 (inside Pyserini 2.3) indexes dense vectors of up to 4096 dimensions with
``io.anserini.index.IndexHnswDenseVectors`` (``-M``, ``-efC``, ``-quantize.sqv``) and
``io.anserini.index.IndexFlatDenseVectors`` (``-quantize.sqv``) from a ``JsonDenseVectorCollection`` (JSONL
records ``{"docid": "...", "vector": [...]}``). Pyserini 2.3's ``python -m pyserini.index.lucene`` runs only
Anserini's ``IndexCollection`` (no dense flags), so this wrapper runs those two classes directly, in a child
process with this package's Java (``python -m pyserini_diffretriever.indexing.anserini CLASS ARGS``), which is
the plain Anserini command::

    java -cp anserini-2.2.0-fatjar.jar io.anserini.index.IndexHnswDenseVectors \\
        -collection JsonDenseVectorCollection -input COLLECTION -index IDX -M 16 -efC 100 -threads 1

The encode CLI does not write the collection: it is derived here from the ``dense`` folder (``index`` +
``docid``), streamed in chunks into temporary JSONL parts (float32 values written with 9 significant digits, so
Lucene receives exactly the same floats as the FAISS file), deleted afterwards unless ``keep_collection`` names a
folder to keep them in. Then, as for the impact index, the wrapper builds into ``IDX.partial-*`` and renames on
success, checks that Lucene holds exactly ``num_docs`` documents, and stores the manifest as
``IDX/diffretriever-manifest.json`` (kind ``dense-lucene-index``, with the input's encoder settings and query
record, so query encoders are checked as for the FAISS folder).

Scores: Anserini indexes the vectors with Lucene's ``DOT_PRODUCT`` similarity, whose score is
``(1 + q.d) / 2`` (Lucene expects unit-length vectors; this package's dense vectors have norm <= 1, so the
score is never clipped at 0 and the order is that of the inner product).
:class:`~pyserini_diffretriever.search.lucene_dense.LuceneDenseSearcher` maps the score back to ``q.d``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..layouts import DOCID_FILE
from ..writers.atomic import atomic_output_dir, check_output_free
from ..writers.base import SKIPPED_REPORT_NAME
from ..writers.manifest import INDEX_MANIFEST_NAME, read_manifest, write_manifest
from ..writers.verify import verify_output
from .faiss_dense import iter_flat_vectors
from .lucene_impact import ImpactIndexError, count_indexed_documents, run_indexer_command

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_M",
    "DenseLuceneIndexError",
    "anserini_dense_args",
    "build_dense_lucene_index",
    "write_dense_collection",
]

HNSW_CLASS = "io.anserini.index.IndexHnswDenseVectors"
FLAT_CLASS = "io.anserini.index.IndexFlatDenseVectors"
COLLECTION = "JsonDenseVectorCollection"
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 100
DEFAULT_EF_SEARCH = 100
RECORDS_PER_PART = 10000
MAX_DIMENSION = 4096  # Anserini 2.2's codecs lift Lucene's 1024 limit to 4096


class DenseLuceneIndexError(ImpactIndexError):
    """Anserini failed, or the Lucene index does not hold exactly the documents of the dense folder."""


def write_dense_collection(
    input_dir: str | os.PathLike,
    collection_dir: str | os.PathLike,
    records_per_part: int = RECORDS_PER_PART,
    chunk_size: int = 1024,
) -> int:
    """Write a dense folder as ``JsonDenseVectorCollection`` parts ``part-00000.jsonl``...; return the count.

    Streams: one chunk of vectors and one part file at a time. Values are ``%.9g`` (exact float32 round trip).
    """
    input_dir, collection_dir = Path(input_dir), Path(collection_dir)
    collection_dir.mkdir(parents=True, exist_ok=True)
    lines = _collection_lines(input_dir, chunk_size)
    written = 0
    for part in itertools.count():
        with open(collection_dir / f"part-{part:05d}.jsonl", "w", encoding="utf-8") as handle:
            count = 0
            for line in itertools.islice(lines, records_per_part):  # one line in memory at a time
                handle.write(line)
                count += 1
        if count == 0:
            (collection_dir / f"part-{part:05d}.jsonl").unlink()
            break
        written += count
        if count < records_per_part:
            break
    return written


def _collection_lines(input_dir: Path, chunk_size: int) -> Iterator[str]:
    """One ``JsonDenseVectorCollection`` line per document of a dense folder, in order."""
    fmt = None
    with open(input_dir / DOCID_FILE, encoding="utf-8") as docids:
        for chunk in iter_flat_vectors(input_dir, chunk_size):
            if fmt is None:
                fmt = ",".join(["%.9g"] * chunk.shape[1])
            for row in chunk:
                docid = json.dumps(docids.readline().rstrip())
                yield f'{{"docid": {docid}, "vector": [{fmt % tuple(row.tolist())}]}}\n'


def anserini_dense_args(
    collection_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    hnsw: bool = True,
    M: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    quantize_sqv: bool = False,
    threads: int = 1,
    optimize: bool = False,
) -> list[str]:
    """Arguments of Anserini's ``IndexHnswDenseVectors`` (``hnsw``) or ``IndexFlatDenseVectors``."""
    args = ["-collection", COLLECTION, "-input", str(collection_dir), "-index", str(index_dir)]
    args += ["-threads", str(threads)]
    if hnsw:
        args += ["-M", str(M), "-efC", str(ef_construction)]
    if quantize_sqv:
        args.append("-quantize.sqv")
    if optimize:
        args.append("-optimize")
    return args


def _check_dense_request(input_dir: Path, manifest: Mapping[str, Any], **sizes: int) -> None:
    """Refuse, before the (long) collection export, a dimension Anserini cannot index and sizes below 1."""
    dimension = int(manifest["dimension"])
    if dimension > MAX_DIMENSION:
        raise DenseLuceneIndexError(f"{input_dir}: dimension {dimension} exceeds Anserini's limit of {MAX_DIMENSION}")
    for name, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _collection_folder(index_dir: Path, keep_collection: str | os.PathLike | None) -> Path:
    """Where to export the collection: the kept folder (must be empty, never to mix in stale parts) or a unique
    temporary one next to the index."""
    if keep_collection is not None:
        collection = Path(keep_collection)
        if collection.exists() and any(collection.iterdir()):
            raise DenseLuceneIndexError(f"{collection}: not empty; choose an empty or new folder for the collection")
        return collection
    return index_dir.with_name(f"{index_dir.name}.collection-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _run_anserini(
    java_class: str, collection: Path, partial: Path, options: Mapping[str, Any], input_dir: Path, num_docs: int
) -> int:
    """Index the collection into ``partial``; returns the documents indexed, refusing a count other than
    ``num_docs`` so that an incomplete index is never published."""
    args = anserini_dense_args(collection.resolve(), partial, **options)
    run_indexer_command(
        ["-m", "pyserini_diffretriever.indexing.anserini", java_class, *args],
        DenseLuceneIndexError,
        "Anserini indexer",
    )
    indexed = count_indexed_documents(partial) if any(Path(partial).glob("segments_*")) else 0
    if indexed != num_docs:
        raise DenseLuceneIndexError(
            f"Lucene indexed {indexed} documents but {input_dir} holds {num_docs} (see the Anserini output above)"
        )
    return indexed


def _lucene_index_manifest(
    manifest: Mapping[str, Any],
    input_dir: Path,
    index_dir: Path,
    indexed: int,
    java_class: str,
    collection: str | Path,
    options: Mapping[str, Any],
    ef_search: int,
) -> dict[str, Any]:
    """The source manifest re-labelled ``dense-lucene-index``, with how the index was built (``lucene.args``
    name ``collection`` as recorded: the kept folder, else the collection class) and its search default."""
    index_manifest = {key: value for key, value in manifest.items() if key not in ("created", "versions", "index_type")}
    index_manifest.update(
        kind="dense-lucene-index",
        indexed_docs=indexed,
        source={"path": str(input_dir.resolve()), "kind": "dense", "created": manifest.get("created")},
        metric="inner_product",
        lucene={
            "class": java_class,
            "similarity": "DOT_PRODUCT",
            "hnsw": bool(options["hnsw"]),
            "quantize_sqv": bool(options["quantize_sqv"]),
            "args": anserini_dense_args(collection, index_dir.resolve(), **options),
        },
        search={"efSearch": int(ef_search)} if options["hnsw"] else {},
    )
    return index_manifest


def build_dense_lucene_index(
    input_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    hnsw: bool = True,
    M: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    quantize_sqv: bool = False,
    threads: int = 1,
    optimize: bool = False,
    keep_collection: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Index a flat ``dense`` folder into a Lucene HNSW (default) or flat dense-vector index (module docstring).

    Parameters
    ----------
    input_dir : str or PathLike
        A ``dense`` folder (``index`` = ``IndexFlatIP``, ``docid``, ``manifest.json``).
    index_dir : str or PathLike
        Lucene index folder to create.
    hnsw : bool
        ``IndexHnswDenseVectors`` (default) or ``IndexFlatDenseVectors`` (exhaustive search).
    M, ef_construction, ef_search : int
        HNSW graph degree and construction beam; the default search beam, recorded in the manifest.
    quantize_sqv : bool
        Lucene int8 scalar quantisation (``-quantize.sqv``).
    threads : int
        Indexing threads (Anserini parallelises over the collection parts).
    optimize : bool
        Merge into one segment (faster search; for HNSW the graph is rebuilt once more).
    keep_collection : str or PathLike, optional
        Write the ``JsonDenseVectorCollection`` there and keep it; default a temporary folder, deleted.
    overwrite : bool
        Replace an existing ``index_dir`` once the new index is complete.

    Returns the index manifest (also in ``index_dir/diffretriever-manifest.json``). Raises :class:`ManifestError`
    (``input_dir`` missing or not a ``dense`` folder), :class:`CorruptOutputError` (its files truncated or
    disagreeing with its manifest) or :class:`DenseLuceneIndexError` (a dimension above 4096, Anserini failed, or
    the index holds another number of documents).
    """
    input_dir, index_dir = Path(input_dir), Path(index_dir)
    manifest = read_manifest(input_dir, "dense")
    verify_output(input_dir, "dense")
    _check_dense_request(
        input_dir, manifest, threads=threads, M=M, ef_construction=ef_construction, ef_search=ef_search
    )
    check_output_free(index_dir, overwrite)
    collection = _collection_folder(index_dir, keep_collection)
    java_class = HNSW_CLASS if hnsw else FLAT_CLASS
    options = {"hnsw": hnsw, "M": M, "ef_construction": ef_construction, "quantize_sqv": quantize_sqv}
    options.update(threads=threads, optimize=optimize)
    try:
        written = write_dense_collection(input_dir, collection)
        logger.info("wrote %d records as %s in %s", written, COLLECTION, collection)
        with atomic_output_dir(index_dir, overwrite) as partial:
            indexed = _run_anserini(java_class, collection, partial, options, input_dir, manifest["num_docs"])
            recorded = collection.resolve() if keep_collection else COLLECTION
            index_manifest = _lucene_index_manifest(
                manifest, input_dir, index_dir, indexed, java_class, recorded, options, ef_search
            )
            if (input_dir / SKIPPED_REPORT_NAME).is_file():
                shutil.copyfile(input_dir / SKIPPED_REPORT_NAME, Path(partial) / SKIPPED_REPORT_NAME)
            write_manifest(partial, index_manifest, name=INDEX_MANIFEST_NAME)
    finally:
        if keep_collection is None:
            shutil.rmtree(collection, ignore_errors=True)
    logger.info("Lucene dense index %s (%s): %d documents", index_dir, java_class.rsplit(".", 1)[1], indexed)
    return read_manifest(index_dir, "dense-lucene-index")
