"""What `rag search` and `rag ask` say when RAG_SERVER_URL points at no server, or at a server that
is not `rag serve`: one line naming RAG_SERVER_URL and what to do, exit 1, no traceback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import run_rag


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    if "--json" in proc.args:  # the error as an object on stdout too, for a script reading it
        assert json.loads(proc.stdout) == {"error": lines[0].removeprefix("rag: error: ")}
    else:
        assert not proc.stdout
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [["search", "FP8 vs INT8"], ["ask", "which papers compare FP8 vs INT8?", "--json"]])
def test_nothing_listening(command: list[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    line = _one_line_error(run_rag(*command, env={"RAG_SERVER_URL": url}), url, "RAG_SERVER_URL", "rag serve")
    assert "Connection refused" in line


# a reply whose every field tries to clear the screen, retitle the window or colour what follows
ESCAPES = {
    "query": "x",
    "mode": "hybrid",
    "timings_ms": {},
    "results": [
        {"rank": 1, "paper_id": "p\x1b]0;pwned\x07", "title": "T\x1b[2J", "score": 0.5, "evidence": "e\x1b[31m"}
    ],
}
REPLIES = {
    "/html": (200, "text/html", b"<html><body>It works!</body></html>"),
    "/broken": (500, "text/html", b"<h1>Internal Server Error</h1>"),
    "/wrong-json": (200, "application/json", b'{"hello": "world"}'),
    "/rag-error": (500, "application/json", b'{"error": "the LLM endpoint at http://x:1/v1 is unreachable"}'),
    "/escapes": (200, "application/json", json.dumps(ESCAPES).encode()),
    "/escaped-error": (500, "application/json", b'{"error": "bad \\u001b[2Jthing"}'),
}


@pytest.fixture(scope="module")
def other_server() -> Iterator[str]:
    """A web server that is not `rag serve`: each path prefix answers one way."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, kind, body = REPLIES["/" + self.path.strip("/").split("/")[0]]
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/html", "did not answer as a rag server (HTTP 200, text/html)"),
        ("/broken", "did not answer as a rag server (HTTP 500, text/html)"),
        ("/wrong-json", "sent a search result rag cannot read"),
    ],
)
def test_a_server_that_is_not_rag_serve(other_server: str, path: str, says: str) -> None:
    url = other_server + path
    _one_line_error(run_rag("search", "FP8 vs INT8", env={"RAG_SERVER_URL": url}), url, "RAG_SERVER_URL", says)


def test_an_answer_rag_cannot_read(other_server: str) -> None:
    url = other_server + "/wrong-json"
    _one_line_error(run_rag("ask", "what is FP8?", env={"RAG_SERVER_URL": url}), "sent an answer", "RAG_SERVER_URL")


def test_the_servers_own_error_is_passed_on(other_server: str) -> None:
    url = other_server + "/rag-error"
    line = _one_line_error(run_rag("ask", "what is FP8?", env={"RAG_SERVER_URL": url}))
    assert line == f"rag: error: rag server at {url}: the LLM endpoint at http://x:1/v1 is unreachable"


def test_bib_is_not_served_yet() -> None:
    proc = run_rag("ask", "what is FP8?", "--bib", "refs.bib", env={"RAG_SERVER_URL": "http://127.0.0.1:1"})
    assert proc.returncode == 2 and "unset RAG_SERVER_URL" in proc.stderr


def test_escape_sequences_in_a_reply_never_reach_the_terminal(other_server: str) -> None:
    proc = run_rag("search", "x", env={"RAG_SERVER_URL": other_server + "/escapes"})
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "T" in proc.stdout and "pwned" not in proc.stdout
    line = _one_line_error(run_rag("search", "x", env={"RAG_SERVER_URL": other_server + "/escaped-error"}))
    assert line.endswith(": bad thing")
