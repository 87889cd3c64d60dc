"""`rag chat` as a real terminal program: tmux runs it, sends keys and reads the screen."""

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def wait_for_screen(session: str, *needles: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen(session)
        if all(n in text for n in needles):
            return text
        time.sleep(0.25)
    raise AssertionError(f"{needles} never appeared; screen:\n{screen(session)}")


def test_chat_in_a_real_terminal_shows_a_cited_answer(bundled_dir, tmp_path):
    session = f"rag-{uuid.uuid4().hex[:8]}"
    (tmp_path / "config.toml").write_text("")
    env = {
        "RAG_DATA_DIR": str(bundled_dir),
        "RAG_EMBED_MODEL_DIR": os.environ["RAG_EMBED_MODEL_DIR"],
        "RAG_CONFIG": str(tmp_path / "config.toml"),
        "RAG_LLM": "off",
        "TERM": "xterm-256color",
    }
    # COLUMNS/LINES inherited from the test runner would override the terminal's real size
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = f"env -u COLUMNS -u LINES {assignments} {shlex.quote(sys.executable)} -m rag chat"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "40", command], check=True)
    try:
        wait_for_screen(session, "ready")
        subprocess.run(
            ["tmux", "send-keys", "-t", session, "How many queries does the LitSearch benchmark contain?", "Enter"],
            check=True,
        )
        text = wait_for_screen(session, "597", "✓", "[1] LitSearch")
        assert "precision 1.00" in text
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        deadline = time.monotonic() + 10
        while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "rag chat did not quit on ctrl+q"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
