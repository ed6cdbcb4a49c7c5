"""Output writers: one folder per representation, each with a ``manifest.json``.

=====================  ==============================================  ===========================================
representation         writer                                          folder
=====================  ==============================================  ===========================================
``dense``              :class:`FaissFlatWriter`                        ``index`` + ``docid`` (FaissSearcher-ready)
``multi``              :class:`MultiVectorWriter`                      ``vectors.npy`` + ``offsets.npy`` + ``docid``
``impact``             :class:`JsonVectorWriter`                       ``vectors/part-*.jsonl`` (JsonVectorCollection)
=====================  ==============================================  ===========================================

Every writer appends while documents arrive and can checkpoint and resume (:mod:`.base`);
:class:`ResumableOutput` (:mod:`.checkpoint`) turns that into ``OUT.partial`` folders that a rerun of the same
command continues; :func:`verify_output` (:mod:`.verify`) checks a finished folder before it is used.

Importing this package loads numpy only (faiss when a dense folder is written; never the JVM).
"""

from __future__ import annotations

from .atomic import OutputExistsError, atomic_output_dir, check_output_free
from .base import SKIPPED_REPORT_NAME, CheckpointStateError, VectorWriter, WriterError
from .checkpoint import OutputLockedError, ResumableOutput, ResumeError, partial_path
from .faiss import FaissFlatWriter, read_faiss_docids
from .jsonl_vector import EmptyVectorError, JsonVectorWriter, clean_impact_vector, iter_vector_records, vector_files
from .manifest import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_MANIFEST_NAME,
    MANIFEST_NAME,
    ManifestError,
    build_manifest,
    read_manifest,
    write_manifest,
)
from .merge import check_shards, merge_outputs
from .multivector import MultiVectorFolder, MultiVectorWriter
from .verify import CorruptOutputError, verify_output

# representation name (CLI --representation) -> writer class
WRITERS: dict[str, type[VectorWriter]] = {
    "dense": FaissFlatWriter,
    "multi": MultiVectorWriter,
    "impact": JsonVectorWriter,
}

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INDEX_MANIFEST_NAME",
    "MANIFEST_NAME",
    "SKIPPED_REPORT_NAME",
    "WRITERS",
    "CheckpointStateError",
    "CorruptOutputError",
    "EmptyVectorError",
    "FaissFlatWriter",
    "JsonVectorWriter",
    "ManifestError",
    "MultiVectorFolder",
    "MultiVectorWriter",
    "OutputExistsError",
    "OutputLockedError",
    "ResumableOutput",
    "ResumeError",
    "VectorWriter",
    "WriterError",
    "atomic_output_dir",
    "build_manifest",
    "check_output_free",
    "check_shards",
    "clean_impact_vector",
    "iter_vector_records",
    "merge_outputs",
    "partial_path",
    "read_faiss_docids",
    "read_manifest",
    "vector_files",
    "verify_output",
    "write_manifest",
]
