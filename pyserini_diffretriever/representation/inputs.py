"""Exact input construction: ``[pad…][prefix][text][suffix][MASK×K][tail×3]`` (docs/method.md §2.3-§2.4).

The prompt is rendered once per side with the tokenizer's own chat template around a sentinel and split
there, so the prefix/suffix ids are exactly what the reference builds. Texts are tokenised on their own
without special tokens and truncated to ``max_length - len(prefix) - len(suffix)`` tokens: ``max_length``
counts prompt + text, and the K masks and 3 tail tokens come on top (total ``<= max_length + K + 3``), as in
the reference's zero-shot encoders. Rows are left padded, so the K mask slots sit at positions
``L-K-3 … L-4`` of every row of a padded batch of length ``L``.

Special-token strings written inside a text (e.g. ``<|im_end|>``) are parsed as special tokens, as the
reference's tokenizer call does.

Autoregressive layout (``InputBuilder(..., autoregressive=True)``, the PromptReps baseline of docs/method.md §9):
``[pad…][prefix][text][suffix]`` -- the same prompts, chat template and sentinel split, the same text budget,
but no masks, no tail and no K-adaptation of the wording (the reference's zero-shot PromptReps does not
adapt it); the N representative tokens are generated after the suffix (:mod:`.generation`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backbones.base import BackboneSpec
from .prompts import PromptTemplate, check_side, load_prompt, prompt_for

SENTINEL = "XSENTINELX"
N_TAIL = 3


class InputError(ValueError):
    """The prompt, tokenizer or length settings cannot produce the DiffRetriever layout."""


def join_title(title: str | None, text: str | None, separator: str = ". ") -> str:
    """Join a title and a text as the reference's evaluation does (``title + ". " + text``).

    Returns the text alone when there is no (non-blank) title, and the title alone when the text is empty.
    """
    text = text or ""
    if title is None or not title.strip():
        return text
    return title + separator + text if text else title


def render_prompt_ids(tokenizer, prompt: PromptTemplate) -> tuple[list[int], list[int]]:
    """Token ids before and after the text for ``prompt`` (already adapted to K).

    With the chat template: messages ``[system, user(user_prefix + SENTINEL + user_suffix)]`` rendered with
    ``add_generation_prompt=True, tokenize=False`` and split at the sentinel; the prefix is the part before,
    the suffix the part after plus ``assistant_prefix`` (both encoded without added special tokens, so
    special-token strings of the template become their ids). With ``template: none``: prefix =
    ``user_prefix``, suffix = ``user_suffix + assistant_prefix``.
    """
    for key in ("system", "user_prefix", "user_suffix", "assistant_prefix"):
        if SENTINEL in getattr(prompt, key):
            raise InputError(f"prompt {prompt.name!r}: {key} contains the reserved sentinel {SENTINEL!r}")
    if not prompt.use_chat_template:
        before, after = prompt.user_prefix, prompt.user_suffix
    else:
        messages = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        messages.append({"role": "user", "content": prompt.user_prefix + SENTINEL + prompt.user_suffix})
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; use a prompt "
                "YAML with 'template: none' or a tokenizer that ships one"
            )
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(rendered, str) or rendered.count(SENTINEL) != 1:
            raise InputError(f"chat template output must contain the sentinel exactly once: {rendered!r}")
        before, after = rendered.split(SENTINEL)
    prefix = list(tokenizer.encode(before, add_special_tokens=False))
    suffix = list(tokenizer.encode(after + prompt.assistant_prefix, add_special_tokens=False))
    return prefix, suffix


def tail_ids(tokenizer, spec: BackboneSpec) -> list[int]:
    """The 3 fixed tokens after the masks (docs/method.md §1.4).

    Slot 1: the id of ``"`` when it is a single token, else EOS; slot 2: the chat end-of-turn id when it
    exists and differs from EOS; remaining slots: EOS.
    """
    quote = tokenizer.encode('"', add_special_tokens=False)
    tail = [int(quote[0]) if len(quote) == 1 else spec.eos_token_id]
    if spec.chat_end_token_id is not None and spec.chat_end_token_id != spec.eos_token_id:
        tail.append(int(spec.chat_end_token_id))
    while len(tail) < N_TAIL:
        tail.append(spec.eos_token_id)
    return tail[:N_TAIL]


@dataclass(frozen=True)
class EncodedBatch:
    """A left-padded batch in the DiffRetriever layout.

    Attributes
    ----------
    input_ids, attention_mask:
        ``[B, L]`` int64 tensors (mask 1 = real token, 0 = left padding).
    k:
        Number of mask slots; they occupy positions ``L-K-3 … L-4`` of every row.
    n_text_tokens:
        Text tokens kept per row (after truncation).
    truncated:
        Whether the text of each row was cut to fit ``max_length``.
    autoregressive:
        True for the PromptReps layout (rows end with the suffix; the ``k`` slots are generated, so the
        batch has no mask positions).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    k: int
    n_text_tokens: tuple[int, ...]
    truncated: tuple[bool, ...]
    autoregressive: bool = False

    @property
    def mask_start(self) -> int:
        """Index of the first mask slot (identical for every row thanks to left padding)."""
        if self.autoregressive:
            raise InputError("an autoregressive batch has no mask slots (its slots are generated)")
        return self.input_ids.shape[1] - self.k - N_TAIL

    @property
    def mask_positions(self) -> range:
        return range(self.mask_start, self.mask_start + self.k)


class InputBuilder:
    """Builds DiffRetriever inputs for one side (query or passage) of one backbone.

    Parameters
    ----------
    tokenizer:
        The backbone's tokenizer (a transformers tokenizer with a chat template).
    spec:
        The backbone's :class:`~pyserini_diffretriever.backbones.base.BackboneSpec` (mask, pad, EOS and
        chat-end ids).
    prompt:
        Variant name (``"one"``, ``"few"``, ``"three"``), YAML path, or :class:`PromptTemplate`; adapted to
        ``k`` here.
    k:
        Number of mask slots (representative tokens), >= 1.
    max_length:
        Token budget for prompt + text (the masks and the 3 tail tokens come on top).
    side:
        ``"query"`` or ``"passage"`` (selects the shipped YAML).
    title_separator:
        Used by :meth:`build` when titles are given.
    autoregressive:
        Build the PromptReps layout (no masks, no tail, wording not adapted to ``k``) for an autoregressive
        backbone; ``k`` is then the number of slots to generate.

    Raises
    ------
    InputError
        ``k < 1``, a diffusion layout for a backbone without mask token, or a ``max_length`` that leaves no
        room for text.
    """

    def __init__(
        self,
        tokenizer,
        spec: BackboneSpec,
        prompt: str | Path | PromptTemplate,
        k: int,
        max_length: int,
        side: str,
        *,
        title_separator: str = ". ",
        autoregressive: bool = False,
    ) -> None:
        check_side(side)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError(f"k={k!r}: the number of representative tokens must be an integer >= 1")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise InputError(f"max_length={max_length!r}: expected a positive integer")
        if spec.mask_token_id is None and not autoregressive:
            raise InputError(
                f"backbone {spec.name_or_path!r} ({spec.model_type}) has no mask token; "
                "DiffRetriever inputs need a diffusion backbone"
            )
        self.tokenizer = tokenizer
        self.spec = spec
        self.side = side
        self.k = k
        self.max_length = max_length
        self.title_separator = title_separator
        self.autoregressive = bool(autoregressive)
        # PromptReps (zero-shot) keeps the YAML wording as written; DiffRetriever adapts it to K (§2.2).
        self.prompt = load_prompt(prompt, side) if self.autoregressive else prompt_for(prompt, side, k)
        self.prefix_ids, self.suffix_ids = render_prompt_ids(tokenizer, self.prompt)
        self.tail_ids = [] if self.autoregressive else tail_ids(tokenizer, spec)
        self.mask_token_id = None if self.autoregressive else int(spec.mask_token_id)
        self.pad_token_id = int(spec.pad_token_id)
        prompt_tokens = len(self.prefix_ids) + len(self.suffix_ids)
        self.text_budget = max_length - prompt_tokens
        if self.text_budget < 1:
            raise InputError(
                f"max_length={max_length} leaves no room for text: the {side} prompt {self.prompt.name!r} "
                f"alone takes {prompt_tokens} tokens (prefix {len(self.prefix_ids)} + suffix "
                f"{len(self.suffix_ids)}); use max_length > {prompt_tokens}"
            )

    # -- text side ---------------------------------------------------------------------------------
    def join(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> list[str]:
        """Apply :func:`join_title` row-wise (texts unchanged when ``titles`` is None)."""
        if titles is None:
            return [text or "" for text in texts]
        if len(titles) != len(texts):
            raise InputError(f"got {len(titles)} titles for {len(texts)} texts")
        return [join_title(title, text, self.title_separator) for title, text in zip(titles, texts)]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text on its own (no special tokens added), not truncated."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def row(self, text_ids: Sequence[int]) -> list[int]:
        """The full unpadded id row for one (already tokenised, possibly long) text."""
        row = self.prefix_ids + list(text_ids[: self.text_budget]) + self.suffix_ids
        if self.autoregressive:
            return row
        return row + [self.mask_token_id] * self.k + self.tail_ids

    def row_length(self, text_ids: Sequence[int]) -> int:
        """Length of :meth:`row` without building it: prompt + truncated text + slots and tail."""
        extra = 0 if self.autoregressive else self.k + len(self.tail_ids)
        return len(self.prefix_ids) + min(len(text_ids), self.text_budget) + len(self.suffix_ids) + extra

    def collate(self, texts_ids: Sequence[Sequence[int]]) -> EncodedBatch:
        """Truncate, wrap and left-pad pre-tokenised texts into one batch."""
        if not texts_ids:
            raise InputError("cannot build an empty batch")
        rows = [self.row(ids) for ids in texts_ids]
        length = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, length - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, length - len(row) :] = 1
        return EncodedBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            k=self.k,
            n_text_tokens=tuple(min(len(ids), self.text_budget) for ids in texts_ids),
            truncated=tuple(len(ids) > self.text_budget for ids in texts_ids),
            autoregressive=self.autoregressive,
        )

    def build(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> EncodedBatch:
        """Join titles, tokenise, truncate, wrap and left-pad ``texts`` into one batch."""
        return self.collate(self.tokenize(self.join(texts, titles)))

    # -- provenance ----------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of everything around the text (prefix, suffix, mask, K, tail, budget, layout)."""
        fields = {
            "prefix": self.prefix_ids,
            "suffix": self.suffix_ids,
            "mask": self.mask_token_id,
            "k": self.k,
            "tail": self.tail_ids,
            "max_length": self.max_length,
        }
        if self.autoregressive:  # the diffusion payload (and hence existing fingerprints) stays unchanged
            fields["layout"] = "autoregressive"
        payload = json.dumps(fields)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
