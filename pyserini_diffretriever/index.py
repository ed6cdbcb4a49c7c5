"""``python -m pyserini_diffretriever.index``: see :mod:`pyserini_diffretriever.cli.index`."""

import sys

from pyserini_diffretriever.cli.index import main

if __name__ == "__main__":
    sys.exit(main())
