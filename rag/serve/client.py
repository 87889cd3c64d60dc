"""The client side of `rag serve`: one JSON request to the server, and its reply turned into the
objects rag/render.py prints, so output matches the local path.

Only the standard library's http.client (no proxy lookup, which could send a 127.0.0.1 request
elsewhere) and the light rag.grounding are imported here: a `rag search` through a server never
imports chromadb, onnxruntime, numpy or llama_index."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rag.config import mask_url
from rag.errors import RagError
from rag.grounding import Grounding, SentenceCheck
from rag.sanitise import StreamCleaner, clean
from rag.serve import ENV, STREAM_TYPE

SEARCH_TIMEOUT = 60.0  # seconds; a search is milliseconds on a loaded server
MAX_REPLY = 64 * 1024 * 1024


class ServerError(RagError):
    """The server could not be reached, or did not answer as a `rag serve`."""


@dataclass
class Reply:
    body: dict[str, Any]
    notices: list[str]  # lines for stderr (a weak match, a cut reply), without the "rag: " prefix
    streamed: bool = False  # tokens went to `on_token` before the body
    changed: bool = False  # (streamed) the checked answer is not the text that streamed


def _one_line(text: object) -> str:
    return " ".join(clean(str(text)).split())[:300]


def _cleaned(value: Any) -> Any:
    """A reply with every string cleaned of escape sequences: whatever answers at the URL, it does
    not write to the user's terminal (rag/sanitise.py)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    return value


def request(
    url: str,
    path: str,
    payload: dict[str, Any] | None = None,
    timeout: float = SEARCH_TIMEOUT,
    on_token: Callable[[str], None] | None = None,
) -> Reply:
    """GET `path` (payload None) or POST `payload` as JSON to the server at `url`; the reply's JSON
    object. Anything else is a ServerError whose one line names RAG_SERVER_URL and what to do.
    `on_token`: ask the server to stream (/ask) and receive the model's text as it arrives;
    `timeout` then bounds each wait for the next piece."""
    shown = mask_url(url)
    if on_token is not None and payload is not None:
        payload = {**payload, "stream": True}
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request("GET" if data is None else "POST", parts.path.rstrip("/") + path, body=data, headers=headers)
        response = conn.getresponse()
        kind = response.getheader("Content-Type") or ""
        if on_token is not None and response.status == 200 and kind.startswith(STREAM_TYPE):
            return _streamed(response, on_token, shown)
        raw = response.read(MAX_REPLY)
    except TimeoutError:
        raise ServerError(
            f"the rag server at {shown} ({ENV}) did not answer within {timeout:.0f} s; "
            "check that `rag serve` there is not stuck, or unset " + ENV
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        why = _one_line(getattr(exc, "strerror", None) or exc or type(exc).__name__)
        raise ServerError(
            f"no rag server answers at {shown} ({ENV}): {why}; start one with `rag serve`, fix {ENV}, or unset it"
        ) from None
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        kind = response.getheader("Content-Type") or "no content type"
        raise ServerError(
            f"{shown} ({ENV}) did not answer as a rag server (HTTP {response.status}, {_one_line(kind)}); "
            f"point {ENV} at a running `rag serve`, or unset it"
        )
    if response.status != 200:
        if isinstance(body.get("error"), str):
            hint = ""
            if response.status == 404 and parts.path.strip("/"):  # "http://host:8723/v1", as for an LLM endpoint
                hint = f"; {ENV} is the server's address alone (http://host:port), without a path like {parts.path}"
            raise ServerError(f"rag server at {shown}: {_one_line(body['error'])}{hint}")
        raise ServerError(
            f"{shown} ({ENV}) answered HTTP {response.status} without a rag error; "
            f"point {ENV} at a running `rag serve`, or unset it"
        )
    try:
        notices = json.loads(response.getheader("X-Rag-Notices") or "[]")
    except ValueError:
        notices = []
    return Reply(_cleaned(body), [_one_line(n) for n in notices if isinstance(n, str)])


def _streamed(response: http.client.HTTPResponse, on_token: Callable[[str], None], shown: str) -> Reply:
    """Read a streamed answer: token lines to `on_token`, then the answer line (or an error line)."""
    cleaner = StreamCleaner()
    while line := response.readline(MAX_REPLY):
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            break
        if isinstance(item.get("token"), str):
            if text := cleaner.feed(item["token"]):
                on_token(text)
        elif isinstance(item.get("answer"), dict):
            if rest := cleaner.flush():
                on_token(rest)
            notices = item.get("notices")
            notices = notices if isinstance(notices, list) else []
            return Reply(
                _cleaned(item["answer"]),
                [_one_line(n) for n in notices if isinstance(n, str)],
                streamed=True,
                changed=bool(item.get("changed")),
            )
        elif isinstance(item.get("error"), str):
            raise ServerError(f"rag server at {shown}: {_one_line(item['error'])}")
        else:
            break
    raise ServerError(
        f"the rag server at {shown} ({ENV}) ended a streamed answer before the answer; "
        "see the `rag serve` log, or ask again with --no-stream"
    )


def health(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """What the server serves: store, collection, papers, embedder and its device, retriever, LLM."""
    return request(url, "/health", timeout=timeout).body


# What rag/render.py reads of a search result and an answer, rebuilt from their JSON.


@dataclass
class Hit:
    rank: int
    paper_id: str
    title: str
    score: float
    evidence: str


@dataclass
class Found:
    query: str
    results: list[Hit]


@dataclass
class Source:
    n: int
    paper_id: str
    title: str
    abstract: str = ""  # not in the answer's JSON: the chat fills it from /papers

    def as_json(self, cited: bool | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "paper_id": self.paper_id, "title": self.title}
        if cited is not None:
            out["cited"] = cited
        return out


@dataclass
class Assessed:
    answerable: bool
    reason: str


@dataclass
class Part:
    ask: str
    answered: bool


@dataclass
class Reported(Grounding):
    """The grounding scores as the server computed them (the JSON carries the scores, not the
    per-citation detail they were computed from)."""

    precision: float = 1.0
    recall: float = 1.0

    @property
    def citation_precision(self) -> float:
        return self.precision

    @property
    def citation_recall(self) -> float:
        return self.recall


@dataclass
class Answered:
    text: str
    abstained: bool
    mode: str
    model: str | None
    sources: list[Source]  # by number, as Answer keeps them (the JSON lists the cited first)
    grounding: Reported
    retrieval: list[Hit]
    assessment: Assessed | None
    timings_ms: dict[str, float]
    parts: list[Part] = field(default_factory=list)
    removed: list[SentenceCheck] = field(default_factory=list)
    fell_back: bool = False
    changed: bool = False  # only read for streamed answers; a served answer is not streamed
    question: str = ""  # the question answered: a follow-up as the server rewrote it
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})

    @property
    def quotes(self) -> bool:
        return self.mode == "extractive" or self.fell_back  # as Answer.quotes

    @property
    def cited(self) -> set[int]:
        return {n for s in self.grounding.sentences for n in s.citations}

    def sources_in_order(self) -> list[Source]:
        """Cited sources first, then the ones retrieved but not cited, each group by number."""
        cited = self.cited
        return sorted(self.sources, key=lambda s: (s.n not in cited, s.n))


def _hit(h: dict[str, Any]) -> Hit:
    return Hit(int(h["rank"]), str(h["paper_id"]), str(h["title"]), float(h["score"]), str(h["evidence"]))


def _sentence(s: dict[str, Any]) -> SentenceCheck:
    return SentenceCheck(
        str(s["text"]),
        [int(n) for n in s["citations"]],
        str(s["verdict"]),
        float(s.get("score", 0.0)),
        cited_before=s.get("cited_before"),
    )


def _shape_error(url: str, what: str) -> ServerError:
    return ServerError(
        f"the rag server at {mask_url(url)} ({ENV}) sent {what} rag cannot read; "
        "is it the same version of rag? Restart `rag serve`, or unset " + ENV
    )


def found(body: dict[str, Any], url: str) -> Found:
    """A `rag search --json` object as render.print_search reads it."""
    try:
        return Found(str(body["query"]), [_hit(h) for h in body["results"]])
    except (KeyError, TypeError, ValueError):
        raise _shape_error(url, "a search result") from None


def answered(body: dict[str, Any], url: str) -> Answered:
    """A `rag ask --json` object as render.print_answer reads it."""
    try:
        g = body["grounding"]
        a = body.get("abstention")
        return Answered(
            text=str(body["answer"]),
            abstained=bool(body["abstained"]),
            mode=str(body["mode"]),
            model=body.get("model"),
            sources=sorted(
                (Source(int(c["n"]), str(c["paper_id"]), str(c["title"])) for c in body["citations"]),
                key=lambda s: s.n,
            ),
            grounding=Reported(
                [_sentence(s) for s in body["sentences"]],
                float(g["citation_precision"]),
                float(g["citation_recall"]),
            ),
            retrieval=[_hit(h) for h in body["retrieval"]],
            assessment=Assessed(bool(a["answerable"]), str(a["reason"])) if a else None,
            timings_ms={str(k): float(v) for k, v in body.get("timings_ms", {}).items()},
            parts=[Part(str(p["ask"]), bool(p["answered"])) for p in body.get("parts", [])],
            removed=[_sentence({"score": 0.0, **s}) for s in body.get("removed", [])],
            fell_back=bool(body.get("fell_back", False)),
            question=str(body.get("question", "")),
            usage={
                "prompt_tokens": 0,
                "completion_tokens": 0,
                **{str(k): int(v) for k, v in (body.get("usage") or {}).items()},
            },
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _shape_error(url, "an answer") from None


def papers(url: str, ids: list[str], timeout: float = SEARCH_TIMEOUT) -> dict[str, tuple[str, str]]:
    """paper id -> (title, abstract) of the stored papers asked for, as Store.abstracts gives them."""
    if not ids:
        return {}
    body = request(url, "/papers", {"ids": list(dict.fromkeys(ids))}, timeout=timeout).body
    try:
        return {str(p["paper_id"]): (str(p["title"]), str(p["abstract"])) for p in body["papers"]}
    except (KeyError, TypeError):
        raise _shape_error(url, "papers") from None
