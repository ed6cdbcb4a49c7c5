"""Serve DiffRetriever indexes through Pyserini's own REST and MCP servers.

* :mod:`.registry` -- our index types in Pyserini's server registries (run time, no edits to Pyserini);
* :mod:`.searchers` -- aliases opened from their manifests, one model per backbone, thread-safety guards;
* :mod:`.batching` -- the micro-batching query encoder shared by all aliases of a model;
* :mod:`.backend` -- Pyserini's ``SharedSearchBackend`` plus request limits and eager opening;
* :mod:`.app` -- Pyserini's FastAPI app / FastMCP server over that backend.

Run with ``python -m pyserini_diffretriever.server rest|mcp --config server.yaml`` (:mod:`..cli.server`).
"""

from .batching import BatchedQueryEncoder, MicroBatcher, encode_ahead
from .registry import INDEX_TYPES, read_hybrid_specs, register_index_types
from .searchers import HybridSpec, ServedSearcher, ServingOptions, ServingRuntime

__all__ = [
    "INDEX_TYPES",
    "BatchedQueryEncoder",
    "HybridSpec",
    "MicroBatcher",
    "ServedSearcher",
    "ServingOptions",
    "ServingRuntime",
    "encode_ahead",
    "read_hybrid_specs",
    "register_index_types",
]
