"""Turn ``results/raw/b*.json`` into ``summary.json``, ``REPORT.md`` and the PNG plots.

Kept apart from the measurements so the report can be regenerated (or improved) without re-running them::

    python benchmarks/report.py [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NAMES = (
    "b1",
    "b2",
    "b3",
    "b4",
    "b5",
    "b5_flat",
    "b5_dense",
    "b5_dense_flat",
    "b6_ray",
    "b7",
    "b8",
    "b9",
    "b9_faiss",
    "b9_candidates",
    "b9_1m_sq8",
    "b9_split",
    "b9_codes",
    "b10",
    "gpu_encode_7b",
)
FLAT_SUFFIX = "_flat"
"""Keys of the flat-tail geometry runs (``b5_flat``, ``b5_dense_flat``: ``--geometry flat``) carry this suffix."""

TARGETS = {
    "compressed_multi_bytes_per_vector": ("<=", 512, "B5: compressed multi-vector bytes per 3584-d vector on disk"),
    "compressed_multi_recall_at_100": (">=", 0.95, "B5: recall@100 vs exact MaxSim, no float reads"),
    "compressed_multi_rerank_recall_at_100": (">=", 0.99, "B5: recall@100 with exact re-rank of the top 300"),
    "compressed_multi_search_peak_rss_gb": ("<=", 3.0, "B5: peak RSS serving 100 queries (GB)"),
    "compressed_multi_latency_speedup": (">=", 10, "B5: single-query exhaustive float16 MaxSim / compressed search"),
    "multi_100k_p50_ms": ("<=", 30, "B9: multi-warp p50 single-query latency, 100k passages x 16 x 3584"),
    "multi_1m_p50_ms": ("<=", 80, "B9: multi-warp p50 single-query latency, 1M passages"),
    "multi_latency_1m_over_100k": ("<=", 3, "B9: p50 latency 1M / 100k passages (sub-linear work)"),
    "multi_1m_recall_at_100": (">=", 0.97, "B9: recall@100 at 1M passages, no float reads (small tier alone)"),
    "multi_1m_rerank_tier_recall_at_100": (
        ">=",
        0.97,
        "B9: recall@100 at 1M with the SQ8 re-rank tier (no float file)",
    ),
    "multi_rerank_tier_recall_at_100": (">=", 0.99, "B9: recall@100 with the SQ8 re-rank tier, no float file"),
    "multi_rerank_tier_recall_at_100_flat": (">=", 0.99, "B9: the same on the flat-tail geometry"),
    "multi_rerank_tier_bytes_per_vector": ("<=", 3584, "B9: re-rank tier bytes per vector (half of float16)"),
    "multi_recall_estimate_abs_error": ("<=", 0.03, "B9: abs(build-time recall@100 estimate - measured)"),
    "multi_recall_estimate_abs_error_flat": ("<=", 0.03, "B9: the same on the flat-tail geometry"),
    "multi_small_bytes_per_vector": ("<=", 160, "B9: small-tier bytes per vector (codes + document and row numbers)"),
    "multi_small_recall_at_100": (">=", 0.95, "B9: small-tier recall@100 (default search, no re-rank)"),
    "multi_1m_search_anon_rss_gb": ("<=", 2, "B9: searcher anonymous memory (RssAnon) at 1M passages (GB)"),
    "msmarco_multi_projected_ram_gb": ("<=", 16, "B9: projected anonymous memory to serve MS MARCO x 16 (GB)"),
    "compressed_multi_build_vectors_per_s": (">=", 10_000, "B9: multi-warp build vectors/s at 3584 dims, 2 cores"),
    "dense_ann_recall_at_100": (">=", 0.95, "B5 dense: ANN recall@100 vs flat at <= 512 bytes per vector"),
    "dense_recall_estimate_abs_error": (
        "<=",
        0.03,
        "B5 dense: absolute error of the build-time recall@100 estimate vs held-out queries, worst codec",
    ),
    "dense_recall_estimate_abs_error_flat": (
        "<=",
        0.03,
        "B5 dense, flat-tail geometry: absolute error of the build-time recall@100 estimate, worst codec",
    ),
    "diffusion_k16_over_k1": ("<=", 1.10, "diffusion encode time K=16 / K=1, 128-token texts"),
    "ar_k16_over_k1": (">=", 5.0, "autoregressive encode time K=16 / K=1, 128-token texts"),
    "overhead_over_forward": ("<=", 1.05, "our encoder / bare backbone forward, identical batches"),
    "multivector_speedup_100k": (">=", 10.0, "exhaustive MaxSim latency / multi-vector default latency, 100k docs"),
    "multivector_recall_at_100": (">=", 0.99, "recall@100 of the default multi-vector search vs exact, 100k docs"),
    "memory_100k_over_10k": ("<=", 1.10, "peak RSS encoding 100k docs / 10k docs"),
    "ray_encode_2workers_over_1": (">=", 1.6, "B6: Ray encode throughput, 2 one-thread CPU workers / 1"),
    "ray_overhead_over_single_process": ("<=", 1.10, "B6: plain encode throughput / Ray with 1 worker, 1 thread"),
    "server_errors_under_load": ("<=", 0, "B8: 5xx answers at 1/4/16 concurrent clients (load shedding apart)"),
    "server_qps_16_over_1": (">=", 1.5, "B8: REST QPS with 16 concurrent clients / 1 client"),
    "encode_computed_over_real_tokens": (
        "<=",
        1.10,
        "B10: computed / real tokens, length-bucketed batches of 32, worse of Cranfield and MS MARCO-like",
    ),
    "encode_bucketed_over_corpus_order": (
        ">=",
        1.4,
        "B10: documents/s bucketed / corpus order, batch 32, Dream-7B-proportioned network, CPU",
    ),
    "encode_bucketed_peak_rss_over_corpus_order": ("<=", 1.10, "B10: peak RSS bucketed / corpus order"),
    "gpu_encode_mfu": (">=", 0.40, "GPU check encode_7b.py: useful FLOPs / dense bf16 peak (when a GPU ran it)"),
    "train_loss_cut": (">=", 0.5, "B7: training loss cut by 200 CPU LoRA steps, synthetic overlap task, tiny fixture"),
    "train_k16_over_k1_per_position": (
        "<=",
        1.10,
        "B7: training step time per passage K_p=16 / K_p=1, divided by the ratio of positions per passage",
    ),
}
COLORS = {"diffusion": "#1f77b4", "autoregressive": "#d62728"}


def load(results: Path) -> dict:
    raw = {}
    for name in NAMES:
        path = results / "raw" / f"{name}.json"
        if path.exists():
            raw[name] = json.loads(path.read_text(encoding="utf-8"))
    return raw


# -- numbers ------------------------------------------------------------------------------------------------


def b1_table(b1: dict, series: str) -> dict:
    """``{(family, length): {k: seconds_per_text}}`` of one series."""
    table: dict = {}
    for s in b1["series"]:
        if s["name"] != series:
            continue
        for p in s["points"]:
            table.setdefault((p["family"], p["length"]), {})[p["k"]] = p["seconds_per_text"]
    return table


def ratio(table: dict, family: str, length: int, k: int = 16) -> float | None:
    row = table.get((family, length))
    return None if not row or 1 not in row or k not in row else row[k] / row[1]


def b3_point(b3: dict, searcher: str, n: int, k_p: int | None = None) -> dict | None:
    for p in b3["points"]:
        if p["searcher"] == searcher and p["num_docs"] == n and (k_p is None or p["k_p"] == k_p):
            return p
    return None


def summarise(raw: dict) -> dict:
    s: dict = {}
    if "b1" in raw:
        b1 = raw["b1"]
        lat, thr, prop = (b1_table(b1, name) for name in ("latency", "throughput", "proportional"))
        s["diffusion_k16_over_k1"] = ratio(lat, "diffusion", 128)
        s["ar_k16_over_k1"] = ratio(lat, "autoregressive", 128)
        lengths = sorted({length for _, length in lat})
        s["b1_latency_k16_over_k1"] = {
            f: {str(n): ratio(lat, f, n) for n in lengths} for f in ("diffusion", "autoregressive")
        }
        s["b1_throughput_batch8_k16_over_k1"] = {f: ratio(thr, f, 128) for f in ("diffusion", "autoregressive")}
        s["b1_proportional_head_k16_over_k1"] = {f: ratio(prop, f, 128) for f in ("diffusion", "autoregressive")}
        s["ar_over_diffusion_at_k16_128"] = (
            lat[("autoregressive", 128)][16] / lat[("diffusion", 128)][16] if ("autoregressive", 128) in lat else None
        )
        trunk = b1.get("trunk_only_128", {})
        if trunk:
            s["b1_trunk_only_k16_over_k1"] = trunk["trunk_k16"] / trunk["trunk_k1"]
            s["b1_trunk_positions"] = [trunk["tokens_k1"], trunk["tokens_k16"]]
            s["b1_head_k16_rows_over_trunk_k1"] = trunk["head_k16"] / trunk["trunk_k1"]
        s["b1_forward_passes_per_text"] = b1.get("forward_passes_per_text")
        s["b1_head_over_trunk"] = b1.get("head_over_trunk")
        ar = lat.get(("autoregressive", 128), {})
        if 1 in ar and 16 in ar:
            s["ar_step_over_prompt_pass_128"] = (ar[16] - ar[1]) / 15 / ar[1]
    if "b2" in raw:
        by = {(r["network"].startswith("proportional"), r["name"]): r for r in raw["b2"]["results"]}
        s["overhead_over_forward"] = by[(False, "passages")]["overhead"]
        s["b2"] = {
            ("proportional_" if prop else "") + name: {
                "overhead": r["overhead"],
                "head_share": r["head_share"],
                "rest_share": r["rest_share"],
                "k": r["k"],
                "length": r["length"],
                "batch_size": r["batch_size"],
            }
            for (prop, name), r in by.items()
        }
        s["overhead_over_forward_proportional_head"] = by[(True, "passages")]["overhead"]
    if "b3" in raw:
        b3 = raw["b3"]
        default = b3_point(b3, "multi-default", 100_000, 16)
        exhaustive = b3_point(b3, "torch-exhaustive", 100_000, 16)
        if default and exhaustive:
            s["multivector_speedup_100k"] = exhaustive["latency_s"] / default["latency_s"]
            s["multivector_speedup_100k_1thread"] = exhaustive["latency_1t_s"] / default["latency_1t_s"]
            s["multivector_throughput_speedup_100k"] = default["qps"] / exhaustive["qps"]
            s["multivector_recall_at_100"] = default["recall_at_100"]
        s["multivector_recall_at_100_min"] = min(
            p["recall_at_100"] for p in b3["points"] if p["searcher"] == "multi-default"
        )
        small = b3_point(b3, "multi-default-c200", 100_000, 16)
        if small and exhaustive:
            s["multivector_c200_100k"] = {
                "speedup": exhaustive["latency_s"] / small["latency_s"],
                "speedup_1thread": exhaustive["latency_1t_s"] / small["latency_1t_s"],
                "recall_at_100": small["recall_at_100"],
            }
        s["b3_speedup_vs_exhaustive"] = {
            f"{n}_kp{k_p}": (
                b3_point(b3, "torch-exhaustive", n, k_p)["latency_s"]
                / b3_point(b3, "multi-default", n, k_p)["latency_s"]
            )
            for n in sorted({p["num_docs"] for p in b3["points"]})
            for k_p in (1, 4, 16)
            if b3_point(b3, "multi-default", n, k_p)
        }
    if "b4" in raw:
        points = sorted(raw["b4"]["points"], key=lambda p: p["num_docs"])
        small, large = points[0], points[-1]
        s["memory_100k_over_10k"] = large["peak_rss_bytes"] / small["peak_rss_bytes"]
        s["b4"] = {
            str(p["num_docs"]): {
                "peak_mib": p["peak_rss_bytes"] / 2**20,
                "growth_mib": p["growth_bytes"] / 2**20,
                "docs_per_second": p["docs_per_second"],
            }
            for p in points
        }
    for name, suffix in (("b5", ""), ("b5_flat", FLAT_SUFFIX)):
        if name in raw:
            s.update({key + suffix: value for key, value in raw[name].get("summary", {}).items()})
    if "b9" in raw:
        s.update(raw["b9"].get("summary", {}))
    if "b9_1m_sq8" in raw:  # B9 at 1M built with the SQ8 tier (57 GB): recall with the tier, and what it costs
        tiered = raw["b9_1m_sq8"].get("summary", {})
        s.update({key: value for key, value in tiered.items() if "rerank_tier" in key or "default_search" in key})
        if "multi_1m_p50_ms" in tiered:
            s["multi_1m_p50_ms_beside_sq8_tier"] = tiered["multi_1m_p50_ms"]
    if "b9_split" in raw:  # B9 with the split4 re-rank tier (2,240 B): its re-rank keys, renamed
        split = raw["b9_split"].get("summary", {})
        s.update(
            {
                key.replace("multi_rerank_tier", "multi_split_tier"): value
                for key, value in split.items()
                if key.startswith("multi_rerank_tier") or key.startswith("multi_1m_rerank_tier")
            }
        )
    for geometry, entry in raw.get("b9_codes", {}).items():  # ordering a topic at 1M density, per re-rank code
        if isinstance(entry, dict) and "codes" in entry:
            suffix = "" if geometry == "llm" else f"_{geometry}"
            for code, row in entry["codes"].items():
                s[f"multi_1m_density_recall_at_100_{code}{suffix}"] = row["recall_at_100"]
    for name, suffix in (("b5_dense", ""), ("b5_dense_flat", FLAT_SUFFIX)):
        if name in raw:
            dense = raw[name]
            for key in (
                "dense_ann_recall_at_100",
                "dense_ann_bytes_per_vector",
                "dense_ann_latency_ms",
                "lucene_hnsw_recall_at_100",
                "lucene_hnsw_latency_ms",
                "faiss_flat_latency_ms",
                "dense_recall_estimate_abs_error",
            ):
                s[key + suffix] = dense.get(key)
    if "b6_ray" in raw:
        b6 = raw["b6_ray"]
        s["ray_encode_2workers_over_1"] = b6["ray_encode_2workers_over_1"]
        s["ray_overhead_over_single_process"] = b6["ray_overhead_over_single_process"]
        s["b6_steady_docs_per_second"] = b6["steady_docs_per_second"]
    if "b8" in raw:
        s.update(raw["b8"].get("summary", {}))
    if "b7" in raw:
        s.update(_b7_summary(raw["b7"]))
    if "b10" in raw:
        s.update(raw["b10"]["summary"])
    if "gpu_encode_7b" in raw:
        gpu = raw["gpu_encode_7b"]
        dream = gpu["families"].get("dream") or next(iter(gpu["families"].values()))
        s["gpu_encode_mfu"] = dream.get("mfu")
        s["gpu_encode_passages_per_s"] = dream["passages_per_s"]
        s["gpu_encode_device"] = gpu["device"]
    targets = []
    for key, (op, bound, what) in TARGETS.items():
        value = s.get(key)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        targets.append({"metric": key, "value": value, "target": f"{op} {bound}", "met": met, "what": what})
    s["targets"] = targets
    return s


# -- plots --------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110})
    return plt


def _save(fig, path: Path) -> None:
    """Save as a small palette PNG (plots have few colours; keeps the committed results light)."""
    from PIL import Image

    fig.savefig(path)
    with Image.open(path) as image:
        small = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=96)
    small.save(path, optimize=True)


def plot_cost_vs_k(b1: dict, path: Path) -> None:
    plt = _plt()
    lat = b1_table(b1, "latency")
    lengths = sorted({length for _, length in lat})
    fig, grid = plt.subplots(2, 2, figsize=(11, 8.6))
    axes = list(grid.flat)
    ticks = ([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
    for ax, length in zip(axes, lengths):
        for family in ("diffusion", "autoregressive"):
            row = lat[(family, length)]
            ks = sorted(row)
            label = (
                "DiffRetriever (diffusion): 1 pass"
                if family == "diffusion"
                else "PromptReps (autoregressive): 1 + (K-1) passes"
            )
            ax.plot(ks, [row[k] * 1000 for k in ks], "o-", color=COLORS[family], label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(*ticks)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("K (representative tokens)")
        ax.set_ylabel("encode time per text (ms)")
        ax.set_title(f"{length}-token texts, batch 1")
    axes[0].legend(loc="upper left", fontsize=8)
    ax = axes[len(lengths)]
    series = {
        "latency": ("batch 1", "-"),
        "throughput": ("batch 8", "--"),
        "proportional": ("batch 1, 7B-proportioned LM head", ":"),
    }
    top = 1.0
    for name, (label, style) in series.items():
        table = b1_table(b1, name)
        for family in ("diffusion", "autoregressive"):
            row = table.get((family, 128))
            if not row:
                continue
            ks = sorted(row)
            values = [row[k] / row[1] for k in ks]
            top = max(top, *values)
            ax.plot(
                ks,
                values,
                style,
                marker="o",
                color=COLORS[family],
                label=f"{'diffusion' if family == 'diffusion' else 'autoregressive'}, {label}",
            )
    ax.axhline(1.10, color=COLORS["diffusion"], lw=1.2, alpha=0.7)
    ax.text(16, 1.10 - 0.06, "diffusion target <= 1.10", color=COLORS["diffusion"], fontsize=8, ha="right", va="top")
    ax.axhline(5.0, color=COLORS["autoregressive"], lw=1.2, alpha=0.7)
    ax.text(1.05, 5.0 + 0.08, "autoregressive target >= 5", color=COLORS["autoregressive"], fontsize=8, va="bottom")
    ax.set_xscale("log", base=2)
    ax.set_xticks(*ticks)
    ax.set_ylim(0.5, max(top, 5.0) * 1.08)
    ax.set_xlabel("K (representative tokens)")
    ax.set_ylabel("time(K) / time(K = 1)")
    ax.set_title("cost relative to K = 1, 128-token texts")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.suptitle("B1  Encode cost vs K (same weights, prompts, batches, float32, 2 CPU threads)", fontsize=12)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_search(b3: dict, path: Path) -> None:
    plt = _plt()
    sizes = sorted({p["num_docs"] for p in b3["points"]})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=True)
    styles = {
        "torch-exhaustive": ("exhaustive MaxSim in torch (reference)", "#7f7f7f", "s-"),
        "multi-exact": ("MultiVectorSearcher exact", "#9467bd", "^-"),
        "multi-default": ("MultiVectorSearcher default", "#2ca02c", "o-"),
        "dense": ("dense flat FAISS (single vector)", "#1f77b4", "D--"),
        "impact": ("impact, Lucene (pooled sparse)", "#ff7f0e", "v--"),
    }
    for ax, k_p in zip(axes, (1, 4, 16)):
        for searcher, (label, color, style) in styles.items():
            xs, ys = [], []
            for n in sizes:
                p = b3_point(b3, searcher, n, None if searcher in ("dense", "impact") else k_p)
                if p:
                    xs.append(n)
                    ys.append(p["latency_s"] * 1000)
            ax.plot(xs, ys, style, color=color, label=label)
        default = b3_point(b3, "multi-default", sizes[-1], k_p)
        exhaustive = b3_point(b3, "torch-exhaustive", sizes[-1], k_p)
        subtitle = ""
        if default and exhaustive:
            subtitle = (
                f"\nat {sizes[-1] // 1000}k: default = {exhaustive['latency_s'] / default['latency_s']:.1f}x "
                f"the speed of exhaustive, recall@100 {default['recall_at_100']:.3f}"
            )
        small = b3_point(b3, "multi-default-c200", sizes[-1], k_p)
        if small:
            ax.plot(
                [sizes[-1]],
                [small["latency_s"] * 1000],
                "o",
                mfc="none",
                color="#2ca02c",
                ms=9,
                label="default, candidates=200",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n // 1000}k" for n in sizes])
        ax.set_xlabel("documents in the index")
        ax.set_title(f"K_p = {k_p} vectors per document (K_q = 4){subtitle}", fontsize=10)
    axes[0].set_ylabel("latency per query, k=100 (ms, 2 threads)")
    axes[0].legend(fontsize=7, loc="upper left")
    axes[-1].legend(handles=axes[-1].get_lines()[-1:], fontsize=7, loc="upper left")
    fig.suptitle("B3  Search latency vs index size (synthetic 128-d clustered vectors)", fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_overhead(b2: dict, path: Path) -> None:
    plt = _plt()
    results = b2["results"]
    labels, forward, head, rest = [], [], [], []
    for r in results:
        net = "7B-proportioned head" if r["network"].startswith("proportional") else "real vocabulary"
        labels.append(f"{r['name']}\nK={r['k']}, {r['length']} tok, b={r['batch_size']}\n{net}")
        forward.append(1.0)
        above = max(r["overhead"] - 1.0, 0.0)  # medians need not add up: draw the parts within the total
        head.append(min(max(r["head_share"], 0.0), above))
        rest.append(above - head[-1])
    fig, ax = plt.subplots(figsize=(8.5, 4.4))
    xs = range(len(labels))
    ax.bar(xs, forward, color="#aec7e8", label="bare backbone forward (= 1)")
    ax.bar(xs, head, bottom=forward, color="#ff9896", label="K-row LM head + decode/stop")
    ax.bar(
        xs,
        rest,
        bottom=[f + h for f, h in zip(forward, head)],
        color="#98df8a",
        label="inputs, content filter, sparse, dense/multi",
    )
    for x, r in zip(xs, results):
        ax.text(x, max(r["overhead"], 1.0) + 0.02, f"{r['overhead']:.3f}x", ha="center", fontsize=9)
    ax.axhline(1.05, color="k", ls="--", lw=1)
    ax.text(-0.45, 1.06, "target 1.05", ha="left", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("time relative to the bare forward pass")
    ax.set_ylim(0, max(1.3, max(r["overhead"] for r in results) * 1.18))
    ax.set_title("B2  Encoder time over the bare forward pass (diffusion, identical batches)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_memory(b4: dict, path: Path) -> None:
    plt = _plt()
    points = sorted(b4["points"], key=lambda p: p["num_docs"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = range(len(points))
    base = [p["baseline_rss_bytes"] / 2**20 for p in points]
    growth = [p["growth_bytes"] / 2**20 for p in points]
    ax.bar(xs, base, color="#c7c7c7", label="before encoding (JVM, torch, model)")
    ax.bar(xs, growth, bottom=base, color="#17becf", label="growth while encoding")
    for x, p in zip(xs, points):
        ax.text(x, p["peak_rss_bytes"] / 2**20 + 20, f"{p['peak_rss_bytes'] / 2**20:.0f} MiB", ha="center")
    ax.set_xticks(list(xs), [f"{p['num_docs']:,} docs" for p in points])
    ax.set_ylabel("peak resident memory (MiB)")
    ax.set_title(
        f"B4  Peak memory while encoding\n{points[-1]['num_docs'] // points[0]['num_docs']}x the "
        f"documents -> {points[-1]['peak_rss_bytes'] / points[0]['peak_rss_bytes']:.3f}x the peak",
        fontsize=10,
    )
    ax.set_ylim(0, max(p["peak_rss_bytes"] for p in points) / 2**20 * 1.12)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# -- markdown -----------------------------------------------------------------------------------------------


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict, raw: dict, command: str | None) -> str:
    lines = ["# Benchmark report", ""]
    machine = next((d.get("machine") for d in raw.values() if d.get("machine")), {})
    lines += [
        f"Generated {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by "
        f"`{command or 'python benchmarks/run.py'}` (`make bench`).",
        f"Machine: {machine.get('cpu_model', machine.get('processor', '?'))}, {machine.get('cpu_count')} "
        f"cores, torch {machine.get('torch')} with 2 threads, float32, CPU only.",
        "Load average (1 min) when each benchmark finished: "
        + ", ".join(f"{name} {d.get('machine', {}).get('loadavg_1m', '?')}" for name, d in raw.items())
        + ". The machine was shared with other jobs: every case is timed in round-robin repeats after a "
        "warm-up and the medians are reported; between complete runs, ratios moved by up to ~8%.",
        "Wall time per benchmark run through run.py: "
        + ", ".join(f"{n} {d['wall_seconds']:.0f} s" for n, d in raw.items() if "wall_seconds" in d)
        + " (B5 ran standalone; its build and search times are in its section).",
        "Contention: each timed call also measures the CPU other processes used meanwhile and is retried "
        "(up to 3 times, after waiting for a quiet moment) when they took more than 10% of the machine; "
        "samples still above 10% after that: "
        + ", ".join(
            f"{n} {d.get('machine', {}).get('contention', {}).get('above_threshold', '?')}/"
            f"{d.get('machine', {}).get('contention', {}).get('samples', '?')}"
            for n, d in raw.items()
            if n != "b4"
        )
        + ".",
        "",
    ]
    lines += ["## Targets", "", "| metric | measured | target | met | what |", "|---|---|---|---|---|"]
    for t in summary["targets"]:
        mark = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| `{t['metric']}` | {_f(t['value'])} | {t['target']} | {mark} | {t['what']} |")
    lines.append("")
    lines += _explanations(summary)
    if "b1" in raw:
        lines += _b1_section(summary, raw["b1"])
    if "b2" in raw:
        lines += _b2_section(raw["b2"])
    if "b3" in raw:
        lines += _b3_section(summary, raw["b3"])
    if "b4" in raw:
        lines += _b4_section(summary, raw["b4"])
    for name in ("b5", "b5_flat"):
        if name in raw:
            lines += _b5_section(raw[name])
    for name in ("b5_dense", "b5_dense_flat"):
        if name in raw:
            lines += _b5_dense_section(raw[name])
    if "b6_ray" in raw:
        lines += _b6_section(raw["b6_ray"])
    if "b9" in raw:
        lines += _b9_section(raw["b9"])
    if "b9_faiss" in raw:
        lines += _b9_faiss_section(raw["b9_faiss"])
    if "b9_candidates" in raw:
        lines += _b9_candidates_section(raw["b9_candidates"])
    if "b9_1m_sq8" in raw:
        title = "### B9 at 1M with the SQ8 re-rank tier (`--docs 1000000 --rerank-tier sq8`, 57 GB)"
        lines += _b9_section(raw["b9_1m_sq8"], title)
    if "b9_split" in raw:
        lines += _b9_section(raw["b9_split"], "### B9 with the split4 re-rank tier (`--rerank-tier split4`)")
    if "b9_codes" in raw:
        lines += _b9_codes_section(raw["b9_codes"])
    if "b7" in raw:
        lines += _b7_section(summary, raw["b7"])
    if "b8" in raw:
        lines += _b8_section(raw["b8"])
    if "b10" in raw:
        lines += _b10_section(raw["b10"])
    if "gpu_encode_7b" in raw:
        lines += _gpu_encode_section(raw["gpu_encode_7b"])
    lines += [
        "## Reproduce",
        "",
        "```",
        "make bench                       # = .venv/bin/python benchmarks/run.py",
        "python benchmarks/run.py --quick # smaller, into benchmarks/results/quick/",
        "python benchmarks/run.py --only b3",
        "python benchmarks/report.py      # rebuild summary/report/plots from results/raw/*.json",
        "```",
        "",
    ]
    return "\n".join(lines)


def _b10_section(b10: dict) -> list[str]:
    """Encoding by batching order (``benchmarks/b10_encode.py``)."""
    timed_docs = next(iter(b10["collections"].values()))["words"]["documents"]
    samples = [
        value
        for collection in b10["collections"].values()
        for case in collection["cases"].values()
        for pair in case.get("load_average_1min_samples", [])
        for value in pair
    ]
    loads = f"{min(samples):.1f}-{max(samples):.1f}" if samples else b10.get("machine", {}).get("loadavg_1m", "?")
    lines = [
        "## B10: encoding throughput by batching order",
        "",
        f"The encode pipeline (dense + multi folders) on the B1 network with a Dream-7B-proportioned head "
        f"(vocabulary {b10['proportional_vocab']:,}), K_p = {b10['k_p']}, batch {b10['batch_size']}, float32, "
        f"2 threads; median of {b10['repeats']} round-robin repeats. corpus: batches in file order; bucketed: "
        f"sorted within windows of {b10['sort_window']} batches; budget: bucketed with --max-tokens = "
        f"{b10['batch_size']} x mean row, --batch-size {4 * b10['batch_size']} as a cap.",
        "",
        f"Timed on {timed_docs} documents per collection ({timed_docs // b10['batch_size']} batches of "
        f"{b10['batch_size']}, less than one window of {b10['sort_window']} batches, so the sorted subset spans a wider "
        f"range of lengths per batch than full windows do; 1-minute load average {loads} around the runs): whole "
        "collections, sorted within full windows, compute less padding still (second table). Documents/s follows "
        "computed tokens.",
        "",
        "| collection | words mean / p95 / max | mode | computed / real tokens | documents/s | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, collection in b10["collections"].items():
        words = collection["words"]
        for mode, case in collection["cases"].items():
            lines.append(
                f"| {name} ({words['documents']} docs) | {words['mean_words']:.0f} / {words['p95_words']} / "
                f"{words['max_words']} | {mode} | {case['computed_over_real']:.2f} | {case['documents_per_s']:.2f} "
                f"| {case['peak_rss_bytes'] / 2**20:.0f} |"
            )
    lines += [
        "",
        "Whole collections (the pipeline's batch plan, no timing): computed / real tokens.",
        "",
        "| collection | documents | row tokens mean / p95 / max | corpus order | bucketed | token budget |",
        "|---|---|---|---|---|---|",
    ]
    for name, collection in b10["collections"].items():
        whole = collection.get("whole_collection")
        if whole:
            plan, rows = whole["planned_tokens"], whole["row_tokens"]
            lines.append(
                f"| {name} | {whole['words']['documents']} | {rows['mean']:.0f} / {rows['p95']} / {rows['max']} "
                f"| {plan['corpus']['computed_over_real']:.2f} | {plan['bucketed']['computed_over_real']:.2f} "
                f"| {plan['budget']['computed_over_real']:.2f} |"
            )
    return [*lines, ""]


def _gpu_encode_section(gpu: dict) -> list[str]:
    """The GPU encoding check (``benchmarks/gpu/encode_7b.py``), when a GPU ran it."""
    lines = [
        f"## GPU encoding check ({gpu['device']}, {gpu['dtype']}, {gpu['attention']})",
        "",
        "| backbone | passages/s | real tokens/s | computed / real | MFU | batch-1 latency (ms) | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, f in gpu["families"].items():
        lines.append(
            f"| {family} | {f['passages_per_s']:.1f} | {f['real_tokens_per_s']:.0f} | {f['computed_over_real']:.2f} "
            f"| {_f(f['mfu'])} | {f['latency_batch1_ms']:.1f} | {_f(f['peak_memory_gib'])} |"
        )
    return [*lines, ""]


def _b8_section(b8: dict) -> list[str]:
    """The REST server under load (``benchmarks/b8_server.py``)."""
    lines = [
        "## B8 Serving: Pyserini's REST server under load",
        "",
        f"`python -m pyserini_diffretriever.server rest` on loopback, one {b8['index']} alias over "
        f"{b8['num_docs']:,} Cranfield documents, API keys on, result cache off (every request encodes its query). "
        f"Closed-loop clients with keep-alive, {b8['seconds_per_level']:.0f} s per level (at most "
        f"{b8['max_requests_per_level']:,} requests), after a warm-up.",
        "",
        "| server | clients | requests | QPS | p50 (ms) | p99 (ms) | 5xx | shed (429/503) | queries per forward pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("default (window 2 ms, max batch 32)", level, b8.get("batching")) for level in b8["levels"]]
    for tag, variant in b8.get("variants", {}).items():
        rows.append((f"{tag} (`{' '.join(variant['options'])}`)", variant["level"], variant.get("batching")))
    for name, level, batching in rows:
        per_pass = _f((batching or {}).get("queries_per_pass"), 2) if level["clients"] == 16 else ""
        lines.append(
            f"| {name} | {level['clients']} | {level['requests']:,} | {level['qps']:.1f} | {_f(level['p50_ms'], 1)} "
            f"| {_f(level['p99_ms'], 1)} | {level['server_errors']} | {level['shed']} | {per_pass} |"
        )
    lines += [
        "",
        "Queries per forward pass are counted by the server over its whole run (all levels for the default "
        "server); `no_batching` encodes every query alone. The README's Serving section explains the window.",
    ]
    soak = b8.get("soak")
    if soak:
        lines += [
            "",
            f"Soak: {soak['minutes']:.0f} min at {soak['clients']} clients, {soak['load']['requests']:,} requests, "
            f"{soak['load']['server_errors']} 5xx; server RSS {soak['rss_after_warmup_bytes'] / 2**20:.0f} MiB after "
            f"warm-up, {soak['rss_final_bytes'] / 2**20:.0f} MiB at the end "
            f"({100 * soak['rss_growth_after_warmup']:+.1f}%).",
        ]
    return lines + [""]


def _geometry_name(data: dict) -> str:
    """``llm`` or ``flat``: the ``hidden_states.GEOMETRIES`` preset a B5 run used (older runs: ``llm``)."""
    return data.get("geometry") if isinstance(data.get("geometry"), str) else "llm"


def _b5_dense_section(dense: dict) -> list[str]:
    """Dense ANN codecs and the build-time recall estimate against held-out queries (``benchmarks/b5_dense.py``)."""
    name = _geometry_name(dense)
    lines = [
        f"## B5 dense ({name} geometry): ANN codecs and the build-time recall estimate",
        "",
        f"{dense.get('docs')} passages, {dense.get('queries')} held-out queries (`b5_dense.py --geometry {name}`). "
        "`estimate`: the recall@100 that `index faiss` records at build time from pseudo-queries drawn from the "
        "collection; `measured`: recall@100 of the generator's real queries at the same search parameters.",
        "",
        "| codec | bytes / vector | search | measured recall@100 | estimate | abs error | latency ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in dense.get("codecs", []):
        lines.append(
            f"| `{row['factory']}` | {row['bytes_per_vector']} | {row.get('default_search')} | "
            f"{_f(row['recall_at_100'])} | {_f(row.get('recall_estimate'))} | "
            f"{_f(row.get('recall_estimate_abs_error'))} | {_f(row.get('latency_ms'))} |"
        )
    return lines + [""]


def _b5_section(b5: dict) -> list[str]:
    """The compressed multi-vector index at dimension 3584 (``benchmarks/b5_scale.py``)."""
    geometry = b5.get("generate", {}).get("geometry", {})
    build, search, truth = b5.get("build", {}), b5.get("search", {}), b5.get("truth", {})
    queries = len(b5.get("generate", {}).get("targets", []))
    name = _geometry_name(b5)
    kept = geometry.get("energy_kept_448")
    lines = [
        f"## B5: compressed multi-vector index at the real dimension ({name} geometry)",
        "",
        f"{b5.get('docs')} passages x {b5.get('k_p')} vectors of dimension 3584 (float16 `vectors.npy`, "
        f"{b5.get('docs', 0) * b5.get('k_p', 0) * 7168 / 1e9:.1f} GB), {queries} "
        f"queries of 4 vectors, from `benchmarks/hidden_states.py` (`{name}` geometry"
        + (f"; a 448-dim projection keeps {_f(kept)} of the energy" if kept is not None else "")
        + ": mean cosine of unrelated "
        f"vectors {_f(geometry.get('mean_cosine_unrelated'))}, of two slots of one passage "
        f"{_f(geometry.get('mean_cosine_same_document'))}, top-512 directions hold "
        f"{_f(geometry.get('variance_share_top_512_directions'))} of the variance, 4 rogue dimensions hold "
        f"{_f(geometry.get('energy_share_rogue_dims'))} of the energy). Truth: exhaustive float32 MaxSim over "
        "the float16 vectors.",
        "",
        f"Codec: `{build.get('codec', {}).get('factory')}` trained on {build.get('codec', {}).get('train_vectors')} "
        f"vectors (projection keeps {_f(build.get('codec', {}).get('energy_kept'))} of the energy), "
        f"{build.get('code_size')} bytes per code, {_f(build.get('bytes_per_vector_on_disk'))} bytes per vector on "
        f"disk with offsets, docids and codec; built in {_f(build.get('seconds'))} s "
        f"({_f(build.get('vectors_per_s'))} vectors/s), peak RSS {_f(build.get('peak_rss_gb'))} GB. "
        f"Opening the searcher (filling the IVF from the codes): {_f(search.get('open_seconds'))} s.",
        "",
        "| search | recall@100 | min recall | median ms | p90 ms |",
        "|---|---|---|---|---|",
    ]
    for run in search.get("runs", []):
        lines.append(
            f"| {run['label']} | {_f(run['recall_at_100'])} | {_f(run['min_recall_at_100'])} | "
            f"{_f(run['median_latency_ms'])} | {_f(run['p90_latency_ms'])} |"
        )
    single = truth.get("single_query_seconds", [])
    lines += [
        "",
        f"Exhaustive MaxSim over the float16 file: {_f(1000 * float(np.median(single)) if single else None)} ms for one "
        f"query (reads the whole {b5.get('docs', 0) * b5.get('k_p', 0) * 7168 / 1e9:.1f} GB file), "
        f"{_f(1000 * truth.get('batch_seconds', 0) / max(queries, 1))} ms per query when "
        "100 queries share one pass.",
        "",
    ]
    sweep = b5.get("codec_sweep", [])
    if sweep:
        lines += [
            "Codec sweep (same collection and queries, default search, no re-rank; `--codec-sweep DIM:CODE`):",
            "",
            "| codec | bytes / vector | energy kept | recall@100 | with re-rank | median ms |",
            "|---|---|---|---|---|---|",
        ]
        for p in sweep:
            lines.append(
                f"| {p['spec']} | {_f(p['bytes_per_vector'])} | {_f(p['energy_kept'])} | {_f(p['recall_at_100'])} | "
                f"{_f(p['rerank_recall_at_100'])} | {_f(p['median_latency_ms'])} |"
            )
        lines += ["", "![recall vs bytes](recall_vs_bytes.png)", ""]
    return lines


def _b9_section(b9: dict, title: str | None = None) -> list[str]:
    """The cell-major multi-vector index, streamed (``benchmarks/b9_multi_scale.py``): the curves per point.
    ``title``: a sub-section of another B9 run (its own heading, without B9's introduction)."""
    lines = (
        [title, ""]
        if title
        else [
            "## B9: multi-warp index at scale (streamed, two geometries)",
            "",
            "Passages x 16 vectors of dimension 3584 streamed from `benchmarks/hidden_states.py` (never stored as "
            "floats), exact MaxSim top-100 of the queries computed in the same pass; one query (4 vectors) at a time.",
            "",
        ]
    )
    for point in b9.get("points", []):
        build, search = point["build"], point["search"]
        estimate = (build.get("recall_estimate") or {}).get("default", {})
        lines += [
            f"**{point['geometry']}, {point['docs']:,} passages** ({build['num_vectors']:,} vectors; "
            f"{build['codec']['nlist']} cells; energy kept {build['codec']['energy_kept']:.3f}; small tier "
            f"{build['small_bytes_per_vector']:.0f} B/vector, re-rank tier {build['rerank_bytes_per_vector']:.0f} "
            f"B/vector; build {build['vectors_per_s']:,.0f} vectors/s; searcher RssAnon "
            f"{search['anon_rss_gb_after_search']:.2f} GB, RssFile {search['file_rss_gb_after_search']:.2f} GB; "
            f"estimated recall@100 {_f(estimate.get('recall'))}; search at load "
            f"{_load(search.get('load_before') or point.get('uptime'))})",
            "",
        ]
        first = point.get("search_first")
        if first:  # the index was searched again later (B9's own run overlapped a busier machine)
            default = next(r for r in first["runs"] if r["nprobe"] == search["default_nprobe"] and not r["rerank"])
            lines += [
                f"Searched again on the finished index; the first search, right after the build at load "
                f"{_load(first.get('load_before'))}, gave p50 {default['p50_ms']:.1f} ms at nprobe "
                f"{default['nprobe']} (same recall).",
                "",
            ]
        if build.get("stage_seconds"):
            stages = ", ".join(f"{name} {seconds:,.1f}" for name, seconds in build["stage_seconds"].items())
            lines += [
                f"Build seconds by stage: {stages}; generator + benchmark ground truth "
                f"{build['seconds_generating_and_truth']:,.0f} s (not counted; `train` includes drawing the sample"
                + (
                    f", {build['seconds_drawing_training_sample']:,.0f} s). Index CPU time "
                    f"{build['cpu_microseconds_per_vector']:,.0f} us per vector (all threads; load-independent). "
                    if "cpu_microseconds_per_vector" in build
                    else "). "
                )
                + f"Load {_load(build.get('load_before'))} -> {_load(build.get('load_after'))} (build), "
                f"{_load(search.get('load_before'))} -> {_load(search.get('load_after'))} (search).",
                "",
            ]
        lines += [
            "| nprobe | small-tier re-scored | re-rank | recall@100 | lowest | p50 ms | p90 ms | candidates |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in search["runs"]:
            lines.append(
                f"| {run['nprobe']} | {run.get('candidates', '-')} | {run['rerank'] or '-'} | {run['recall_at_100']:.3f} | "
                f"{run['min_recall_at_100']:.2f} | {run['p50_ms']:.1f} | {run['p90_ms']:.1f} | "
                f"{run['mean_candidates']:,.0f} |"
            )
        lines.append("")
    lines += _b9_growth(b9.get("summary", {}))
    return lines


def _b9_faiss_section(comparison: dict) -> list[str]:
    """FAISS ``IndexIVFPQ`` with the same cells and codes vs the WARP kernel (``benchmarks/b9_faiss.py``)."""
    lines = [
        "### B9 engines: FAISS IndexIVFPQ holding the same codes vs the WARP kernel",
        "",
        "Same cells, PQ codes and exact small-tier stage; FAISS returns each query vector's top-k codes (a heap), "
        "grouped per passage with the k-th score imputed; one query at a time, one thread.",
        "",
        "| index | nprobe | candidates | engine | recall@100 | p50 ms | p90 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for tag, entry in comparison.items():
        for run in entry["runs"]:
            lines.append(
                f"| {tag} | {entry['nprobe']} | {entry['candidates']} | {run['engine']} | "
                f"{run['recall_at_100']:.3f} | {run['p50_ms']:.1f} | {run['p90_ms']:.1f} |"
            )
    return lines + [""]


def _b9_candidates_section(diagnosis: dict) -> list[str]:
    """How much of the exact top-100 the small tier ranks within its top N (``benchmarks/b9_candidates.py``)."""
    depths = sorted({int(depth) for entry in diagnosis.values() for depth in entry["within_top"]})
    lines = [
        "### B9 ranking diagnosis: the exact top-100 within the small tier's top N",
        "",
        "Mean (lowest) fraction of each query's exact top-100 that the small tier (no re-rank) ranks within its top "
        "N, at the nprobe shown and N candidates: N = 100 is its recall@100; a larger N is what a finer tier "
        "re-ranking N could recover.",
        "",
        "| index | nprobe | " + " | ".join(f"N = {depth:,}" for depth in depths) + " |",
        "|---|---|" + "---|" * len(depths),
    ]
    for tag, entry in diagnosis.items():
        cells = [entry["within_top"].get(str(depth)) for depth in depths]
        lines.append(
            f"| {tag} | {entry['nprobe']} | "
            + " | ".join(f"{cell['mean']:.3f} ({cell['min']:.2f})" if cell else "-" for cell in cells)
            + " |"
        )
    return lines + [""]


def _b9_codes_section(codes: dict) -> list[str]:
    """Recall@100 of ordering a topic's 1,000 passages (1M density) per re-rank code (``benchmarks/b9_codes.py``)."""
    lines = [
        "### B9 codes: ordering 1M-density candidates, recall vs bytes",
        "",
        "Per query, the 1,000 passages of its topic (what a 1M collection holds around it; the small tier's top "
        "1,000 contains every exact top-100 passage there), ordered by each code, against exact float32 MaxSim. "
        "Same trained codec for every tier.",
        "",
        "| geometry | code | bytes per vector | recall@100 | lowest | GB at 1M x 16 |",
        "|---|---|---|---|---|---|",
    ]
    for geometry, entry in codes.items():
        if not isinstance(entry, dict) or "codes" not in entry:
            continue
        for code, row in sorted(entry["codes"].items(), key=lambda item: item[1]["bytes_per_vector"]):
            lines.append(
                f"| {geometry} | {code} | {row['bytes_per_vector']:,} | {row['recall_at_100']:.3f} | "
                f"{row['min_recall_at_100']:.2f} | {row['gb_at_1m']:.1f} |"
            )
    medians = ", ".join(
        f"{g} {e['median_gap_at_100']:.1e}" for g, e in codes.items() if isinstance(e, dict) and "codes" in e
    )
    return lines + ["", f"Median exact MaxSim gap between ranks 100 and 101: {medians}.", ""]


def _load(averages: list[float] | None) -> str:
    """A load-average triple as ``1.2/3.4/5.6`` (n/a when missing)."""
    return "/".join(f"{value:.1f}" for value in averages) if averages else "n/a"


def _b9_growth(summary: dict) -> list[str]:
    """Latency and build rate against the collection size, and the 1M p50 the measured growth projects."""
    rows = []
    for suffix, name in (("", "llm"), ("_flat", "flat")):
        pattern = re.compile(rf"multi_(\d+)k_p50_ms{suffix}$")
        sizes = [f"{size}k" for size in sorted(int(m.group(1)) for m in map(pattern.match, summary) if m)]
        for size in sizes + (["1m"] if f"multi_1m_p50_ms{suffix}" in summary else []):
            rows.append(
                f"| {name} | {size} | {_f(summary.get(f'multi_{size}_p50_ms{suffix}'), 1)} | "
                f"{_f(summary.get(f'multi_{size}_build_vectors_per_s{suffix}'), 0)} |"
            )
    if not rows:
        return []
    lines = [
        "Growth (each index's tuned default search, no re-rank; `multi_latency_*_same_setting` in `summary.json` "
        "compares one setting measured at both sizes):",
        "",
        "| geometry | passages | p50 ms | build vectors/s |",
        "|---|---|---|---|",
    ]
    lines += rows
    for suffix, name in (("", "llm"), ("_flat", "flat")):
        if f"multi_1m_p50_ms_projected{suffix}" in summary:
            lines.append(
                f"\n{name}: p50 grows like docs^{summary[f'multi_p50_growth_exponent{suffix}']:.2f} between the two "
                f"largest sizes, which projects **{summary[f'multi_1m_p50_ms_projected{suffix}']:.1f} ms** at 1M "
                "(a projection, not a measurement)."
            )
        elif f"multi_p50_growth_exponent{suffix}" in summary:
            lines.append(
                f"\n{name}: p50 grows like docs^{summary[f'multi_p50_growth_exponent{suffix}']:.2f} between the two "
                "largest sizes (both measured)."
            )
    return lines + [""]


def _b6_section(b6: dict) -> list[str]:
    """Encoding on Ray (``benchmarks/b6_ray.py``)."""
    rate, wall = b6["steady_docs_per_second"], b6["end_to_end_seconds"]
    lines = [
        "## B6: encoding on Ray",
        "",
        f"{b6['docs']} passages, benchmark network, dense + multi + impact from one pass, batch {b6['batch_size']}, "
        f"blocks of {b6['block_size']} records, CPU, torch on 1 thread per process, Ray {b6['ray_version']}; "
        f"medians of {b6['repeats']} round-robin runs of the real command (`benchmarks/b6_ray.py`). Throughput is "
        "the steady state between the first and last committed block (start-up left out: at corpus scale it is "
        "amortised); end-to-end wall time includes Python, torch, Ray and one model load per worker.",
        "",
        "| case | steady docs/s | end-to-end s |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {_f(rate[name])} | {_f(wall[name], 1)} |" for name in rate]
    lines += [
        "",
        f"2 workers over 1: **{_f(b6['ray_encode_2workers_over_1'])}**; plain command over Ray with 1 worker: "
        f"**{_f(b6['ray_overhead_over_single_process'])}** (below 1 means the Ray run is faster: the driver "
        "reads and writes while the worker computes). Plot: `ray_throughput.png`.",
        "",
    ]
    return lines


def plot_ray_throughput(b6: dict, path: Path) -> None:
    plt = _plt()
    rate = b6["steady_docs_per_second"]
    workers = [int(name.split("-")[1]) for name in rate if name.startswith("ray-")]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(workers, [rate[f"ray-{n}"] for n in workers], "o-", label="Ray workers (1 thread each)")
    ax.axhline(rate["single"], color="gray", linestyle="--", label="plain encode, 1 thread")
    ax.plot(workers, [rate["ray-1"] * n for n in workers], ":", color="black", label="linear")
    ax.set_xlabel("workers")
    ax.set_ylabel("documents / second (steady state)")
    ax.set_xticks(workers)
    ax.legend()
    _save(fig, path)


def plot_recall_vs_bytes(b5: dict, path: Path) -> None:
    sweep = b5.get("codec_sweep", [])
    if not sweep:
        return
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in sweep:
        ax.scatter(p["bytes_per_vector"], p["recall_at_100"], color="tab:blue")
        ax.scatter(p["bytes_per_vector"], p["rerank_recall_at_100"], color="tab:orange", marker="x")
        ax.annotate(p["spec"], (p["bytes_per_vector"], p["recall_at_100"]), fontsize=8)
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("bytes per 3584-d vector on disk (float16: 7168)")
    ax.set_ylabel("recall@100 vs exact MaxSim")
    ax.set_title("B5: compressed multi-vector codecs (x: with re-rank of top 300)")
    _save(fig, path)


def _within(value, op: str, bound: float) -> str:
    if value is None:
        return "not measured"
    met = value <= bound if op == "<=" else value >= bound
    return f"{'meets' if met else 'misses'} the {op} {bound:g} target"


def _explanations(s: dict) -> list[str]:
    out = ["## Reading the targets", ""]
    hot = s.get("b1_head_over_trunk") or {}
    if s.get("diffusion_k16_over_k1") is not None:
        prop = (s.get("b1_proportional_head_k16_over_k1") or {}).get("diffusion")
        positions = s.get("b1_trunk_positions") or [None, None]
        text = (
            f"* **Diffusion cost vs K** ({_f(s['diffusion_k16_over_k1'])}, "
            f"{_within(s['diffusion_k16_over_k1'], '<=', 1.10)}). At K=16 the encoder runs 15 more positions "
            f"through the trunk ({positions[1]} instead of {positions[0]}; trunk alone measured "
            f"{_f(s.get('b1_trunk_only_k16_over_k1'))}x) and applies the LM head to 16 rows instead of 1. One head "
            f"row over the real 152,064-token vocabulary costs {_f(hot.get('benchmark_network'), 2)} trunk tokens in "
            f"this 512-wide, 8-layer network but {_f(hot.get('dream_7b'), 3)} in Dream-7B, so the extra 15 rows "
            f"weigh ~{_f(15 * (hot.get('benchmark_network') or 0), 0)} trunk tokens here and "
            f"~{_f(15 * (hot.get('dream_7b') or 0), 1)} at 7B scale."
        )
        if positions[0]:
            needed = (1.10 * positions[0] - positions[1]) / (16 - 1.10)
            if needed > 0:
                text += (
                    f" By that count the 1.10 target allows at most {needed:.2f} trunk tokens per head row at "
                    f"this text length, i.e. a trunk ~{(hot.get('benchmark_network') or 0) / needed:.0f}x larger "
                    "than this CPU benchmark's (Dream-7B is well inside it)."
                )
        if prop is not None:
            text += (
                f" Measured directly: the same trunk with its head cut to {hot.get('proportional_vocab')} rows "
                f"(Dream-7B's head/trunk ratio) gives K=16/K=1 = {_f(prop)}, which "
                f"{_within(prop, '<=', 1.10)}."
            )
        out.append(text)
    if s.get("ar_k16_over_k1") is not None:
        passes = (s.get("b1_forward_passes_per_text") or {}).get("autoregressive") or {}
        exact = all(int(v) == int(k) for k, v in passes.items()) if passes else None
        batched = (s.get("b1_throughput_batch8_k16_over_k1") or {}).get("autoregressive")
        text = (
            f"* **Autoregressive cost vs K** ({_f(s['ar_k16_over_k1'], 2)}, {_within(s['ar_k16_over_k1'], '>=', 5.0)}"
            f" at batch 1). PromptReps made {'exactly' if exact else ''} 1 + (K-1) forward passes per text (counted: "
            f"{json.dumps(passes)}). Each single-token step cost {_f(s.get('ar_step_over_prompt_pass_128'))}x the "
            f"128-token prompt pass, so K=16 costs {_f(s['ar_k16_over_k1'], 2)}x K=1 and "
            f"{_f(s.get('ar_over_diffusion_at_k16_128'), 2)}x the diffusion encoder at K=16. Batched (8 texts) the "
            f"ratio is {_f(batched, 2)}: a step's cost grows little with the batch while the prompt pass grows "
            "linearly, so steps amortise. On a CPU a decoding step of a 25M-parameter trunk is cheap next to a "
            "compute-bound prompt pass; on a GPU a step of a 7B model is bound by streaming its ~15 GB of weights and "
            "costs about as much as a short prompt pass, which is where the paper's ~15x (zero-shot, N up to 20) "
            "comes from."
        )
        if batched is not None and batched < 5:
            text += (
                " Reaching >= 5 with batching needs that regime: a GPU run (not available to this task) or a "
                "model whose weights, not its arithmetic, bound a step."
            )
        out.append(text)
    if s.get("overhead_over_forward") is not None:
        b2 = s.get("b2", {})
        prop = s.get("overhead_over_forward_proportional_head")
        out.append(
            f"* **Encoder overhead** ({_f(s['overhead_over_forward'])}, {_within(s['overhead_over_forward'], '<=', 1.05)}"
            f"). Passages (K=16, 128 tokens, batch 8): of the time above the bare forward pass, the K-row LM head "
            f"takes {_f(b2.get('passages', {}).get('head_share'))} and everything else (tokenising, batching, "
            f"content filter, sparse, dense/multi) {_f(b2.get('passages', {}).get('rest_share'))}. With the "
            f"7B-proportioned head the overhead is {_f(prop)} for passages ({_within(prop, '<=', 1.05)}) and "
            f"{_f(b2.get('proportional_queries', {}).get('overhead'))} for queries (K=4, 32 tokens, batch 1). The code "
            "around the forward pass is small; the head's share is a property of the tiny trunk + real vocabulary "
            "and shrinks with model size as above. Making the head cheaper here would mean changing the method "
            "(e.g. sparse logits only for content ids: the vocabulary projection restricted to C(x) would cut it to "
            "~|C(x)| rows; dense-only encodes could skip it entirely but would lose stop-token truncation)."
        )
    if s.get("multivector_speedup_100k") is not None:
        out.append(
            f"* **Multi-vector search** ({_f(s['multivector_speedup_100k'], 1)}x, "
            f"{_within(s['multivector_speedup_100k'], '>=', 10.0)}; recall@100 {_f(s.get('multivector_recall_at_100'), 4)}"
            f", {_within(s.get('multivector_recall_at_100'), '>=', 0.99)}). At 100k documents x 16 vectors the default "
            f"searcher answers a single query {_f(s['multivector_speedup_100k'], 1)}x faster than exhaustive MaxSim in "
            f"torch with 2 threads ({_f(s.get('multivector_speedup_100k_1thread'), 1)}x with 1 thread); lowest "
            f"recall@100 over all sizes and K_p: {_f(s.get('multivector_recall_at_100_min'), 4)}. Batched throughput "
            f"gains less ({_f(s.get('multivector_throughput_speedup_100k'), 1)}x): with all queries at once the "
            "exhaustive matmul runs at full CPU efficiency. On small indexes (10k documents, or K_p = 1) exhaustive "
            "scoring is as fast or faster; candidate generation pays off as the index grows."
            + (
                f" What reaches the target: the candidate budget. With ``candidates=200`` per source the same searcher "
                f"is {_f(s['multivector_c200_100k']['speedup'], 1)}x faster (2 threads; "
                f"{_f(s['multivector_c200_100k']['speedup_1thread'], 1)}x with 1 thread) at recall@100 "
                f"{_f(s['multivector_c200_100k']['recall_at_100'], 4)} on this data; and a larger index (exhaustive "
                "cost is linear in documents x K_p, candidate generation is not)."
                if s.get("multivector_c200_100k")
                else ""
            )
            + " Measured on the way: torch and faiss-cpu each bring an OpenMP runtime, and with the default (spinning)"
            " wait policy a 2-thread FAISS search in a process that also runs torch costs ~10 ms more (0.25 ms -> "
            "11.6 ms for a 10k flat search); B3 therefore runs with OMP_WAIT_POLICY=PASSIVE."
        )
    if s.get("memory_100k_over_10k") is not None:
        out.append(
            f"* **Memory** ({_f(s['memory_100k_over_10k'])}, {_within(s['memory_100k_over_10k'], '<=', 1.10)}). The "
            "writers stream to disk, so peak memory does not grow with the corpus; see the growth column in B4."
        )
    return out + [""]


def _b1_section(s: dict, b1: dict) -> list[str]:
    out = [
        "## B1 Encode cost vs K",
        "",
        f"Network: Qwen2 shape {json.dumps(b1['network'])}; identical weights for both families; passage "
        f'side, "few" prompt ({b1["series"][0]["prompt_tokens"]} prompt tokens), texts truncated to exactly '
        "the stated length. Milliseconds per text (median).",
        "",
        "![cost vs K](cost_vs_k.png)",
        "",
    ]
    for series in b1["series"]:
        table = b1_table(b1, series["name"])
        ks = sorted({k for row in table.values() for k in row})
        out += [
            f"**{series['name']}**: batch {series['batch_size']}, {series['n_texts']} texts x "
            f"{series['repeats']} repeats, vocabulary {series['vocab_size']}, representations "
            f"{', '.join(series['representations'])}",
            "",
            "| family | text tokens | " + " | ".join(f"K={k}" for k in ks) + " | K16/K1 |",
            "|---|---|" + "---|" * len(ks) + "---|",
        ]
        for (family, length), row in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            out.append(
                f"| {family} | {length} | "
                + " | ".join(f"{row[k] * 1000:.1f}" for k in ks)
                + f" | {_f(ratio(table, family, length), 2)} |"
            )
        out.append("")
    trunk = b1.get("trunk_only_128")
    if trunk:
        out += [
            f"Trunk only at 128 tokens (diffusion batch of one text): K=1 {trunk['trunk_k1'] * 1000:.1f} ms "
            f"({trunk['tokens_k1']} positions), K=16 {trunk['trunk_k16'] * 1000:.1f} ms ({trunk['tokens_k16']} "
            f"positions); LM head alone: 1 row {trunk['head_k1'] * 1000:.1f} ms, 16 rows "
            f"{trunk['head_k16'] * 1000:.1f} ms.",
            "",
        ]
    passes = b1.get("forward_passes_per_text")
    if passes:
        out += [
            "Forward passes per text (counted while encoding one 128-token text): "
            + "; ".join(
                f"{family}: " + ", ".join(f"K={k}: {v}" for k, v in row.items()) for family, row in passes.items()
            ),
            "",
        ]
    return out


def _b2_section(b2: dict) -> list[str]:
    out = [
        "## B2 Encoder overhead over the bare forward pass",
        "",
        "Diffusion (Dream layout). `forward` = `backbone.hidden_states` on the exact batches the encoder "
        "builds; `readout` = forward + K-row LM head + decode + stop truncation; `encoder` = the full "
        "`encode_side` call on the texts. Seconds for all texts of the scenario (median).",
        "",
        "![overhead](overhead.png)",
        "",
        "| network | scenario | K | tokens/text | batch | forward | readout | encoder | overhead | head | rest |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in b2["results"]:
        sec = r["seconds"]
        out.append(
            f"| {r['network']} | {r['name']} ({r['n_texts']} texts) | {r['k']} | {r['length']} | "
            f"{r['batch_size']} | {sec['forward']:.3f} | {sec['readout']:.3f} | {sec['encoder']:.3f} | "
            f"{r['overhead']:.3f} | {r['head_share']:+.3f} | {r['rest_share']:+.3f} |"
        )
    return out + [""]


def _b3_section(s: dict, b3: dict) -> list[str]:
    out = [
        "## B3 Search latency and throughput vs index size",
        "",
        f"Synthetic clustered vectors, dimension {b3['dimension']}, {b3['topics']} topics, K_q = {b3['k_q']}, "
        f"k = {b3['hits']}; impact: Zipf terms (30k vocabulary, ~48 terms/doc, 8-term queries) in a real "
        "Lucene impact index. Latency = median single query; QPS = one batch of all queries, 2 threads.",
        "",
        "![search latency](latency_vs_index_size.png)",
        "",
        "| searcher | docs | K_p | latency 2 thr (ms) | latency 1 thr (ms) | QPS (batch) | recall@100 | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in b3["points"]:
        notes = []
        if p.get("build_seconds") is not None:
            notes.append(f"index build {p['build_seconds']:.1f} s ({p.get('token_index')})")
        if p.get("index_seconds") is not None:
            notes.append(f"Lucene indexing {p['index_seconds']:.1f} s")
        if p.get("agreement_with_exhaustive_at_100") is not None:
            notes.append(f"top-100 overlap with exhaustive torch: {p['agreement_with_exhaustive_at_100']:.4f}")
        if p.get("candidates"):
            notes.append(f"candidates={p['candidates']} per source")
        out.append(
            f"| {p['searcher']} | {p['num_docs']:,} | {p['k_p'] if p['k_p'] else '-'} | "
            f"{p['latency_s'] * 1000:.2f} | {p['latency_1t_s'] * 1000:.2f} | {p['qps']:.1f} | "
            f"{_f(p.get('recall_at_100'), 4) if 'recall_at_100' in p else ''} | {'; '.join(notes)} |"
        )
    speedups = s.get("b3_speedup_vs_exhaustive") or {}
    if speedups:
        out += [
            "",
            "Latency speed-up of the default multi-vector search over exhaustive torch MaxSim: "
            + ", ".join(f"{key.replace('_kp', ' docs, K_p=')}: {value:.1f}x" for key, value in speedups.items()),
        ]
    return out + [""]


def _b4_section(s: dict, b4: dict) -> list[str]:
    out = [
        "## B4 Peak memory while encoding",
        "",
        f"{b4['model']}, K={b4['k']}, batch {b4['batch_size']}, {b4['words_per_doc']}-word passages, "
        f"representations {', '.join(b4['representations'])} written together by `encode_corpus` (the encode "
        "CLI's function), one fresh process per size.",
        "",
        "![memory](memory.png)",
        "",
        "| documents | peak RSS (MiB) | before encoding (MiB) | growth (MiB) | docs/s |",
        "|---|---|---|---|---|",
    ]
    for p in sorted(b4["points"], key=lambda p: p["num_docs"]):
        out.append(
            f"| {p['num_docs']:,} | {p['peak_rss_bytes'] / 2**20:.0f} | {p['baseline_rss_bytes'] / 2**20:.0f} "
            f"| {p['growth_bytes'] / 2**20:.1f} | {p['docs_per_second']:.0f} |"
        )
    return out + [""]


def _b7_summary(b7: dict) -> dict:
    learning, step = b7["learning"], b7["step_time"]
    return {
        "train_loss_cut": learning["loss_cut"],
        "train_mrr10_untrained": learning["mrr10_untrained"],
        "train_mrr10_trained": learning["mrr10_trained"],
        "train_k16_over_k1": step["k16_over_k1"],
        "train_trunk_only_k16_over_k1": step["trunk_only_k16_over_k1"],
        "train_positions_k16_over_k1": step["positions_k16_over_k1"],
        "train_k16_over_k1_per_position": step["k16_over_k1"] / step["positions_k16_over_k1"],
    }


def _b7_terms(learning: dict) -> list[str]:
    """Which loss term learned: the per-term training loss at the start and the end."""
    terms = learning.get("loss_terms")
    if not terms:
        return []
    return [
        f"By term: dense {terms['dense_first']:.3f} -> {terms['dense_last']:.3f}, sparse {terms['sparse_first']:.3f} "
        f"-> {terms['sparse_last']:.3f}. Why positives are 4 words (3 shared with the query): with 8-word "
        "passages (3 shared) the dense term did not learn on this 64-wide random network -- the sparse term scores "
        "overlap with one content-independent slot state (impacts are read only at the text's own words), which "
        "collapses the slot cosines, and dense-only training memorised the training pairs (held-out dense MRR@10 "
        "0.07 -> 0.05); see the docstring of `benchmarks/b7_train.py`.",
        "",
    ]


def _b7_section(s: dict, b7: dict) -> list[str]:
    """LoRA fine-tuning: the synthetic learning check and the training step cost vs K_p (``benchmarks/b7_train.py``)."""
    learning, step = b7["learning"], b7["step_time"]
    task, before, after = learning["task"], learning["mrr10_untrained"], learning["mrr10_trained"]
    per = step["seconds_per_passage"]
    return [
        "## B7 Fine-tuning (LoRA)",
        "",
        f"Learning check: the tiny Dream fixture (random weights) trained for {learning['steps']} CPU steps "
        f"({learning['train_seconds']:.0f} s) with `pyserini_diffretriever.training.train` on a synthetic task "
        f"({task['train_queries']} training queries of 3 words from a {task['vocabulary']}-word Cranfield "
        "vocabulary; each positive holds its query's words plus 1 other, negatives and distractors are 4 random "
        "words), "
        f"settings {learning['settings']}. Training loss (mean of the first / last {learning['loss_window']} "
        f"steps): {learning['loss_first']:.3f} -> {learning['loss_last']:.3f}, a cut of "
        f"{100 * learning['loss_cut']:.0f}%. Held-out MRR@10 ({task['heldout_queries']} unseen queries, "
        f"{task['corpus']} passages), untrained adapter -> trained: dense MaxSim {before['dense']:.3f} -> "
        f"{after['dense']:.3f}, sparse impacts {before['sparse']:.3f} -> {after['sparse']:.3f}. Random tiny weights: "
        "this shows that the mechanics learn, nothing about effectiveness.",
        "",
        *_b7_terms(learning),
        "",
        f"Training step cost (forward, backward, AdamW on the LoRA weights) on the benchmark network "
        f"({step['network']['num_layers']} layers, hidden {step['network']['hidden_size']}, real "
        f"{step['vocab_size']:,}-token head), 1 query x {step['passages_per_step']} passages of "
        f"{step['text_tokens']} text tokens, K_q = {step['k_query']}:",
        "",
        "| | K_p = 1 | K_p = 16 | ratio |",
        "|---|---|---|---|",
        f"| positions per passage | {step['positions_per_passage']['k1']} | {step['positions_per_passage']['k16']} "
        f"| {step['positions_k16_over_k1']:.3f} |",
        f"| full loss, s per passage | {per['full_k1']:.3f} | {per['full_k16']:.3f} | {step['k16_over_k1']:.3f} |",
        f"| dense loss only (no vocabulary head), s per passage | {per['trunk_only_k1']:.3f} | "
        f"{per['trunk_only_k16']:.3f} | {step['trunk_only_k16_over_k1']:.3f} |",
        "",
        f"Diffusion training cost grows with K_p by {s['train_k16_over_k1']:.2f}x for {s['train_positions_k16_over_k1']:.2f}x "
        "the positions: the K extra mask positions ride in the same single pass; what comes on top is the "
        "vocabulary projection of K_p rows per passage for the sparse loss (152k columns on a 512-wide network, "
        "relatively 40x more expensive than in Dream-7B, see B1). The 7B-shaped GPU measurement is "
        "`benchmarks/gpu/train_7b.py` (not run here: no GPU).",
        "",
    ]


def build(results: Path, command: str | None = None) -> dict:
    raw = load(results)
    summary = summarise(raw)
    summary["command"] = command or "python benchmarks/run.py"
    summary["generated"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    summary["machine"] = next((d.get("machine") for d in raw.values() if d.get("machine")), None)
    summary["wall_seconds"] = {name: d.get("wall_seconds") for name, d in raw.items()}
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if "b1" in raw:
        plot_cost_vs_k(raw["b1"], results / "cost_vs_k.png")
    if "b2" in raw:
        plot_overhead(raw["b2"], results / "overhead.png")
    if "b3" in raw:
        plot_search(raw["b3"], results / "latency_vs_index_size.png")
    if "b5" in raw:
        plot_recall_vs_bytes(raw["b5"], results / "recall_vs_bytes.png")
    if "b4" in raw:
        plot_memory(raw["b4"], results / "memory.png")
    if "b6_ray" in raw:
        plot_ray_throughput(raw["b6_ray"], results / "ray_throughput.png")
    (results / "REPORT.md").write_text(markdown(summary, raw, command), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    build(args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
