"""pyserini-diffretriever: DiffRetriever (diffusion-LM representative tokens) as a Pyserini plugin.

Importing the package only prepares Java for Pyserini (see :mod:`pyserini_diffretriever._java`); torch,
transformers, faiss and the JVM are imported lazily when a public name is first used.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from . import _java
from ._version import __version__

logger = logging.getLogger(__name__)

try:
    _java.prepare_jvm()
except _java.JavaSetupError as error:  # dense-only work needs no JVM: fail when Java is actually used
    logger.warning("%s", error)

# public name -> module that defines it
_LAZY = {
    "DiffRetrieverDocumentEncoder": "pyserini_diffretriever.encoders",
    "DiffRetrieverQueryEncoder": "pyserini_diffretriever.encoders",
    "DiffRetrieverModel": "pyserini_diffretriever.encoders",
    "EncoderSettings": "pyserini_diffretriever.settings",
    "encode_corpus": "pyserini_diffretriever.pipeline",
    "load_backbone": "pyserini_diffretriever.backbones",
    "MultiVectorSearcher": "pyserini_diffretriever.search",
    "fuse_min_max": "pyserini_diffretriever.search",
    "MinMaxHybridSearcher": "pyserini_diffretriever.search",
    "open_searcher": "pyserini_diffretriever.search",
}

__all__ = [
    "DiffRetrieverDocumentEncoder",
    "DiffRetrieverModel",
    "DiffRetrieverQueryEncoder",
    "EncoderSettings",
    "MinMaxHybridSearcher",
    "MultiVectorSearcher",
    "__version__",
    "encode_corpus",
    "fuse_min_max",
    "load_backbone",
    "open_searcher",
    "require_jvm",
]
assert set(__all__) == set(_LAZY) | {"__version__", "require_jvm"}


def require_jvm() -> None:
    """Raise :class:`pyserini_diffretriever._java.JavaSetupError` unless Java >= 21 is ready for Pyserini."""
    _java.prepare_jvm()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pyserini_diffretriever' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .backbones import load_backbone
    from .encoders import DiffRetrieverDocumentEncoder, DiffRetrieverModel, DiffRetrieverQueryEncoder
    from .pipeline import encode_corpus
    from .search import MinMaxHybridSearcher, MultiVectorSearcher, fuse_min_max, open_searcher
    from .settings import EncoderSettings
