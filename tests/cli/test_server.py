"""``python -m pyserini_diffretriever.server``: safe defaults and argument checks (the servers: tests/serving)."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.cli import server as server_cli


def test_binds_loopback_by_default_with_pyserinis_ports():
    parser = server_cli.build_parser()
    rest = parser.parse_args(["rest", "--config", "c.yaml"])
    mcp = parser.parse_args(["mcp", "--config", "c.yaml"])
    assert rest.host == mcp.host == "127.0.0.1"
    assert server_cli.DEFAULT_PORT == {"rest": 8081, "mcp": 8000} and mcp.transport == "stdio"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--port", "0"], "--port must be in"),
        (["--max-query-chars", "0"], "--max-query-chars must be >= 1"),
        (["--batch-window-ms", "-1"], "--batch-window-ms must be >= 0"),
        (["--max-hits", "0"], "--max-hits must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_the_option_named(tmp_path, capsys, extra, message):
    config = tmp_path / "c.yaml"
    config.write_text("indexes: {}\n")
    with pytest.raises(SystemExit) as exit_:
        server_cli.main(["rest", "--config", str(config), *extra])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_missing_config_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        server_cli.main(["rest", "--config", str(tmp_path / "nope.yaml")])
    assert "nope.yaml: no such file" in capsys.readouterr().err
