"""Run an Anserini Java main class with this package's Java: ``python -m pyserini_diffretriever.indexing.anserini``.

``python -m pyserini_diffretriever.indexing.anserini io.anserini.index.IndexHnswDenseVectors -collection ...`` is
``java -cp anserini-fatjar.jar io.anserini.index.IndexHnswDenseVectors -collection ...`` with the fat jar that
Pyserini ships and the JVM :mod:`pyserini_diffretriever._java` chose. Only ``io.anserini.`` classes are accepted.
Used by :mod:`.lucene_dense` (Pyserini 2.3's ``pyserini.index.lucene`` runs only ``IndexCollection``).
"""

from __future__ import annotations

import sys

from .. import _java


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    java_class, *args = argv
    if not java_class.startswith("io.anserini."):
        print(f"error: {java_class!r} is not an Anserini class (expected io.anserini....)", file=sys.stderr)
        return 2
    _java.prepare_jvm()
    from pyserini.pyclass import autoclass

    autoclass(java_class).main(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
