"""``DiffRetrieverQueryEncoder``: a :class:`pyserini.encode.QueryEncoder` for FAISS, impact and MaxSim search.

* ``FaissSearcher`` calls :meth:`encode` (1-D float32 vector) or :meth:`encode_batch` (``[n, H]``);
* ``LuceneImpactSearcher`` calls ``encode(query)`` and needs ``{term: int}`` with plain Python ints;
* the multi-vector searcher gets ``[K', H]`` float32 arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyserini.encode import QueryEncoder

from ._common import SideEncoderMixin
from .model import RepresentationBatch


class DiffRetrieverQueryEncoder(SideEncoderMixin, QueryEncoder):
    """Encode queries with a diffusion LM's K representative tokens (DiffRetriever).

    Same constructor as :class:`~pyserini_diffretriever.encoders.document.DiffRetrieverDocumentEncoder`
    (``k`` is the query K_q: default 4 for Dream and LLaDA; the query prompt YAMLs are used). To share the
    weights with a document encoder pass ``document_encoder.model`` as ``model_name_or_path``.
    """

    side = "query"

    def encode(self, query: str, **kwargs):
        """Encode one query.

        Returns
        -------
        np.ndarray | dict[str, int]
            1-D ``[H]`` float32 (dense), ``[K', H]`` float32 (multi) or ``{term: int}`` (impact).
        """
        if not isinstance(query, str):
            raise TypeError(f"{type(self).__name__}.encode expects one query string, got {type(query).__name__}")
        return self._select(self._side.encode([query], representations=(self.representation,)))[0]

    def encode_batch(self, queries: Sequence[str], **kwargs):
        """Encode many queries in batches: ``[n, H]`` float32 (dense) or a list (multi / impact)."""
        return self._select(self._side.encode(list(queries), representations=(self.representation,)))

    def encode_all(self, queries: Sequence[str]) -> RepresentationBatch:
        """Dense, multi and impact representations of the queries from one forward pass per batch."""
        return self._side.encode(list(queries))
