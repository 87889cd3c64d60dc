"""A misbehaving OpenAI-compatible endpoint: every failure is one clear line and exit code 1.

The endpoint here is a small local HTTP server that misbehaves on purpose (the real server
cannot be made to return 401 or cut a stream); the real server is tested in test_llm_live."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import run_rag

REQUESTS: dict[str, int] = {}


def _chunk(content: str) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


class Misbehaving(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        mode = self.path.strip("/").split("/")[0]
        REQUESTS[mode] = REQUESTS.get(mode, 0) + 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status = {"e401": 401, "e429": 429, "e500": 500}.get(mode)
        if status:
            body = json.dumps({"error": {"message": "nope", "type": "error"}}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after-ms", "10")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "slow":
            time.sleep(3)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        if mode == "cut":
            self.send_header("content-length", "100000")
        self.end_headers()
        if mode == "malformed":
            self.wfile.write(b"data: {this is not json\n\n")
        elif mode == "cut":
            self.wfile.write(_chunk("FP8 formats outperform"))
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        elif mode == "empty":
            self.wfile.write(_chunk(""))
        else:
            self.wfile.write(_chunk("FP8 formats outperform INT8 [1]."))
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def ask(bundled_dir, base_url: str):
    return run_rag(
        "ask",
        "which papers compare FP8 vs INT8?",
        env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": base_url, "RAG_LLM_TIMEOUT": "1"},
    )


@pytest.mark.parametrize(
    "mode, message, tries",
    [
        ("e401", "rejected the API key (401); check OPENAI_API_KEY", 1),
        ("e429", "rate limiting requests (429)", 3),
        ("e500", "failed with HTTP 500", 3),
        ("malformed", "malformed or cut-off reply", 1),
        ("cut", "malformed or cut-off reply", 1),
        ("empty", "returned an empty reply", 1),
        ("slow", "did not answer within 1 s", 3),
    ],
)
def test_endpoint_failures_are_one_line_with_exit_1(bundled_dir, endpoint, mode, message, tries):
    proc = ask(bundled_dir, f"{endpoint}/{mode}/v1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), proc.stderr
    assert f"{endpoint}/{mode}/v1" in lines[0] and message in lines[0]
    # retried with backoff only before any text arrived (429, 5xx, time-outs), never a cut stream
    assert REQUESTS[mode] == tries


def test_unreachable_endpoint(bundled_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ask(bundled_dir, f"http://127.0.0.1:{port}/v1")
    assert proc.returncode == 1
    assert "cannot reach the LLM endpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_a_working_endpoint_answers_through_the_same_path(bundled_dir, endpoint):
    proc = ask(bundled_dir, f"{endpoint}/ok/v1")
    assert proc.returncode == 0, proc.stderr
    assert "FP8 formats outperform INT8 [1]." in proc.stdout
