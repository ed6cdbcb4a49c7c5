"""``python -m pyserini_diffretriever.reproduce``: see :mod:`pyserini_diffretriever.cli.reproduce`."""

import sys

from pyserini_diffretriever.cli.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
