"""Peak memory of the slot read-out: the K-row LM head vs a naive ``[B, L, V]`` logits tensor (not a test).

Why: the reference materialises the vocabulary logits of every position (``[B, L, V]``, V ~ 126-152k) and
then keeps only K rows; :func:`pyserini_diffretriever.representation.readout.read_out` applies the head to
the K mask rows only, in chunks. This script measures what that saves on CPU.

For every vocabulary size V a random Qwen2-shaped (Dream) backbone is built in memory (the fixture writer
refuses V below the real tokenizer's 151,667 ids, and token ids are random here anyway), a batch of
``--batch`` passages of ~``--text-tokens`` tokens is wrapped in the DiffRetriever layout, and each method
runs in its own subprocess:

* ``k_rows``: ``read_out`` (hidden states, K-row head, argmax, stop truncation, sparse impacts);
* ``naive``: hidden states, head over all L rows (``[B, L, V]`` fp32), then the same argmax + sparse on the
  K slot rows.

Peak = max(process RSS sampled every 0.5 ms, ``ru_maxrss`` when it rose) minus the RSS right before the
call (model, inputs and imports excluded). Both methods must give identical sparse vectors.

Usage::

    python benchmarks/readout_memory.py [--vocab-sizes 8192 32768 152064] [--batch 4] [--k 16]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "readout_memory.json"
REPO = Path(__file__).resolve().parents[1]


def _child(args: argparse.Namespace) -> dict:
    import psutil
    import torch

    from pyserini_diffretriever.backbones.base import BackboneSpec
    from pyserini_diffretriever.backbones.dream import DreamBackbone, qwen2_config
    from pyserini_diffretriever.representation.inputs import EncodedBatch
    from pyserini_diffretriever.representation.readout import ReadoutConfig, read_out, stop_truncation
    from pyserini_diffretriever.representation.sparse import pad_content_ids, pool_slots, slot_impacts

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    vocab, k = args.vocab_size, args.k
    config = json.loads((REPO / "pyserini_diffretriever" / "resources" / "dream" / "config.json").read_text())
    config.update(
        hidden_size=args.hidden_size,
        intermediate_size=2 * args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_window_layers=args.layers,
        vocab_size=vocab,
        mask_token_id=vocab - 1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    model = DreamBackbone(qwen2_config(config)).eval()
    model.make_bidirectional()
    model.spec = BackboneSpec(
        model_type="Dream",
        family="diffusion",
        mask_token_id=vocab - 1,
        pad_token_id=0,
        eos_token_id=1,
        chat_end_token_id=2,
        hidden_size=args.hidden_size,
        vocab_size=vocab,
        logits_shifted=True,
        name_or_path="random",
    )
    gen = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(10, vocab - 10, (n,), generator=gen).tolist()  # noqa: E731
    prefix, suffix = rand(30), rand(25)
    lengths = [args.text_tokens - 16 * (i % 3) for i in range(args.batch)]
    rows = [prefix + rand(n) + suffix + [vocab - 1] * k + [3, 2, 1] for n in lengths]
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    batch = EncodedBatch(ids, mask, k, tuple(lengths), (False,) * len(rows))
    content = [sorted(set(rand(60))) for _ in rows]

    def k_rows():
        out = read_out(model, batch, config=ReadoutConfig(), stop_ids=frozenset({1}), content_ids=content)
        return out.sparse()

    def naive():
        with torch.no_grad():
            hidden = model.hidden_states(batch.input_ids, batch.attention_mask)
            logits = model.vocab_logits(hidden).float()  # [B, L, V]
            slots = logits[:, batch.mask_start : batch.mask_start + k]
            keep = stop_truncation(slots.argmax(-1), frozenset({1}))
            content_ids, valid = pad_content_ids(content)
            sparse_ids, weights = slot_impacts(slots, content_ids, valid, mask_token_id=vocab - 1)
            return pool_slots(sparse_ids, weights, keep)

    run = {"k_rows": k_rows, "naive": naive}[args.method]
    gc.collect()
    process = psutil.Process()
    baseline = process.memory_info().rss
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = baseline
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if maxrss_after > maxrss_before:
        peak = max(peak, maxrss_after)
    digest = hashlib.sha256(json.dumps([sorted(v.items()) for v in result]).encode()).hexdigest()
    return {
        "vocab_size": vocab,
        "method": args.method,
        "peak_extra_bytes": peak - baseline,
        "seconds": seconds,
        "batch": len(rows),
        "length": width,
        "k": k,
        "hidden_size": args.hidden_size,
        "sparse_sha256": digest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[8192, 32768, 152064])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--text-tokens", type=int, default=256)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["k_rows", "naive"], dest="method", help=argparse.SUPPRESS)
    parser.add_argument("--vocab-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.method:
        print(json.dumps(_child(args)))
        return 0

    rows = []
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for vocab in args.vocab_sizes:
        pair = {}
        for method in ("k_rows", "naive"):
            command = [
                sys.executable,
                __file__,
                "--child",
                method,
                "--vocab-size",
                str(vocab),
                "--batch",
                str(args.batch),
                "--text-tokens",
                str(args.text_tokens),
                "--k",
                str(args.k),
                "--hidden-size",
                str(args.hidden_size),
                "--layers",
                str(args.layers),
                "--threads",
                str(args.threads),
            ]
            done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            pair[method] = json.loads(done.stdout.strip().splitlines()[-1])
        if pair["k_rows"]["sparse_sha256"] != pair["naive"]["sparse_sha256"]:
            raise SystemExit(f"V={vocab}: the two read-outs disagree on the sparse vectors")
        rows.append(pair)

    print(
        f"B={args.batch} passages, L={rows[0]['naive']['length']} tokens, K={args.k}, H={args.hidden_size}, "
        f"fp32, CPU, peak memory above the loaded model + inputs"
    )
    print(f"{'V':>8} | {'naive [B,L,V]':>14} | {'K-row head':>11} | {'saved':>7} | {'naive s':>8} | {'K-row s':>8}")
    for pair in rows:
        naive, k_rows = pair["naive"], pair["k_rows"]
        mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
        print(
            f"{naive['vocab_size']:>8} | {mib(naive['peak_extra_bytes']):>14} | {mib(k_rows['peak_extra_bytes']):>11} | "
            f"{naive['peak_extra_bytes'] / max(k_rows['peak_extra_bytes'], 1):>6.1f}x | {naive['seconds']:>8.2f} | "
            f"{k_rows['seconds']:>8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "settings": {k: v for k, v in vars(args).items() if k not in ("method", "vocab_size", "out")},
                "device": "cpu",
                "dtype": "float32",
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
