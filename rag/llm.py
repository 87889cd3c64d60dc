"""LLM backends behind one small interface: a chat call that streams text.

`OpenAICompatible` is the built-in backend: LlamaIndex's `OpenAILike` over the `openai` client,
for OpenAI itself and for any OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio).
Anything with a `stream(system, user)` method and `model`/`endpoint`/`usage` attributes can
stand in for it, which is how the tests queue canned replies for exact-format cases.

Whatever the server sends is treated as untrusted: every delta is cleaned of control
characters and escape sequences, a reply is cut at `llm_max_tokens`, abandoned after
`llm_deadline` seconds however steadily it drips, and a stream that ends without a finish
reason or `[DONE]` is an error, not a shorter answer.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rag.config import mask_url
from rag.errors import RagError
from rag.sanitise import ReplyCleaner
from rag.tokens import count_tokens, tiktoken_encoding

if TYPE_CHECKING:
    import httpx
    from llama_index.llms.openai_like import OpenAILike

    from rag.config import Settings

T = TypeVar("T")


class LLMError(RagError):
    pass


class EmptyReply(LLMError):
    """The endpoint answered, with nothing in it: in strict grounding, a model answer that did not hold up."""


class FormatRefused(LLMError):
    """The endpoint rejected the requested response format (HTTP 400 or 422) before replying."""


class LLM(Protocol):
    model: str
    endpoint: str  # for messages: credentials in the URL are masked
    usage: dict[str, int]
    notice: str  # after a reply: why it was cut or empty, for a warning line ("" when nothing to say)

    def stream(self, system: str, user: str) -> Iterator[str]:
        """Yield the reply's text as it arrives; set `usage` when done. Backends that can ask for
        a response format also take `response_format=` (see rag/structured.py)."""
        ...


def explain_failure(exc: Exception, endpoint: str, timeout: float, attempts: int, elapsed: float) -> str:
    """One line for a failed request to an OpenAI-compatible endpoint: what failed and what to do."""
    import httpx
    import openai

    where = f"the LLM endpoint {endpoint}"
    if isinstance(exc, openai.APITimeoutError):
        tries = f"{attempts} attempts, " if attempts > 1 else ""
        return (
            f"{where} did not answer within {timeout:g} s ({tries}{elapsed:.1f} s in all); "
            "raise RAG_LLM_TIMEOUT or check the server"
        )
    if isinstance(exc, httpx.TimeoutException):  # mid-stream: the openai client does not wrap it
        return (
            f"{where} stopped sending for {timeout:g} s in the middle of its reply ({elapsed:.1f} s in all); "
            "raise RAG_LLM_TIMEOUT or check the server"
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):  # the connection closed mid-reply
        return f"{where} cut off its reply (the connection closed mid-stream); try again or check the server"
    if isinstance(exc, openai.APIConnectionError) and isinstance(exc.__cause__, httpx.RemoteProtocolError):
        return f"{where} closed the connection without replying; check the server's log, and that it speaks HTTP"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {where}; start the server or fix OPENAI_BASE_URL (or use --no-llm)"
    if isinstance(exc, openai.AuthenticationError):
        return f"{where} rejected the API key (401); check OPENAI_API_KEY"
    if isinstance(exc, openai.PermissionDeniedError):
        return f"{where} refused access (403); check the key's permissions"
    if isinstance(exc, openai.NotFoundError):
        return f"{where} does not know the model or path (404); check RAG_LLM_MODEL and OPENAI_BASE_URL"
    if isinstance(exc, openai.RateLimitError):
        return f"{where} is rate limiting requests (429); wait and try again"
    if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
        to = mask_url(exc.response.headers.get("location") or "")
        return (
            f"{where} redirected the request (HTTP {exc.status_code}{f' to {to}' if to else ''}); "
            "set OPENAI_BASE_URL to the address it redirects to (http or https, the /v1 path)"
        )
    if isinstance(exc, openai.APIStatusError):
        said = _server_message(exc)
        code = f"HTTP {exc.status_code}" + (f": {said}" if said else "")
        if exc.status_code >= 500:
            return f"{where} failed ({code}); try again later or check the server's log"
        if _TOO_LONG.search(said):
            return (
                f"{where} refused the request ({code}); the model's window is smaller than rag assumed: "
                "lower RAG_LLM_CONTEXT_TOKENS (or RAG_LLM_MAX_TOKENS)"
            )
        return f"{where} refused the request ({code}); check RAG_LLM_MODEL and the server's settings"
    if isinstance(exc, ValueError):  # json.JSONDecodeError from the event stream, or a bad chunk
        return f"{where} sent a malformed reply (not valid JSON in the event stream); check the server"
    if isinstance(exc, openai.APIError) and (said := " ".join(mask_url(exc.message).split())[:200]):
        return f"{where} reported an error in its reply ({said}); try again or check the server"  # an SSE error event
    return f"{where} sent a malformed or cut-off reply ({type(exc).__name__}); try again or check the server"


# How servers say a prompt does not fit ("maximum context length is 4096 tokens", "exceeds the
# context window", "prompt is too long").
_TOO_LONG = re.compile(r"context|too long|maximum.*tokens|tokens.*exceed", re.I)


def _server_message(exc: Any) -> str:
    """What the server said about a refused request (OpenAI's {"error": {"message"}}, or a plain
    "error", "message" or "detail"), on one line, at most 200 characters."""
    body = getattr(exc, "body", None)
    said: Any = None
    if isinstance(body, dict):
        error = body.get("error", body)
        said = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        said = said or body.get("message") or body.get("detail")
    if not isinstance(said, str) or not said.strip():
        said = re.sub(r"^Error code: \d+ - ", "", str(getattr(exc, "message", "") or ""))
    text = " ".join(mask_url(said).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _refused(exc: Exception) -> bool:
    """A rejection of the response format: 400 or 422, or a 5xx that names it (llama-cpp-python's
    server answers an unknown format type with HTTP 500 and a validation message)."""
    import openai

    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return not _TOO_LONG.search(_server_message(exc))  # a prompt too long is no refused format
    return isinstance(exc, openai.APIStatusError) and "response_format" in f"{exc.message} {exc.body}"


class DeadlineReached(Exception):
    """Raised by `within` when a reply runs past its deadline."""


def _put(q: queue.Queue, stop: threading.Event, item: tuple[str, Any]) -> bool:
    """Hand an item to the consumer unless it has gone away."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


# The HTTP response streams a thread opened (see _watched_stream). A stream abandoned midway (the
# deadline, the token cap, an error) is closed by the thread that opened it, when it stops: left to
# the garbage collector, openai's stream wrapper closes it at whatever allocation the collector
# runs at, which may be inside another request's hold of the connection pool's (non-reentrant)
# lock, and every later request then waits on that lock until its deadline.
_opened = threading.local()


def _close_opened_streams() -> None:
    for stream in getattr(_opened, "streams", ()):
        stream.close()
    _opened.streams = []


def _produce(make: Callable[[], Iterator[T]], q: queue.Queue, stop: threading.Event) -> None:
    try:
        items = make()
        try:
            for item in items:
                if not _put(q, stop, ("item", item)):
                    return
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # releases the HTTP response
            _close_opened_streams()
        _put(q, stop, ("end", None))
    except BaseException as exc:  # handed to the consumer, which raises it
        _put(q, stop, ("error", exc))


def within(make: Callable[[], Iterator[T]], deadline: float) -> Generator[T, None, None]:
    """Items of `make()` until the monotonic clock reaches `deadline`, then `DeadlineReached`.

    The iterator runs in a helper thread, because a read blocked inside the HTTP client cannot
    be interrupted from outside; the consumer stops waiting when the time is up, and the helper
    stops at its next item (or when its read times out) and closes the response."""
    q: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()
    threading.Thread(target=_produce, args=(make, q, stop), daemon=True, name="llm-stream").start()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineReached
            try:
                kind, value = q.get(timeout=left)
            except queue.Empty:
                raise DeadlineReached from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


class TokenCap:
    """Counts what arrives with tiktoken and cuts the reply at `limit` tokens."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.hit = False

    def take(self, text: str) -> str:
        if self.hit or not text:
            return ""
        longest = self.left * 16 + 16  # no real token is longer; spares encoding megabytes
        tokens = tiktoken_encoding().encode(text[:longest], disallowed_special=())
        if len(tokens) <= self.left and len(text) <= longest:
            self.left -= len(tokens)
            return text
        self.hit = True
        kept = tiktoken_encoding().decode(tokens[: self.left])
        self.left = 0
        return kept


_DONE = re.compile(rb"(?:^|\n)data: ?\[DONE\]")


@cache
def _watched_stream() -> type:
    """An httpx byte stream that notes whether the server sent the closing `[DONE]` event
    (defined on first use, so importing this module does not import httpx)."""
    import httpx

    class WatchedStream(httpx.SyncByteStream):
        def __init__(self, inner: httpx.SyncByteStream, seen: Callable[[], None]) -> None:
            self._inner = inner
            self._seen = seen
            self._closed = False
            kept = [s for s in getattr(_opened, "streams", ()) if not s._closed]
            _opened.streams = [*kept, self]  # closed by this thread when its reply stops (_produce)

        def __iter__(self) -> Iterator[bytes]:
            tail = b"\n"
            for chunk in self._inner:
                window = tail + chunk
                if _DONE.search(window):
                    self._seen()
                tail = window[-16:]
                yield chunk

        def close(self) -> None:
            if not self._closed:  # once: a second close would take the pool's lock again
                self._closed = True
                self._inner.close()

    return WatchedStream


def openai_like(settings: Settings, http_client: httpx.Client, max_retries: int = 2) -> OpenAILike:
    """LlamaIndex's client for OpenAI or any OpenAI-compatible server, as the settings configure
    it: the one client of answers (`OpenAICompatible`) and of agent mode (rag.agent)."""
    from llama_index.llms.openai_like import OpenAILike

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return OpenAILike(
        model=settings.llm_model,
        api_base=settings.endpoint,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=max_retries,
        is_chat_model=True,
        context_window=8192,
        temperature=0.0,
        max_tokens=settings.llm_max_tokens,
        http_client=http_client,
    )


class OpenAICompatible:
    """OpenAI or any OpenAI-compatible server, through LlamaIndex's OpenAILike."""

    def __init__(self, settings: Settings, max_retries: int = 2) -> None:
        import httpx

        from rag.context import model_window

        self.model = settings.llm_model
        self.endpoint = mask_url(settings.endpoint)
        self.timeout = settings.llm_timeout
        self.deadline = settings.llm_deadline
        self.max_tokens = settings.llm_max_tokens
        self.context_window = model_window(settings.llm_model, settings.llm_context_tokens)
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        self.notice = ""  # set when a reply was cut at the token cap
        from rag.structured import MEMORY_FILE, FormatMemory

        self.formats = FormatMemory(settings.data_dir / MEMORY_FILE, self.endpoint, self.model)
        self._attempts = 0
        self._done = False
        client = self._http = httpx.Client(event_hooks={"request": [self._on_request], "response": [self._on_response]})
        # The openai client retries connection errors, 429 and 5xx with backoff before any text
        # arrives, which is safe; a stream cut midway is reported, never retried.
        self._llm = openai_like(settings, client, max_retries)

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self._http.close()

    def _on_request(self, request: httpx.Request) -> None:
        self._attempts += 1

    def _on_response(self, response: httpx.Response) -> None:
        response.stream = _watched_stream()(response.stream, self._saw_done)

    def _saw_done(self) -> None:
        self._done = True

    def _messages(self, system: str, user: str):
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]

    def _cap_notice(self) -> str:
        return f"the reply was cut at {self.max_tokens} tokens (RAG_LLM_MAX_TOKENS); raise it for longer answers"

    def stream(self, system: str, user: str, response_format: dict | None = None) -> Iterator[str]:
        start = time.monotonic()
        self._attempts, self._done, self.notice = 0, False, ""
        parts: list[str] = []
        reported: dict[str, int] = {}
        finished = received = filtered = thought = False
        cleaner = ReplyCleaner()
        cap = TokenCap(self.max_tokens)
        extra = {"response_format": response_format} if response_format else {}
        chunks = within(lambda: self._llm.stream_chat(self._messages(system, user), **extra), start + self.deadline)
        try:
            for chunk in chunks:
                received = True
                raw = chunk.raw
                usage = getattr(raw, "usage", None) if raw is not None else None
                if usage:
                    reported = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                for choice in getattr(raw, "choices", None) or []:
                    delta = getattr(choice, "delta", None)  # DeepSeek, vLLM, llama.cpp: reasoning beside content
                    thought = thought or bool(
                        getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                    )
                    if choice.finish_reason:
                        finished = True
                        if choice.finish_reason == "length":
                            self.notice = self._cap_notice()
                        elif choice.finish_reason == "content_filter":
                            filtered = True
                            self.notice = (
                                "the endpoint's content filter stopped the reply; what it wrote before is all there is"
                            )
                text = cap.take(cleaner.feed(chunk.delta)) if chunk.delta else ""
                if text:
                    parts.append(text)
                    yield text
                if cap.hit:
                    self.notice = self._cap_notice()
                    break
        except DeadlineReached:
            raise LLMError(
                f"the LLM endpoint {self.endpoint} did not finish its reply within the {self.deadline:g} s "
                f"deadline ({time.monotonic() - start:.1f} s elapsed); raise RAG_LLM_DEADLINE or check the server"
            ) from None
        except RagError:
            raise
        except Exception as exc:
            if response_format and not received and _refused(exc):
                raise FormatRefused(f"the LLM endpoint {self.endpoint} does not take response_format") from None
            elapsed = time.monotonic() - start
            raise LLMError(explain_failure(exc, self.endpoint, self.timeout, self._attempts, elapsed)) from None
        finally:
            chunks.close()
        tail = cap.take(cleaner.flush())
        if tail:
            parts.append(tail)
            yield tail
        text = "".join(parts)
        if not (received or self._done):
            raise LLMError(
                f"the LLM endpoint {self.endpoint} sent a malformed reply (no chat completion events in the "
                "stream); check that it is an OpenAI-compatible endpoint"
            )
        if not (finished or self._done or cap.hit):
            raise LLMError(
                f"the LLM endpoint {self.endpoint} cut off its reply (the stream ended without a finish "
                "reason or [DONE]); try again or check the server"
            )
        if not text.strip():
            if cleaner.reasoning.saw or thought:
                raise EmptyReply(
                    f"the model ({self.model}) sent only its reasoning and no answer; "
                    "raise RAG_LLM_MAX_TOKENS so it can finish, or use a model that answers directly"
                )
            if self.notice and not cap.hit and not filtered:  # stopped for length before writing anything
                raise EmptyReply(
                    f"the LLM endpoint {self.endpoint} stopped the reply for length before writing anything: its "
                    "context window is probably full; give the server a larger one or lower RAG_LLM_CONTEXT_TOKENS"
                )
            raise EmptyReply(
                f"the LLM endpoint {self.endpoint} returned an empty reply; check the model ({self.model})"
            )
        self.usage = reported or {
            "prompt_tokens": count_tokens(system) + count_tokens(user),
            "completion_tokens": count_tokens(text),
        }
        written = self.usage["completion_tokens"]
        if self.notice and not cap.hit and not filtered and written < self.max_tokens:  # the endpoint's own limit
            self.notice = (
                f"the endpoint cut the reply at {written} tokens, below RAG_LLM_MAX_TOKENS ({self.max_tokens}): "
                "its context window is probably full; give the server a larger one or lower RAG_LLM_CONTEXT_TOKENS"
            )


def complete(llm: LLM, system: str, user: str) -> str:
    """The whole reply of any LLM, for calls that need no streaming."""
    return "".join(llm.stream(system, user))
