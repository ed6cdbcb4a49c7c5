"""Request limits of the server: query text and ``hits`` (raised as Pyserini's ``BadSearchRequestError``, a 400).

Kept apart from :mod:`.backend` so the command line can show the defaults without importing Pyserini's server
(which starts the JVM).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from pyserini.server.errors import BadSearchRequestError

__all__ = ["DEFAULT_MAX_HITS", "DEFAULT_MAX_QUERY_CHARS", "check_hits", "check_query_text"]

DEFAULT_MAX_QUERY_CHARS = 2000
DEFAULT_MAX_HITS = 1000
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def check_query_text(query: str, max_chars: int) -> None:
    """Raise ``BadSearchRequestError`` for an empty, oversized or control-character query."""
    if not query.strip():
        raise BadSearchRequestError("Parameter 'query' is empty")
    if len(query) > max_chars:
        raise BadSearchRequestError(
            f"Parameter 'query' has {len(query)} characters; this server accepts at most {max_chars} "
            "(--max-query-chars)"
        )
    for position, char in enumerate(query):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) in ("Cc", "Cs"):
            raise BadSearchRequestError(
                f"Parameter 'query' contains the control character U+{ord(char):04X} at position {position}"
            )


def check_hits(hits: Any, max_hits: int) -> None:
    """Raise ``BadSearchRequestError`` unless ``hits`` is an integer in ``1..max_hits``."""
    if isinstance(hits, bool) or not isinstance(hits, int):
        raise BadSearchRequestError(f"Parameter 'hits' must be an integer, got {hits!r}")
    if not 1 <= hits <= max_hits:
        raise BadSearchRequestError(f"Parameter 'hits' must be between 1 and {max_hits} (--max-hits), got {hits}")
