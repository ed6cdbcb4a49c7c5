"""Index builders on top of Pyserini/Anserini and FAISS (the JVM starts only when a Lucene index is built or counted).

* :func:`build_impact_index` -- Lucene impact index from an ``impact-vectors`` folder;
* :func:`build_faiss_index` -- compressed/ANN FAISS index (``dense-ann``) from a flat ``dense`` folder, streaming;
* :func:`build_dense_lucene_index` -- Lucene HNSW/flat dense-vector index (``dense-lucene-index``) via Anserini.
"""

from __future__ import annotations

from .faiss_dense import DenseIndexError, build_faiss_index
from .lucene_dense import DenseLuceneIndexError, build_dense_lucene_index
from .lucene_impact import ImpactIndexError, build_impact_index, count_indexed_documents, pyserini_index_args

__all__ = [
    "DenseIndexError",
    "DenseLuceneIndexError",
    "ImpactIndexError",
    "build_dense_lucene_index",
    "build_faiss_index",
    "build_impact_index",
    "count_indexed_documents",
    "pyserini_index_args",
]
