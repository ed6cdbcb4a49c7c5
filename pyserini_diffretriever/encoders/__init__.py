"""Pyserini encoder classes for DiffRetriever and the shared model behind them.

Importing this package imports :mod:`pyserini.encode` (which starts the JVM in Pyserini 2.3).
"""

from ..backbones import default_k
from ..settings import EncoderSettings
from .document import DiffRetrieverDocumentEncoder
from .model import (
    REPRESENTATIONS,
    SHARED_SETTINGS,
    DiffRetrieverModel,
    RepresentationBatch,
    SideEncoder,
)
from .query import DiffRetrieverQueryEncoder

__all__ = [
    "REPRESENTATIONS",
    "SHARED_SETTINGS",
    "DiffRetrieverDocumentEncoder",
    "DiffRetrieverModel",
    "DiffRetrieverQueryEncoder",
    "EncoderSettings",
    "RepresentationBatch",
    "SideEncoder",
    "default_k",
]
