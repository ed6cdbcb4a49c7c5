"""Encoder settings: the one definition of the options an encoder side takes, and of their defaults.

Why one module: the same options (representation, K, prompt, read-out and sparse settings, ...) are taken by the
encode CLI, by :class:`~pyserini_diffretriever.encoders.DiffRetrieverDocumentEncoder` /
:class:`~pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` (through
:class:`~pyserini_diffretriever.encoders.model.SideEncoder`), recorded in every manifest, and compared by the
searchers. :class:`EncoderSettings` lists them once; :class:`QuerySettings` is the manifest's ``query`` record (what
an index expects of its queries). The module is a leaf without torch, so writers and searchers can import it.

Each default is stated here once (the CLIs and library functions that take the same option refer to these names), and
each value is checked once: :class:`EncoderSettings` checks its own fields when built (:func:`check_positive_int` is
the one rule for counts), :class:`~pyserini_diffretriever.representation.readout.ReadoutConfig` the read-out and
impact fields, and :class:`~pyserini_diffretriever.encoders.model.SideEncoder` what needs the backbone (the prompt,
shifted logits).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_QUANTIZATION",
    "PROMPT_HASH_PREFIX",
    "PROMPT_VARIANTS",
    "REPRESENTATIONS",
    "EncoderSettings",
    "QuerySettings",
    "check_positive_int",
]

REPRESENTATIONS: tuple[str, ...] = ("dense", "multi", "impact")
"""What one forward pass yields (``docs/method.md`` §4-§5); also the encode CLI's ``--representation`` choices."""

PROMPT_VARIANTS: tuple[str, ...] = ("one", "few", "three")
"""The shipped prompt variants (``docs/method.md`` §2); anything else is a path to a prompt YAML."""

DEFAULT_BATCH_SIZE = 16
"""Texts per forward pass (the encode CLI's ``--batch-size``, the encoders' ``batch_size``)."""

DEFAULT_MAX_LENGTH = 512
"""Token budget of prompt + text, per side."""

DEFAULT_QUANTIZATION = 100.0
"""Impact scale: integer weight = ``trunc(100 * w)`` (``docs/method.md`` §5); recorded in impact manifests."""

PROMPT_HASH_PREFIX = "sha256:"
"""``query.prompt`` of a custom YAML: this prefix + the YAML's content hash (``PromptTemplate.sha256``)."""

_INHERITED = {"inherited_by_queries": True}  # document-side settings a query encoder built from a manifest takes


@dataclass(frozen=True)
class EncoderSettings:
    """The options of one encoder side, with their defaults (the encoder classes' keyword arguments, in order).

    Attributes
    ----------
    representation : {"dense", "multi", "impact"}
        What ``encode`` returns.
    k : int, optional
        Mask slots (autoregressive backbones: generated slots); ``None``: the K an adapter was trained with, else the
        backbone's default for the side.
    prompt : str, PathLike or PromptTemplate
        ``"one"``, ``"few"``, ``"three"`` or a prompt YAML.
    max_length : int
        Token budget of prompt + text.
    device, dtype, adapter
        Where and how the backbone is loaded (ignored for an already loaded model).
    batch_size : int
        Texts per forward pass.
    logits : {"unshifted", "shifted"}
        Vocabulary read-out alignment.
    denoise_steps : int
        Forward passes S over the mask slots.
    title_separator : str
        Joins title and text.
    sparse_top_k, quantization, rounding
        Impact settings: entries kept per slot, integer scale and ``"truncate"``/``"round"``.
    """

    representation: str = "dense"
    k: int | None = None
    prompt: Any = "few"
    max_length: int = DEFAULT_MAX_LENGTH
    device: Any = "cpu"
    dtype: Any = "float32"
    adapter: str | os.PathLike | None = field(default=None, metadata=_INHERITED)
    batch_size: int = DEFAULT_BATCH_SIZE
    logits: str = field(default="unshifted", metadata=_INHERITED)
    denoise_steps: int = field(default=1, metadata=_INHERITED)
    title_separator: str = ". "
    sparse_top_k: int = field(default=128, metadata=_INHERITED)
    quantization: float = field(default=DEFAULT_QUANTIZATION, metadata=_INHERITED)
    rounding: str = field(default="truncate", metadata=_INHERITED)

    def __post_init__(self) -> None:
        """Check the fields that need neither torch nor the backbone (the read-out ones: ``ReadoutConfig``)."""
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation={self.representation!r}: expected one of {REPRESENTATIONS}")
        for name in ("max_length", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if self.k is not None:
            check_positive_int("k", self.k)
        if not isinstance(self.title_separator, str):
            raise ValueError(f"title_separator={self.title_separator!r}: expected a string")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in constructor order."""
        return tuple(item.name for item in dataclasses.fields(cls))

    @classmethod
    def inherited_by_queries(cls) -> tuple[str, ...]:
        """Document-side options that a query encoder built from an index manifest takes over.

        The others are side-specific (K, prompt, max_length, batch size, title separator) or runtime choices
        (device, dtype).
        """
        return tuple(item.name for item in dataclasses.fields(cls) if item.metadata.get("inherited_by_queries"))

    @classmethod
    def from_arguments(
        cls,
        args: tuple = (),
        kwargs: Mapping[str, Any] | None = None,
        owner: str = "encoder",
        base: EncoderSettings | None = None,
    ) -> EncoderSettings:
        """Build from a constructor call's extra positional and keyword arguments (positional in field order).

        The options given change ``base`` (default: the defaults).

        Raises
        ------
        TypeError
            Too many positional arguments, an unknown keyword, or one option given twice.
        """
        names = cls.names()
        kwargs = dict(kwargs or {})
        if len(args) > len(names):
            raise TypeError(f"{owner}: takes at most {len(names)} settings positionally, got {len(args)}")
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"{owner}: unexpected keyword arguments {unknown}")
        positional = dict(zip(names, args, strict=False))
        twice = sorted(set(positional) & set(kwargs))
        if twice:
            raise TypeError(f"{owner}: got multiple values for {twice}")
        return dataclasses.replace(base or cls(), **positional, **kwargs)

    @classmethod
    def given(cls, **options: Any) -> EncoderSettings:
        """The defaults, changed by the options that are not ``None`` (the CLI's unset options keep defaults)."""
        return cls(**{name: value for name, value in options.items() if value is not None})

    def replace(self, **changes: Any) -> EncoderSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def readout_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~pyserini_diffretriever.representation.readout.ReadoutConfig`."""
        return {
            "logits": self.logits,
            "denoise_steps": self.denoise_steps,
            "sparse_top_k": self.sparse_top_k,
            "quantization": float(self.quantization),
            "rounding": self.rounding,
        }

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~pyserini_diffretriever.backbones.load_backbone` (via the model)."""
        return {"dtype": self.dtype, "device": self.device, "adapter": self.adapter}


@dataclass(frozen=True)
class QuerySettings:
    """What an index expects of its queries: the manifest's ``query`` record (``docs/method.md`` §10).

    The query K and prompt legitimately differ from the documents' (Dream: K_q=4, K_p=16), so the searchers compare
    a query encoder with this record rather than with the document settings.

    Attributes
    ----------
    k : int
        Query K.
    prompt : str
        The variant name, or ``"sha256:<YAML content hash>"`` for a custom YAML.
    prompt_sha256 : str
        Digest of the K-adapted query prompt, as the query encoder's ``settings()`` reports it.
    max_length : int
        Query token budget.
    prompt_file : str, optional
        Absolute path of a custom query prompt YAML at encode time.
    """

    k: int
    prompt: str
    prompt_sha256: str
    max_length: int
    prompt_file: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON record (``prompt_file`` only for a custom YAML)."""
        record: dict[str, Any] = {
            "k": self.k,
            "prompt": self.prompt,
            "prompt_sha256": self.prompt_sha256,
            "max_length": self.max_length,
        }
        if self.prompt_file is not None:
            record["prompt_file"] = self.prompt_file
        return record


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1 (not a bool); else raise ``ValueError`` naming ``name``.

    The one rule for counts (K, lengths, batch sizes, steps), wherever they arrive.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    return value
