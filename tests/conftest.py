"""Shared fixtures: a real Chroma store in a temporary folder, the real embedder, and the
optional services CI starts (a `chroma run` server, the local SmolLM2 server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = Path(os.environ.get("RAG_EMBED_MODEL_DIR") or REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2")


def make_settings(data_dir: Path, **overrides) -> Settings:
    values = {"data_dir": data_dir, "embed_model_dir": MODEL_DIR, "llm": "off", **overrides}
    return Settings(**values)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test reads the developer's config file or LLM keys."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "RAG_LLM_MODEL",
        "RAG_CHROMA_URL",
        "RAG_RETRIEVER",
        "RAG_TOP_K",
        "RAG_LLM",
        "RAG_EMBEDDER",
        "RAG_SERVER_URL",
        "RAG_EMBED_DEVICE",
    ):
        monkeypatch.delenv(name, raising=False)
    empty_config = tmp_path_factory.getbasetemp() / "empty-config.toml"
    empty_config.touch()  # exists, so `rag` does not warn that RAG_CONFIG names no file
    monkeypatch.setenv("RAG_CONFIG", str(empty_config))
    monkeypatch.setenv("RAG_EMBED_MODEL_DIR", str(MODEL_DIR))


@pytest.fixture(scope="session")
def bundled_dir(tmp_path_factory) -> Path:
    """A data folder holding the bundled corpus, ingested once for the whole session."""
    data_dir = tmp_path_factory.mktemp("bundled")
    ws = Workspace(make_settings(data_dir))
    from rag.ingest import ingest

    ingest(ws.store, ws.embedder)
    return data_dir


@pytest.fixture(scope="session")
def workspace(bundled_dir) -> Workspace:
    return Workspace(make_settings(bundled_dir))


def _server_url(variable: str, what: str) -> str:
    """The URL of a server .ci/run starts for the tests; without it the test is skipped."""
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"no {what}: set {variable} (.ci/run starts one)")
    return url


@pytest.fixture
def chroma_url() -> str:
    return _server_url("RAG_TEST_CHROMA_URL", "Chroma server")


@pytest.fixture
def llm_url() -> str:
    return _server_url("RAG_TEST_LLM_URL", "local LLM server")


@pytest.fixture
def llm_tools_url() -> str:
    return _server_url("RAG_TEST_LLM_TOOLS_URL", "local LLM server with tool calling")


def run_rag(
    *args: str, env: dict | None = None, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`rag` as a real process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=full_env, input=input, timeout=timeout
    )


def run_on_terminal(
    *args: str,
    env: dict,
    with_stderr: bool = False,
    timeout: float = 120,
    interrupt_at: str | None = None,
    terminate: bool = False,
) -> tuple[int, str]:
    """`rag` on a pseudo-terminal, so it streams as a user sees it: (exit code, what it printed,
    escape sequences removed; stderr too with `with_stderr`). `interrupt_at`: once that text is
    shown, Ctrl-C, as a terminal sends it: SIGINT to the whole process group (helpers included);
    with `terminate`, SIGTERM to rag alone instead, as `timeout` and `kill` send it."""
    import pty
    import signal

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", *args], env=env, stdin=subprocess.DEVNULL, stdout=follower,
        stderr=follower if with_stderr else subprocess.DEVNULL, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        seen += data
        if interrupt_at is not None and interrupt_at.encode() in seen:
            if terminate:
                os.kill(proc.pid, signal.SIGTERM)
            else:
                os.killpg(proc.pid, signal.SIGINT)
            interrupt_at = None
    code = proc.wait(timeout=timeout)
    os.close(leader)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode()).replace("\r\n", "\n")


def rag_json(*args: str, env: dict | None = None) -> dict:
    proc = run_rag(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
