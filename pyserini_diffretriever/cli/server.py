"""Serve DiffRetriever indexes: Pyserini's REST (FastAPI) or MCP server over the aliases of a YAML config.

::

    python -m pyserini_diffretriever.server rest --config server.yaml [--port 8081]
    python -m pyserini_diffretriever.server mcp --config server.yaml [--transport stdio|http]

The config is Pyserini's (``indexes:`` aliases, optional ``api_keys:``) with our index types
``diffretriever_dense``, ``diffretriever_multi``, ``diffretriever_impact`` and ``diffretriever_hybrid``; each
alias's query encoder comes from its folder's manifest, and aliases with the same backbone share one loaded
model. The server binds 127.0.0.1 unless --host says otherwise. With ``api_keys`` in the config every /v1
request needs ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` (REST).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch + faiss in one process (see cli/search.py)

import argparse  # noqa: E402
import ipaddress  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from ..serving.batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS  # noqa: E402
from ..serving.limits import DEFAULT_MAX_HITS, DEFAULT_MAX_QUERY_CHARS  # noqa: E402
from ..serving.searchers import ServingOptions  # noqa: E402
from . import configure_logging  # noqa: E402

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.server"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = {"rest": 8081, "mcp": 8000}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 1)[1].replace("``", "").replace("::", "").strip(),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rest = commands.add_parser("rest", help="Pyserini's REST API (GET /v1/{index}/search, /v1/{index}/doc/{docid})")
    mcp = commands.add_parser("mcp", help="Pyserini's MCP server (tools search, get_document, list_indexes, ...)")
    for sub in (rest, mcp):
        _add_common_options(sub)
    rest.add_argument(
        "--load-shedding-threshold",
        type=float,
        default=3000.0,
        metavar="MS",
        help="with api_keys: answer 429 to the busiest key while the rolling p99 latency exceeds MS (default 3000)",
    )
    rest.add_argument("--request-threads", type=int, default=32, help="threads answering requests (default 32)")
    rest.add_argument("--no-access-log", action="store_true", help="no uvicorn access log")
    rest.add_argument("--server-log-file", default=None, help="uvicorn logs to this file")
    rest.add_argument("--auth-log-file", default=None, help="API-key attribution log to this file")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="MCP transport (default stdio)")
    return parser


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML server config (indexes:, optional api_keys:)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST}: this machine)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8081 for rest, 8000 for mcp http)")
    parser.add_argument("--device", default="cpu", help="where the query encoders run: cpu or cuda[:N] (default cpu)")
    parser.add_argument(
        "--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="backbone dtype (default float32)"
    )
    parser.add_argument(
        "--batch-window-ms",
        type=float,
        default=DEFAULT_WINDOW_MS,
        help="how long a query waits for others to share its forward pass (default %(default)s; 0: no wait, "
        "queries that queued meanwhile are still batched)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most queries per forward pass (default %(default)s)"
    )
    parser.add_argument(
        "--max-query-chars",
        type=int,
        default=DEFAULT_MAX_QUERY_CHARS,
        help="longer queries get 400 (default %(default)s)",
    )
    parser.add_argument(
        "--max-hits", type=int, default=DEFAULT_MAX_HITS, help="largest hits= a request may ask (default %(default)s)"
    )
    parser.add_argument("--search-cache-size", type=int, default=2048, help="LRU cache of search results (0: off)")
    parser.add_argument("--document-cache-size", type=int, default=4096, help="LRU cache of documents (0: off)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not os.path.isfile(args.config):
        parser.error(f"--config {args.config}: no such file")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be in [1, 65535] (got {args.port})")
    for name in ("max_batch", "max_query_chars", "max_hits", "request_threads"):
        value = getattr(args, name, 1)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
    for name in ("batch_window_ms", "search_cache_size", "document_cache_size", "load_shedding_threshold"):
        value = getattr(args, name, 0)
        if value < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0 (got {value})")


def _settings(args: argparse.Namespace):
    from ..serving.app import ServerSettings

    return ServerSettings(
        config=args.config,
        serving=ServingOptions(
            device=args.device, dtype=args.dtype, window_ms=args.batch_window_ms, max_batch=args.max_batch
        ),
        max_query_chars=args.max_query_chars,
        max_hits=args.max_hits,
        search_cache_size=args.search_cache_size,
        document_cache_size=args.document_cache_size,
        load_shedding_threshold_ms=getattr(args, "load_shedding_threshold", 3000.0),
        request_threads=getattr(args, "request_threads", 32),
    )


def _warn_if_exposed(host: str, config: str) -> None:
    """A public bind without ``api_keys`` serves anyone who can reach the port: say so."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return
    from pyserini.server.config import load_server_config

    if not load_server_config(config)[1]:
        logger.warning("binding %s without api_keys in %s: anyone who reaches this port can search", host, config)


def serve_rest(args: argparse.Namespace) -> None:
    import uvicorn
    from pyserini.server.rest.app import _build_uvicorn_log_config

    from ..serving.app import create_rest_app

    app = create_rest_app(_settings(args))
    _warn_if_exposed(args.host, args.config)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=not args.no_access_log,
        log_config=_build_uvicorn_log_config(args.server_log_file, args.auth_log_file),
    )


def serve_mcp(args: argparse.Namespace) -> None:
    from ..serving.app import create_mcp_server

    mcp, backend, runtime = create_mcp_server(_settings(args))
    try:
        if args.transport == "http":
            _warn_if_exposed(args.host, args.config)
            mcp.run(transport="http", host=args.host, port=args.port)
        else:
            mcp.run(transport="stdio")
    finally:
        backend.close_all()
        runtime.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pyserini_diffretriever.server``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.port is None:
        args.port = DEFAULT_PORT[args.command]
    _check(args, parser)
    configure_logging(args.verbose)
    try:
        serve_rest(args) if args.command == "rest" else serve_mcp(args)
    except (RuntimeError, ValueError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
