"""``benchmarks/gpu/encode_7b.py --tiny``: the GPU encoding check runs end to end on CPU (tiny shapes) and
reports every figure the GPU run reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_reports_throughput_latency_and_tokens(tmp_path):
    out = tmp_path / "encode_tiny.json"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu" / "encode_7b.py"), "--tiny", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["k_passage"] == 16 and report["words"]["documents"] == 24
    for family in ("dream", "llada"):
        figures = report["families"][family]
        assert figures["model_type"].lower() == family
        assert figures["passages_per_s"] > 0 and figures["latency_batch1_ms"] > 0
        assert figures["computed_tokens_per_s"] >= figures["real_tokens_per_s"] > 0
        assert figures["mfu"] is None and figures["peak_memory_gib"] is None  # no GPU, no peak to compare with
