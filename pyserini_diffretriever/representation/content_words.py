"""The sparse content-word filter C(x) (docs/method.md §5.2), without any NLTK data download.

The reference computes ``nltk.word_tokenize(x.lower())``, drops NLTK's English stopwords and the 32 single
characters of ``string.punctuation``, tokenises every remaining word *on its own* with the backbone tokenizer
(no special tokens, one batched call) and keeps the union of the resulting ids. The sparse vector of a text
can therefore only hold token ids of its own content words (no-leading-space BPE variants, all sub-pieces).

Deviation from ``nltk.word_tokenize`` (documented approximation of Punkt)
-------------------------------------------------------------------------
``nltk.word_tokenize`` first splits sentences with the Punkt model (``punkt_tab`` data, not shipped) and then
runs :class:`nltk.tokenize.NLTKWordTokenizer` on every sentence, which splits off each sentence-final period.
Here :class:`~nltk.tokenize.NLTKWordTokenizer` runs on the whole lowercased text (it always splits the
text-final period, ``?``, ``!``, quotes, brackets, clitics …) and Punkt's effect on the remaining word-final
periods is approximated token by token. A token ``w.`` (``w`` non-empty) is

* kept whole when ``w`` ends with a period (ellipsis-like runs such as ``..``);
* kept whole when ``w`` is a single letter (an initial, ``j.``) or a number (``1990.``) **and** the next
  token starts with a lowercase letter — Punkt's orthographic heuristic never breaks there in lowercased
  text; otherwise it is split;
* kept whole when ``w`` contains a period (dotted abbreviations such as ``u.s.``, ``a.m.``, ``ph.d.``);
* otherwise split into ``w`` and ``.`` (Punkt breaks after an ordinary word + period).

Known differences: Punkt's ~150 learned English abbreviations without inner periods (``dr.``, ``mr.``,
``inc.``, ``jan.``, ``vs.``, ``st.`` …) stay whole in NLTK but are split here; a few dotted forms unknown to
Punkt (``e.g.``, ``i.e.``) are split by NLTK but kept here; Punkt's collocation list and its
per-sentence application of the quote rules (a ``"`` glued to the previous sentence's period) are not
reproduced. The only effect is on whether ids of period-bearing pieces (e.g. ``.`` itself, ``dr.``) enter
C(x); the content words themselves are the same.

Stopwords: ``resources/stopwords_en.txt`` is NLTK's current English list (198 words; see the NOTICE file
next to it) united with the single characters of :data:`string.punctuation`. Multi-character punctuation
tokens produced by the tokenizer (``` `` ```, ``''``, ``...``, ``--``) are *not* stopwords, as in the
reference.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from nltk.tokenize import NLTKWordTokenizer

_TOKENIZER = NLTKWordTokenizer()
# Punkt's numeric type (`PunktLanguageVars`/`_get_type`): "##number##" for these (period removed).
_NUMBER_RE = re.compile(r"^-?[.,]?\d[\d,.\-]*$")
_INITIAL_RE = re.compile(r"^[^\W\d_]$")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """NLTK's English stopword list (shipped copy) united with the single punctuation characters."""
    resource = resources.files("pyserini_diffretriever").joinpath("resources", "stopwords_en.txt")
    text = resource.read_text("utf-8")
    words = {line.strip() for line in text.splitlines() if line.strip()}
    return frozenset(words | set(string.punctuation))


def _keeps_period(stem: str, next_token: str | None) -> bool:
    if stem.endswith("."):
        return True
    if _INITIAL_RE.match(stem) or _NUMBER_RE.match(stem):
        return next_token is not None and next_token[:1].isalpha() and next_token[:1].islower()
    return "." in stem


def word_tokenize(text: str) -> list[str]:
    """Approximate ``nltk.word_tokenize(text)`` without Punkt data (see the module docstring).

    The caller lowercases first, as the content filter does.
    """
    tokens = _TOKENIZER.tokenize(text)
    out: list[str] = []
    for i, token in enumerate(tokens):
        if len(token) > 1 and token.endswith("."):
            stem = token[:-1]
            if not _keeps_period(stem, tokens[i + 1] if i + 1 < len(tokens) else None):
                out.extend((stem, "."))
                continue
        out.append(token)
    return out


def content_words(text: str) -> list[str]:
    """Distinct non-stopword tokens of ``text.lower()`` in first-occurrence order."""
    stop = stopwords()
    seen: dict[str, None] = {}
    for word in word_tokenize(text.lower()):
        if word not in stop:
            seen.setdefault(word, None)
    return list(seen)


def content_token_ids(texts: Sequence[str], tokenizer) -> list[list[int]]:
    """C(x) for every text: sorted ids of its content words, each word tokenised on its own.

    All distinct words of the batch go through the tokenizer in one call (no special tokens added), as the
    reference's batched ``tokenizer(words, add_special_tokens=False)``.
    """
    words_per_text = [content_words(text) for text in texts]
    vocabulary = list(dict.fromkeys(word for words in words_per_text for word in words))
    if not vocabulary:
        return [[] for _ in texts]
    encoded = tokenizer(vocabulary, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    ids_of = {word: ids for word, ids in zip(vocabulary, encoded)}
    return [sorted({int(i) for word in words for i in ids_of[word]}) for words in words_per_text]
