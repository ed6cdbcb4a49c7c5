"""Check that an output folder is complete and self-consistent before it is merged, indexed or searched.

Why: a folder copied half-way, a truncated ``vectors.npy``, a ``docid`` file from another run or a hand-edited
manifest would otherwise surface as a numpy reshape error, a FAISS ``RuntimeError``, or, worst, wrong docids
attached to the right scores. :func:`verify_output` reads sizes and headers only (fast even for large
folders); ``deep=True`` also parses every record.

Checks per kind
---------------
* every kind: a readable manifest (:func:`~.manifest.read_manifest`), no leftover temporary files, and a
  ``skipped-records.jsonl`` with exactly ``num_skipped_records`` lines.
* ``dense``: ``index`` is a flat FAISS index (``IxFI``/``IxF2`` header) of ``num_docs`` vectors of the manifest's
  ``dimension`` and exactly the size that implies; ``docid`` has ``num_docs`` lines. Other FAISS index types are
  read with FAISS.
* ``multi``: ``vectors.npy`` has a valid header, shape ``[num_vectors, dimension]``, the manifest's dtype, and
  the size that implies; ``offsets.npy`` is ``int64 [num_docs + 1]``, increasing from 0 to ``num_vectors``;
  ``docid`` has ``num_docs`` lines.
* ``impact-vectors``: ``vectors/`` holds only ``.jsonl`` parts with ``num_docs`` records in all;
  ``empty-vector-docids.txt`` has ``num_skipped_empty`` lines; ``deep`` parses every record and checks unique
  ids and ``num_postings``.
* ``impact-index`` and ``dense-lucene-index``: a Lucene ``segments_N`` file exists.
* ``dense-ann`` (compressed/ANN FAISS index): ``index`` has the size the manifest records (``index.index_bytes``)
  and ``docid`` has ``num_docs`` lines (the vector count is checked once FAISS has loaded the index).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..layouts import (
    CODEC_FILE,
    CODES_FILE,
    DOCID_FILE,
    EMPTY_REPORT_NAME,
    FAISS_INDEX_FILE,
    IMPACT_VECTORS_DIR,
    OFFSETS_FILE,
    SKIPPED_REPORT_NAME,
    TEMPORARY_FILES,
    VECTORS_FILE,
    WARP_CELL_OFFSETS_FILE,
    WARP_CODEC_FILE,
    WARP_DOC_NUMBERS_FILE,
    WARP_DOC_ROWS_FILE,
    WARP_RERANK_FILE,
)
from .base import WriterError
from .faiss import read_flat_header
from .jsonl_vector import iter_vector_records
from .manifest import ManifestError, read_manifest


class CorruptOutputError(WriterError, ManifestError):
    """An output folder whose files are missing, truncated, or disagree with each other or the manifest.

    Both a :class:`WriterError` and a :class:`ManifestError`, so code that catches either (the index and search
    command lines) reports it as a clean error.
    """


def _fail(folder: Path, problem: str) -> CorruptOutputError:
    return CorruptOutputError(
        f"{folder}: {problem}; the folder is damaged or incomplete (re-encode it, or copy it again if it was copied)"
    )


def count_lines(path: Path) -> int:
    """Number of ``\\n``-terminated lines (plus a final unterminated one) without decoding the file."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _ends_with_newline(path: Path) -> bool:
    """Whether a non-empty line file ends with ``\n`` (every line file a writer writes does; a cut one does not)."""
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _require_file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise _fail(folder, f"{name} is missing")
    return path


def _check_docids(folder: Path, manifest: dict[str, Any]) -> None:
    path = _require_file(folder, DOCID_FILE)
    if not _ends_with_newline(path):
        raise _fail(folder, f"{DOCID_FILE} does not end with a newline (truncated)")
    lines = count_lines(path)
    if lines != manifest["num_docs"]:
        raise _fail(folder, f"{DOCID_FILE} lists {lines} ids but the manifest says num_docs={manifest['num_docs']}")


def _check_dense(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    path = _require_file(folder, FAISS_INDEX_FILE)
    size = path.stat().st_size
    try:
        header = read_flat_header(path)
    except WriterError:
        raise _fail(folder, f"{FAISS_INDEX_FILE} is truncated ({size} bytes, shorter than a FAISS header)") from None
    if header is not None:
        dimension, ntotal = header.dimension, header.num_vectors
        if header.elements != ntotal * dimension or size != header.expected_size:
            raise _fail(
                folder,
                f"{FAISS_INDEX_FILE} is {size} bytes, expected {header.expected_size} for {ntotal} vectors of "
                f"dimension {dimension} (truncated or corrupt)",
            )
    else:
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise _fail(
                folder, f"{FAISS_INDEX_FILE} is not a readable FAISS index ({str(error).splitlines()[0]})"
            ) from None
        dimension, ntotal = index.d, index.ntotal
    if dimension != manifest.get("dimension"):
        raise _fail(
            folder, f"{FAISS_INDEX_FILE} has dimension {dimension}, the manifest says {manifest.get('dimension')}"
        )
    if ntotal != manifest["num_docs"]:
        raise _fail(
            folder, f"{FAISS_INDEX_FILE} holds {ntotal} vectors, the manifest says num_docs={manifest['num_docs']}"
        )
    _check_docids(folder, manifest)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        except (ValueError, OSError, SyntaxError) as error:
            raise ValueError(f"not a .npy file ({error})") from None
        if fortran:
            raise ValueError("Fortran order is not supported")
        return tuple(shape), dtype, handle.tell()


def _check_multi(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    expected_shape = (manifest.get("num_vectors"), manifest.get("dimension"))
    _check_rows(folder, manifest, VECTORS_FILE, expected_shape, manifest.get("dtype", "float32"))


def _check_multi_compressed(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    _require_file(folder, CODEC_FILE)
    expected_shape = (manifest.get("num_vectors"), manifest.get("code_size"))
    _check_rows(folder, manifest, CODES_FILE, expected_shape, "uint8")


def _check_multi_warp(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    """Sizes and headers of the cell-major index (``search.warp_index`` checks how its files agree)."""
    codec = manifest.get("codec", {})
    _require_file(folder, WARP_CODEC_FILE)
    _require_file(folder, WARP_DOC_NUMBERS_FILE)
    _require_file(folder, WARP_CELL_OFFSETS_FILE)
    if manifest.get("search", {}).get("candidates"):  # the exact small-tier stage reads every vector's code row
        _require_file(folder, WARP_DOC_ROWS_FILE)
    _check_rows(folder, manifest, CODES_FILE, (manifest.get("num_vectors"), codec.get("code_bytes")), "uint8")
    if codec.get("rerank_tier", "none") != "none":
        _require_file(folder, WARP_RERANK_FILE)


def _check_rows(folder: Path, manifest: dict[str, Any], name: str, expected_shape: tuple, dtype_name: str) -> None:
    """A multi-vector folder: the ``.npy`` of rows (vectors or codes), then ``offsets.npy`` and the docids."""
    vectors = _require_file(folder, name)
    try:
        shape, dtype, offset = _npy_header(vectors)
    except ValueError as error:
        raise _fail(folder, f"{name}: {error}") from None
    if shape != expected_shape:
        raise _fail(folder, f"{name} has shape {list(shape)}, the manifest says {list(expected_shape)}")
    if dtype.name != dtype_name:
        raise _fail(folder, f"{name} holds {dtype.name}, the manifest says {dtype_name}")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if vectors.stat().st_size != expected:
        raise _fail(
            folder,
            f"{name} is {vectors.stat().st_size} bytes, expected {expected} for shape "
            f"{list(shape)} (truncated or corrupt)",
        )
    try:
        offsets = np.load(_require_file(folder, OFFSETS_FILE), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _fail(folder, f"{OFFSETS_FILE} is not readable ({error})") from None
    n = manifest["num_docs"]
    if offsets.dtype != np.int64 or offsets.shape != (n + 1,):
        raise _fail(folder, f"{OFFSETS_FILE} is {offsets.dtype} {list(offsets.shape)}, expected int64 [{n + 1}]")
    if offsets[0] != 0 or offsets[-1] != shape[0] or (n and np.any(np.diff(offsets) < 1)):
        raise _fail(folder, f"{OFFSETS_FILE} must increase from 0 to {shape[0]} (one or more rows per document)")
    _check_docids(folder, manifest)


def _check_impact_vectors(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    vectors_dir = folder / IMPACT_VECTORS_DIR
    if not vectors_dir.is_dir():
        raise _fail(folder, f"{IMPACT_VECTORS_DIR}/ is missing")
    entries = sorted(vectors_dir.iterdir())
    others = [entry.name for entry in entries if not (entry.is_file() and entry.name.endswith(".jsonl"))]
    if others:
        raise _fail(folder, f"{IMPACT_VECTORS_DIR}/ holds non-.jsonl entries {others[:5]} (Anserini would parse them)")
    cut = [entry.name for entry in entries if not _ends_with_newline(entry)]
    if cut:
        raise _fail(folder, f"{IMPACT_VECTORS_DIR}/{cut[0]} does not end with a newline (truncated)")
    if deep:
        seen: set[str] = set()
        postings = 0
        for docid, vector in iter_vector_records(folder):
            if docid in seen:
                raise _fail(folder, f"document id {docid!r} appears twice in {IMPACT_VECTORS_DIR}/")
            seen.add(docid)
            postings += len(vector)
        records = len(seen)
        if "num_postings" in manifest and postings != manifest["num_postings"]:
            raise _fail(
                folder, f"{IMPACT_VECTORS_DIR}/ holds {postings} postings, the manifest says {manifest['num_postings']}"
            )
    else:
        records = sum(count_lines(entry) for entry in entries)
    if records != manifest["num_docs"]:
        raise _fail(
            folder, f"{IMPACT_VECTORS_DIR}/ holds {records} records, the manifest says num_docs={manifest['num_docs']}"
        )
    empty = folder / EMPTY_REPORT_NAME
    listed = count_lines(empty) if empty.is_file() else 0
    if listed != manifest.get("num_skipped_empty", 0):
        raise _fail(
            folder,
            f"{EMPTY_REPORT_NAME} lists {listed} ids, the manifest says "
            f"num_skipped_empty={manifest.get('num_skipped_empty', 0)}",
        )


def _check_impact_index(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    if not any(folder.glob("segments_*")):
        raise _fail(folder, "no Lucene segments_N file")


def _check_dense_ann(folder: Path, manifest: dict[str, Any], deep: bool) -> None:
    size = _require_file(folder, FAISS_INDEX_FILE).stat().st_size
    recorded = manifest.get("index", {}).get("index_bytes") if isinstance(manifest.get("index"), dict) else None
    if recorded is not None and size != recorded:
        raise _fail(folder, f"{FAISS_INDEX_FILE} is {size} bytes, the manifest says {recorded} (truncated or replaced)")
    _check_docids(folder, manifest)


_CHECKS = {
    "dense": _check_dense,
    "multi": _check_multi,
    "multi-compressed": _check_multi_compressed,
    "multi-warp": _check_multi_warp,
    "impact-vectors": _check_impact_vectors,
    "impact-index": _check_impact_index,
    "dense-ann": _check_dense_ann,
    "dense-lucene-index": _check_impact_index,
}


def verify_output(
    folder: str | os.PathLike,
    kind: str | tuple[str, ...] | None = None,
    deep: bool = False,
    ignore_temporary: bool = False,
) -> dict[str, Any]:
    """Check an output folder (see the module docstring) and return its manifest.

    Parameters
    ----------
    folder : str or PathLike
        A folder written by the encoder, a merge, or the Lucene indexer.
    kind : str or tuple of str, optional
        Accepted manifest kind(s).
    deep : bool
        Also parse every record (impact vectors); the default reads sizes and headers only.
    ignore_temporary : bool
        Accept the writers' temporary files (checking a folder that is being finished).

    Raises
    ------
    ManifestError
        Missing, corrupt or foreign manifest, or another kind.
    CorruptOutputError
        Files missing, truncated, or inconsistent with each other or with the manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, kind)
    leftovers = [] if ignore_temporary else [name for name in TEMPORARY_FILES if (folder / name).exists()]
    if leftovers:
        raise _fail(folder, f"temporary files {leftovers} are still there (an unfinished write)")
    _CHECKS[manifest["kind"]](folder, manifest, deep)
    report = folder / SKIPPED_REPORT_NAME
    listed = count_lines(report) if report.is_file() else 0
    if listed != manifest.get("num_skipped_records", 0):
        raise _fail(
            folder,
            f"{SKIPPED_REPORT_NAME} lists {listed} records, the manifest says "
            f"num_skipped_records={manifest.get('num_skipped_records', 0)}",
        )
    if deep and listed:
        with open(report, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    json.loads(line)
                except ValueError:
                    raise _fail(folder, f"{SKIPPED_REPORT_NAME}, line {number} is not JSON") from None
    return manifest
