"""Content-word filter (docs/method.md §5.2) and the documented Punkt approximation; expectations by hand."""

from __future__ import annotations

import string

import pytest

from pyserini_diffretriever.representation.content_words import (
    content_token_ids,
    content_words,
    stopwords,
    word_tokenize,
)


def test_stopword_list_is_nltk_english_plus_punctuation():
    words = stopwords()
    assert len(words) == 198 + len(string.punctuation) == 230
    for word in ("i", "the", "wouldn't", "should've", "he's", "i'm", "they've", "we'll", "ma", "y"):
        assert word in words
    for char in string.punctuation:
        assert char in words
    for word in ("earth", "around", "``", "''", "...", "'s", "cannot"):
        assert word not in words


@pytest.mark.parametrize(
    "text, tokens",
    [
        # text-final period and sentence-final periods are split (as Punkt + NLTKWordTokenizer do)
        ("hello world. foo bar.", ["hello", "world", ".", "foo", "bar", "."]),
        # numbers / initials followed by a lowercase word keep their period (Punkt's orthographic heuristic)
        ("the u.s. economy in 1990. it isn't", ["the", "u.s.", "economy", "in", "1990.", "it", "is", "n't"]),
        ("j. s. bach lived here.", ["j.", "s.", "bach", "lived", "here", "."]),
        ("in 1990. 2000 was next", ["in", "1990", ".", "2000", "was", "next"]),
        # documented deviation: undotted abbreviations are split here (Punkt keeps e.g. "dr.")
        ('dr. smith said "stop." then', ["dr", ".", "smith", "said", "``", "stop", ".", "''", "then"]),
        ("wait... what?!", ["wait", "...", "what", "?", "!"]),
        ("it's 3.5 km. next", ["it", "'s", "3.5", "km", ".", "next"]),
    ],
)
def test_word_tokenize_approximation(text, tokens):
    assert word_tokenize(text) == tokens


def test_content_words_lowercase_filter_and_dedupe():
    assert content_words("The Earth's orbit, e.g. around the Sun! The EARTH.") == [
        "earth",
        "'s",
        "orbit",
        "e.g.",
        "around",
        "sun",
    ]
    # multi-character quote tokens survive the single-character punctuation filter, as in the reference
    assert content_words('He said "hi"') == ["said", "``", "hi", "''"]
    assert content_words("the of and") == []


def test_content_token_ids_are_the_union_of_single_word_encodings(dream_tokenizer):
    texts = ["Quantum entanglement of photons", "The and of", "Photons, photons everywhere."]
    expected_words = [["quantum", "entanglement", "photons"], [], ["photons", "everywhere"]]
    expected = [
        sorted({i for w in words for i in dream_tokenizer.encode(w, add_special_tokens=False)})
        for words in expected_words
    ]
    assert content_token_ids(texts, dream_tokenizer) == expected
    assert expected[0] and all(i < 151643 for i in expected[0])  # ordinary BPE ids, no specials


def test_content_token_ids_use_the_no_space_variant(dream_tokenizer):
    (ids,) = content_token_ids(["earth"], dream_tokenizer)
    assert ids == dream_tokenizer.encode("earth", add_special_tokens=False)
    assert dream_tokenizer.encode(" earth", add_special_tokens=False)[0] not in ids


def test_empty_batch(dream_tokenizer):
    assert content_token_ids([], dream_tokenizer) == []
    assert content_token_ids(["", "the"], dream_tokenizer) == [[], []]
