"""PromptReps-style prompt templates and their adaptation to the number of representative tokens K.

The shipped YAMLs (``resources/prompts/{query,passage}_prompt_{one,few,three}.yaml``) are copies of the
reference repository's ``prompts/default`` files. Each has four keys (``system``, ``user_prefix``,
``user_suffix``, ``assistant_prefix``); a custom YAML with the same four keys may be given by path, plus
the optional key ``template: none`` (render without the chat template, as the reference allows).

The wording is adapted to the per-side K exactly as the reference's ``_adapt_prompt_for_k``: for K > 1
every "<one..ten> word(s)" becomes "<K> words" (K spelled out up to ten, digits above), then "word is"
becomes "words are"; K <= 1 leaves the text unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import yaml

from ..settings import PROMPT_VARIANTS

SIDES: tuple[str, ...] = ("query", "passage")
PROMPT_KEYS: tuple[str, ...] = ("system", "user_prefix", "user_suffix", "assistant_prefix")

_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER_WORD_RE = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b(\s+words?)")
_WORD_IS_RE = re.compile(r"\bword is\b")


class PromptError(ValueError):
    """A prompt variant, side or YAML file that cannot be used."""


def check_side(side: str) -> str:
    """Return ``side`` if it is ``"query"`` or ``"passage"``, else raise :class:`PromptError`."""
    if side not in SIDES:
        raise PromptError(f"side={side!r}: expected one of {SIDES}")
    return side


def adapt_for_k(text: str, k: int) -> str:
    """Rewrite the number wording of ``text`` for ``k`` representative tokens (docs/method.md §2.2).

    Parameters
    ----------
    text:
        A ``user_suffix`` or ``assistant_prefix`` string written for one word.
    k:
        The per-side number of mask slots.

    Returns
    -------
    str
        ``text`` unchanged when ``k <= 1``; otherwise every "<one..ten> word(s)" replaced by
        "<count> words" (count spelled out for k <= 10, digits above) and "word is" by "words are".
    """
    if k <= 1 or not text:
        return text
    count = _NUMBER_WORDS[k - 1] if k <= len(_NUMBER_WORDS) else str(k)
    text = _NUMBER_WORD_RE.sub(f"{count} words", text)
    return _WORD_IS_RE.sub("words are", text)


@dataclass(frozen=True)
class PromptTemplate:
    """The four prompt strings of one side, optionally already adapted to K.

    Attributes
    ----------
    system, user_prefix, user_suffix, assistant_prefix:
        The YAML strings. The text is inserted between ``user_prefix`` and ``user_suffix``.
    name:
        The variant (``"one"``, ``"few"``, ``"three"``) or the path of a custom YAML; recorded in settings.
    use_chat_template:
        False only for a YAML with ``template: none``: prefix = user_prefix, suffix = user_suffix +
        assistant_prefix, no chat markup.
    k:
        The K the wording was adapted for (``None`` = as written in the file).
    """

    system: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    name: str
    use_chat_template: bool = True
    k: int | None = None

    def adapted(self, k: int) -> PromptTemplate:
        """Return the template with ``user_suffix`` and ``assistant_prefix`` adapted to ``k`` (§2.2)."""
        if k < 1:
            raise PromptError(f"k={k}: the number of representative tokens must be >= 1")
        if self.k is not None:
            raise PromptError(f"prompt {self.name!r} was already adapted to k={self.k}")
        return replace(
            self,
            user_suffix=adapt_for_k(self.user_suffix, k),
            assistant_prefix=adapt_for_k(self.assistant_prefix, k),
            k=k,
        )

    def sha256(self) -> str:
        """A digest of the four strings and the template switch (what changes the token layout)."""
        payload = json.dumps(
            [self.system, self.user_prefix, self.user_suffix, self.assistant_prefix, self.use_chat_template],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _from_mapping(data: object, origin: str, name: str) -> PromptTemplate:
    if not isinstance(data, Mapping):
        raise PromptError(f"{origin}: expected a YAML mapping with keys {PROMPT_KEYS}, got {type(data).__name__}")
    missing = [key for key in PROMPT_KEYS if key not in data]
    unknown = sorted(set(data) - set(PROMPT_KEYS) - {"template"})
    if missing or unknown:
        raise PromptError(
            f"{origin}: missing keys {missing} / unknown keys {unknown}; expected exactly "
            f"{PROMPT_KEYS} (plus optional 'template: none')"
        )
    values = {}
    for key in PROMPT_KEYS:
        value = data[key]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise PromptError(f"{origin}: key {key!r} must be a string, got {type(value).__name__}")
        values[key] = value
    template = data.get("template")
    if template not in (None, "none", "chat"):
        raise PromptError(f"{origin}: template={template!r}; only 'none' (no chat template) or 'chat' are known")
    return PromptTemplate(**values, name=name, use_chat_template=template != "none")


def load_prompt(prompt: str | Path | PromptTemplate, side: str) -> PromptTemplate:
    """Load a prompt by variant name or YAML path (not yet adapted to K).

    Parameters
    ----------
    prompt:
        ``"one"``, ``"few"`` or ``"three"`` (the shipped file for ``side``), a path to a YAML file with the
        keys ``system``, ``user_prefix``, ``user_suffix``, ``assistant_prefix``, or a ready
        :class:`PromptTemplate` (returned unchanged).
    side:
        ``"query"`` or ``"passage"``.

    Raises
    ------
    PromptError
        Unknown variant, missing file, or a YAML without exactly the four keys.
    """
    check_side(side)
    if isinstance(prompt, PromptTemplate):
        return prompt
    if isinstance(prompt, str) and prompt in PROMPT_VARIANTS:
        resource = resources.files("pyserini_diffretriever").joinpath(
            "resources", "prompts", f"{side}_prompt_{prompt}.yaml"
        )
        return _from_mapping(yaml.safe_load(resource.read_text(encoding="utf-8")), str(resource), prompt)
    path = Path(prompt)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise PromptError(f"prompt={str(prompt)!r}: expected one of {PROMPT_VARIANTS} or a path to a .yaml file")
    if not path.is_file():
        raise PromptError(f"prompt file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PromptError(f"{path}: not valid YAML ({error})") from error
    return _from_mapping(data, str(path), str(path))


def prompt_for(prompt: str | Path | PromptTemplate, side: str, k: int) -> PromptTemplate:
    """Load ``prompt`` for ``side`` and adapt its wording to ``k`` (unless it already is)."""
    template = load_prompt(prompt, side)
    if template.k is not None:
        if template.k != k:
            raise PromptError(f"prompt {template.name!r} is adapted to k={template.k}, not k={k}")
        return template
    return template.adapted(k)
