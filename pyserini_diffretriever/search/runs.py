"""Run files in Pyserini's exact formats, written without importing ``pyserini.output_writer``.

Why: ``pyserini.output_writer`` imports ``pyserini.search.lucene`` and so starts the JVM even for a dense or
multi-vector run (spec pyserini.md §7). The lines below are byte-for-byte Pyserini's ``TrecWriter``
(``f'{topic} Q0 {docid} {rank} {score:.6f} {tag}'``) and ``MsMarcoWriter`` (``f'{topic}\\t{docid}\\t{rank}'``),
with one deliberate difference: hits are always written in Pyserini's ``tie_breaker`` order,
``(-score, docid)``, so equal scores come out identically in every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from .results import SearchResult, sort_results

__all__ = ["OUTPUT_FORMATS", "RunFormatError", "RunWriter", "read_run", "write_run"]

OUTPUT_FORMATS = ("trec", "msmarco")


class RunFormatError(ValueError):
    """A run file line (or a docid/tag about to be written) is not valid TREC."""


def _check_token(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise RunFormatError(f"{what} {value!r} is empty or contains whitespace; it cannot be written to a run file")
    return value


class RunWriter:
    """Write hits query by query (a context manager, as Pyserini's ``OutputWriter``).

    Parameters
    ----------
    path : str or Path
        Output file (parent folders are created).
    output_format : {'trec', 'msmarco'}
        Line format.
    tag : str
        TREC run tag (last column).
    max_hits : int
        Hits written per query.
    """

    def __init__(
        self, path: str | Path, output_format: str = "trec", tag: str = "DiffRetriever", max_hits: int = 1000
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        self.path = Path(path)
        self.output_format = output_format
        self.tag = _check_token(tag, "run tag")
        self.max_hits = int(max_hits)
        self._file: TextIO | None = None

    def __enter__(self) -> RunWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, qid: str, hits: Iterable[Any]) -> int:
        """Write the hits of one query in ``(-score, docid)`` order; returns how many lines were written."""
        if self._file is None:
            raise RuntimeError("RunWriter.write called outside its 'with' block")
        topic = _check_token(str(qid), "query id")
        stripped = [SearchResult(str(hit.docid).strip(), float(hit.score)) for hit in hits]
        lines = []
        for rank, hit in enumerate(sort_results(stripped, self.max_hits), 1):
            docid = _check_token(hit.docid, f"docid (query {topic})")
            if self.output_format == "trec":
                lines.append(f"{topic} Q0 {docid} {rank} {hit.score:.6f} {self.tag}\n")
            else:
                lines.append(f"{topic}\t{docid}\t{rank}\n")
        self._file.writelines(lines)
        return len(lines)


def write_run(
    path: str | Path,
    results: Mapping[str, Iterable[Any]],
    output_format: str = "trec",
    tag: str = "DiffRetriever",
    max_hits: int = 1000,
) -> Path:
    """Write ``{qid: hits}`` as a run file (see :class:`RunWriter`); returns the path."""
    with RunWriter(path, output_format, tag, max_hits) as writer:
        for qid, hits in results.items():
            writer.write(qid, hits)
    return Path(path)


def read_run(path: str | Path) -> dict[str, list[SearchResult]]:
    """Read a TREC run (``qid Q0 docid rank score tag``) into ``{qid: hits}`` ordered by ``(-score, docid)``."""
    path = Path(path)
    run: dict[str, list[SearchResult]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise RunFormatError(
                    f"{path}:{number}: expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}"
                )
            try:
                score = float(fields[4])
            except ValueError as error:
                raise RunFormatError(f"{path}:{number}: score {fields[4]!r} is not a number") from error
            run.setdefault(fields[0], []).append(SearchResult(fields[2], score))
    return {qid: sort_results(hits) for qid, hits in run.items()}
