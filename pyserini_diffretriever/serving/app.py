"""Build Pyserini's own REST app and MCP server over a :class:`~.backend.DiffRetrieverSearchBackend`.

REST: :func:`pyserini.server.rest.app.create_app` builds the app (routes ``/v1/{index}/search`` and
``/v1/{index}/doc/{docid}``, the OpenAPI document, API keys from the config's ``api_keys``, load shedding of
the busiest key, error handlers); only its lifespan is replaced, so that the backend is ours, every alias is
opened before the first request, and request threads are as many as ``request_threads``.

MCP: :func:`pyserini.server.mcp.tools.register_tools` registers Pyserini's tools (``search``,
``get_document``, ``list_indexes``, ``get_index``, ...) on a FastMCP server over the same backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .backend import DiffRetrieverSearchBackend
from .limits import DEFAULT_MAX_HITS, DEFAULT_MAX_QUERY_CHARS
from .registry import read_hybrid_specs, register_index_types
from .searchers import ServingOptions, ServingRuntime

logger = logging.getLogger(__name__)

UNAUTHORIZED = (
    "Unauthorized: this server requires an API key, sent as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'; "
    "ask the server's operator for one"
)

__all__ = ["ServerSettings", "create_mcp_server", "create_rest_app", "open_backend"]


@dataclass(frozen=True)
class ServerSettings:
    """Everything but the transport: config, model placement, batching, limits, caches."""

    config: str
    serving: ServingOptions = ServingOptions()
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS
    max_hits: int = DEFAULT_MAX_HITS
    search_cache_size: int = 2048
    document_cache_size: int = 4096
    load_shedding_threshold_ms: float = 3000.0
    request_threads: int = 32


def open_backend(settings: ServerSettings) -> tuple[DiffRetrieverSearchBackend, ServingRuntime]:
    """Register our index types, read the config and open every alias (models loaded, batchers started)."""
    runtime = ServingRuntime(settings.serving, read_hybrid_specs(settings.config))
    register_index_types(runtime)
    backend = DiffRetrieverSearchBackend(
        settings.config,
        max_query_chars=settings.max_query_chars,
        max_hits=settings.max_hits,
        search_cache_size=settings.search_cache_size,
        document_cache_size=settings.document_cache_size,
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # MCP over stdio: stdout carries the protocol only
            backend.open_all()
    except BaseException:
        backend.close_all()
        runtime.close()
        raise
    return backend, runtime


def create_rest_app(settings: ServerSettings) -> Any:
    """Pyserini's FastAPI app (``create_app``) serving the config's aliases through our backend."""
    from pyserini.server.rest.app import create_app

    register_index_types(ServingRuntime(settings.serving))  # the config's index types must be known to parse it
    app = create_app(
        settings.config,
        no_prebuilt_indexes=True,
        load_shedding_threshold_ms=settings.load_shedding_threshold_ms,
        search_cache_size=settings.search_cache_size,
        document_cache_size=settings.document_cache_size,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(max_workers=settings.request_threads, thread_name_prefix="search")
        asyncio.get_running_loop().set_default_executor(executor)  # the routes' asyncio.to_thread pool
        backend, runtime = await asyncio.to_thread(open_backend, settings)
        _app.state.search_backend = backend
        _app.state.serving_runtime = runtime
        try:
            yield
        finally:
            backend.close_all()
            runtime.close()

    app.router.lifespan_context = lifespan

    @app.middleware("http")
    async def unauthorized_message(request: Any, call_next: Any) -> Any:
        """Pyserini's 401 tells clients to email the Pyserini team for a token; this server's keys come from
        its operator, so say how to send one instead (the check itself stays Pyserini's)."""
        response = await call_next(request)
        if response.status_code == 401 and request.url.path.startswith("/v1/"):
            from fastapi.responses import JSONResponse

            return JSONResponse(status_code=401, content={"error": UNAUTHORIZED})
        return response

    return app


def create_mcp_server(settings: ServerSettings) -> tuple[Any, DiffRetrieverSearchBackend, ServingRuntime]:
    """A FastMCP server with Pyserini's tools over our backend (opened now)."""
    from fastmcp import FastMCP
    from pyserini.server.mcp.tools import register_tools

    backend, runtime = open_backend(settings)
    mcp = FastMCP("pyserini-diffretriever")
    register_tools(mcp, backend)
    return mcp, backend, runtime
