"""Prompt loading and K-adaptation (docs/method.md §2.1-§2.2); expected strings are written out by hand."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.representation.prompts import (
    PromptError,
    PromptTemplate,
    adapt_for_k,
    load_prompt,
    prompt_for,
)

SYSTEM = "You are an AI assistant that can understand human language."


def expected_suffix(variant: str, side: str, k: int) -> tuple[str, str]:
    """(user_suffix, assistant_prefix) as §2.1/§2.2 state them, spelled out independently of the code."""
    count = {1: None, 2: "two", 4: "four", 10: "ten", 11: "11", 16: "16"}[k]
    if variant == "few":
        return (
            f'". Use a few words to represent the {side} in a retrieval task. Make sure your words are in lowercase.',
            'The words are: "',
        )
    if variant == "one":
        if k == 1:
            return (
                f'". Use one word to represent the {side} in a retrieval task. Make sure your word is in lowercase.',
                'The word is: "',
            )
        return (
            f'". Use {count} words to represent the {side} in a retrieval task. Make sure your words are in lowercase.',
            'The words are: "',
        )
    number = "three" if k == 1 else count
    return (
        f'". Use {number} words to represent the {side} in a retrieval task. Make sure your words are in '
        "lowercase and split them by space.",
        'The words are: "',
    )


@pytest.mark.parametrize("side", ["query", "passage"])
@pytest.mark.parametrize("variant", ["one", "few", "three"])
@pytest.mark.parametrize("k", [1, 2, 4, 10, 11, 16])
def test_shipped_prompts_adapt_to_k(side, variant, k):
    prompt = prompt_for(variant, side, k)
    assert prompt.system == SYSTEM
    assert prompt.user_prefix == ("Query: " if side == "query" else "Passage: ") + '"'
    assert (prompt.user_suffix, prompt.assistant_prefix) == expected_suffix(variant, side, k)
    assert prompt.k == k and prompt.name == variant and prompt.use_chat_template


def test_adapt_for_k_rules():
    assert adapt_for_k("Use one word. Your word is", 1) == "Use one word. Your word is"
    assert adapt_for_k("Use one word. Your word is", 3) == "Use three words. Your words are"
    assert adapt_for_k("Use seven  words", 12) == "Use 12 words"  # the whitespace run is replaced too
    assert adapt_for_k("someone wordy", 4) == "someone wordy"  # whole words only
    assert adapt_for_k("", 5) == ""


def test_prompt_hash_changes_with_wording():
    assert prompt_for("one", "query", 1).sha256() != prompt_for("one", "query", 4).sha256()
    assert prompt_for("few", "query", 1).sha256() == prompt_for("few", "query", 4).sha256()


def test_custom_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("system: ''\nuser_prefix: 'Q: '\nuser_suffix: '. use one word please'\nassistant_prefix: 'A: '\n")
    prompt = load_prompt(path, "query")
    assert prompt == PromptTemplate("", "Q: ", ". use one word please", "A: ", name=str(path))
    adapted = prompt_for(str(path), "passage", 2)
    assert adapted.user_suffix == ". use two words please"
    assert adapted.assistant_prefix == "A: "


def test_custom_yaml_case_sensitivity(tmp_path):
    # "One" is capitalised: the reference's regex is case-sensitive, so nothing changes
    path = tmp_path / "cap.yaml"
    path.write_text("system: s\nuser_prefix: p\nuser_suffix: 'One word'\nassistant_prefix: 'The word is: '\n")
    adapted = prompt_for(path, "query", 2)
    assert adapted.user_suffix == "One word"
    assert adapted.assistant_prefix == "The words are: "


def test_template_none(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("system: s\nuser_prefix: p\nuser_suffix: q\nassistant_prefix: a\ntemplate: none\n")
    assert load_prompt(path, "query").use_chat_template is False


@pytest.mark.parametrize(
    "content, message",
    [
        ("system: s\nuser_prefix: p\nuser_suffix: q\n", "missing keys ['assistant_prefix']"),
        ("system: s\nuser_prefix: p\nuser_suffix: q\nassistant_prefix: a\nextra: 1\n", "unknown keys ['extra']"),
        ("system: s\nuser_prefix: 3\nuser_suffix: q\nassistant_prefix: a\n", "'user_prefix' must be a string"),
        ("- a\n- b\n", "expected a YAML mapping"),
        ("system: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_rejected(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(PromptError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_prompt(path, "query")


def test_bad_names():
    with pytest.raises(PromptError, match="expected one of"):
        load_prompt("four", "query")
    with pytest.raises(PromptError, match="does not exist"):
        load_prompt("/nonexistent/prompt.yaml", "query")
    with pytest.raises(PromptError, match="side='document'"):
        load_prompt("few", "document")
    with pytest.raises(PromptError, match="k=0"):
        prompt_for("few", "query", 0)
    with pytest.raises(PromptError, match="adapted to k=4, not k=2"):
        prompt_for(prompt_for("one", "query", 4), "query", 2)


def test_adapting_twice_is_refused():
    with pytest.raises(PromptError, match="already adapted to k=4"):
        prompt_for("one", "query", 4).adapted(4)
