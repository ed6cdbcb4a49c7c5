"""Length-bucketed and token-budget batches: which texts share a forward pass, and what that pass costs.

Why: a left-padded batch computes ``rows x longest row`` tokens. Batched in corpus order, CISI abstracts with the
Dream prompt and 16 slots compute 1.47x (batch 8) to 1.83x (batch 32) their real tokens; batched after sorting by
length, 1.03-1.04x (docs/scale.md, "Encoding cost"). sentence-transformers' ``encode`` and Tevatron sort the same
way; :func:`plan_batches` is that sort plus the token budget fairseq (``--max-tokens``) and vLLM
(``max_num_batched_tokens``) batch by, so long texts cannot run a device out of memory and short ones fill it.

A *length* here is a whole input row: prompt + text (after truncation) + the K slots and tail tokens, exactly what
:meth:`InputBuilder.row_length <pyserini_diffretriever.representation.inputs.InputBuilder.row_length>` returns.
Pure Python; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TokenBudgetError", "TokenCount", "batch_cost", "plan_batches"]


class TokenBudgetError(ValueError):
    """A token budget smaller than one input row: that text could never be encoded under it."""


@dataclass(frozen=True)
class TokenCount:
    """Tokens of encoded rows: ``real`` (prompt + text + slots) and ``computed`` (padding included).

    ``computed / real`` is the padding waste a batching order costs; the encode log and manifests report both.
    """

    real: int = 0
    computed: int = 0

    def __add__(self, other: TokenCount) -> TokenCount:
        return TokenCount(self.real + other.real, self.computed + other.computed)

    @property
    def ratio(self) -> float:
        """``computed / real`` (1.0 when nothing was encoded)."""
        return self.computed / self.real if self.real else 1.0

    def record(self) -> dict[str, int]:
        """The manifests' and progress file's ``tokens`` record."""
        return {"real": self.real, "computed": self.computed}

    @classmethod
    def from_record(cls, record: dict[str, int] | None) -> TokenCount:
        return cls(int(record["real"]), int(record["computed"])) if record else cls()


def batch_cost(lengths: Sequence[int]) -> TokenCount:
    """What one left-padded batch of rows of these lengths costs."""
    return TokenCount(sum(lengths), len(lengths) * max(lengths, default=0))


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None = None,
    *,
    sort: bool = True,
    names: Sequence[str] | None = None,
) -> list[list[int]]:
    """Group row indexes into batches: longest first, at most ``batch_size`` rows and ``max_tokens`` computed tokens.

    Parameters
    ----------
    lengths:
        Row length of each text (prompt + text + slots), in input order.
    batch_size:
        Most rows per batch (a cap; a token budget may make batches smaller).
    max_tokens:
        Most computed tokens per batch, ``rows x longest row`` (``None``: no budget).
    sort:
        Sort by length, longest first (ties in input order, so the plan is deterministic and the first batch is
        the largest: a device that runs out of memory does so at once). ``False`` keeps input order.
    names:
        What to call each row in an error (e.g. document ids); default ``text <index>``.

    Returns
    -------
    list of list of int
        Indexes into ``lengths``; every index appears exactly once.

    Raises
    ------
    TokenBudgetError
        A row longer than ``max_tokens`` (the first such row is named with its length).
    ValueError
        ``batch_size`` or ``max_tokens`` below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}: expected >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    if max_tokens is not None:
        for i in order:
            if lengths[i] > max_tokens:
                name = names[i] if names is not None else f"text {i}"
                raise TokenBudgetError(
                    f"{name} is {lengths[i]} tokens long (prompt + text + slots), more than the token budget "
                    f"max_tokens={max_tokens}; raise --max-tokens to at least {lengths[i]} or lower --max-length"
                )
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        widest = max(longest, lengths[i])
        if current and (
            len(current) == batch_size or (max_tokens is not None and widest * (len(current) + 1) > max_tokens)
        ):
            batches.append(current)
            current, widest = [], lengths[i]
        current.append(i)
        longest = widest
    if current:
        batches.append(current)
    return batches
