"""Index builders on top of Pyserini/Anserini (the JVM is started only when an index is built or counted)."""

from __future__ import annotations

from .lucene_impact import ImpactIndexError, build_impact_index, count_indexed_documents, pyserini_index_args

__all__ = ["ImpactIndexError", "build_impact_index", "count_indexed_documents", "pyserini_index_args"]
