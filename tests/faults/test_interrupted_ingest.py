"""Kill -9 and Ctrl-C at named steps of a real `rag ingest` process; the next commands must
complete the store or report what to do, with counts right, no orphan chunks and a BM25 index
that holds exactly the chunks Chroma holds."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys

import pytest

from tests.faults.conftest import N_PAPERS, assert_consistent, inspect, one_error_line, rag, stats

QUERY = "quantization of large language models"


@pytest.mark.parametrize("step", ["batch-1", "before-index", "bm25-save"])
def test_killed_ingest_is_reported_then_finished_by_running_it_again(step, corpus, data_env):
    killed = rag("ingest", str(corpus), env=data_env, stop_at=step)
    assert killed.returncode == -signal.SIGKILL

    after = rag("search", QUERY, "--json", env=data_env)
    assert after.returncode == 0, after.stderr
    assert "Traceback" not in after.stderr
    if step != "bm25-save":  # killed while running: said so, with the command that resumes it
        assert f"rag: an ingest was interrupted before all {N_PAPERS} of its papers were stored" in after.stderr
        assert f"rag ingest {corpus}" in after.stderr
    state = inspect(data_env)
    assert all(pid.startswith("u") for pid in state["papers"]), "the bundled corpus leaked into the store"
    assert state["orphans"] == [] and state["bm25_ids"] == state["chroma_ids"]

    again = rag("ingest", str(corpus), env=data_env)
    assert again.returncode == 0, again.stderr
    assert f"{N_PAPERS} papers:" in again.stderr
    assert_consistent(data_env, papers=N_PAPERS)
    assert stats(data_env)["papers"] == str(N_PAPERS)
    assert inspect(data_env)["ingest"] == "done"


def test_bm25_built_between_two_interrupted_ingests_is_not_taken_as_fresh(corpus, data_env):
    """The old fingerprint was cleared to "" by each ingest; an index built while it was "" matched
    it again after the second interrupted ingest, and `rag stats` called it fresh."""
    assert rag("ingest", str(corpus), env=data_env, stop_at="batch-1").returncode == -signal.SIGKILL
    assert rag("search", QUERY, env=data_env).returncode == 0  # builds and saves BM25 over 32 papers
    first = inspect(data_env)
    assert first["bm25_ids"] == first["chroma_ids"] and len(first["papers"]) == 32

    assert rag("ingest", str(corpus), env=data_env, stop_at="batch-1").returncode == -signal.SIGKILL  # the rest
    assert inspect(data_env)["bm25_status"] == "stale"
    proc = rag("stats", env=data_env)
    assert proc.returncode == 0, proc.stderr
    assert "rag: the BM25 index is out of date with the store; rebuilding it (" in proc.stderr
    chunks = len(inspect(data_env)["chroma_ids"])
    assert f"fresh ({chunks} chunks)" in proc.stdout
    assert_consistent(data_env, papers=N_PAPERS)


def test_a_user_ingest_killed_before_storing_anything_gets_no_bundled_papers(corpus, data_env):
    assert rag("ingest", str(corpus), env=data_env, stop_at="start").returncode == -signal.SIGKILL
    line = one_error_line(rag("search", QUERY, env=data_env))
    assert "interrupted before it stored any paper" in line and f"rag ingest {corpus}" in line
    assert inspect(data_env)["chroma_ids"] == []
    assert rag("ingest", str(corpus), env=data_env).returncode == 0
    assert_consistent(data_env, papers=N_PAPERS)


@pytest.mark.parametrize("sig", ["INT", "TERM"])  # TERM: what `timeout` and `kill` send
def test_ctrl_c_says_what_was_kept_and_how_to_resume(corpus, data_env, sig):
    proc = rag("ingest", str(corpus), env=data_env, stop_at=f"batch-1:{sig}")
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"rag: interrupted; 32 of {N_PAPERS} papers were stored; run the same `rag ingest` again to finish"
    )
    again = rag("ingest", str(corpus), env=data_env)
    assert again.returncode == 0
    assert f"{N_PAPERS - 32} added, 0 replaced, 32 unchanged" in again.stderr
    assert_consistent(data_env, papers=N_PAPERS)


def test_an_interrupted_bundled_auto_ingest_is_resumed_by_the_next_command(data_env):
    first = rag("search", QUERY, env=data_env, stop_at="batch-2")
    assert first.returncode == -signal.SIGKILL
    assert "ingesting the bundled corpus" in first.stderr
    assert len(inspect(data_env)["papers"]) == 64
    second, terminal = search_with_a_terminal_for_stderr(data_env)
    assert second.returncode == 0, terminal
    assert "rag: resuming the interrupted ingest of the bundled corpus" in terminal
    assert "embedding the bundled corpus" in terminal  # the progress bar
    assert json.loads(second.stdout)["results"]
    assert_consistent(data_env, papers=223)


def search_with_a_terminal_for_stderr(env: dict) -> tuple[subprocess.CompletedProcess, str]:
    """`rag search` with stderr on a pseudo-terminal (stdout a pipe); returns what the terminal showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "search", QUERY, "--json"],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        env={**os.environ, **env, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    shown = bytearray()
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the follower side closed
            break
        if not data:
            break
        shown += data
    os.close(leader)
    out = proc.stdout.read() if proc.stdout else ""
    proc.wait(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), shown.decode(errors="replace")
