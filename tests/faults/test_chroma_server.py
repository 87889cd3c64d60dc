"""A Chroma server (`chroma run`, started here) lost in the middle of an ingest: one line, and
the same `rag ingest` finishes the store once the server is back."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.faults.conftest import N_PAPERS, assert_consistent, one_error_line, popen_rag, rag, wait_stopped

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path, port: int) -> subprocess.Popen:
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    if not Path(chroma).exists():
        pytest.skip("the `chroma` command is not installed")
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).read()
            return proc
        except OSError:
            assert proc.poll() is None, "chroma run exited"
            time.sleep(0.3)
    proc.kill()
    pytest.skip("chroma run did not start within a minute")


def stop_server(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


def test_a_server_lost_mid_ingest_is_one_line_and_the_ingest_resumes(tmp_path, corpus):
    port = free_port()
    server = start_server(tmp_path / "server", port)
    env = {"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_CHROMA_URL": f"http://127.0.0.1:{port}"}
    try:
        writer = popen_rag("ingest", str(corpus), env=env, stop_at="batch-1:STOP")
        try:
            wait_stopped(writer)
            stop_server(server)
        finally:
            writer.send_signal(signal.SIGCONT)
        out, err = writer.communicate(timeout=300)
        line = one_error_line(subprocess.CompletedProcess(writer.args, writer.returncode, out, err))
        assert f"Chroma server at http://127.0.0.1:{port}" in line and "start it" in line

        server = start_server(tmp_path / "server", port)
        again = rag("ingest", str(corpus), env=env)
        assert again.returncode == 0, again.stderr
        assert f"{N_PAPERS - 32} added" in again.stderr
        assert_consistent(env, papers=N_PAPERS)
    finally:
        stop_server(server)
