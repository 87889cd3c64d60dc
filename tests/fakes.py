"""The tests' stand-ins for an LLM, in one place (the real model is tested in test_llm_live).

- `ScriptedLLM`: in process; streams queued canned replies and records the prompts it was sent.
- `FailingLLM`: in process; its client fails with an exception that is not one of rag's own.
- `serve(replies)`: an OpenAI-compatible chat server on 127.0.0.1 for cases that go through the
  real HTTP client. At `server.url` it streams the queued replies and records what it was asked;
  at `server.url_for(mode)` it misbehaves in the way `mode` names (see `MISBEHAVIOURS`), as no
  real server can be made to (return 401, hang, drip, cut a stream). A request without
  `"stream": true` gets one JSON chat completion; a queued `Calls` reply is an assistant message
  that calls tools (agent mode; streamed as tool-call deltas), `serve(tools=False)` rejects any
  request offering tools (400), and a stream asked for with `include_usage` ends with usage.
- `serve(embedder=...)`: the same server also answers `POST .../v1/embeddings` for the model
  EMBED_MODEL with the given embedder's vectors (the tests pass the real MiniLM), and misbehaves
  at `url_for(mode)` as for chat (401, 429, 500, `once500`, `malformed`, `uneven`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "FP8 formats outperform INT8 [1]. "  # what the misbehaving modes stream, when they stream
EMBED_MODEL = "all-MiniLM-L6-v2"  # the one model the embeddings route serves; others get 404


class ScriptedLLM:
    """Replies with queued canned texts (once the queue is empty, the last one again) in chunks of
    seven characters, `delay` seconds apart, and records the (system, user) prompts."""

    model = "scripted"
    endpoint = "scripted://"

    def __init__(self, *replies: str, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.last = ""
        self.delay = delay
        self.prompts: list[tuple[str, str]] = []
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}

    def stream(self, system: str, user: str) -> Iterator[str]:
        self.prompts.append((system, user))
        if self.replies:
            self.last = self.replies.pop(0)
        reply = self.last
        for i in range(0, len(reply), 7):
            time.sleep(self.delay)
            yield reply[i : i + 7]
        self.usage = {"prompt_tokens": 100, "completion_tokens": len(reply) // 4}


class FailingLLM(ScriptedLLM):
    """An LLM whose client fails with an exception that is not one of rag's own."""

    def stream(self, system: str, user: str) -> Iterator[str]:
        raise ValueError("unexpected payload from the client library")
        yield ""


MISBEHAVIOURS = {
    "e401": "HTTP 401",
    "e429": "HTTP 429 (the client retries)",
    "e500": "HTTP 500 (the client retries)",
    "e400ctx": "HTTP 400: the prompt exceeds the model's context window",
    "redirect": "HTTP 307 to https (an endpoint behind a proxy that wants https)",
    "noreply": "the connection closes before any response",
    "sseerror": "an error event in the stream (an overloaded server)",
    "slow": "answers after 3 s",
    "nosse": "a plain JSON body where an event stream was asked for",
    "malformed": "an event that is not JSON",
    "wrongshape": "events that are JSON but not chat completion chunks",
    "cut": "the connection drops before the promised length",
    "cutclean": "a clean close, but no finish reason and no [DONE]",
    "drip": "one token a second, for a minute: never silent long enough to time out",
    "big": "5 MB in 1,000-character chunks",
    "bigone": "5 MB in one event",
    "length": "the server itself stopped at max_tokens",
    "window": "the server stopped early for length: its context window was full",
    "empty": "an empty reply",
    "fullwindow": "nothing but a finish for length: the server's context window was full before a word",
    "finish": "a finish reason, then a clean close without [DONE]: complete",
    "filtered": "a sentence, then the provider's content filter stops the reply",
    "nofinish": "[DONE] without a finish reason: complete",
    "once500": "HTTP 500 to the first request, then well-behaved (embeddings)",
    "uneven": "one vector of a batch cut short (embeddings)",
    "sameindex": "every vector of a batch numbered 0 (embeddings)",
}


class Calls:
    """A reply that calls tools: each call is (tool name, arguments as a dict, or a raw string
    sent as the arguments text, e.g. malformed JSON); `content`: text the model writes first."""

    def __init__(self, *calls: tuple[str, dict | str], content: str | None = None, repeat: bool = False) -> None:
        self.calls = calls
        self.content = content
        self.repeat = repeat  # every delta resends the call's id and name, as llama.cpp's server does

    def message(self, turn: int) -> dict:
        return {
            "role": "assistant",
            "content": self.content,
            "tool_calls": [
                {
                    "id": f"call-{turn}-{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
                for i, (name, args) in enumerate(self.calls)
            ],
        }

    def deltas(self, turn: int) -> list[bytes]:
        """The same message streamed: its text, then each call's name and its arguments in two pieces."""
        text = self.content or ""
        events = [_event({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
        for i, call in enumerate(self.message(turn)["tool_calls"]):
            name, args = call["function"]["name"], call["function"]["arguments"]
            head = {"index": i, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(_event({"tool_calls": [head]}))
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {**head, "function": {"name": name, "arguments": piece}} if self.repeat else {"index": i}
                delta["function"] = {**delta.get("function", {}), "arguments": piece}
                events.append(_event({"tool_calls": [delta]}))
        return [*events, _event({}, "tool_calls")]


class Silent:
    """A streamed reply that ends with no event at all, as llama.cpp's server's stream does when
    the model fails mid-reply ("Automatic streaming tool choice is not supported")."""


SILENT = Silent()


@dataclass
class Reasoning:
    """A reply of reasoning alone, sent as `reasoning_content` (DeepSeek's API, vLLM and llama.cpp's
    server keep a reasoning model's thoughts out of `content`), with no answer after it."""

    text: str


Reply = str | list[str] | Calls | Silent | Reasoning


@dataclass
class Scripted:
    replies: list[Reply]  # a list is streamed as exactly those chunks
    formats: tuple[str, ...] = ("json_schema", "json_object")  # response_format types it takes
    refusal: int = 400  # the status of a refused format (llama-cpp-python's server sends 500)
    tools: bool = True  # False: a request offering tools is rejected with HTTP 400
    bodies: list[dict] = field(default_factory=list)  # every request, in order
    requests: Counter[str] = field(default_factory=Counter)  # requests per misbehaviour mode
    last_body: dict[str, dict] = field(default_factory=dict)  # the last request per mode
    base: str = ""  # http://127.0.0.1:PORT
    embedder: Any = None  # what the embeddings route embeds with (an rag Embedder)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The well-behaved endpoint, for OPENAI_BASE_URL."""
        return f"{self.base}/v1"

    def url_for(self, mode: str) -> str:
        assert mode in MISBEHAVIOURS, mode
        return f"{self.base}/{mode}/v1"

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _event(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    """One server-sent event of a streamed chat completion (no choice: the closing usage event)."""
    body: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted"}
    body["choices"] = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def chunk(content: str, finish: str | None = None) -> bytes:
    """One server-sent event of a streamed chat completion."""
    return _event({"content": content}, finish)


def usage_chunk() -> bytes:
    """The event that closes a stream asked for with `stream_options: {"include_usage": true}`."""
    return _event({}, usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60})


def _handler(script: Scripted) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, data: bytes) -> bool:
            try:
                self.wfile.write(data)
                self.wfile.flush()
                return True
            except OSError:  # the client gave up, as it should
                return False

        def _json(self, status: int, body: dict, **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            mode = self.path.strip("/").split("/")[0]
            script.bodies.append(body)
            script.requests[mode] += 1
            script.last_body[mode] = body
            if self.path.rstrip("/").endswith("/embeddings"):
                self._embeddings(mode, body)
                return
            if mode in MISBEHAVIOURS:
                self._misbehave(mode)
                return
            if "response_format" in body and body["response_format"].get("type") not in script.formats:
                error = {"error": {"message": "response_format: unsupported type", "type": "invalid"}}
                self._json(script.refusal, error)
                return
            if any(
                m.get("role") == "assistant" and "content" in m and m["content"] is None
                for m in body.get("messages", [])
            ):
                # llama.cpp's server takes an assistant message's content as a string or not at all
                self._json(500, {"error": {"message": "messages: content should be a valid string", "type": "invalid"}})
                return
            if "tools" in body and not script.tools:
                self._json(400, {"error": {"message": "tools are not supported", "type": "invalid_request_error"}})
                return
            reply = script.next_reply()
            if not body.get("stream"):
                self._complete(reply)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            if isinstance(reply, Silent):
                return
            if isinstance(reply, Calls):
                for event in reply.deltas(len(script.bodies)):
                    self._send(event)
            elif isinstance(reply, Reasoning):
                self._send(_event({"role": "assistant", "content": None, "reasoning_content": reply.text}))
                self._send(chunk("", "stop"))
            else:
                parts = reply if isinstance(reply, list) else [reply[i : i + 7] for i in range(0, len(reply), 7)]
                for part in parts:
                    self._send(chunk(part))
                self._send(chunk("", "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._send(usage_chunk())
            self._send(b"data: [DONE]\n\n")

        def _embeddings(self, mode: str, body: dict) -> None:
            """OpenAI's embeddings reply, in reverse order (each item carries its index) and scaled
            by 3, as a client must not assume either order or unit length."""
            status = {"e401": 401, "e429": 429, "e500": 500}.get(mode)
            if mode == "once500" and script.requests[mode] == 1:
                status = 500
            if status:
                self._json(status, {"error": {"message": "nope", "type": "error"}}, **{"retry-after-ms": "10"})
                return
            if mode == "malformed":
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self._send(b'{"data": [{"embedding": [0.1, ')
                return
            if mode == "slow":
                time.sleep(3)
            if body.get("model") != EMBED_MODEL:
                error = {"message": f"model {body.get('model')!r} not found", "code": "model_not_found"}
                self._json(404, {"error": error})
                return
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            with script.lock:
                vectors = script.embedder.embed(texts)
            data = [{"object": "embedding", "index": i, "embedding": (3 * v).tolist()} for i, v in enumerate(vectors)]
            if mode == "uneven" and len(data) > 1:  # one vector of a batch cut short
                data[-1]["embedding"] = data[-1]["embedding"][:100]
            if mode == "sameindex":
                for item in data:
                    item["index"] = 0
            self._json(200, {"object": "list", "model": EMBED_MODEL, "data": data[::-1]})

        def _complete(self, reply: Reply) -> None:
            """One chat completion, not streamed: text, or a message calling tools."""
            if isinstance(reply, Calls):
                message, finish = reply.message(len(script.bodies)), "tool_calls"
            elif isinstance(reply, Silent | Reasoning):
                reasoning = {"reasoning_content": reply.text} if isinstance(reply, Reasoning) else {}
                message, finish = {"role": "assistant", "content": "", **reasoning}, "stop"
            else:
                message, finish = {"role": "assistant", "content": "".join(reply)}, "stop"
            body = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
            }
            self._json(200, body)

        def _misbehave(self, mode: str) -> None:
            if mode == "e400ctx":
                message = "This model's maximum context length is 512 tokens, but you requested 2100 tokens."
                self._json(400, {"error": {"message": message, "type": "invalid_request_error"}})
                return
            if mode == "noreply":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == "redirect":
                self.send_response(307)
                self.send_header("location", "https://llm.example/v1/chat/completions")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            status = {"e401": 401, "e429": 429, "e500": 500}.get(mode)
            if status:
                self._json(status, {"error": {"message": "nope", "type": "error"}}, **{"retry-after-ms": "10"})
                return
            if mode == "slow":
                time.sleep(3)
            self.send_response(200)
            if mode == "nosse":
                self.send_header("content-type", "application/json")
                self.end_headers()
                self._send(b'{"choices": [{"message": {"content": "hi"}}]}')
                return
            self.send_header("content-type", "text/event-stream")
            if mode == "cut":
                self.send_header("content-length", "100000")
            self.end_headers()
            if mode == "malformed":
                self._send(b"data: {this is not json\n\n")
            elif mode == "sseerror":
                self._send(b'data: {"error": {"message": "the model is overloaded", "type": "server_error"}}\n\n')
            elif mode == "wrongshape":
                self._send(b'data: {"foo": 1}\n\n')
            elif mode == "cut":
                self._send(chunk("FP8 formats outperform"))
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif mode == "cutclean":
                self._send(chunk("FP8 formats outperform"))
                return
            elif mode == "drip":
                for _ in range(60):
                    if not self._send(chunk("FP8 ")):
                        return
                    time.sleep(1)
            elif mode == "big":
                for _ in range(5000):
                    if not self._send(chunk(ANSWER * 30)):
                        return
                self._send(chunk("", "stop"))
            elif mode == "bigone":
                self._send(chunk(ANSWER * 150_000, "stop"))
            elif mode in ("length", "window"):
                self._send(chunk(ANSWER))
                self._send(chunk("FP8 formats", "length"))
                # stopped at the max_tokens asked, or (window) early, its context window full
                asked = int(script.last_body[mode].get("max_tokens") or 400)
                written = asked if mode == "length" else 20
                self._send(_event({}, usage={"prompt_tokens": 50, "completion_tokens": written}))
            elif mode == "empty":
                self._send(chunk(""))
            elif mode == "fullwindow":
                self._send(chunk("", "length"))
            elif mode == "finish":
                self._send(chunk(ANSWER, "stop"))
                return
            elif mode == "filtered":
                self._send(chunk(ANSWER, "content_filter"))
            else:  # nofinish, slow
                self._send(chunk(ANSWER.strip()))
            self._send(b"data: [DONE]\n\n")

    return Handler


@contextmanager
def serve(
    replies: list[Reply] | None = None,
    formats: tuple[str, ...] = ("json_schema", "json_object"),
    refusal: int = 400,
    embedder: Any = None,
    tools: bool = True,
) -> Iterator[Scripted]:
    """The scripted server, running until the block ends; `embedder` serves the embeddings route,
    `tools=False` rejects requests offering tools."""
    script = Scripted(list(replies or [ANSWER]), formats, refusal, tools, embedder=embedder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
