"""pyserini-diffretriever: DiffRetriever (diffusion-LM representative tokens) as a Pyserini plugin.

Importing the package only prepares Java for Pyserini (see :mod:`pyserini_diffretriever._java`); torch,
transformers, faiss and the JVM are imported lazily when a public name is first used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import _java
from ._lazy import lazy_getattr
from ._version import __version__

logger = logging.getLogger(__name__)

try:
    _java.prepare_jvm()
except _java.JavaSetupError as error:  # dense-only work needs no JVM: fail when Java is actually used
    logger.warning("%s", error)

# public name -> the submodule that defines it
_LAZY = {
    "DiffRetrieverDocumentEncoder": "encoders",
    "DiffRetrieverQueryEncoder": "encoders",
    "DiffRetrieverModel": "encoders",
    "EncoderSettings": "settings",
    "encode_corpus": "pipeline",
    "load_backbone": "backbones",
    "MultiVectorSearcher": "search",
    "fuse_min_max": "search",
    "MinMaxHybridSearcher": "search",
    "open_searcher": "search",
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


__getattr__ = lazy_getattr(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from .backbones import load_backbone
    from .encoders import DiffRetrieverDocumentEncoder, DiffRetrieverModel, DiffRetrieverQueryEncoder
    from .pipeline import encode_corpus
    from .search import MinMaxHybridSearcher, MultiVectorSearcher, fuse_min_max, open_searcher
    from .settings import EncoderSettings
