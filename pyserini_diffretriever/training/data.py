"""Tevatron-format training groups: reading, checking and deterministic sampling (docs/method.md §8.1).

One JSONL record per query, as in ``Tevatron/msmarco-passage-aug``::

    {"query_id": "3", "query": "...", "positive_passages": [{"docid": "7", "title": "", "text": "..."}, ...],
     "negative_passages": [{"docid": "9", "title": "...", "text": "..."}, ...]}

Why offsets instead of records: MS MARCO's training file holds ~400k queries with ~30 passages each; the file is
checked once (every bad record is reported with its file and line) and only byte offsets stay in memory.

Sampling per (seed, query, epoch), as the reference's ``MSMARCOTrainDataset`` with a stable hash instead of
Python's salted ``hash()`` (docs/method.md §11 item 17): ``s = sha256(seed, query_id)``; positive =
``positives[(s + epoch) % n_pos]``; negatives = the pool shuffled once per query with ``s``, then a window of N
starting at ``(epoch * N) mod |pool|`` over the doubled list; a pool smaller than N is sampled with replacement
(seeded with ``s`` and the epoch).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..representation.inputs import join_title

DEFAULT_N_NEGATIVES = 15
DATA_SUFFIXES = (".jsonl",)


class TrainingDataError(ValueError):
    """A training file or record is unusable; the message names the file and line."""


@dataclass(frozen=True)
class TrainingGroup:
    """One query and its passages: ``passages[0]`` is the positive, the rest are negatives (texts with titles)."""

    query_id: str
    query: str
    passages: tuple[str, ...]


def data_files(path: str | Path) -> list[Path]:
    """A JSONL file, or every ``*.jsonl`` file of a folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
        if not files:
            raise TrainingDataError(f"{path}: no {'/'.join(DATA_SUFFIXES)} files in this folder")
        return files
    raise TrainingDataError(f"{path}: training data not found (give a Tevatron JSONL file or a folder of them)")


def _passage_text(passage, where: str, field: str, index: int, title_separator: str) -> str:
    if not isinstance(passage, dict):
        raise TrainingDataError(
            f"{where}: {field}[{index}] must be an object with 'text', got {type(passage).__name__}"
        )
    text, title = passage.get("text"), passage.get("title")
    if not isinstance(text, str) or not text.strip():
        raise TrainingDataError(f"{where}: {field}[{index}] (docid {passage.get('docid')!r}) has no text")
    if title is not None and not isinstance(title, str):
        raise TrainingDataError(f"{where}: {field}[{index}] title must be a string, got {type(title).__name__}")
    return join_title(title, text, title_separator)


def parse_record(line: bytes, where: str, title_separator: str = ". ") -> tuple[str, str, list[str], list[str]]:
    """``(query_id, query, positive texts, negative texts)`` of one JSONL line, or a :class:`TrainingDataError`."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrainingDataError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise TrainingDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    query_id, query = record.get("query_id"), record.get("query")
    if not isinstance(query_id, str | int) or isinstance(query_id, bool) or str(query_id) == "":
        raise TrainingDataError(f"{where}: missing or invalid 'query_id' ({query_id!r})")
    if not isinstance(query, str) or not query.strip():
        raise TrainingDataError(f"{where}: query {query_id!r} has no 'query' text")
    lists = {}
    for field in ("positive_passages", "negative_passages"):
        value = record.get(field, [] if field == "negative_passages" else None)
        if not isinstance(value, list):
            raise TrainingDataError(f"{where}: query {query_id!r}: '{field}' must be a list of passages")
        lists[field] = [_passage_text(p, where, field, i, title_separator) for i, p in enumerate(value)]
    if not lists["positive_passages"]:
        raise TrainingDataError(f"{where}: query {query_id!r} has no positive_passages")
    return str(query_id), query, lists["positive_passages"], lists["negative_passages"]


def query_seed(seed: int, query_id: str) -> int:
    """A stable 63-bit seed for one query (the same in every process and run)."""
    digest = hashlib.sha256(f"{seed}\x00{query_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sample_passages(
    query_id: str, positives: Sequence[str], negatives: Sequence[str], n_negatives: int, seed: int, epoch: int
) -> tuple[str, ...]:
    """The positive and ``n_negatives`` negatives of one query for one epoch (see the module docstring)."""
    s = query_seed(seed, query_id)
    positive = positives[(s + epoch) % len(positives)]
    if n_negatives == 0:
        return (positive,)
    pool = list(negatives)
    random.Random(s).shuffle(pool)
    if len(pool) >= n_negatives:
        start = (epoch * n_negatives) % len(pool)
        chosen = (pool + pool)[start : start + n_negatives]
    else:
        chosen = random.Random(s + epoch + 1).choices(pool, k=n_negatives)
    return (positive, *chosen)


class TevatronGroups(Dataset):
    """Training groups (1 positive + ``n_negatives``) from Tevatron JSONL; ``epoch`` selects the sample.

    Parameters
    ----------
    path:
        A JSONL file or a folder of ``*.jsonl`` files.
    n_negatives:
        Negatives per group (the paper: 15); queries without negatives are refused when it is > 0.
    seed:
        The sampling seed (``--data-seed``).
    title_separator:
        Joins passage title and text, as the encoders do (``". "``; the reference's training used a space).

    Raises
    ------
    TrainingDataError
        On the first bad record, naming its file and line; or when there are no records.
    """

    def __init__(
        self, path: str | Path, *, n_negatives: int = DEFAULT_N_NEGATIVES, seed: int = 42, title_separator: str = ". "
    ) -> None:
        if n_negatives < 0:
            raise ValueError(f"n_negatives={n_negatives}: expected >= 0")
        self.files = data_files(path)
        self.n_negatives, self.seed, self.title_separator = n_negatives, seed, title_separator
        self.epoch = 0
        self._offsets: list[tuple[int, int, int]] = []  # (file index, byte offset, line number)
        for file_index, file in enumerate(self.files):
            self._scan(file_index, file)
        if not self._offsets:
            raise TrainingDataError(f"{path}: no training records")

    def _scan(self, file_index: int, file: Path) -> None:
        seen: set[str] = set()
        with file.open("rb") as handle:
            offset = 0
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    where = f"{file}:{line_number}"
                    query_id, _, _, negatives = parse_record(line, where, self.title_separator)
                    if self.n_negatives and not negatives:
                        raise TrainingDataError(
                            f"{where}: query {query_id!r} has no negative_passages, but each group needs "
                            f"{self.n_negatives} (use n_negatives=0 for in-batch negatives only)"
                        )
                    if query_id in seen:
                        raise TrainingDataError(f"{where}: query_id {query_id!r} appears twice in {file.name}")
                    seen.add(query_id)
                    self._offsets.append((file_index, offset, line_number))
                offset += len(line)

    def set_epoch(self, epoch: int) -> None:
        """Select the negatives window / positive of ``epoch`` (called at the start of every epoch)."""
        self.epoch = int(epoch)

    @property
    def group_size(self) -> int:
        return 1 + self.n_negatives

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> TrainingGroup:
        file_index, offset, line_number = self._offsets[index]
        file = self.files[file_index]
        with file.open("rb") as handle:
            handle.seek(offset)
            line = handle.readline()
        query_id, query, positives, negatives = parse_record(line, f"{file}:{line_number}", self.title_separator)
        passages = sample_passages(query_id, positives, negatives, self.n_negatives, self.seed, self.epoch)
        return TrainingGroup(query_id=query_id, query=query, passages=passages)
