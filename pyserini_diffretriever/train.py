"""``python -m pyserini_diffretriever.train``: see :mod:`pyserini_diffretriever.cli.train`."""

import sys

from pyserini_diffretriever.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
