"""The on-disk layout of every folder this package writes: one name per file, imported by writers and readers.

===================  ==========================================================================================
folder kind          files
===================  ==========================================================================================
``dense``            :data:`FAISS_INDEX_FILE` (a flat inner-product FAISS index) + :data:`DOCID_FILE`
``multi``            :data:`VECTORS_FILE` ``[total_vectors, H]`` + :data:`OFFSETS_FILE` ``int64 [N + 1]`` +
                     :data:`DOCID_FILE`
``multi-compressed`` :data:`CODEC_FILE` (projection + IVF residual codec) + :data:`CODES_FILE`
                     ``uint8 [total_vectors, code_size]`` + :data:`OFFSETS_FILE` + :data:`DOCID_FILE`
``multi-warp``       :data:`WARP_CODEC_FILE` + :data:`CODES_FILE` (cell-major small-tier codes) +
                     :data:`WARP_DOC_NUMBERS_FILE` + :data:`WARP_DOC_ROWS_FILE` + :data:`WARP_CELL_OFFSETS_FILE` +
                     [:data:`WARP_RERANK_FILE`] + :data:`OFFSETS_FILE` + :data:`DOCID_FILE` (``search.warp_index``)
``impact-vectors``   :data:`IMPACT_VECTORS_DIR` ``/part-*.jsonl`` (JsonVectorCollection) [+ :data:`EMPTY_REPORT_NAME`]
``impact-index``     a Lucene index; the manifest is :data:`INDEX_MANIFEST_NAME` (Lucene owns the other names)
===================  ==========================================================================================

Every kind also has :data:`MANIFEST_NAME` (except ``impact-index``) and, when bad corpus records were skipped,
:data:`SKIPPED_REPORT_NAME`. While an encode runs, ``OUT.partial`` also holds :data:`PROGRESS_NAME` and the
writers' temporary files (:data:`TEMPORARY_FILES`). This module is a leaf (no imports), so the writers, the
verifier, the searchers and the Lucene indexer can all import it without cycles.
"""

from __future__ import annotations

__all__ = [
    "CODEC_FILE",
    "CODES_FILE",
    "DOCID_FILE",
    "EMPTY_REPORT_NAME",
    "FAISS_INDEX_FILE",
    "IMPACT_VECTORS_DIR",
    "INDEX_MANIFEST_NAME",
    "MANIFEST_NAME",
    "OFFSETS_FILE",
    "PROGRESS_NAME",
    "RAW_OFFSETS_FILE",
    "RAW_VECTORS_FILE",
    "SKIPPED_REPORT_NAME",
    "TEMPORARY_FILES",
    "VECTORS_FILE",
    "WARP_CELL_OFFSETS_FILE",
    "WARP_CODEC_FILE",
    "WARP_DOC_NUMBERS_FILE",
    "WARP_DOC_ROWS_FILE",
    "WARP_RERANK_FILE",
]

# every folder
MANIFEST_NAME = "manifest.json"
INDEX_MANIFEST_NAME = "diffretriever-manifest.json"  # inside a Lucene index folder
SKIPPED_REPORT_NAME = "skipped-records.jsonl"  # bad corpus records left out (input --on-error skip)
PROGRESS_NAME = "progress.json"  # OUT.partial only: the last committed checkpoint

# dense (FAISS) folder, as pyserini's FaissSearcher reads it
FAISS_INDEX_FILE = "index"
DOCID_FILE = "docid"  # one id per line, in vector order (dense and multi)
RAW_VECTORS_FILE = "vectors.f32.tmp"  # float32 rows in document order, while encoding

# multi-vector folder
VECTORS_FILE = "vectors.npy"
OFFSETS_FILE = "offsets.npy"
RAW_OFFSETS_FILE = "offsets.i64.tmp"  # int64 end offset of each document, while encoding

# compressed multi-vector folder (also OFFSETS_FILE and DOCID_FILE)
CODES_FILE = "codes.npy"
CODEC_FILE = "codec.faiss"

# cell-major (WARP-style) multi-vector folder (also CODES_FILE, OFFSETS_FILE and DOCID_FILE)
WARP_CODEC_FILE = "codec.npz"
WARP_DOC_NUMBERS_FILE = "doc_numbers.npy"
WARP_CELL_OFFSETS_FILE = "cell_offsets.npy"
WARP_RERANK_FILE = "rerank.npy"
WARP_DOC_ROWS_FILE = "doc_rows.npy"

# impact-vectors folder (JsonVectorCollection)
IMPACT_VECTORS_DIR = "vectors"
EMPTY_REPORT_NAME = "empty-vector-docids.txt"

TEMPORARY_FILES = (RAW_VECTORS_FILE, RAW_OFFSETS_FILE, f"{FAISS_INDEX_FILE}.tmp", f"{OFFSETS_FILE}.tmp")
"""Files a writer leaves only while it works; a finished folder has none of them."""
