"""``python -m pyserini_diffretriever.reproduce``: two Cranfield "datasets" end to end, a killed run resumed, errors.

The end-to-end run uses BEIR-format folders cut from the shipped Cranfield collection (two splits of two queries
and a few documents each) and the tiny random Dream checkpoint, so its scores mean nothing; what is checked is
that every step runs, the table is complete, and a SIGKILLed run continues without redoing finished steps.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.cli import reproduce
from pyserini_diffretriever.cli import search as search_cli
from pyserini_diffretriever.collections.cranfield import export_beir, load_cranfield
from pyserini_diffretriever.reproduction import pipeline
from pyserini_diffretriever.reproduction.configurations import CONFIGURATIONS
from pyserini_diffretriever.reproduction.datasets import BEIR_7, parse_dataset_spec

REPO = Path(__file__).resolve().parents[2]
DREAM = "Dream-org/Dream-v0-Instruct-7B"
SPLITS = {"cran-a": ["1", "2"], "cran-b": ["3", "4"]}


def _export(out: Path) -> Path:
    """Two BEIR folders: each split's queries, up to two relevant documents per query, and three others."""
    cranfield = load_cranfield()
    for name, queries in SPLITS.items():
        judged = [d for q in queries for d in sorted(cranfield.qrels[q], key=int) if cranfield.qrels[q][d] > 0][:4]
        others = [d for d in cranfield.corpus if d not in judged and cranfield.corpus[d]["text"]][:3]
        export_beir(out / name, cranfield, queries=queries, documents=sorted(set(judged + others), key=int))
    return out


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("beir"))


def _argv(beir: Path, work: Path, model: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        str(beir / "cran-a"),
        "--dataset",
        str(beir / "cran-b"),
        "--configs",
        "dream-zs-multi",
        "--work",
        str(work),
        "--model",
        f"{DREAM}={model}",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-length",
        "64",
        *extra,
    ]


def _plan(work: Path, configs: list[str]) -> list[pipeline.Step]:
    settings = pipeline.ReproductionSettings(work=work)
    datasets = [parse_dataset_spec(f"{name}=unused/{name}") for name in SPLITS]
    return pipeline.Reproduction(datasets, [CONFIGURATIONS[c] for c in configs], settings).plan()


def _main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = reproduce.main(argv)
    return code, out.getvalue()


def _done_manifests(work: Path) -> dict[str, str]:
    found = {}
    for path in sorted((work / "steps").rglob("*.json")):
        text = path.read_text()
        if json.loads(text)["status"] == "done":
            found[str(path.relative_to(work / "steps"))] = text
    return found


@pytest.fixture(scope="module")
def reproduced(beir, tiny_dream_dir, tmp_path_factory):
    """Start the command, SIGKILL it once cran-a's encoding is done, then rerun it to the end in this process."""
    work = tmp_path_factory.mktemp("work")
    argv = _argv(beir, work, tiny_dream_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen(
        [sys.executable, "-m", "pyserini_diffretriever.reproduce", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = work / "steps" / "cran-a" / "dream-zs-multi" / "encode.json"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if marker.is_file() and json.loads(marker.read_text())["status"] == "done":
                break
            time.sleep(0.1)
        killed_while_running = child.poll() is None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        _, stderr = child.communicate(timeout=60)
    assert killed_while_running, f"the first run ended before it could be killed:\n{stderr[-3000:]}"
    before = _done_manifests(work)
    code, stdout = _main(argv)
    return {"work": work, "argv": argv, "before": before, "code": code, "stdout": stdout}


@pytest.mark.jvm
@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_steps(reproduced) -> None:
    assert reproduced["code"] == 0
    before, after = reproduced["before"], _done_manifests(reproduced["work"])
    assert "cran-a/dream-zs-multi/encode.json" in before
    assert "cran-b/dream-zs-multi/eval-hybrid+bm25.json" not in before
    for name, text in before.items():  # finished steps kept their manifests: same key, same time stamp
        assert after[name] == text, name
    assert set(after) == {f"{step.id}.json" for step in _plan(reproduced["work"], ["dream-zs-multi"])}


@pytest.mark.jvm
@pytest.mark.slow
def test_table_has_every_row_and_column(reproduced) -> None:
    work = reproduced["work"]
    table = json.loads((work / "results.json").read_text())
    assert table["datasets"] == ["cran-a", "cran-b"] and table["average"] == "mean"
    runs = [(row["configuration"], row["run"]) for row in table["rows"]]
    assert runs == [("bm25", "bm25")] + [("dream-zs-multi", run) for run in CONFIGURATIONS["dream-zs-multi"].runs]
    for row in table["rows"]:
        for dataset in ("cran-a", "cran-b"):
            assert 0.0 <= row["metrics"][dataset]["ndcg_cut_10"] <= 1.0
            assert 0.0 <= row["metrics"][dataset]["recall_100"] <= 1.0
        assert row["index_bytes"] > 0 and row["search_ms_per_query"] > 0
        assert (row["encode_seconds"] is None) == (row["configuration"] == "bm25")
    hybrid = table["rows"][4]
    assert hybrid["run"] == "hybrid" and hybrid["paper_ndcg_cut_10"] == 0.476 and hybrid["difference"] is None
    lines = (work / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + len(runs)
    header = lines[0].split(",")
    assert header[:6] == ["configuration", "run", "cran-a nDCG@10", "cran-a R@100", "cran-b nDCG@10", "cran-b R@100"]
    assert header[-5:] == ["paper nDCG@10", "difference", "encode s", "index bytes", "search ms/q"]
    markdown = (work / "results.md").read_text()
    assert markdown in reproduced["stdout"]
    assert sum(line.startswith(("| bm25 |", "| dream-zs-multi |")) for line in markdown.splitlines()) == len(runs)


@pytest.mark.jvm
@pytest.mark.slow
def test_bm25_equals_the_printed_pyserini_command_and_runs_equal_the_search_command(reproduced, tmp_path) -> None:
    work, argv = reproduced["work"], reproduced["argv"]
    code, printed = _main([*argv, "--dry-run", "--seconds-per-token", "0.001"])
    assert code == 0
    commands = [line for line in printed.splitlines() if line.startswith("python -m pyserini_diffretriever.search")]
    dense = next(c for c in commands if "cran-a/dream-zs-multi/enc/dense" in c)
    args = shlex.split(dense)[3:]
    theirs = tmp_path / "dense.trec"
    args[args.index("--output") + 1] = str(theirs)
    assert search_cli.main(args) == 0
    ours = work / "cran-a" / "dream-zs-multi" / "runs" / "dense.trec"
    assert theirs.read_text() == ours.read_text()


@pytest.mark.jvm
@pytest.mark.slow
def test_rerun_redoes_nothing(reproduced, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pyserini_diffretriever")
    before = _done_manifests(reproduced["work"])
    code, _ = _main(reproduced["argv"])
    assert code == 0
    assert _done_manifests(reproduced["work"]) == before
    assert "done already" in caplog.text and "step cran-b/dream-zs-multi/encode: done in" not in caplog.text


def test_dry_run_prints_every_step_with_commands_the_real_parsers_accept(beir, tiny_dream_dir, tmp_path) -> None:
    argv = _argv(beir, tmp_path / "work", tiny_dream_dir, "--configs", "dream-zs-multi", "dream-zs-single")
    code, printed = _main([*argv, "--dry-run", "--seconds-per-token", "0.5", "--seconds-per-text", "0"])
    assert code == 0 and not (tmp_path / "work").exists()
    for step in _plan(tmp_path / "work", ["dream-zs-multi", "dream-zs-single"]):
        assert f"# [{step.id}]" in printed
    lines = printed.splitlines()
    encodes = [shlex.split(line)[3:] for line in lines if line.startswith("python -m pyserini_diffretriever.encode ")]
    assert len(encodes) == 4
    for encode in encodes:
        parsed = encode_cli.parse_args(encode)
        assert parsed.encoder.encoder == str(tiny_dream_dir) and parsed.input.fields == ["title", "text"]
    single = next(encode_cli.parse_args(e) for e in encodes if "dream-zs-single" in " ".join(e))
    assert (single.encoder.k, single.encoder.query_k, single.encoder.prompt) == (1, 1, "one")
    assert single.encoder.representation == ["dense", "impact"]
    for line in lines:
        if line.startswith("python -m pyserini_diffretriever.index "):
            index_cli.build_parser().parse_args(shlex.split(line)[3:])
        if line.startswith("python -m pyserini_diffretriever.search "):
            search_cli.build_parser().parse_args(shlex.split(line)[3:])
    assert "| dream-zs-multi | cran-a | 7 |" in printed or "| dream-zs-multi | cran-a |" in printed
    assert "GPU hours" in printed and "(given)" in printed


def test_unknown_configuration_is_a_usage_error(beir, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["--dataset", str(beir / "cran-a"), "--work", str(tmp_path), "--configs", "dream-best"])
    assert exit_.value.code == 2
    assert "unknown configuration 'dream-best'; known configurations: llada-zs-single" in capsys.readouterr().err


def test_missing_datasets_are_all_named_with_the_download(tmp_path, capsys) -> None:
    code = reproduce.main(
        ["--beir", str(tmp_path / "beir"), "--work", str(tmp_path / "w"), "--configs", "dream-zs-multi"]
    )
    assert code == 1
    err = capsys.readouterr().err
    for name in BEIR_7:
        assert f"https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip" in err


def test_missing_model_is_named_with_the_download(beir, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "_cached", lambda hub_id, filename: False)
    argv = ["--dataset", str(beir / "cran-a"), "--work", str(tmp_path), "--configs", "dream-ft-multi"]
    assert reproduce.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{DREAM}: not in the Hugging Face cache; download it with `hf download {DREAM}`" in err
    assert "hf download ielabgroup/diffretriever-dream-7b-multi-q4-p16" in err
    assert not (tmp_path / "steps").exists()


def test_bad_folder_stops_with_file_and_line(beir, tiny_dream_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    (bad / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (bad / name).write_text((beir / "cran-a" / name).read_text())
    with (bad / "corpus.jsonl").open("a") as handle:
        handle.write('{"_id": "x", "title": "t", "text": 3}\n')
    argv = ["--dataset", str(bad), "--work", str(tmp_path / "w"), "--configs", "dream-zs-multi"]
    assert reproduce.main([*argv, "--model", f"{DREAM}={tiny_dream_dir}", "--device", "cpu"]) == 1
    assert "corpus.jsonl:" in capsys.readouterr().err
    table = json.loads((tmp_path / "w" / "results.json").read_text())  # written anyway, every cell empty
    assert len(table["rows"]) == 6 and all(row["metrics"]["bad"]["ndcg_cut_10"] is None for row in table["rows"])


def test_list_names_every_configuration(capsys) -> None:
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CONFIGURATIONS) and "paper BEIR-7 nDCG@10 0.671" in out


def test_readme_commands_parse() -> None:
    """The README's "Reproducing the paper" commands are accepted by the real parser."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    joined = section.replace("\\\n", " ")
    commands = [line.strip() for line in joined.splitlines() if line.strip().startswith(f"{reproduce.PROGRAM} ")]
    assert len(commands) == 2
    for command in commands:
        args = reproduce.build_parser().parse_args(shlex.split(command)[3:])
        assert args.beir == "data/beir" and args.configs == ["paper"] and args.dtype == "bfloat16"
    assert "--dry-run" in commands[0] and "--measure-cost" in commands[0]


def test_a_second_run_on_the_same_work_folder_is_refused(beir, tiny_dream_dir, tmp_path, capsys) -> None:
    from pyserini_diffretriever.reproduction.steps import lock_work_folder

    with lock_work_folder(tmp_path / "work"):
        assert reproduce.main(_argv(beir, tmp_path / "work", tiny_dream_dir)) == 1
    assert "is in use by another reproduce run" in capsys.readouterr().err
    assert not (tmp_path / "work" / "steps").exists()
