"""The train command line: one spelling per option (``--query-k``), the other CLI's spelling as an alias."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.cli import train as train_cli

REQUIRED = ["--model", "m", "--train-data", "d.jsonl", "--output-dir", "out"]


@pytest.mark.parametrize("spelling", [["--query-k", "2", "--passage-k", "3"], ["--k-query", "2", "--k-passage", "3"]])
def test_query_k_and_its_alias_set_the_same_setting(spelling):
    args = train_cli.build_parser().parse_args(REQUIRED + spelling)
    assert (args.k_query, args.k_passage) == (2, 3)
    assert train_cli.settings_from_args(args).k_query == 2


def test_a_zero_k_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.build_parser().parse_args(REQUIRED + ["--query-k", "0"])
    assert info.value.code == 2
    assert "argument --query-k/--k-query: must be an integer >= 1 (got '0')" in capsys.readouterr().err
