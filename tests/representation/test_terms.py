"""Lucene term strings: the full Dream vocabulary is usable, broken vocabularies are refused."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.representation.terms import (
    TermStringError,
    TermVocabulary,
    term_vocabulary,
    vocabulary_fingerprint,
)


class FakeTokenizer:
    def __init__(self, tokens):
        self.tokens = list(tokens)
        self.name_or_path = "fake"

    def __len__(self):
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids):
        return [self.tokens[i] for i in ids]

    def get_vocab(self):
        return {t: i for i, t in enumerate(self.tokens)}


def test_full_dream_vocabulary_gives_valid_unique_terms(dream_tokenizer):
    vocab = term_vocabulary(dream_tokenizer)
    assert vocab.size == len(dream_tokenizer) == 151667
    terms = [vocab.term(i) for i in range(vocab.size)]
    assert len(set(terms)) == len(terms)
    assert all(t and not any(c.isspace() for c in t) and len(t.encode("utf-16-le")) // 2 <= 255 for t in terms)
    assert vocab.term(dream_tokenizer.encode("earth", add_special_tokens=False)[0]) == "earth"
    assert vocab.term(dream_tokenizer.encode(" earth", add_special_tokens=False)[0]) == "Ġearth"
    assert term_vocabulary(dream_tokenizer) is vocab  # checked once, cached


def test_to_terms_gives_plain_ints(dream_tokenizer):
    import numpy as np

    out = term_vocabulary(dream_tokenizer).to_terms({np.int64(9707): np.int32(12)})
    assert out == {"Hello": 12}
    ((key, value),) = out.items()
    assert type(key) is str and type(value) is int


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["a", "b c"], "contains whitespace"),
        (["a", "b\u00a0"], "contains whitespace"),  # no-break space: Java's isWhitespace says no, we are stricter
        (["a", "tab\t"], "contains whitespace"),
        (["a", "b", "a"], "ids 0 and 2 share the string 'a'"),
        (["a", ""], "has no token string"),
        (["a", None], "has no token string"),
        (["a", "x" * 256], "256 UTF-16 units"),
        (["a", "\U0001f600" * 128], "256 UTF-16 units"),  # surrogate pairs count twice, as in Java
    ],
)
def test_unusable_vocabularies_raise(tokens, message):
    with pytest.raises(TermStringError, match=message):
        TermVocabulary(FakeTokenizer(tokens))


def test_out_of_range_id():
    vocab = TermVocabulary(FakeTokenizer(["a", "b"]))
    with pytest.raises(TermStringError, match="outside the tokenizer vocabulary"):
        vocab.term(2)


def test_fingerprint_depends_on_the_table():
    assert vocabulary_fingerprint(FakeTokenizer(["a", "b"])) == vocabulary_fingerprint(FakeTokenizer(["a", "b"]))
    assert vocabulary_fingerprint(FakeTokenizer(["a", "b"])) != vocabulary_fingerprint(FakeTokenizer(["b", "a"]))
