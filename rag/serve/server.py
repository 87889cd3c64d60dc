"""`rag serve`: the workspace loaded once, answering over a small local HTTP API (the standard
library's ThreadingHTTPServer; JSON in and out).

    GET  /health   what is served: store, collection, papers, embedder and its device, retriever, LLM
    POST /search   {"query": str, "k": int, "retriever": str|null}  ->  what `rag search --json` prints
    POST /ask      {"question": str, "k": int|null, "retriever": str|null, "model": str|null,
                    "no_llm": bool, "agent": bool, "stream": bool,
                    "history": [[question, answer], ...]}         ->  what `rag ask --json` prints
    POST /papers   {"ids": [paper_id, ...]}  ->  {"papers": [{"paper_id", "title", "abstract"}]}

"history" (optional) is the conversation so far, oldest first, as `rag chat` keeps it (each turn's
standalone question and its answer): a follow-up that leans on it is rewritten into a standalone
question first (rag/followup.py, with the server's LLM unless "no_llm"), and the reply's
"question" is the question answered. /papers gives the stored abstracts of the papers asked for
(unknown ids are left out), for a client that shows a source's text: the chat's sources pane.

With "stream": true, an answer the LLM writes arrives as it is written: the reply is JSON Lines
(`application/x-ndjson`, chunked), `{"token": str}` for each piece of the model's text, then
`{"answer": <what rag ask --json prints>, "changed": bool, "notices": [str]}` ("changed": the
checked answer differs from the streamed text), or `{"error": "one line"}` if it failed after the
first token. An answer with nothing to stream (extractive, abstained before the model, an error
before the first token) is the plain JSON reply.

Lines the CLI shows on stderr (a weak best match, a reply cut at the token cap, why agent mode fell
back) travel in the `X-Rag-Notices` header as a JSON list, so the body is exactly the stable JSON.
A failure is `{"error": "one line"}` with status 400 (a bad request), 502 (the LLM or an embedding
endpoint behind the server failed) or 500. A field an endpoint does not take is a bad request.

Answers are given one at a time (the LLM client keeps each reply's state), and the workspace's
store and BM25 index are used by one request at a time; an answer holds the workspace only while
it retrieves and reads abstracts, so /search and /papers are answered while a model writes.
/health answers at once. There is
no authentication: it binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from rag import __version__
from rag.config import mask_url
from rag.errors import RagError
from rag.retrievers import MODES
from rag.serve import STREAM_TYPE

if TYPE_CHECKING:
    from collections.abc import Callable

    from rag.answer import Answer
    from rag.llm import LLM
    from rag.retrieval import Retriever
    from rag.workspace import Workspace

MAX_REQUEST = 1024 * 1024  # bytes of JSON a request may send
MAX_PAPERS = 200  # ids one /papers request may ask for
READ_TIMEOUT = 60.0  # seconds a connection may stay silent (or unread) before the server drops it


class BadRequest(Exception):
    """A request the server cannot use; the message says which field and why."""


class ClientGone(Exception):
    """The client closed the connection while its answer streamed: stop writing it."""


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and one-line error of a request that raised `exc`: 400 for the request, 502 for an
    endpoint behind the server (the LLM, an embedding endpoint) that failed, 500 for the rest."""
    from rag.embedders.endpoint import EndpointError
    from rag.llm import LLMError

    if isinstance(exc, BadRequest):
        return 400, f"bad request: {exc}"
    if isinstance(exc, LLMError | EndpointError):
        return 502, str(exc)
    if isinstance(exc, RagError):
        return 500, str(exc)
    traceback.print_exc(file=sys.stderr)
    what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return 500, f"internal error: {what} (the traceback is in the rag serve log)"


def _known(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    """A misspelt field ("top_k" for "k") is an error, not silently the default."""
    if unknown := [key for key in body if key not in fields]:
        raise BadRequest(f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(fields)}")


def _text(body: dict[str, Any], key: str) -> str:
    from rag.sanitise import normalise_question, too_long

    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string")
    value = normalise_question(value)
    if not value:
        raise BadRequest(f"{key!r} is empty")
    if problem := too_long(value):
        raise BadRequest(f"{key!r} is too long: {problem}")
    return value


def _int(body: dict[str, Any], key: str, low: int, high: int, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key!r} must be a whole number from {low} to {high}")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:  # null is the default, as for every other optional field
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{key!r} must be true or false")
    return value


def _history(body: dict[str, Any]) -> list[tuple[str, str]]:
    value = body.get("history") or []
    if not isinstance(value, list) or not all(
        isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn) for turn in value
    ):
        raise BadRequest("'history' must be a list of [question, answer] pairs of strings")
    from rag.sanitise import clean

    return [(clean(q), clean(a)) for q, a in value]  # a JSON "\ud800" cannot be embedded or sent on


def _ids(body: dict[str, Any]) -> list[str]:
    value = body.get("ids")
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value) or len(value) > MAX_PAPERS:
        raise BadRequest(f"'ids' must be a list of at most {MAX_PAPERS} paper ids")
    from rag.sanitise import clean

    return [clean(i) for i in value]  # an id with an unpaired surrogate cannot be looked up: no such paper


def _retriever(body: dict[str, Any], default: str) -> Any:
    value = body.get("retriever") or default
    if value not in MODES:
        raise BadRequest(f"'retriever' must be one of {', '.join(MODES)}")
    return value


class _Held:
    """The workspace's retriever as an answer uses it beside other requests: its searches and its
    store's reads hold the workspace lock; the rest (the embedder, the BM25 statistics the checks
    read, the model's reply) runs without it."""

    def __init__(self, retriever: Retriever, lock: threading.Lock) -> None:
        self._retriever, self._lock = retriever, lock

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._retriever.search(*args, **kwargs)

    @property
    def store(self) -> Any:
        return _HeldStore(self._retriever.store, self._lock)

    @property
    def lexical(self) -> Any:  # may reopen the BM25 index after an ingest: not beside a search
        with self._lock:
            return self._retriever.lexical

    def __getattr__(self, name: str) -> Any:
        return getattr(self._retriever, name)


class _HeldStore:
    """A store whose every call holds the workspace lock."""

    def __init__(self, store: Any, lock: threading.Lock) -> None:
        self._store, self._lock = store, lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value

        def held(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return held


class Service:
    """What each endpoint does with the loaded workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.lock = threading.Lock()  # the workspace's store and BM25 index
        self.answering = threading.Lock()  # one answer at a time
        self._other_llms: dict[str, LLM] = {}  # clients for models asked for by name (`--model`)

    def warm(self) -> None:
        """Load everything a first request would: the store (ingesting the bundled corpus into a
        store never written), the BM25 index, the embedder's session, the verifier, the LLM client."""
        self.ws.retriever.search("warm up", k=1)
        self.ws.verifier  # noqa: B018 -- built now, not on the first ask
        self.ws.llm  # noqa: B018

    def health(self) -> dict[str, Any]:
        ws, settings = self.ws, self.ws.settings
        counts = ws.store.counts()
        return {
            "status": "ok",
            "version": __version__,
            "store": mask_url(ws.store.location),
            "chroma": "server" if settings.chroma_url else "local",
            "collection": settings.collection,
            "papers": counts[0] if counts else None,
            "chunks": counts[1] if counts else None,
            "embedder": ws.embedder.name,
            "embed_device": getattr(ws.embedder, "device", None),
            "retriever": settings.retriever,
            "top_k": settings.top_k,
            "llm": settings.llm_model if ws.llm is not None else None,
        }

    def search(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        from rag.abstain import weak_match

        _known(body, ("query", "k", "retriever"))
        query = _text(body, "query")
        k = _int(body, "k", 1, 100, 10)
        mode = _retriever(body, self.ws.settings.retriever)
        with self.lock:
            result = self.ws.retriever.search(query, k=k, mode=mode)
            weak = weak_match(result, self.ws.lexical, mode)
        return result.as_json(), [weak] if weak else []

    def _llm(self, model: str | None) -> LLM | None:
        ws = self.ws
        if model is None or model == ws.settings.llm_model or ws.llm is None:
            return ws.llm
        if model not in self._other_llms:
            from rag.llm import OpenAICompatible

            self._other_llms[model] = OpenAICompatible(ws.settings.model_copy(update={"llm_model": model}))
        return self._other_llms[model]

    def ask(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        answer, notices = self.answer(body)
        return answer.as_json(), notices

    def answer(self, body: dict[str, Any], on_token: Callable[[str], None] | None = None) -> tuple[Answer, list[str]]:
        """The answer to an /ask request; `on_token` receives the model's text as it arrives."""
        from rag.answer import answer_question
        from rag.followup import standalone_question

        base = self.ws.settings
        _known(body, ("question", "history", "k", "retriever", "model", "no_llm", "agent", "stream"))
        question = _text(body, "question")
        history = _history(body)
        k = _int(body, "k", 1, 50, base.top_k)
        mode = _retriever(body, base.retriever)
        model = body.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise BadRequest("'model' must be a model name")
        no_llm, agent = _flag(body, "no_llm"), _flag(body, "agent")
        _flag(body, "stream")  # read by the handler
        settings = base.model_copy(update={"top_k": k, "retriever": mode, "llm_model": model or base.llm_model})
        notices: list[str] = []
        answer: Answer
        with self.answering:
            retriever = cast("Retriever", _Held(self.ws.retriever, self.lock))
            llm = None if no_llm else self._llm(model)
            question = standalone_question(question, history, llm)
            if agent:
                from rag.agent import answer_with_agent

                answer = answer_with_agent(
                    question, settings, retriever, llm, self.ws.verifier, notices.append, on_token=on_token
                )
            else:
                answer = answer_question(
                    question, retriever, k=k, mode=mode, llm=llm, verifier=self.ws.verifier,
                    grounding=settings.grounding, on_token=on_token,
                )  # fmt: skip
            if notice := getattr(llm, "notice", ""):
                notices.append(f"warning: {notice}")
        return answer, notices

    def papers(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        _known(body, ("ids",))
        ids = _ids(body)
        with self.lock:
            found = self.ws.store.abstracts(ids)
        papers = [
            {"paper_id": i, "title": found[i][0], "abstract": found[i][1]} for i in dict.fromkeys(ids) if i in found
        ]
        return {"papers": papers}, []

    def close(self) -> None:
        for llm in self._other_llms.values():
            close = getattr(llm, "close", None)
            if close:
                close()
        self._other_llms.clear()


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]]] = {
        "/search": service.search,
        "/ask": service.ask,
        "/papers": service.papers,
    }
    endpoints = ", ".join(f"POST {path}" for path in routes)  # named in the reply to an unknown path

    class Handler(BaseHTTPRequestHandler):
        server_version = f"rag/{__version__}"
        protocol_version = "HTTP/1.1"
        timeout = READ_TIMEOUT  # a client that stops sending mid-request does not hold its thread forever

        def _send(self, status: int, body: dict[str, Any], notices: list[str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if notices:
                self.send_header("X-Rag-Notices", json.dumps(notices))  # ASCII: escapes anything else
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _answer(self, work: Callable[[], tuple[dict[str, Any], list[str]]]) -> None:
            try:
                body, notices = work()
            except Exception as exc:
                status, message = _failure(exc)
                self._send(status, {"error": message})
            else:
                self._send(200, body, notices)

        def _line(self, item: dict[str, Any]) -> None:
            """One JSON line as one HTTP chunk."""
            data = json.dumps(item, ensure_ascii=False).encode() + b"\n"
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            except OSError:
                self.close_connection = True
                raise ClientGone from None

        def _stream_answer(self, body: dict[str, Any]) -> None:
            """/ask with "stream": the model's tokens as JSON lines, then the answer (see the module
            docstring); the headers go out with the first token, so an answer with none is plain JSON."""
            started = False

            def on_token(text: str) -> None:
                nonlocal started
                if not text:
                    return
                if not started:
                    self.send_response(200)
                    self.send_header("Content-Type", f"{STREAM_TYPE}; charset=utf-8")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    started = True
                self._line({"token": text})

            try:
                answer, notices = service.answer(body, on_token)
                if not started:
                    self._send(200, answer.as_json(), notices)
                    return
                self._line({"answer": answer.as_json(), "changed": answer.changed, "notices": notices})
            except ClientGone:
                return
            except Exception as exc:
                status, message = _failure(exc)
                if not started:
                    self._send(status, {"error": message})
                    return
                try:
                    self._line({"error": message})
                except ClientGone:
                    return
            try:
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True

        def _route(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/")  # a query string names no other endpoint

        def do_GET(self) -> None:
            if self._route() == "/health":
                self._answer(lambda: (service.health(), []))
            elif self._route() in routes:
                self._send(405, {"error": f"use POST {self._route()} with a JSON body"})
            else:
                self._send(404, {"error": f"no such endpoint {self.path}; try GET /health, {endpoints}"})

        def do_HEAD(self) -> None:
            """GET's status and headers without its body (a load balancer's probe of /health)."""
            if self._route() == "/health":
                self._answer(lambda: (service.health(), []))
            else:
                self._send(405 if self._route() in routes else 404, {})

        def do_POST(self) -> None:
            if self._route() == "/health":
                self.close_connection = True  # the body, if any, is not read
                self._send(405, {"error": "use GET /health"})
                return
            route = routes.get(self._route())
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True  # the body is not read
                self._send(411, {"error": "bad request: send the JSON body with a Content-Length, not chunked"})
                return
            if not 0 < length <= MAX_REQUEST:
                self.close_connection = True  # the body, if any, is not read: nothing else on this connection
                self._send(400, {"error": f"bad request: send a JSON object of at most {MAX_REQUEST} bytes"})
                return
            raw = self.rfile.read(length)  # read even when unused: the connection may carry another request
            if route is None:
                self._send(404, {"error": f"no such endpoint {self.path}; try {endpoints}"})
                return
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
                body = None
            if not isinstance(body, dict):
                self._send(400, {"error": "bad request: the body must be a JSON object"})
                return
            if route == service.ask and body.get("stream") is True:
                self._stream_answer(body)
                return
            self._answer(lambda: route(body))

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The standard library's errors (a malformed request line, an unsupported method) as
            the JSON every other reply is, not its HTML page."""
            self.close_connection = True
            phrase = message or HTTPStatus(code).phrase
            hint = f"; try GET /health, {endpoints}" if code == HTTPStatus.NOT_IMPLEMENTED else ""
            try:
                self._send(code, {"error": f"{phrase}{hint}"})
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"rag serve: {self.address_string()} {format % args}\n")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not a traceback: a client that hung up mid-request is routine; anything else
        is named, and the server goes on."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        sys.stderr.write(f"rag serve: {client_address[0]} request failed: {type(exc).__name__}: {exc}\n")


class _Server6(_Server):
    address_family = socket.AF_INET6


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(ws: Workspace, host: str, port: int) -> None:
    """Load the workspace, then answer requests on host:port until interrupted (Ctrl-C, SIGTERM).
    Port 0 picks a free port; the line on stderr names the URL either way."""
    if not host.strip():
        raise RagError(
            "--host is empty; give an address of this machine, such as 127.0.0.1 (0.0.0.0 for every interface)"
        )
    service = Service(ws)
    started = time.perf_counter()
    service.warm()
    server = _Server6 if ":" in host else _Server  # "::1" is an IPv6 address
    try:
        httpd = server((host, port), _handler(service))
    except OSError as exc:
        import errno

        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:  # the host, not the port
            hint = "give --host an address of this machine, such as 127.0.0.1"
        else:
            hint = "is another `rag serve` running there? Pick another port with --port"
        raise RagError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); {hint}") from None
    url = f"http://{host if ':' not in host else f'[{host}]'}:{httpd.server_address[1]}"
    info = service.health()
    print(
        f"rag: serving {info['papers']} papers from {info['store']} ({info['collection']}, {info['embedder']} "
        f"on {info['embed_device']}) at {url} after {time.perf_counter() - started:.1f} s; "
        f"use it with RAG_SERVER_URL={url}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"rag: warning: {host} is not loopback and there is no authentication: anyone who reaches it can query the store",
            file=sys.stderr,
        )
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        print("rag: server stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        httpd.server_close()
        service.close()
