"""Child process of the kill-and-resume test: trains, and SIGKILLs itself right after checkpoint ``--kill-at``.

Usage: ``python tests/training/train_child.py --kill-at STEP -- TRAIN CLI ARGS``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from transformers import TrainerCallback

from pyserini_diffretriever.cli.train import build_parser, settings_from_args
from pyserini_diffretriever.training import train


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--")
    options = argparse.ArgumentParser()
    options.add_argument("--kill-at", type=int, required=True)
    kill_at = options.parse_args(argv[:split]).kill_at
    settings = settings_from_args(build_parser().parse_args(argv[split + 1 :]))
    train(settings, callbacks=[KillAfterSave(kill_at)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
