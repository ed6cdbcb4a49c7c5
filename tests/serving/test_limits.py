"""Request limits (answered as Pyserini's 400s by REST and MCP)."""

from __future__ import annotations

import pytest
from pyserini.server.errors import BadSearchRequestError


def test_query_text_limits():
    from pyserini_diffretriever.serving.limits import check_query_text

    check_query_text("wing flutter\tat mach 2\n", 30)
    check_query_text("é" * 30, 30)
    for query, message in (
        ("", "empty"),
        (" \t\n", "empty"),
        ("x" * 31, "has 31 characters; this server accepts at most 30"),
        ("wing\x07", "control character U\\+0007 at position 4"),
        ("wing\ud800", "control character U\\+D800"),
    ):
        with pytest.raises(BadSearchRequestError, match=message):
            check_query_text(query, 30)


def test_hits_limits():
    from pyserini_diffretriever.serving.limits import check_hits

    check_hits(1, 5)
    check_hits(5, 5)
    for hits, message in ((0, "between 1 and 5"), (6, "between 1 and 5"), (True, "integer"), ("3", "integer")):
        with pytest.raises(BadSearchRequestError, match=message):
            check_hits(hits, 5)
