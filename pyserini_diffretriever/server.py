"""``python -m pyserini_diffretriever.server``: see :mod:`pyserini_diffretriever.cli.server`."""

import sys

from pyserini_diffretriever.cli.server import main

if __name__ == "__main__":
    sys.exit(main())
