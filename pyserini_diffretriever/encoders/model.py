"""The shared DiffRetriever model: one loaded backbone, any number of side encoders.

:class:`DiffRetrieverModel` owns the weights (loaded once) and per-(side, K, prompt, max_length) input
builders; :meth:`DiffRetrieverModel.encode_side` turns texts into all three representations from one
forward pass per batch. :class:`SideEncoder` holds the validated settings of one side (query or passage)
and is what the Pyserini encoder classes delegate to, so a query and a document encoder can share one
model (pass the same :class:`DiffRetrieverModel` to both).

An autoregressive backbone (``spec.family == "autoregressive"``: Qwen2 / Llama causal LMs) runs the
PromptReps baseline through the same classes (docs/method.md §9): the same prompts without masks, tail or
K-adaptation, and the K slots generated one by one with a KV cache
(:func:`~pyserini_diffretriever.representation.generation.generate_representatives`); the dense, multi and
impact outputs are built by the same code. K is then PromptReps' N (default 4 on both sides).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..backbones.base import LoadedBackbone
from ..representation.content_words import content_token_ids
from ..representation.dense import multi_vectors, single_vector
from ..representation.generation import ar_stop_token_ids, generate_representatives
from ..representation.inputs import InputBuilder
from ..representation.prompts import PromptError, PromptTemplate, check_side, load_prompt
from ..representation.readout import ReadoutConfig, read_out, stop_token_ids
from ..representation.terms import TermVocabulary, term_vocabulary, vocabulary_fingerprint
from ..settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    PROMPT_VARIANTS,
    REPRESENTATIONS,
    EncoderSettings,
    check_positive_int,
)

logger = logging.getLogger(__name__)

_DEFAULTS = EncoderSettings()
SETTINGS_VERSION = 1

#: Keys of :meth:`SideEncoder.settings` that must be equal for an index (passage side) and the queries searched
#: against it. K, prompt, side and max_length legitimately differ per side; backbone/adapter names are
#: provenance (a hub id and a local copy of it are the same model) and the dtype may differ.
SHARED_SETTINGS: tuple[str, ...] = (
    "model_type",
    "vocabulary_sha256",
    "hidden_size",
    "mask_token_id",
    "logits",
    "denoise_steps",
    "quantization",
    "rounding",
)

FAMILIES: tuple[str, ...] = ("diffusion", "autoregressive")

#: How each stop set of the backbone registry (:data:`~pyserini_diffretriever.backbones.STOP_SETS`) is computed.
STOP_SET_FUNCTIONS = {
    "special-except-mask": lambda tokenizer, spec: stop_token_ids(tokenizer, spec.mask_token_id),
    "special-and-quote": lambda tokenizer, spec: ar_stop_token_ids(tokenizer),
}


def _registered_family(model_type: str):
    """The registry entry of ``model_type`` (any letter case), or ``None`` for an unregistered one."""
    from ..backbones import UnsupportedBackboneError, get_family

    try:
        return get_family(model_type)
    except UnsupportedBackboneError:
        return None


@dataclass
class RepresentationBatch:
    """All representations of a list of texts, in input order.

    Attributes
    ----------
    multi:
        Per text a ``[K', H]`` float32 array of L2-normalised slot vectors (truncated slots removed,
        at least one row).
    dense:
        ``[B, H]`` float32 single vectors (masked mean of the normalised slots, not re-normalised).
    impact:
        Per text ``{term: weight}`` with plain Python ints (Lucene impact terms).
    impact_ids:
        The same vectors keyed by token id.
    """

    multi: list[np.ndarray] = field(default_factory=list)
    dense: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    impact: list[dict[str, int]] = field(default_factory=list)
    impact_ids: list[dict[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.dense.shape[0])


class DiffRetrieverModel:
    """A loaded backbone (diffusion, or autoregressive for the PromptReps baseline) plus per-side caches.

    Parameters
    ----------
    model:
        A local checkpoint folder or hub id (loaded with
        :func:`pyserini_diffretriever.backbones.load_backbone`), or an already :class:`LoadedBackbone`.
    dtype, device, adapter:
        Passed to ``load_backbone`` when ``model`` is a name or path; ignored (must be defaults) otherwise.
    """

    def __init__(
        self,
        model: str | os.PathLike | LoadedBackbone,
        *,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        adapter: str | os.PathLike | None = None,
    ) -> None:
        if isinstance(model, LoadedBackbone):
            if adapter is not None:
                raise ValueError("adapter= applies when loading by name; the given LoadedBackbone is already built")
            self.backbone = model
        else:
            from ..backbones import load_backbone

            self.backbone = load_backbone(model, dtype=dtype, device=device, adapter=adapter)
        if self.spec.family not in FAMILIES:
            raise ValueError(
                f"{self.spec.name_or_path!r} ({self.spec.model_type}) has backbone family "
                f"{self.spec.family!r}; expected one of {FAMILIES}"
            )
        if self.spec.family == "diffusion" and self.spec.mask_token_id is None:
            raise ValueError(
                f"{self.spec.name_or_path!r} ({self.spec.model_type}) is a diffusion backbone "
                "without a mask token; DiffRetriever needs one"
            )
        self._builders: dict[tuple, InputBuilder] = {}
        self._stop_ids: frozenset[int] | None = None
        self._fingerprint: str | None = None

    @classmethod
    def resolve(
        cls, model: str | os.PathLike | LoadedBackbone | DiffRetrieverModel, **load_kwargs
    ) -> DiffRetrieverModel:
        """Return ``model`` itself if it already is a :class:`DiffRetrieverModel`, else build one."""
        if isinstance(model, DiffRetrieverModel):
            return model
        return cls(model, **load_kwargs)

    # -- facts -------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def spec(self):
        return self.backbone.spec

    @property
    def autoregressive(self) -> bool:
        """True for the PromptReps baseline (slots generated one by one), False for DiffRetriever."""
        return self.spec.family == "autoregressive"

    @property
    def hidden_size(self) -> int:
        return int(self.spec.hidden_size)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.dtype

    @property
    def stop_ids(self) -> frozenset[int]:
        """Slot-truncating token ids: the registry entry's stop set (by family for unregistered backbones)."""
        if self._stop_ids is None:
            family = _registered_family(self.spec.model_type)
            if family is not None:
                stop_set = family.stop_set
            else:
                stop_set = "special-and-quote" if self.autoregressive else "special-except-mask"
            self._stop_ids = frozenset(STOP_SET_FUNCTIONS[stop_set](self.tokenizer, self.spec))
        return self._stop_ids

    @property
    def terms(self) -> TermVocabulary:
        """The checked id -> Lucene term table (raises ``TermStringError`` for unusable vocabularies)."""
        return term_vocabulary(self.tokenizer)

    @property
    def vocabulary_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = vocabulary_fingerprint(self.tokenizer)
        return self._fingerprint

    def default_k(self, side: str) -> int:
        """K of ``side`` when none is given (:func:`~pyserini_diffretriever.backbones.resolve_k`).

        What a merged adapter was trained with, else the backbone registry's default.
        """
        from ..backbones import resolve_k

        check_side(side)
        return resolve_k(self.spec, side)

    def input_builder(
        self, side: str, k: int, prompt: str | Path | PromptTemplate, max_length: int, title_separator: str = ". "
    ) -> InputBuilder:
        """The (cached) :class:`InputBuilder` for these settings."""
        prompt_key = prompt if isinstance(prompt, PromptTemplate) else str(prompt)
        key = (side, k, prompt_key, max_length, title_separator)
        builder = self._builders.get(key)
        if builder is None:
            builder = InputBuilder(
                self.tokenizer,
                self.spec,
                prompt,
                k,
                max_length,
                side,
                title_separator=title_separator,
                autoregressive=self.autoregressive,
            )
            self._builders[key] = builder
        return builder

    # -- encoding ------------------------------------------------------------------------------------
    def encode_side(
        self,
        texts: Sequence[str],
        side: str,
        *,
        k: int | None = None,
        prompt: str | Path | PromptTemplate = _DEFAULTS.prompt,
        max_length: int = DEFAULT_MAX_LENGTH,
        titles: Sequence[str | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        readout: ReadoutConfig = ReadoutConfig(),
        title_separator: str = _DEFAULTS.title_separator,
        representations: Iterable[str] = REPRESENTATIONS,
        fp16: bool = False,
    ) -> RepresentationBatch:
        """Encode ``texts`` for one side; every requested representation comes from the same pass.

        Texts are sorted by token length inside the call (less padding per batch) and returned in input
        order. Representations not requested are left empty (``impact`` skips the content-word filter).

        Parameters
        ----------
        texts, titles:
            Texts and optional titles (joined as ``title + title_separator + text``).
        side:
            ``"query"`` or ``"passage"``.
        k:
            Mask slots (autoregressive backbones: slots generated, PromptReps' N); ``None`` takes
            :meth:`default_k` for this model and side.
        prompt, max_length:
            Prompt variant/YAML and the prompt + text token budget.
        batch_size:
            Texts per forward pass.
        readout:
            Logit alignment, denoising steps and sparse settings.
        representations:
            Any of ``"dense"``, ``"multi"``, ``"impact"``.
        fp16:
            Run the backbone under float16 autocast (CUDA only; the caller warns elsewhere).
        """
        wanted = set(representations)
        unknown = wanted - set(REPRESENTATIONS)
        if unknown:
            raise ValueError(f"unknown representations {sorted(unknown)}; expected a subset of {REPRESENTATIONS}")
        check_positive_int("batch_size", batch_size)
        k = self.default_k(side) if k is None else k
        builder = self.input_builder(side, k, prompt, max_length, title_separator)
        texts = builder.join(list(texts), None if titles is None else list(titles))
        result = _empty_batch(len(texts), self.hidden_size, wanted)
        if not texts:
            return result
        terms = self.terms if "impact" in wanted else None  # checked before the first forward pass
        text_ids = builder.tokenize(texts)
        order = sorted(range(len(texts)), key=lambda i: -min(len(text_ids[i]), builder.text_budget))
        n_truncated = 0
        with torch.inference_mode(), self._autocast(fp16):
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                batch = builder.collate([text_ids[i] for i in rows])
                n_truncated += sum(batch.truncated)
                out = self._read_batch(batch, [texts[i] for i in rows], k, readout, terms is not None)
                self._store(result, rows, out, "multi" in wanted, terms)
        if n_truncated:
            logger.debug(
                "%d of %d %s texts were truncated to %d text tokens", n_truncated, len(texts), side, builder.text_budget
            )
        return result

    def _autocast(self, fp16: bool):
        """float16 autocast on CUDA when asked, else nothing."""
        if fp16 and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _read_batch(self, batch, texts: list[str], k: int, readout: ReadoutConfig, sparse: bool):
        """One batch's :class:`~..representation.readout.Readout`: K mask slots, or K generated slots (PromptReps)."""
        content = content_token_ids(texts, self.tokenizer) if sparse else None
        if self.autoregressive:
            return generate_representatives(
                self.backbone.model, batch, k, config=readout, stop_ids=self.stop_ids, content_ids=content
            )
        return read_out(self.backbone.model, batch, config=readout, stop_ids=self.stop_ids, content_ids=content)

    @staticmethod
    def _store(result: RepresentationBatch, rows: list[int], out, multi: bool, terms: TermVocabulary | None) -> None:
        """Write one batch's dense, multi and impact vectors into ``result`` at the texts' input positions."""
        dense = single_vector(out.dense, out.slot_mask).cpu().numpy()
        multi = multi_vectors(out.dense, out.slot_mask) if multi else None
        sparse = out.sparse() if terms is not None else None
        for j, i in enumerate(rows):
            result.dense[i] = dense[j]
            if multi is not None:
                result.multi[i] = multi[j]
            if sparse is not None:
                result.impact_ids[i] = sparse[j]
                result.impact[i] = terms.to_terms(sparse[j])


def _empty_batch(n: int, hidden_size: int, wanted: set[str]) -> RepresentationBatch:
    """A result for ``n`` texts: zero dense rows, and slots for the other requested representations."""
    return RepresentationBatch(
        multi=[None] * n if "multi" in wanted else [],  # type: ignore[list-item]
        dense=np.zeros((n, hidden_size), dtype=np.float32),
        impact=[None] * n if "impact" in wanted else [],  # type: ignore[list-item]
        impact_ids=[None] * n if "impact" in wanted else [],  # type: ignore[list-item]
    )


def _check_prompt(options: EncoderSettings, side: str) -> None:
    """The prompt variant or YAML must load for ``side`` (the other fields checked themselves when built)."""
    try:
        load_prompt(options.prompt, side)
    except PromptError as error:
        raise ValueError(f"prompt={str(options.prompt)!r}: {error} (variants: {PROMPT_VARIANTS})") from error


def _load_model(model, options: EncoderSettings) -> DiffRetrieverModel:
    """The shared model: ``model`` itself when already loaded (load options ignored), else loaded now."""
    if isinstance(model, (DiffRetrieverModel, LoadedBackbone)):
        defaults = EncoderSettings()
        if (
            str(options.device) != "cpu"
            or str(options.dtype).removeprefix("torch.") != defaults.dtype
            or options.adapter is not None
        ):
            logger.warning("device/dtype/adapter are ignored for an already loaded model")
        return DiffRetrieverModel.resolve(model)
    return DiffRetrieverModel(model, **options.load_options())


def _check_backbone_options(model: DiffRetrieverModel, options: EncoderSettings) -> None:
    """Refuse read-out options the backbone cannot honour."""
    if model.autoregressive and (options.logits != "unshifted" or options.denoise_steps != 1):
        raise ValueError(
            f"backbone {model.spec.model_type!r} is autoregressive (PromptReps): its slots "
            f"are generated one by one, so logits must be 'unshifted' and denoise_steps 1 "
            f"(got {options.logits!r}, {options.denoise_steps})"
        )
    if options.logits == "shifted" and not model.spec.logits_shifted:
        raise ValueError(
            f"logits='shifted' needs next-token-aligned logits; backbone "
            f"{model.spec.model_type!r} has none (use 'unshifted')"
        )


class SideEncoder:
    """Validated settings of one encoder side plus its model; shared by the Pyserini encoder classes.

    Everything is checked at construction, each setting in its one place: :class:`EncoderSettings` its own fields
    (``representation``, positive ``k``, ``max_length``, ``batch_size``), :class:`ReadoutConfig` the read-out and
    impact fields, and here what needs the backbone: the ``prompt`` (variant or existing YAML), ``logits="shifted"``
    only for backbones with ``spec.logits_shifted``, a ``max_length`` that leaves room for text, and for impact
    encoders a vocabulary that yields valid Lucene terms.

    Parameters
    ----------
    model : str, PathLike, LoadedBackbone or DiffRetrieverModel
        What to load, or the loaded model to share.
    side : {"query", "passage"}
    settings : EncoderSettings, optional
        The options (default: the defaults); keyword ``options`` (the same names) change it.
    """

    def __init__(
        self,
        model: str | os.PathLike | LoadedBackbone | DiffRetrieverModel,
        side: str,
        settings: EncoderSettings | None = None,
        **options,
    ) -> None:
        options = (settings or EncoderSettings()).replace(**options)
        check_side(side)
        _check_prompt(options, side)
        self.readout = ReadoutConfig(**options.readout_options())
        self.model = _load_model(model, options)
        _check_backbone_options(self.model, options)
        self.side = side
        self.representation = options.representation
        self.k = self.model.default_k(side) if options.k is None else options.k
        self.options = options.replace(k=self.k)
        self.prompt = options.prompt
        self.max_length = options.max_length
        self.batch_size = options.batch_size
        self.title_separator = options.title_separator
        self.builder = self.model.input_builder(side, self.k, self.prompt, self.max_length, self.title_separator)
        if self.representation == "impact":
            _ = self.model.terms  # fail now, not at the first batch, if the vocabulary is unusable

    @property
    def dimension(self) -> int:
        return self.model.hidden_size

    def encode(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None] | None = None,
        *,
        max_length: int | None = None,
        fp16: bool = False,
        representations: Iterable[str] | None = None,
    ) -> RepresentationBatch:
        """Encode with this side's settings (``max_length`` overrides the constructor's for one call)."""
        if max_length is not None:
            check_positive_int("max_length", max_length)
        if fp16 and self.model.device.type != "cuda":
            logger.warning(
                "fp16=True ignored: float16 autocast is only used on CUDA; keeping %s on %s",
                self.model.dtype,
                self.model.device,
            )
        return self.model.encode_side(
            texts,
            self.side,
            k=self.k,
            prompt=self.prompt,
            max_length=self.max_length if max_length is None else max_length,
            titles=titles,
            batch_size=self.batch_size,
            readout=self.readout,
            title_separator=self.title_separator,
            representations=REPRESENTATIONS if representations is None else representations,
            fp16=fp16,
        )

    def settings(self) -> dict:
        """Everything that must match between an index and its queries (plus provenance)."""
        spec = self.model.spec
        builder = self.builder
        return {
            "settings_version": SETTINGS_VERSION,
            "backbone": spec.name_or_path,
            "model_type": spec.model_type,
            "family": spec.family,
            "revision": spec.revision,
            "adapter": spec.adapter,
            "adapter_sha256": spec.extra.get("adapter_sha256"),
            "vocabulary_sha256": self.model.vocabulary_fingerprint,
            "tokenizer_size": len(self.model.tokenizer),
            "vocab_size": int(spec.vocab_size),
            "hidden_size": int(spec.hidden_size),
            "mask_token_id": None if spec.mask_token_id is None else int(spec.mask_token_id),
            "side": self.side,
            "representation": self.representation,
            "k": self.k,
            "prompt": builder.prompt.name,
            "prompt_sha256": builder.prompt.sha256(),
            "prompt_ids_sha256": builder.fingerprint(),
            "max_length": self.max_length,
            "title_separator": self.title_separator,
            "logits": self.readout.logits,
            "denoise_steps": self.readout.denoise_steps,
            "sparse_top_k": self.readout.sparse_top_k,
            "quantization": self.readout.quantization,
            "rounding": self.readout.rounding,
            "stop_token_ids": sorted(self.model.stop_ids),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "dense": "per-slot L2 normalisation; single = masked mean, not re-normalised",
        }
