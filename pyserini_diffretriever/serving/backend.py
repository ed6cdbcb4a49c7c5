"""Pyserini's ``SharedSearchBackend`` with request limits, eager opening, and aliases without a document store.

Why a subclass: Pyserini's REST routes and MCP tools call the backend's ``search``/``get_document`` and map its
``BadSearchRequestError`` / ``IndexNotAvailableError`` to 400 and ``DocumentNotFoundError`` to 404; checks made
here therefore answer both servers with Pyserini's own error shape (``{"error": "..."}``) and after its API-key
check. What is added:

* **limits**: an empty or whitespace query, a query longer than ``max_query_chars`` or holding control
  characters, and ``hits`` outside ``1..max_hits`` are refused with a message naming the limit;
* **eager opening** (:meth:`open_all`): every configured alias is opened (models loaded) before the server
  accepts requests, and a broken alias stops the start with its real cause instead of a 400 per request;
* **document stores**: Pyserini fetches the hits' documents from a Lucene index with stored documents (the
  alias's ``base_index``). An alias of ours without one returns hits with ``doc: null``, and its ``/doc``
  endpoint says how to configure one.
"""

from __future__ import annotations

import logging
from typing import Any

from pyserini.server.backend import SharedSearchBackend
from pyserini.server.errors import BadSearchRequestError, IndexNotAvailableError

from .limits import DEFAULT_MAX_HITS, DEFAULT_MAX_QUERY_CHARS, check_hits, check_query_text
from .searchers import JVM_LOCK, ServedSearcher

logger = logging.getLogger(__name__)

__all__ = ["DiffRetrieverSearchBackend"]


class DiffRetrieverSearchBackend(SharedSearchBackend):
    """``SharedSearchBackend`` for configured aliases only (``no_prebuilt_indexes``), with request limits.

    Parameters
    ----------
    config_path : str
        The server YAML (indexes and optional ``api_keys``).
    max_query_chars, max_hits : int
        Request limits.
    **kwargs
        ``SharedSearchBackend`` options (``search_cache_size``, ``document_cache_size``).
    """

    def __init__(
        self,
        config_path: str,
        *,
        max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
        max_hits: int = DEFAULT_MAX_HITS,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_path, no_prebuilt_indexes=True, **kwargs)
        self.max_query_chars = int(max_query_chars)
        self.max_hits = int(max_hits)

    @property
    def aliases(self) -> list[str]:
        return list(self._local_indexes)

    def open_all(self) -> None:
        """Open every configured alias now; raise ``RuntimeError`` naming the alias and the cause otherwise."""
        for alias in self._local_indexes:
            try:
                self._ensure_index(alias, allow_local=True)
            except IndexNotAvailableError as error:
                cause: BaseException = error
                while cause.__cause__ is not None:  # Pyserini wraps the opener's error (twice for ValueErrors)
                    cause = cause.__cause__
                raise RuntimeError(f"cannot open index alias {alias!r}: {cause}") from cause
            logger.info("index alias %s ready", alias)

    def search(self, query: str | dict[str, Any], index_name: str, hits: int = 10, *args: Any, **kwargs: Any):
        if isinstance(query, str):
            check_query_text(query, self.max_query_chars)
        elif isinstance(query, dict) and isinstance(query.get("query_txt"), str):
            check_query_text(query["query_txt"], self.max_query_chars)
        else:
            raise BadSearchRequestError("Parameter 'query' must be a text (or {'query_txt': text})")
        check_hits(hits, self.max_hits)
        return super().search(
            query if isinstance(query, str) else query["query_txt"], index_name, hits, *args, **kwargs
        )

    def _served(self, index_name: str) -> ServedSearcher | None:
        """The alias's searcher when it is one of ours without a document store (else ``None``)."""
        config = self._ensure_index(index_name, allow_local=True)
        if isinstance(config.searcher, ServedSearcher) and not config.base_index:
            return config.searcher
        return None

    def _bulk_fetch_and_format_documents(
        self, docids: list[str], start_index_name: str, *, parse: bool, allow_local_index: bool
    ) -> dict[str, Any]:
        if docids and self._served(start_index_name) is not None:
            return dict.fromkeys(docids)  # search hits of an alias without a document store: doc null
        # Pyserini's bulk fetch (Anserini batch_doc through pyjnius) raised a Java NullPointerException under 16
        # concurrent requests: fetches hold the lock of the served Lucene searches (pyjnius, kivy/pyjnius#287).
        with JVM_LOCK:
            return super()._bulk_fetch_and_format_documents(
                docids, start_index_name, parse=parse, allow_local_index=allow_local_index
            )

    def _get_document_impl(self, docid: str, index_name: str, parse: bool = True, allow_local_index: bool = True):
        if self._served(index_name) is not None:
            raise IndexNotAvailableError(
                f"Index {index_name} stores no documents: give it a base_index (a tf alias of a Lucene index "
                "built with --storeRaw) to fetch documents"
            )
        return super()._get_document_impl(docid, index_name, parse, allow_local_index)
