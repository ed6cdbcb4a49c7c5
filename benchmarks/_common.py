"""Shared pieces of the benchmark suite: timing, texts of an exact token length, the model pair, peak memory.

Why one module: every benchmark must time the same way (perf_counter, warm-up, interleaved repeats, medians)
and compare diffusion and autoregressive encoders built from *identical* weights, prompts, batches and dtype.

The model pair. A Dream checkpoint (diffusion, bidirectional, one pass) and a Qwen2.5 checkpoint
(autoregressive PromptReps, causal, one pass + N-1 cached steps) are written by the project's own fixture
writers with the same sizes and seed. Both are Qwen2 networks with the same tensor names, and the writers
seed every tensor by its name, so the two folders hold the same weights (checked on load): the only
differences are the attention direction and the read-out. Both use the Qwen2.5 BPE and chat template, and the
"few" prompt (no number word, so DiffRetriever's K-adaptation leaves it unchanged), so the token rows are
identical apart from the diffusion masks + tail.

Head-proportioned variant. With a 512-wide, 8-layer trunk, one LM-head row over the real 152,064-token
vocabulary costs 3.2x a token's pass through the trunk; in Dream-7B it costs 0.08x. The variant keeps the
trunk and keeps only the first V rows of the embedding and head, V chosen so that head/trunk per token equals
Dream-7B's; token ids are mapped into [0, V) (costs do not depend on which ids run). It can produce dense and
multi-vector outputs only (the sparse filter needs the real vocabulary), and has no stop ids.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyserini_diffretriever  # noqa: F401  (selects a Java >= 21 before anything imports pyserini)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# The benchmark network (forward-dominated, CPU-friendly): Qwen2 shape, hidden 512, 8 layers.
NET = {
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
}
SEED = 7


def set_threads(n: int) -> None:
    """Pin torch (and the BLAS/OpenMP pools it uses) to ``n`` threads."""
    import torch

    torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))


def machine() -> dict:
    """What the numbers were measured on (CPU, threads, load)."""
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    info["contention"] = contention_summary()
    try:
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# -- timing on a shared machine -------------------------------------------------------------------------------
#
# Other jobs on the same cores stretch wall times unpredictably. Every timed call therefore measures how much CPU
# *other* processes used meanwhile (system-wide busy time minus this process's own); a call during which others
# used more than QUIET_THRESHOLD of the machine is repeated (up to QUIET_TRIES times, each after waiting up to
# QUIET_WAIT seconds for a quiet moment, within a per-process waiting budget) and the least disturbed attempt is
# kept. Every kept sample's share is recorded for the report (:func:`contention_summary`). CPU accounting ticks
# every 10 ms, so calls shorter than MIN_CHECKED_SECONDS are timed in groups (:func:`timed_each`) and the share is
# measured over the whole group.

QUIET_THRESHOLD = 0.10
QUIET_TRIES = 3
QUIET_WAIT = 5.0
QUIET_BUDGET = 300.0
MIN_CHECKED_SECONDS = 0.1
_SHARES: list[float] = []
_WAITED = [0.0]


def _cpu_clock() -> tuple[float, float, float]:
    import psutil

    times = psutil.cpu_times()
    busy = (
        sum(times)
        - times.idle
        - getattr(times, "iowait", 0.0)
        - getattr(times, "guest", 0.0)
        - getattr(times, "guest_nice", 0.0)
    )
    own = psutil.Process().cpu_times()
    return time.perf_counter(), busy, own.user + own.system + own.children_user + own.children_system


def _others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    wall = max(after[0] - before[0], 1e-9)
    return max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / (wall * (os.cpu_count() or 1))


def wait_quiet(max_wait: float = QUIET_WAIT, probe: float = 0.25) -> float:
    """Sleep until other processes use at most :data:`QUIET_THRESHOLD` of the CPUs (or ``max_wait`` passed)."""
    start = time.perf_counter()
    max_wait = min(max_wait, max(0.0, QUIET_BUDGET - _WAITED[0]))
    while time.perf_counter() - start < max_wait:
        before = _cpu_clock()
        time.sleep(probe)
        if _others_share(before, _cpu_clock()) <= QUIET_THRESHOLD:
            break
    waited = time.perf_counter() - start
    _WAITED[0] += waited
    return waited


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call, retried while other processes load the machine (see above)."""
    best: tuple[float, float] | None = None
    for _ in range(QUIET_TRIES):
        wait_quiet()
        before = _cpu_clock()
        fn()
        after = _cpu_clock()
        seconds = after[0] - before[0]
        share = _others_share(before, after) if seconds >= MIN_CHECKED_SECONDS else 0.0
        if best is None or share < best[1]:
            best = (seconds, share)
        if share <= QUIET_THRESHOLD:
            break
    _SHARES.append(best[1])
    return best[0]


def timed_each(fn: Callable[[object], object], items: list) -> list[float]:
    """Wall seconds of ``fn(item)`` for every item; the group is retried as a whole while others load the CPUs."""
    best: tuple[list[float], float] | None = None
    for _ in range(QUIET_TRIES):
        wait_quiet()
        before = _cpu_clock()
        seconds = []
        for item in items:
            start = time.perf_counter()
            fn(item)
            seconds.append(time.perf_counter() - start)
        share = _others_share(before, _cpu_clock())
        if best is None or share < best[1]:
            best = (seconds, share)
        if share <= QUIET_THRESHOLD:
            break
    _SHARES.append(best[1])
    return best[0]


def contention_summary() -> dict:
    """How disturbed the kept samples were: count, how many above the threshold, median/max others' share."""
    shares = sorted(_SHARES)
    if not shares:
        return {"samples": 0}
    return {
        "samples": len(shares),
        "threshold": QUIET_THRESHOLD,
        "waited_seconds": round(_WAITED[0], 1),
        "above_threshold": sum(share > QUIET_THRESHOLD for share in shares),
        "median_others_share": shares[len(shares) // 2],
        "max_others_share": shares[-1],
    }


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time every case ``repeats`` times, round-robin, after ``warmup`` untimed rounds.

    Round-robin (case A, B, C, A, B, C, ...) spreads slow drifts over all cases, so their ratios stay meaningful;
    each call is timed with :func:`timed` (retried while other processes load the machine).
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            gc.collect()
            times[name].append(timed(fn))
    return times


# -- texts ----------------------------------------------------------------------------------------------------


def cranfield_words() -> list[str]:
    """Words of the Cranfield abstracts shipped in examples/ (real English, aeronautics)."""
    words: list[str] = []
    with (REPO / "examples" / "cranfield" / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            words.extend(str(record.get("contents") or record.get("text") or "").split())
    return words


def long_texts(count: int, words: int, seed: int = 0) -> list[str]:
    """``count`` texts of ``words`` consecutive Cranfield words from random offsets (distinct texts)."""
    import random

    pool = cranfield_words()
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = rng.randrange(0, len(pool) - words)
        out.append(" ".join(pool[start : start + words]))
    return out


def texts_with_tokens(tokenizer, n_tokens: int, count: int, seed: int = 0) -> list[str]:
    """Texts of at least ``n_tokens`` tokens (the builders then truncate them to exactly ``n_tokens``)."""
    texts = long_texts(count, max(8, n_tokens), seed)  # a word is >= 1 token
    for text in texts:
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n_tokens:
            raise RuntimeError(f"text shorter than {n_tokens} tokens: {text[:80]!r}")
    return texts


# -- models ---------------------------------------------------------------------------------------------------


def write_pair(root: Path) -> tuple[Path, Path]:
    """Dream and Qwen2.5 checkpoints of :data:`NET` with identical weights (same writer seeds)."""
    from pyserini_diffretriever.fixtures import write_tiny_dream, write_tiny_qwen2

    dream = root / "dream"
    qwen = root / "qwen2"
    if not (dream / "model.safetensors").exists():
        write_tiny_dream(dream, seed=SEED, overwrite=True, **NET)
    if not (qwen / "model.safetensors").exists():
        write_tiny_qwen2(qwen, seed=SEED, overwrite=True, **NET)
    return dream, qwen


def load_pair(root: Path):
    """``(diffusion DiffRetrieverModel, autoregressive DiffRetrieverModel)`` on CPU in float32."""
    import torch

    from pyserini_diffretriever.backbones import load_backbone
    from pyserini_diffretriever.encoders import DiffRetrieverModel

    dream_dir, qwen_dir = write_pair(root)
    diffusion = DiffRetrieverModel(load_backbone(dream_dir, dtype="float32"))
    autoregressive = DiffRetrieverModel(load_backbone(qwen_dir, dtype="float32"))
    a = diffusion.backbone.model.state_dict()
    b = autoregressive.backbone.model.state_dict()
    if a.keys() != b.keys() or any(not torch.equal(a[name], b[name]) for name in a):
        raise RuntimeError("the diffusion and autoregressive benchmark models do not share their weights")
    return diffusion, autoregressive


def trunk_parameters(config: dict) -> int:
    """Weights one token passes through in the trunk (attention + MLP of every layer; no embedding / head)."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    kv = hidden // config["num_attention_heads"] * config["num_key_value_heads"]
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter
    return per_layer * config["num_hidden_layers"]


def head_over_trunk(config: dict, vocab: int | None = None) -> float:
    """Cost of one LM-head row relative to one token through the trunk (multiply-adds ratio)."""
    return (vocab or config["vocab_size"]) * config["hidden_size"] / trunk_parameters(config)


def dream7b_head_over_trunk() -> float:
    """The same ratio for the released Dream-v0-Instruct-7B (its packaged config.json)."""
    config = json.loads((REPO / "pyserini_diffretriever" / "resources" / "dream" / "config.json").read_text())
    return head_over_trunk(config)


def proportional_vocab() -> int:
    """Vocabulary rows that give the benchmark network Dream-7B's head/trunk cost ratio."""
    config = {
        "hidden_size": NET["hidden_size"],
        "intermediate_size": NET["intermediate_size"],
        "num_hidden_layers": NET["num_layers"],
        "num_attention_heads": NET["num_attention_heads"],
        "num_key_value_heads": NET["num_key_value_heads"],
    }
    return int(round(dream7b_head_over_trunk() * trunk_parameters(config) / NET["hidden_size"]))


def head_proportioned(model, vocab: int):
    """A copy of ``model`` (a DiffRetrieverModel) whose embedding and head keep their first ``vocab`` rows.

    Token ids are taken modulo ``vocab`` inside the backbone, so the real tokenizer and layout still apply.
    """
    import torch
    from torch import nn

    from pyserini_diffretriever.backbones.base import LoadedBackbone
    from pyserini_diffretriever.encoders import DiffRetrieverModel

    inner = model.backbone.model

    class ModuloIds(nn.Module):
        """Maps ids into ``[0, vocab)`` and exposes the backbone protocol of the wrapped network."""

        def __init__(self) -> None:
            super().__init__()
            self.net = inner
            self.spec = dataclasses.replace(inner.spec, vocab_size=vocab)
            self.head = nn.Linear(inner.config.hidden_size, vocab, bias=False)
            self.head.weight = nn.Parameter(inner.lm_head.weight[:vocab].detach().clone(), requires_grad=False)
            self.embed = nn.Embedding(vocab, inner.config.hidden_size)
            self.embed.weight = nn.Parameter(
                inner.model.embed_tokens.weight[:vocab].detach().clone(), requires_grad=False
            )

        def _ids(self, ids: torch.Tensor) -> torch.Tensor:
            return ids % vocab

        def hidden_states(self, ids, mask):
            return self._run(lambda: self.net.hidden_states(self._ids(ids), mask))

        def causal_forward(self, ids, mask, cache=None):
            return self._run(lambda: self.net.causal_forward(self._ids(ids), mask, cache))

        def _run(self, call):
            original = self.net.model.embed_tokens
            self.net.model.embed_tokens = self.embed
            try:
                return call()
            finally:
                self.net.model.embed_tokens = original

        def vocab_logits(self, hidden):
            return self.head(hidden)

    wrapped = ModuloIds().eval()
    lb = LoadedBackbone(model=wrapped, tokenizer=model.tokenizer, spec=wrapped.spec)
    proportioned = DiffRetrieverModel(lb)
    proportioned._stop_ids = frozenset()  # random ids in [0, V) would hit '"' (id 1): keep every step
    return proportioned


# -- memory ---------------------------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident memory of this process while the block runs (psutil sampling + ``ru_maxrss``)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self.baseline = 0

    def __enter__(self) -> PeakRSS:
        import psutil

        gc.collect()
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.baseline
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self._maxrss_before:  # the kernel's exact high-water mark rose during the block
            self.peak = max(self.peak, maxrss)
        self.peak = max(self.peak, self._process.memory_info().rss)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def bench_main(run: Callable[[bool, Path], dict], doc: str, prefix: str, argv: list[str] | None = None) -> int:
    """The command line every benchmark shares: ``--out FILE [--quick] [--workdir DIR]``.

    ``run(quick, workdir)`` returns the result written to ``--out``; without ``--workdir`` it works in a
    temporary folder named ``prefix*`` that is removed afterwards.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        write_json(args.out, run(args.quick, args.workdir or Path(tmp)))
    return 0


def run_phase(script: str, phase: str, work: Path, extra: tuple[str, ...], env: dict[str, str]) -> dict:
    """Run ``script --phase PHASE --work WORK ...`` in a fresh process (clean peak RSS and thread pools) with
    ``env`` added to the environment; return the JSON object its last output line prints."""
    environment = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), **env)
    done = subprocess.run(
        [sys.executable, script, "--phase", phase, "--work", str(work), *extra],
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
