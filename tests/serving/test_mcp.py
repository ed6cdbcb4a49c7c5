"""The MCP server: Pyserini's tools over the same backend, in process (fastmcp's in-memory client)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from pyserini_diffretriever.serving import ServedSearcher
from pyserini_diffretriever.serving.app import ServerSettings, create_mcp_server

from .conftest import HITS

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

HIT_LINE = re.compile(r"^DocID: (\S+) \| Score: (\S+)$")


def hits(result) -> list[tuple[str, float]]:
    """``(docid, score)`` from the search tool's output list (``"DocID: X | Score: Y"`` items, then docs)."""
    items: list = []
    for content in result.content:  # fastmcp sends the list as one JSON text (or one text per item)
        try:
            decoded = json.loads(content.text)
        except ValueError:
            decoded = content.text
        items.extend(decoded if isinstance(decoded, list) else [decoded])
    matches = [HIT_LINE.match(item) for item in items if isinstance(item, str)]
    return [(m[1], float(m[2])) for m in matches if m]


def test_mcp_search_equals_the_search_cli_and_bad_requests_are_tool_errors(cranfield_demo):
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    mcp, backend, runtime = create_mcp_server(ServerSettings(config=str(cranfield_demo.config), max_hits=100))
    served = [config.searcher for config in backend.indexes.values() if isinstance(config.searcher, ServedSearcher)]
    assert len(served) == 5 and len(runtime.batchers) == 1  # five aliases (seven encoders), one model, one batcher
    assert {id(encoder.batcher.model) for s in served for encoder in s.encoders} == {id(runtime.batchers[0].model)}

    async def session() -> None:
        async with Client(mcp) as client:
            tools = {tool.name for tool in await client.list_tools()}
            assert {"search", "get_document", "list_indexes"} <= tools
            listed = await client.call_tool("list_indexes", {"index_type": "diffretriever_multi"})
            assert listed.data == ["multi"]
            for qid, text in list(cranfield_demo.topics.items())[:3]:
                result = await client.call_tool("search", {"query": text, "index": "impact", "hits": HITS})
                served = hits(result)
                expected = cranfield_demo.runs["impact"].get(qid, [])
                assert [d for d, _ in served] == [d for d, _ in expected]
                assert [s for _, s in served] == pytest.approx([s for _, s in expected], abs=1e-5)
            for arguments, message in (
                ({"query": "wing", "index": "dense", "hits": 101}, "between 1 and 100"),
                ({"query": "", "index": "dense"}, "empty"),
                ({"query": "wing", "index": "nosuchindex"}, "nosuchindex"),
            ):
                with pytest.raises(ToolError, match=message):
                    await client.call_tool("search", arguments)
            after = await client.call_tool("search", {"query": "wing flutter", "index": "dense", "hits": 2})
            assert len(hits(after)) == 2

    try:
        asyncio.run(session())
    finally:
        backend.close_all()
        runtime.close()
