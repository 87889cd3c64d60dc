"""A scripted OpenAI-compatible chat server on 127.0.0.1: it streams queued replies and records
what it was asked, for exact-format cases through the real HTTP client (the real model is tested
in test_llm_live)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Scripted:
    replies: list[str]
    formats: tuple[str, ...] = ("json_schema", "json_object")  # response_format types it takes
    refusal: int = 400  # the status of a refused format (llama-cpp-python's server sends 500)
    bodies: list[dict] = field(default_factory=list)
    url: str = ""

    def next_reply(self) -> str:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _chunk(content: str, finish: str | None = None) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _handler(script: Scripted) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            script.bodies.append(body)
            if "response_format" in body and body["response_format"].get("type") not in script.formats:
                data = json.dumps({"error": {"message": "response_format: unsupported type", "type": "invalid"}})
                self.send_response(script.refusal)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())
                return
            reply = script.next_reply()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for i in range(0, len(reply), 7):
                self.wfile.write(_chunk(reply[i : i + 7]))
            self.wfile.write(_chunk("", "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


@contextmanager
def serve(
    replies: list[str], formats: tuple[str, ...] = ("json_schema", "json_object"), refusal: int = 400
) -> Iterator[Scripted]:
    script = Scripted(list(replies), formats, refusal)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
