"""Read local topic files (TSV, JSON, JSONL) into ``{qid: query text}`` without the JVM or the network.

Why not Pyserini's readers: ``get_topics`` resolves names over the network and reading a file goes through
Anserini's Java ``TopicReader`` (spec pyserini.md §7), which needs the JVM and, on a malformed line, returns
null so that Pyserini raises a bare ``ValueError``. Here every problem names the file and the line.

Accepted layouts (``.gz`` allowed on each):

``.tsv`` / ``.txt``
    ``qid<TAB>query`` per line (Pyserini's TSV topics, BEIR's ``topics.*.tsv``); blank lines are skipped.
``.json``
    ``{"qid": "query"}`` or ``{"qid": {"title": "query", ...}}`` (Pyserini's JSON topics), or a list of records.
``.jsonl``
    One record per line with an id key (``qid``, ``_id``, ``id``, ``query_id``) and a text key (``query``,
    ``text``, ``title``, ``contents``), e.g. BEIR's ``queries.jsonl``.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, TextIO

__all__ = ["TopicsFormatError", "read_topics"]

ID_KEYS = ("qid", "_id", "id", "query_id")
TEXT_KEYS = ("query", "text", "title", "contents")


class TopicsFormatError(ValueError):
    """A topics file is missing, of an unknown type, or has a malformed record (the message names the line)."""


def _open(path: Path) -> TextIO:
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8-sig")  # type: ignore[operator]


def _kind(path: Path) -> str:
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    name = suffixes[0].lower() if suffixes else ""
    if name in (".tsv", ".txt"):
        return "tsv"
    if name in (".json", ".jsonl"):
        return name[1:]
    raise TopicsFormatError(f"{path}: unknown topics type {''.join(suffixes) or '(none)'}; "
                            "expected .tsv/.txt (qid<TAB>text), .json or .jsonl (optionally .gz)")


def _add(topics: dict[str, str], qid: Any, text: Any, where: str) -> None:
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid).strip() == "":
        raise TopicsFormatError(f"{where}: missing or invalid query id {qid!r}")
    if not isinstance(text, str):
        raise TopicsFormatError(f"{where}: query {qid!r} has no text (got {type(text).__name__})")
    qid = str(qid).strip()
    if any(c.isspace() for c in qid):
        raise TopicsFormatError(f"{where}: query id {qid!r} contains whitespace (it would break TREC run files)")
    if not text.strip():
        raise TopicsFormatError(f"{where}: query {qid!r} has empty text")
    if qid in topics:
        raise TopicsFormatError(f"{where}: duplicate query id {qid!r}")
    topics[qid] = text.strip()


def _from_record(topics: dict[str, str], record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise TopicsFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    id_key = next((key for key in ID_KEYS if key in record), None)
    text_key = next((key for key in TEXT_KEYS if key in record), None)
    if id_key is None or text_key is None:
        raise TopicsFormatError(
            f"{where}: a query record needs an id key ({', '.join(ID_KEYS)}) and a text key ({', '.join(TEXT_KEYS)}); "
            f"found {', '.join(sorted(record)) or 'no keys'}"
        )
    _add(topics, record[id_key], record[text_key], where)


def _read_tsv(path: Path, handle: TextIO, topics: dict[str, str]) -> None:
    for number, line in enumerate(handle, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        qid, tab, text = line.partition("\t")
        if not tab:
            raise TopicsFormatError(f"{path}:{number}: expected 'qid<TAB>query text', found no tab in {line[:80]!r}")
        _add(topics, qid, text, f"{path}:{number}")


def _read_json(path: Path, handle: TextIO, topics: dict[str, str]) -> None:
    try:
        data = json.load(handle)
    except json.JSONDecodeError as error:
        raise TopicsFormatError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from error
    if isinstance(data, list):
        for number, record in enumerate(data):
            _from_record(topics, record, f"{path}[{number}]")
    elif isinstance(data, dict):
        for qid, value in data.items():
            if isinstance(value, dict):
                text_key = next((key for key in TEXT_KEYS if key in value), None)
                value = value.get(text_key) if text_key else None
            _add(topics, qid, value, f"{path}[{qid!r}]")
    else:
        raise TopicsFormatError(f"{path}: expected a JSON object {{qid: query}} or a list of query records")


def _read_jsonl(path: Path, handle: TextIO, topics: dict[str, str]) -> None:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TopicsFormatError(f"{path}:{number}: invalid JSON ({error.msg})") from error
        _from_record(topics, record, f"{path}:{number}")


def read_topics(path: str | Path) -> dict[str, str]:
    """Read a local topics file.

    Parameters
    ----------
    path : str or Path
        A ``.tsv``/``.txt``, ``.json`` or ``.jsonl`` file, optionally gzipped (module docstring).

    Returns
    -------
    dict
        ``{qid: query text}`` in file order; qids are strings (as in TREC runs).

    Raises
    ------
    TopicsFormatError
        Missing file, unknown type, malformed or duplicate record, or no topics at all.
    """
    path = Path(path)
    if not path.is_file():
        raise TopicsFormatError(f"{path}: topics file not found (named Pyserini topics are not resolved: "
                                "give a local file)")
    kind = _kind(path)
    topics: dict[str, str] = {}
    try:
        with _open(path) as handle:
            {"tsv": _read_tsv, "json": _read_json, "jsonl": _read_jsonl}[kind](path, handle, topics)
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise TopicsFormatError(f"{path}: cannot read ({error})") from error
    if not topics:
        raise TopicsFormatError(f"{path}: no topics found")
    return topics
