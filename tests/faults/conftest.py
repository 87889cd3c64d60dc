"""Fault-injection helpers: a small corpus, `rag` processes stopped at named steps of an ingest
(RAG_FAULT_STOP_AT, see rag.ingest.fault_point), and a look at what the store holds afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.corpus import bundled_corpus_path, iter_papers
from tests.conftest import REPO, run_rag, write_jsonl

N_PAPERS = 40  # two ingest batches: 32 and 8 papers


@pytest.fixture(scope="session")
def corpus_rows() -> list[dict]:
    papers = list(iter_papers(bundled_corpus_path()))
    return [{"id": f"u{i:03d}", "title": p.title, "abstract": p.abstract} for i, p in enumerate(papers[:N_PAPERS])]


@pytest.fixture
def corpus(tmp_path, corpus_rows) -> Path:
    return write_jsonl(tmp_path / "mine.jsonl", corpus_rows)


@pytest.fixture
def data_env(tmp_path) -> dict[str, str]:
    return {"RAG_DATA_DIR": str(tmp_path / "data")}


def rag(*args: str, env: dict, stop_at: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_rag(*args, env={**env, "RAG_FAULT_STOP_AT": stop_at} if stop_at else env, timeout=timeout)


def popen_rag(*args: str, env: dict, stop_at: str | None = None) -> subprocess.Popen:
    full = {**os.environ, **env}
    if stop_at:
        full["RAG_FAULT_STOP_AT"] = stop_at
    return subprocess.Popen(
        [sys.executable, "-m", "rag", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=REPO,
    )


def inspect(env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.inspect_store"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_consistent(env: dict, papers: int | None = None) -> dict:
    """No orphan chunks, and the saved BM25 index holds exactly the chunks Chroma holds."""
    got = inspect(env)
    assert got["orphans"] == []
    assert got["bm25_ids"] == got["chroma_ids"], "BM25 disagrees with the store"
    assert got["bm25_status"] == "fresh"
    if papers is not None:
        assert len(got["papers"]) == papers
    return got


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), proc.stderr
    return lines[0]


def stats(env: dict) -> dict[str, str]:
    proc = run_rag("stats", env=env)
    assert proc.returncode == 0, proc.stderr
    return {line.split()[0]: line.split(None, 1)[1] for line in proc.stdout.splitlines()}


@pytest.fixture(scope="session")
def ingested_template(tmp_path_factory, corpus_rows) -> Path:
    """A data folder holding the small corpus, ingested once; tests copy it."""
    root = tmp_path_factory.mktemp("template")
    corpus = write_jsonl(root / "mine.jsonl", corpus_rows)
    proc = run_rag("ingest", str(corpus), env={"RAG_DATA_DIR": str(root / "data")}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root / "data"


@pytest.fixture
def ingested(tmp_path, ingested_template) -> dict[str, str]:
    """The environment of a private copy of the ingested small corpus."""
    data = tmp_path / "data"
    shutil.copytree(ingested_template, data)
    return {"RAG_DATA_DIR": str(data)}


def wait_stopped(proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `proc` has stopped itself (RAG_FAULT_STOP_AT=<step>:STOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.1)
    raise AssertionError("the process never reached its stop point")
