"""Fault injection at a larger scale than CI (not a test): the figures of the reliability issue.

Four experiments, each against an uninterrupted reference run (all runs set ``SOURCE_DATE_EPOCH``, so
"byte-identical" covers every file of the output, manifests included):

* ``events``: the encode CLI (fake encoder, 40 documents, dense + multi + impact, a commit per batch) is
  SIGKILLed at its N-th write-side I/O event -- every event of the reference run, or every ``--event-step``-th
  (torn writes, fsyncs, renames, truncations, unlinks; see ``tests/reliability/harness.py``) -- then rerun;
  plus ``--double`` trials killed twice.
* ``wallclock``: the real ``python -m pyserini_diffretriever.encode`` with a tiny random Dream checkpoint (CPU,
  float32) is SIGKILLed from outside at a seeded random moment of its encoding, then rerun; also two
  uninterrupted runs compared with each other (determinism across processes).
* ``disk``: a simulated full disk (``OSError(ENOSPC)`` after B bytes), B one byte into every k-th write of the
  reference run (``--disk-budgets`` points spread over the writes); each failed run is checked for one clear
  message and no finished-looking output, then rerun.
* ``badinput``: the bad-record catalogue of ``tests/reliability/test_bad_input.py`` through the command line,
  strict and skip: clear errors, tracebacks, records lost silently.

Usage::

    python benchmarks/fault_injection.py [--only events wallclock disk badinput] [--event-step 1]
        [--double 10] [--wallclock 10] [--disk-budgets 60] [--seed 0]

Results go to ``benchmarks/results/fault_injection.json`` and a summary is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "fault_injection.json"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

import harness  # noqa: E402  (tests/reliability/harness.py)


def _kind(label: str | None) -> str:
    if not label:
        return "unknown"
    operation, _, target = label.split("\t", 1)[-1].partition(" ")
    if "/" not in target:
        return f"{operation} fd"
    name = Path(target).name
    name = re.sub(r"^\.manifest\.json\.tmp-\d+$", ".manifest.json.tmp-PID", name)
    return f"{operation} {'OUT' if re.fullmatch(r'[ed]\d+', name) else name}"


def events_experiment(root: Path, step: int, double: int, seed: int) -> dict:
    corpus = harness.write_corpus(root / "corpus.jsonl", harness.cranfield_like(40))
    reference = harness.run_child(harness.encode_argv(corpus, root / "ref"), root)
    assert reference.returncode == 0, reference.stderr
    trials, identical, after_rename, ended_first, kinds = 0, 0, 0, 0, Counter()
    failures = []

    def trial(name: str, points: list[int]) -> None:
        nonlocal trials, identical, after_rename, ended_first
        out = root / name
        for number, point in enumerate(points):
            killed = harness.run_child(harness.encode_argv(corpus, out), root, kill_at=point)
            if killed.returncode == 0 and number > 0:
                ended_first += 1  # a resumed run has fewer events than the kill point drawn for it
                break
            kinds[_kind(killed.kill_label)] += 1
            if killed.returncode != -9:
                failures.append(f"{name}: not killed at {point} (status {killed.returncode})")
            if out.exists():  # killed after the final rename: the output must already be complete
                after_rename += 1
                break
        if not out.exists():
            final = harness.run_child(harness.encode_argv(corpus, out), root)
            if final.returncode != 0:
                failures.append(f"{name}: rerun failed: {final.stderr[-300:]}")
        trials += 1
        problems = harness.compare_trees(root / "ref", out) if out.exists() else ["no output"]
        identical += not problems
        if problems:
            failures.append(f"{name} (kill at {points}): {problems[:3]}")
        subprocess.run(["rm", "-rf", str(out), f"{out}.partial", f"{out}.partial.lock"], check=False)

    for point in range(1, reference.events + 1, step):
        trial(f"e{point}", [point])
    rng = random.Random(seed)
    for number in range(double):
        trial(f"d{number}", [rng.randint(1, reference.events), rng.randint(1, reference.events // 2)])
    return {
        "reference_events": reference.events,
        "trials": trials,
        "byte_identical": identical,
        "killed_after_final_rename": after_rename,
        "resumed_run_ended_before_second_kill": ended_first,
        "kill_points_by_operation": dict(sorted(kinds.items())),
        "failures": failures,
    }


def wallclock_experiment(root: Path, trials: int, seed: int) -> dict:
    from pyserini_diffretriever.fixtures import write_tiny_dream

    model = write_tiny_dream(root / "tiny-dream")
    corpus = harness.write_corpus(root / "corpus.jsonl", harness.cranfield_like(40))

    def command(out: Path) -> list[str]:
        return harness.encode_module_command(
            harness.encode_argv(
                corpus,
                out,
                encoder=str(model),
                batch_size=4,
                checkpoint_every=4,
                extra_encoder=["--max-length", "64", "--device", "cpu"],
            )
        )

    started = time.monotonic()
    status, window = harness.kill_after(command(root / "ref"), root / "ref", None)
    cold_run_s = time.monotonic() - started
    assert status == 0
    status, _ = harness.kill_after(command(root / "again"), root / "again", None)
    deterministic = status == 0 and not harness.compare_trees(root / "ref", root / "again")
    rng = random.Random(seed)
    killed = identical = 0
    failures = []
    for number in range(trials):
        out = root / f"w{number}"
        delay = rng.uniform(0.02, 0.98) * window
        status, _ = harness.kill_after(command(out), out, delay)
        killed += status == -9
        if status == -9 and out.exists():
            failures.append(f"w{number}: a folder looked finished after the kill")
        if not out.exists():
            status, _ = harness.kill_after(command(out), out, None)
        problems = harness.compare_trees(root / "ref", out) if out.exists() else ["no output"]
        identical += not problems
        if problems:
            failures.append(f"w{number} (kill after {delay:.2f}s): {problems[:3]}")
    return {
        "trials": trials,
        "killed_before_finishing": killed,
        "byte_identical": identical,
        "two_uninterrupted_runs_identical": deterministic,
        "encoding_window_s": round(window, 3),
        "cold_run_s": round(cold_run_s, 1),
        "failures": failures,
    }


def disk_experiment(root: Path, budgets: int) -> dict:
    import logging
    import os

    from pyserini_diffretriever.cli import encode as encode_cli

    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    encode_cli.load_encoder = lambda args: harness.FakeEncoder()
    logging.basicConfig(level=logging.CRITICAL)
    corpus = harness.write_corpus(root / "corpus.jsonl", harness.cranfield_like(40))
    counter = harness.IOFaults()
    undo = _install(counter)
    assert encode_cli.main(harness.encode_argv(corpus, root / "ref")) == 0
    undo()
    total = counter.bytes_written
    trials = clear = kept = identical = finished_looking = 0
    hits = Counter()
    failures = []
    writes = counter.writes  # (file, bytes written before) of every write of the reference run
    points = sorted({before + 1 for _, before in writes[:: max(1, len(writes) // budgets)]})
    for number, budget in enumerate(points):  # the disk fills in the middle of that write
        out = root / f"b{number}"
        faults = harness.IOFaults(enospc_after=budget)
        undo = _install(faults)
        try:
            status = encode_cli.main(harness.encode_argv(corpus, out))
        except Exception as error:  # noqa: BLE001 - counted as a crash without a clear message
            status = f"crash {type(error).__name__}"
        finally:
            undo()
        trials += 1
        clear += status == 1
        finished_looking += out.exists()
        kept += (root / f"b{number}.partial" / "progress.json").is_file()
        hits.update(Path(hit).name for hit in faults.enospc_hits)
        rerun = encode_cli.main(harness.encode_argv(corpus, out))
        same = rerun == 0 and not harness.compare_trees(root / "ref", out)
        identical += same
        if status != 1 or not same:
            failures.append(f"budget {budget}: status {status}, rerun identical {same}")
    return {
        "total_bytes": total,
        "total_writes": len(writes),
        "trials": trials,
        "clear_error_exit_1": clear,
        "work_kept_for_resume": kept,
        "finished_looking_after_failure": finished_looking,
        "byte_identical_after_rerun": identical,
        "enospc_in_file": dict(sorted(hits.items())),
        "failures": failures,
    }


def _install(faults: harness.IOFaults):
    saved = []

    def setattr_(target, name, value):
        saved.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    faults.install(setattr_)

    def undo():
        for target, name, value in reversed(saved):
            setattr(target, name, value)

    return undo


def badinput_experiment(root: Path) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from reliability.test_bad_input import BAD_LINE, CATALOGUE, LIMIT  # noqa: E402

    results = {
        "kinds": len(CATALOGUE),
        "problem_codes": len({c[2] for c in CATALOGUE}),
        "strict_clear_error": 0,
        "skip_listed": 0,
        "tracebacks": 0,
        "records_lost_silently": 0,
        "failures": [],
    }
    for case, line, kind, _ in CATALOGUE:
        lines = [*harness.cranfield_like(8)]
        lines.insert(BAD_LINE - 1, line)
        corpus = harness.write_corpus(root / case / "corpus.jsonl", lines)
        strict = harness.run_child(
            harness.encode_argv(corpus, root / case / "strict", checkpoint_every=1000, extra_input=LIMIT), root / case
        )
        errors = [x for x in strict.stderr.splitlines() if " ERROR " in x]
        results["tracebacks"] += "Traceback" in strict.stderr
        ok = strict.returncode == 1 and len(errors) == 1 and f"{corpus}, line {BAD_LINE}: " in errors[0]
        results["strict_clear_error"] += ok
        skip = harness.run_child(
            harness.encode_argv(
                corpus, root / case / "skip", checkpoint_every=1000, extra_input=[*LIMIT, "--on-error", "skip"]
            ),
            root / case,
        )
        results["tracebacks"] += "Traceback" in skip.stderr
        listed = lost = 0
        if skip.returncode == 0:
            for name in ("dense", "multi", "impact"):
                manifest = json.loads((root / case / "skip" / name / "manifest.json").read_text())
                report = (root / case / "skip" / name / "skipped-records.jsonl").read_text().splitlines()
                listed += manifest["num_skipped_records"] == len(report) == 1 and json.loads(report[0])["kind"] == kind
                lost += manifest["corpus"]["num_records"] - manifest["num_docs"] - len(report)
        results["skip_listed"] += listed == 3
        results["records_lost_silently"] += lost
        if not ok or listed != 3:
            results["failures"].append(f"{case}: strict {strict.returncode} {errors[:1]}, skip {skip.returncode}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        default=["events", "wallclock", "disk", "badinput"],
        choices=["events", "wallclock", "disk", "badinput"],
    )
    parser.add_argument("--event-step", type=int, default=1, help="kill at every N-th I/O event (default 1: all)")
    parser.add_argument("--double", type=int, default=10, help="trials killed twice (default 10)")
    parser.add_argument("--wallclock", type=int, default=10, help="real-CLI trials killed from outside (default 10)")
    parser.add_argument("--disk-budgets", type=int, default=60, help="full-disk points (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"fault-{name}-") as folder:
            started = time.monotonic()
            root = Path(folder)
            if name == "events":
                result = events_experiment(root, args.event_step, args.double, args.seed)
            elif name == "wallclock":
                result = wallclock_experiment(root, args.wallclock, args.seed)
            elif name == "disk":
                result = disk_experiment(root, args.disk_budgets)
            else:
                result = badinput_experiment(root)
            result["seconds"] = round(time.monotonic() - started, 1)
            results[name] = result
            print(name, json.dumps(result, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
