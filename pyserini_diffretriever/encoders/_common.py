"""What the document and query encoder classes share: one constructor, one settings object, one selector.

Pyserini's encoder contracts are two unrelated base classes (``DocumentEncoder``, ``QueryEncoder``); this
mixin sits in front of either so both take the same options -- the fields of
:class:`~pyserini_diffretriever.settings.EncoderSettings`, by keyword or in that order -- validated once by
:class:`~pyserini_diffretriever.encoders.model.SideEncoder`.
"""

from __future__ import annotations

import os

from ..backbones.base import LoadedBackbone
from ..settings import EncoderSettings
from .model import DiffRetrieverModel, RepresentationBatch, SideEncoder


def _pop_model_name(model_name_or_path, kwargs: dict, cls_name: str):
    """Accept Pyserini's ``model_name=`` spelling (removed from ``kwargs``)."""
    alias = kwargs.pop("model_name", None)
    if alias is not None:
        if model_name_or_path is not None:
            raise TypeError(f"{cls_name}: give model_name_or_path or model_name, not both")
        model_name_or_path = alias
    return model_name_or_path


class SideEncoderMixin:
    """Constructor and accessors shared by the two Pyserini encoder classes (``side`` set by each).

    Parameters
    ----------
    model_name_or_path : str, PathLike, LoadedBackbone or DiffRetrieverModel
        Checkpoint folder or hub id (also accepted as ``model_name=``), or a loaded model to share.
    *args, **kwargs
        The :class:`~pyserini_diffretriever.settings.EncoderSettings` options, in its field order or by name
        (``representation``, ``k``, ``prompt``, ``max_length``, ``device``, ``dtype``, ``adapter``, ``batch_size``,
        ``logits``, ``denoise_steps``, ``title_separator``, ``sparse_top_k``, ``quantization``, ``rounding``); their
        defaults are stated there, once (``k=None``: the backbone's K for the side).
    settings : EncoderSettings, optional
        All options at once; ``*args``/``**kwargs`` change it.
    """

    side: str

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | LoadedBackbone | DiffRetrieverModel | None = None,
        *args,
        settings: EncoderSettings | None = None,
        **kwargs,
    ) -> None:
        owner = type(self).__name__
        model_name_or_path = _pop_model_name(model_name_or_path, kwargs, owner)
        options = EncoderSettings.from_arguments(args, kwargs, owner, base=settings)
        if model_name_or_path is None:
            raise TypeError(f"{owner}: model_name_or_path is required")
        super().__init__()  # the Pyserini base class (QueryEncoder sets its lookup-table attributes)
        self._side = SideEncoder(model_name_or_path, self.side, options)
        self.has_model = True  # Pyserini's QueryEncoder flag: vectors come from a model, not a lookup table

    @property
    def model(self) -> DiffRetrieverModel:
        """The shared model (pass it to another encoder to reuse the weights)."""
        return self._side.model

    @property
    def representation(self) -> str:
        return self._side.representation

    @property
    def k(self) -> int:
        return self._side.k

    @property
    def dimension(self) -> int:
        """Hidden size H (the FAISS dimension of dense vectors)."""
        return self._side.dimension

    @property
    def options(self) -> EncoderSettings:
        """The options this encoder was built with (``k`` resolved to the backbone's default when not given)."""
        return self._side.options

    def _select(self, batch: RepresentationBatch):
        """This encoder's representation out of a batch holding all three."""
        if self.representation == "dense":
            return batch.dense
        if self.representation == "multi":
            return batch.multi
        return batch.impact

    def settings(self) -> dict:
        """What an index records / a query must match (backbone, vocabulary hash, K, prompt, ...)."""
        return self._side.settings()
