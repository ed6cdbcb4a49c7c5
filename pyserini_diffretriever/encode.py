"""``python -m pyserini_diffretriever.encode``: see :mod:`pyserini_diffretriever.cli.encode`."""

import sys

from pyserini_diffretriever.cli.encode import main

if __name__ == "__main__":
    sys.exit(main())
