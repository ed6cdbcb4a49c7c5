"""Child process of the kill-and-resume trials: the encode CLI under :class:`harness.IOFaults`.

Usage (from ``harness.run_child``)::

    python tests/reliability/encode_child.py [--fake] [--kill-at N] [--label-file F] [--count-file F]
        [--trace-file F] -- ENCODE ARGS

``--fake`` replaces the encoder with the deterministic :class:`harness.FakeEncoder` (no torch: fast trials);
without it the real encoder named by ``encoder --encoder`` is loaded. ``--kill-at N`` SIGKILLs the process at
its N-th write-side I/O event (the event is written to ``--label-file`` first). A run that ends writes its
number of events to ``--count-file`` and exits with the CLI's status; ``--trace-file`` lists every event.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import FakeEncoder, IOFaults  # noqa: E402

from pyserini_diffretriever.cli import encode as encode_cli  # noqa: E402


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--label-file", default=None)
    parser.add_argument("--count-file", default=None)
    parser.add_argument("--trace-file", default=None)
    options = parser.parse_args(argv[:split])
    if options.fake:
        encode_cli.load_encoder = lambda args: FakeEncoder()
    faults = IOFaults(
        kill_at=options.kill_at, label_file=options.label_file, trace_file=options.trace_file, sync=False
    ).install()  # killed, never powered off: fsync stays a kill point but is not performed
    status = encode_cli.main(argv[split + 1 :])
    if options.count_file:
        Path(options.count_file).write_text(str(faults.events))
    return status


if __name__ == "__main__":
    sys.exit(main())
