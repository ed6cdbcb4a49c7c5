"""Command-line programs: ``python -m pyserini_diffretriever.encode`` and ``python -m pyserini_diffretriever.index``.

Each module exposes ``main(argv=None) -> int``; the console scripts in ``pyproject.toml`` call the same
functions. Helpers shared by the programs live here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence


def positive_int(text: str) -> int:
    """``argparse`` type of a count option: :func:`~pyserini_diffretriever.settings.check_positive_int`'s rule."""
    from ..settings import check_positive_int

    try:
        return check_positive_int("value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None


def split_groups(argv: Sequence[str], groups: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Cut ``argv`` at the group words, as ``python -m pyserini.encode`` does.

    ``["input", "--corpus", "c", "encoder", "--encoder", "m"]`` ->
    ``([], {"input": ["--corpus", "c"], "encoder": ["--encoder", "m"]})``. Like Pyserini, a value that equals a
    group word starts a new group. A repeated group is an error.
    """
    leading: list[str] = []
    parts: dict[str, list[str]] = {}
    current: list[str] = leading
    for token in argv:
        if token in groups:
            if token in parts:
                raise argparse.ArgumentError(None, f"group {token!r} given twice")
            parts[token] = current = []
        else:
            current.append(token)
    return leading, parts


def parse_groups(
    program: str,
    description: str,
    parsers: Mapping[str, argparse.ArgumentParser],
    argv: Sequence[str],
    required: Sequence[str],
) -> argparse.Namespace:
    """Parse grouped arguments into ``Namespace(group=Namespace(...))``; print help for ``-h`` at any level."""
    try:
        leading, parts = split_groups(argv, tuple(parsers))
    except argparse.ArgumentError as error:
        parsers[next(iter(parsers))].exit(2, f"{program}: error: {error.message}\n")
    if leading and leading[0] in ("-h", "--help") or not argv:
        lines = [
            f"usage: {program} " + " ".join(f"{name} [{name} options]" for name in parsers),
            "",
            description,
            "",
            "groups (run `GROUP -h` for its options):",
        ]
        lines += [f"  {name:<10} {parser.description or ''}" for name, parser in parsers.items()]
        print("\n".join(lines))
        sys.exit(0 if argv else 2)
    if leading:
        print(f"{program}: error: unexpected arguments before the first group: {' '.join(leading)}", file=sys.stderr)
        sys.exit(2)
    for name, group_argv in parts.items():  # `GROUP -h` prints that group's options even if others are missing
        if "-h" in group_argv or "--help" in group_argv:
            parsers[name].parse_args(["-h"])
    missing = [name for name in required if name not in parts]
    if missing:
        print(f"{program}: error: missing group(s): {', '.join(missing)} (see {program} -h)", file=sys.stderr)
        sys.exit(2)
    namespace = argparse.Namespace()
    for name, parser in parsers.items():
        setattr(namespace, name, parser.parse_args(parts[name]) if name in parts else None)
    return namespace


def configure_logging(verbose: bool = False) -> None:
    """INFO-level logging to stderr for the command-line programs (library code never configures logging)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    if not verbose:  # third-party chatter (faiss' loader reports every SIMD variant it tries)
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
