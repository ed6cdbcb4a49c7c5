"""``python -m pyserini_diffretriever.search``: see :mod:`pyserini_diffretriever.cli.search`."""

import sys

from pyserini_diffretriever.cli.search import main

if __name__ == "__main__":
    sys.exit(main())
