"""Golden encodings: the tiny Dream and LLaDA checkpoints' dense, multi and impact outputs, pinned.

Why: the tests elsewhere check properties (shapes, normalisation, equal results across batchings); a change that
keeps every property but moves the numbers -- a prompt token, a slot position, the logit alignment, the pooling,
the sparse top-k or the quantisation -- passes them. Here, every output of both diffusion families on both sides is
compared with values pinned in ``golden_encodings.json`` (next to this file), so such a change fails loudly and has
to be made deliberately.

The checkpoints are the package's own tiny random ones (:mod:`pyserini_diffretriever.fixtures`, fixed seeds), and
the encoders run with their defaults (only ``max_length`` is shortened), through
:class:`~pyserini_diffretriever.encoders.model.SideEncoder`, the path both Pyserini encoder classes take.

Tolerance (CPU float32; BLAS kernels may sum in another order on another CPU):

* dense and multi: every value within ``FLOAT_ATOL`` = 1e-4 of the pin (the vectors are L2-normalised slots, values
  of order 0.1; a real change moves them by far more), and the same number of multi vectors;
* impact: the same terms and each integer weight within ``IMPACT_ATOL`` = 1 of the pin (``trunc(100 w)`` can step
  by one when ``w`` sits on a boundary), except that a term pinned with weight <= 1 may be missing and a term of
  weight <= 1 may appear (its float weight may round either side of the cut).

Regenerate the pins only when a change of the numbers is intended, and say why in the commit::

    PYTHONPATH=. .venv/bin/python -m tests.regression.test_golden_encodings

(it rebuilds the tiny checkpoints in a temporary folder and rewrites ``golden_encodings.json``).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

GOLDEN_FILE = Path(__file__).with_name("golden_encodings.json")
FLOAT_ATOL = 1e-4
IMPACT_ATOL = 1
MAX_LENGTH = 64
DECIMALS = 6  # pins are rounded to 1e-6, far below FLOAT_ATOL

TEXTS = {
    "query": ["what is the lift of a supersonic wing", "boundary layer transition"],
    "passage": [
        "Experimental study of the flow over a wing at Mach 2; the lift coefficient falls with sweep.",
        "A laminar boundary layer on a flat plate becomes turbulent at high Reynolds numbers.",
    ],
}
TITLES = {"query": None, "passage": ["Supersonic wing lift", None]}
FAMILIES = ("dream", "llada")


def _checkpoint_sha256(model_dir: Path) -> str:
    """Digest of the tiny checkpoint's weights: tells a changed fixture apart from a changed encoder."""
    return hashlib.sha256((Path(model_dir) / "model.safetensors").read_bytes()).hexdigest()


def encode_golden(model_dir: Path) -> dict[str, Any]:
    """The pinned record of one checkpoint: per side its K and the three representations of :data:`TEXTS`."""
    from pyserini_diffretriever.encoders import DiffRetrieverModel, SideEncoder

    model = DiffRetrieverModel(model_dir)
    record: dict[str, Any] = {"checkpoint_sha256": _checkpoint_sha256(model_dir)}
    for side, texts in TEXTS.items():
        encoder = SideEncoder(model, side, max_length=MAX_LENGTH)
        batch = encoder.encode(texts, TITLES[side])
        record[side] = {
            "k": encoder.k,
            "dense": np.round(batch.dense.astype(np.float64), DECIMALS).tolist(),
            "multi": [np.round(vectors.astype(np.float64), DECIMALS).tolist() for vectors in batch.multi],
            "impact": [dict(sorted(vector.items())) for vector in batch.impact],
        }
    return record


def _impact_differences(got: dict[str, int], pinned: dict[str, int]) -> list[str]:
    problems = []
    for term in sorted(set(got) | set(pinned)):
        if term not in got:
            if pinned[term] > IMPACT_ATOL:
                problems.append(f"{term!r} pinned {pinned[term]}, missing")
        elif term not in pinned:
            if got[term] > IMPACT_ATOL:
                problems.append(f"{term!r} new with weight {got[term]}")
        elif abs(got[term] - pinned[term]) > IMPACT_ATOL:
            problems.append(f"{term!r} {got[term]} != pinned {pinned[term]}")
    return problems


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("family", FAMILIES)
def test_encodings_match_the_pins(family, golden, request):
    model_dir = request.getfixturevalue(f"tiny_{family}_dir")
    pinned = golden[family]
    assert _checkpoint_sha256(model_dir) == pinned["checkpoint_sha256"], (
        f"the tiny {family} checkpoint itself changed (pyserini_diffretriever.fixtures); if intended, regenerate the "
        "pins as this module's docstring says"
    )
    got = encode_golden(model_dir)
    for side in TEXTS:
        where = f"{family} {side}"
        assert got[side]["k"] == pinned[side]["k"], f"{where}: default K changed"
        np.testing.assert_allclose(
            got[side]["dense"], pinned[side]["dense"], rtol=0, atol=FLOAT_ATOL, err_msg=f"{where}: dense vectors"
        )
        for i, (vectors, pins) in enumerate(zip(got[side]["multi"], pinned[side]["multi"], strict=True)):
            assert len(vectors) == len(pins), f"{where} text {i}: {len(vectors)} multi vectors, pinned {len(pins)}"
            np.testing.assert_allclose(vectors, pins, rtol=0, atol=FLOAT_ATOL, err_msg=f"{where} text {i}: multi")
        for i, (vector, pins) in enumerate(zip(got[side]["impact"], pinned[side]["impact"], strict=True)):
            problems = _impact_differences(vector, pins)
            assert not problems, f"{where} text {i}: impact terms differ: " + "; ".join(problems[:10])


def test_the_impact_tolerance_still_catches_a_changed_weight():
    """The comparison itself: a boundary flip passes, a real change does not."""
    pinned = {"wing": 57, "lift": 1, "flow": 12}
    assert _impact_differences({"wing": 56, "flow": 12, "mach": 1}, pinned) == []
    assert _impact_differences({"wing": 50, "lift": 1, "flow": 12}, pinned) == ["'wing' 50 != pinned 57"]
    assert _impact_differences({"wing": 57, "lift": 1}, pinned) == ["'flow' pinned 12, missing"]


def main() -> int:
    """Rebuild the tiny checkpoints and rewrite :data:`GOLDEN_FILE` (a deliberate change of the numbers)."""
    from pyserini_diffretriever.fixtures import write_tiny_dream, write_tiny_llada

    with tempfile.TemporaryDirectory() as folder:
        dirs = {
            "dream": write_tiny_dream(Path(folder) / "dream"),
            "llada": write_tiny_llada(Path(folder) / "llada"),
        }
        record = {family: encode_golden(dirs[family]) for family in FAMILIES}
    text = json.dumps(record, indent=1)
    text = re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text
    )  # a vector a line
    GOLDEN_FILE.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN_FILE} ({GOLDEN_FILE.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
