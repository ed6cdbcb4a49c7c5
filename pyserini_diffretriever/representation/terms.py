"""Token ids -> Lucene impact-term strings, and the tokenizer fingerprint that ties an index to its queries.

Anserini's ``JsonVectorCollection`` writes every sparse entry as ``term`` repeated ``weight`` times and the
index is read with a ``WhitespaceAnalyzer`` (pyserini.md §3), so a term must be non-empty, free of whitespace
(Java ``Character.isWhitespace``; Python's :meth:`str.isspace` is a strict superset, so it is the check used),
at most 255 UTF-16 units long (Lucene's ``WhitespaceTokenizer`` limit) and unique, or two ids would merge.
The term of an id is ``tokenizer.convert_ids_to_tokens(id)`` (e.g. byte-level BPE strings such as ``Ġfox``).
The vocabulary is checked once per tokenizer and the result cached.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping

MAX_TERM_UTF16_UNITS = 255


class TermStringError(ValueError):
    """A tokenizer whose token strings cannot serve as Lucene impact terms."""


def _utf16_units(term: str) -> int:
    return len(term.encode("utf-16-le")) // 2


def vocabulary_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full ``token -> id`` table (added tokens included), sorted by id."""
    vocab = tokenizer.get_vocab()
    payload = json.dumps(sorted((int(i), str(t)) for t, i in vocab.items()), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class TermVocabulary:
    """The validated ``id -> term`` table of one tokenizer.

    Parameters
    ----------
    tokenizer:
        A transformers tokenizer; every id in ``range(len(tokenizer))`` is mapped.

    Raises
    ------
    TermStringError
        An id without a string, or a string that is empty, contains whitespace, exceeds 255 UTF-16 units or
        is shared by two ids. The message names the offending ids.
    """

    def __init__(self, tokenizer) -> None:
        size = len(tokenizer)
        terms = tokenizer.convert_ids_to_tokens(list(range(size)))
        problems: list[str] = []
        first_id: dict[str, int] = {}
        for token_id, term in enumerate(terms):
            if not isinstance(term, str) or not term:
                problems.append(f"id {token_id} has no token string ({term!r})")
            elif any(ch.isspace() for ch in term):
                problems.append(f"id {token_id} {term!r} contains whitespace")
            elif _utf16_units(term) > MAX_TERM_UTF16_UNITS:
                problems.append(f"id {token_id} is {_utf16_units(term)} UTF-16 units long (> {MAX_TERM_UTF16_UNITS})")
            elif term in first_id:
                problems.append(f"ids {first_id[term]} and {token_id} share the string {term!r}")
            else:
                first_id[term] = token_id
            if len(problems) >= 5:
                break
        if problems:
            name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
            raise TermStringError(
                f"tokenizer {name!r} cannot be used for Lucene impact indexes: "
                + "; ".join(problems)
                + (" (first 5 problems shown)" if len(problems) >= 5 else "")
            )
        self._terms: list[str] = terms
        self.size = size

    def term(self, token_id: int) -> str:
        """The term string of ``token_id``."""
        if not 0 <= token_id < self.size:
            raise TermStringError(f"token id {token_id} is outside the tokenizer vocabulary (size {self.size})")
        return self._terms[token_id]

    def to_terms(self, weights: Mapping[int, int]) -> dict[str, int]:
        """``{token_id: weight}`` -> ``{term: weight}`` with plain Python ints (what Pyserini needs)."""
        return {self.term(int(i)): int(w) for i, w in weights.items()}


_CACHE: weakref.WeakKeyDictionary[object, TermVocabulary] = weakref.WeakKeyDictionary()


def term_vocabulary(tokenizer) -> TermVocabulary:
    """The checked :class:`TermVocabulary` of ``tokenizer``, built once per tokenizer object."""
    try:
        cached = _CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable: no caching
        return TermVocabulary(tokenizer)
    if cached is None or cached.size != len(tokenizer):
        cached = TermVocabulary(tokenizer)
        _CACHE[tokenizer] = cached
    return cached
