"""Documented commands are tested commands: every ``python -m pyserini_diffretriever.*`` line of the README, docs/
and examples/ is parsed by the real argument parser of its program.

Why: a README command that the program no longer accepts (an option renamed or never added) is what a new user
tries first. The commands are read from fenced code blocks (with ``\\`` continuations and ``#`` comments) and from
inline code spans; each one is

* parsed completely (``parse_args``; the encode CLI's grouped ``parse_args``) when it is a code-block command,
* checked option by option against its parser (and sub-command or group) when it is elided with ``...``, lists
  alternatives (``rest|mcp``) or is a code span in prose (which may leave out required arguments),
* for ``run``, checked to name a module of the installed Pyserini (whose own flags belong to Pyserini).

Nothing is run: parsing opens no file and loads no model.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pyserini_diffretriever"
ELLIPSIS = "..."


def _sources() -> list[Path]:
    paths = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    paths += sorted(p for p in (REPO_ROOT / "examples").rglob("*") if p.suffix in (".md", ".py"))
    return paths


@dataclass(frozen=True)
class Command:
    """One documented command: where it is, the ``-m`` module and its arguments."""

    where: str
    module: str
    args: tuple[str, ...]
    inline: bool = False  # a code span in prose: may leave out required arguments, so its options are checked

    def __str__(self) -> str:
        return f"{self.where}: python -m {self.module} {' '.join(self.args)}".rstrip()


def _command(where: str, text: str, comments: bool, inline: bool = False) -> Command | None:
    start = text.find(f"-m {PACKAGE}")
    if start < 0:
        return None
    tokens = shlex.split(text[start:], comments=comments)
    return Command(where, tokens[1], tuple(tokens[2:]), inline)


_SPAN = re.compile(r"``(.+?)``|`([^`]+?)`", re.DOTALL)


def _spans(name: str, text: str, first_line: int, double_only: bool) -> Iterator[Command]:
    """Commands in the code spans of ``text`` (whose first line is ``first_line`` of file ``name``)."""
    for match in _SPAN.finditer(text):
        body = match.group(1) if match.group(1) is not None else None if double_only else match.group(2)
        if body and f"-m {PACKAGE}" in body:
            where = f"{name}:{first_line + text.count(chr(10), 0, match.start())}"
            command = _command(where, " ".join(body.split()), comments=False, inline=True)
            if command is not None:
                yield command


def _fenced_lines(lines: list[str], name: str) -> Iterator[Command]:
    """Commands on the lines of a fenced block (``\\`` joins lines; a line with code spans yields its spans)."""
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i]
        i += 1
        if f"-m {PACKAGE}" not in line:
            continue
        if "`" in line:
            yield from _spans(name, line, number, double_only=False)
        else:
            command = _command(f"{name}:{number}", line, comments=True)
            if command is not None:
                yield command


def _markdown_commands(path: Path) -> Iterator[Command]:
    name = str(path.relative_to(REPO_ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    fenced, block, block_start, prose, prose_start = False, [], 0, [], 1
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            if fenced:
                yield from (
                    Command(f"{name}:{block_start + int(c.where.rsplit(':', 1)[1])}", c.module, c.args, c.inline)
                    for c in _fenced_lines(block, name)
                )
            else:
                yield from _spans(name, "\n".join(prose), prose_start, double_only=False)
                prose = []
            fenced, block, block_start, prose_start = not fenced, [], number, number + 1
        elif fenced:
            block.append(line)
        else:
            prose.append(line)
    yield from _spans(name, "\n".join(prose), prose_start, double_only=False)


def _python_commands(path: Path) -> Iterator[Command]:
    """Docstring commands of an example script: ``code`` spans and literal lines starting with ``python -m``."""
    name = str(path.relative_to(REPO_ROOT))
    text = path.read_text(encoding="utf-8")
    yield from _spans(name, text, 1, double_only=True)
    lines = text.splitlines()
    literal = [line if line.strip().startswith(f"python -m {PACKAGE}") else "" for line in lines]
    yield from _fenced_lines(literal, name)


def documented_commands() -> list[Command]:
    commands: list[Command] = []
    for path in _sources():
        commands += _markdown_commands(path) if path.suffix == ".md" else _python_commands(path)
    return commands


# -- the real parsers ----------------------------------------------------------------------------------------------
def _encode_parsers() -> dict[str, argparse.ArgumentParser]:
    from pyserini_diffretriever.cli.encode import build_parsers

    return build_parsers()


def _parser(module: str) -> argparse.ArgumentParser:
    """The parser of a single-parser program (sub-commands included)."""
    if module == f"{PACKAGE}.index":
        from pyserini_diffretriever.cli.index import build_parser
    elif module == f"{PACKAGE}.search":
        from pyserini_diffretriever.cli.search import build_parser
    elif module == f"{PACKAGE}.server":
        from pyserini_diffretriever.cli.server import build_parser
    elif module == f"{PACKAGE}.train":
        from pyserini_diffretriever.cli.train import build_parser
    elif module == f"{PACKAGE}.fixtures":
        from pyserini_diffretriever.fixtures.__main__ import build_parser
    elif module == f"{PACKAGE}.collections.cranfield":
        from pyserini_diffretriever.collections.cranfield import build_parser
    else:
        raise KeyError(module)
    return build_parser()


PROGRAMS: dict[str, Callable[[], object] | None] = {
    f"{PACKAGE}.encode": _encode_parsers,
    f"{PACKAGE}.index": None,
    f"{PACKAGE}.search": None,
    f"{PACKAGE}.server": None,
    f"{PACKAGE}.train": None,
    f"{PACKAGE}.fixtures": None,
    f"{PACKAGE}.collections.cranfield": None,
    f"{PACKAGE}.run": None,
}
"""The documented programs (``python -m`` modules); a command naming another module fails."""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _unknown_options(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Options in ``args`` that ``parser`` (or the sub-command named in ``args``) does not define."""
    known = set(parser._option_string_actions)
    subcommands = _subcommands(parser)
    named = next((token for token in args if token in subcommands), None)
    if named is not None:
        known |= set(subcommands[named]._option_string_actions)
    options = [token.split("=", 1)[0] for token in args if token.startswith("-") and not _is_number(token)]
    return [option for option in options if option not in known]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_run(command: Command) -> None:
    """``run MODULE ...``: MODULE is a module of the installed Pyserini (found on disk, not imported)."""
    assert command.args and command.args[0].startswith("pyserini."), f"{command}: run needs a pyserini.* module"
    root = Path(importlib.util.find_spec("pyserini").submodule_search_locations[0])
    parts = command.args[0].split(".")[1:]
    base = root.joinpath(*parts)
    assert base.with_suffix(".py").is_file() or (base / "__main__.py").is_file(), (
        f"{command}: Pyserini {pyserini_version()} has no module {command.args[0]}"
    )


def pyserini_version() -> str:
    from importlib.metadata import version

    return version("pyserini")


def _alternatives(command: Command) -> list[Command]:
    """``server rest|mcp`` -> ``server rest`` and ``server mcp``; a module ``encode|index`` likewise."""
    head, _, tail = command.module.rpartition(".")
    args = list(command.args)
    at = next((i for i, token in enumerate(args) if "|" in token and not token.startswith("-")), None)
    choices = [None] if at is None else args[at].split("|")
    return [
        Command(
            command.where,
            f"{head}.{name}",
            tuple(args if at is None else args[:at] + [choice] + args[at + 1 :]),
            command.inline,
        )
        for name in tail.split("|")
        for choice in choices
    ]


def check_command(command: Command, capsys) -> None:
    """Parse ``command`` with its program's real parser; fail with the parser's message."""
    alternatives = "|" in command.module or any("|" in t and not t.startswith("-") for t in command.args)
    for one in _alternatives(command) if alternatives else [command]:
        assert one.module in PROGRAMS, f"{one}: no such program (documented: {sorted(PROGRAMS)})"
        assert importlib.util.find_spec(one.module) is not None, f"{one}: module {one.module} is missing"
        if one.module == f"{PACKAGE}.run":
            _check_run(one)
            continue
        if not one.args:
            continue  # a mention of the program in prose
        partial = alternatives or one.inline or ELLIPSIS in one.args
        args = [token for token in one.args if token != ELLIPSIS]
        if one.module == f"{PACKAGE}.encode":
            _check_encode(one, args, partial, capsys)
        elif partial:
            unknown = _unknown_options(_parser(one.module), args)
            assert not unknown, f"{one}: unknown options {unknown}"
        else:
            _parse(one, _parser(one.module).parse_args, args, capsys)


def _check_encode(command: Command, args: list[str], partial: bool, capsys) -> None:
    from pyserini_diffretriever.cli import split_groups
    from pyserini_diffretriever.cli.encode import parse_args

    if not partial:
        _parse(command, parse_args, args, capsys)
        return
    parsers = _encode_parsers()
    leading, groups = split_groups(args, tuple(parsers))
    assert not leading, f"{command}: arguments before the first group: {leading}"
    for group, group_args in groups.items():
        unknown = _unknown_options(parsers[group], group_args)
        assert not unknown, f"{command}: group {group!r} has no options {unknown}"


def _parse(command: Command, parse: Callable[[list[str]], object], args: list[str], capsys) -> None:
    try:
        parse(list(args))
    except SystemExit as error:
        if error.code not in (0, None):
            pytest.fail(f"{command}\nis refused by its parser: {capsys.readouterr().err.strip()}")


COMMANDS = documented_commands()


def test_the_documentation_shows_every_program():
    """The extraction itself finds the commands (an empty list would make the test below vacuous)."""
    shown = {command.module for command in COMMANDS}
    for program in ("encode", "index", "search", "train", "server", "fixtures", "run"):
        assert f"{PACKAGE}.{program}" in shown, f"no documented command of {program}"
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("command", COMMANDS, ids=[command.where for command in COMMANDS])
def test_documented_command_is_accepted_by_its_parser(command, capsys):
    check_command(command, capsys)


@pytest.mark.parametrize(
    "text",
    [
        "python -m pyserini_diffretriever.search --index enc --topics t.tsv --output r.trec --no-such-option 3",
        "python -m pyserini_diffretriever.search --index enc --no-such-option 300 ...",
        "python -m pyserini_diffretriever.encode input --corpus c encoder --encoder m --batch-size 0 output --embeddings o",
        "python -m pyserini_diffretriever.encode ... encoder --no-such-option 1",
        "python -m pyserini_diffretriever.index lucene --input a --index b --no-such-option",
        "python -m pyserini_diffretriever.run pyserini.no_such_module",
        "python -m pyserini_diffretriever.nosuchprogram --x",
    ],
)
def test_a_wrong_command_is_caught(text, capsys):
    """The checker refuses what the programs refuse (so a passing documentation test means something)."""
    command = _command("example", text, comments=True)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_command(command, capsys)
