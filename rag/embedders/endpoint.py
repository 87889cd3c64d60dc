"""An embedder behind an OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI,
llama.cpp): stronger models than MiniLM, or a GPU box, for the same protocol.

Texts go in batches of `embed_endpoint_batch`; 429, 5xx, timeouts and dropped connections are
retried after the server's Retry-After, else with exponential backoff; anything else, or the last failure, is
one line naming the endpoint and what to set. Vectors are normalised to unit length here, as not
every server does. Tokens are counted with tiktoken's cl100k_base (rag/tokens.py): exact for
OpenAI's models, an approximation for others (see `embed_endpoint_max_tokens`).

The first use in a process sends one short text: it finds the vectors' length when no
`embed_endpoint_dimension` is set, and a server that is down, refuses the key or lacks the model
is reported before the store is touched. The identity is "endpoint:<model>" and that length, so
the store refuses to mix these vectors with another model's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from rag.config import mask_url
from rag.embedders import EmbedderIdentity, RecentVectors
from rag.errors import RagError
from rag.tokens import count_tokens

if TYPE_CHECKING:
    import httpx

    from rag.config import Settings

PREFIX = "endpoint:"
OPENAI_URL = "https://api.openai.com/v1"
ATTEMPTS = 5  # tries per batch on 429, 5xx, timeouts and dropped connections
BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_WAIT = 20.0  # longest pause between tries, whatever Retry-After asks
PROBE = "dimension probe"

_dimensions: dict[tuple[str, str], int] = {}  # (url, model) -> vector length, probed once per process


class EndpointError(RagError):
    pass


def base_url(settings: Settings) -> str:
    return (settings.embed_endpoint_url or settings.openai_base_url or OPENAI_URL).rstrip("/")


def _api_key(settings: Settings) -> str | None:
    key = settings.embed_endpoint_api_key or settings.openai_api_key
    return key.get_secret_value() if key else None


def identity(settings: Settings) -> EmbedderIdentity:
    """Asks the endpoint for the vectors' length unless `embed_endpoint_dimension` gives it."""
    name = PREFIX + settings.embed_endpoint_model
    if settings.embed_endpoint_dimension:
        return EmbedderIdentity(name, settings.embed_endpoint_dimension)
    return EmbedderIdentity(name, build(settings).dimension)


def build(settings: Settings) -> Endpoint:
    return Endpoint(settings)


def how_to_use(made_by: EmbedderIdentity) -> str:
    """The endpoint model that made a store's vectors."""
    if not made_by.name.startswith(PREFIX):
        return ""
    model = made_by.name.removeprefix(PREFIX)
    return f"set RAG_EMBED_ENDPOINT_MODEL={model} (and RAG_EMBED_ENDPOINT_DIMENSION={made_by.dimension} or unset)"


def describe(settings: Settings) -> str:
    """One line for `rag stats` / `rag config`."""
    return f"{settings.embed_endpoint_model} at {mask_url(base_url(settings))}/embeddings (OpenAI-compatible endpoint)"


class Endpoint:
    """Texts to unit vectors through `POST <url>/embeddings`."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        self.url = base_url(settings)
        self.model = settings.embed_endpoint_model
        self.name = PREFIX + self.model
        self.max_tokens = settings.embed_endpoint_max_tokens
        self.batch = settings.embed_endpoint_batch
        self._where = f"the embeddings endpoint {mask_url(self.url)}"
        key = _api_key(settings)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._keyed = bool(key)
        self._client = httpx.Client(timeout=settings.embed_endpoint_timeout, headers=headers)
        self._recent = RecentVectors(self.embed)
        expected = settings.embed_endpoint_dimension
        cached = _dimensions.get((self.url, self.model))
        self.dimension = expected or cached or 0
        if cached is None:  # first use in this process: fail now, before anything is written
            self.dimension = len(self._request([PROBE])[0])
            _dimensions[(self.url, self.model)] = self.dimension
        if expected and cached and cached != expected:
            raise self._wrong_size(cached)

    def count_tokens(self, text: str) -> int:
        """tiktoken's cl100k_base count: OpenAI's tokenizer, an approximation for other models."""
        return count_tokens(text)

    def embed_cached(self, texts: list[str]) -> np.ndarray:
        return self._recent(texts)

    def warm(self) -> None:
        """Nothing to load: the server holds the model."""

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = [self._request(texts[i : i + self.batch]) for i in range(0, len(texts), self.batch)]
        return np.concatenate(out)

    # -- one request -------------------------------------------------------------------------

    def _request(self, texts: list[str]) -> np.ndarray:
        """The batch's unit vectors, after retrying what a retry can fix."""
        import httpx

        problem, wait = "", 0.0
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(wait or min(MAX_WAIT, BACKOFF * 2 ** (attempt - 1)))
            try:
                reply = self._client.post(f"{self.url}/embeddings", json={"model": self.model, "input": texts})
            except httpx.ConnectError as exc:
                raise EndpointError(
                    f"cannot reach {self._where} ({_short(exc)}); start the server or set RAG_EMBED_ENDPOINT_URL"
                ) from None
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                problem, wait = f"{type(exc).__name__} {_short(exc)}".strip(), 0.0
                continue
            except httpx.HTTPError as exc:
                raise EndpointError(f"{self._where} failed ({_short(exc)}); check RAG_EMBED_ENDPOINT_URL") from None
            if reply.status_code == 429 or reply.status_code >= 500:
                problem, wait = f"HTTP {reply.status_code}: {_message(reply)}", _retry_after(reply)
                continue
            if reply.status_code >= 400:
                raise self._refused(reply)
            return self._vectors(reply, len(texts))
        hint = "raise RAG_EMBED_ENDPOINT_TIMEOUT or lower" if "Timeout" in problem else "lower"
        raise EndpointError(
            f"{self._where} failed {ATTEMPTS} times ({mask_url(problem)}); try again later, or {hint} "
            "RAG_EMBED_ENDPOINT_BATCH if the server is overloaded"
        )

    def _refused(self, reply: httpx.Response) -> EndpointError:
        status, message = reply.status_code, _message(reply)
        if status in (401, 403):
            what = "refused the API key" if self._keyed else "needs an API key"
            return EndpointError(
                f"{self._where} {what} (HTTP {status}: {message}); set RAG_EMBED_ENDPOINT_API_KEY (or OPENAI_API_KEY)"
            )
        if status == 404:
            return EndpointError(
                f"{self._where} has no model {self.model!r} or no /embeddings route (HTTP 404: {message}); set "
                "RAG_EMBED_ENDPOINT_MODEL to a model it serves (Ollama: `ollama pull` it) and check that "
                "RAG_EMBED_ENDPOINT_URL ends in /v1"
            )
        return EndpointError(
            f"{self._where} rejected the request for model {self.model!r} (HTTP {status}: {message}); check "
            "RAG_EMBED_ENDPOINT_MODEL, or lower RAG_EMBED_ENDPOINT_MAX_TOKENS if a text is too long"
        )

    def _vectors(self, reply: httpx.Response, count: int) -> np.ndarray:
        """The reply's vectors in input order, unit length, checked for number and size."""
        try:
            items = reply.json()["data"]
            if len(items) > 1:
                order = [int(item.get("index", 0)) for item in items]
                if sorted(order) != list(range(len(items))):  # vectors that cannot be matched to their texts
                    raise EndpointError(
                        f"{self._where} numbered its {len(items)} vectors {_short(sorted(order))} instead of "
                        f"0 to {len(items) - 1} once each, so they cannot be matched to the texts; check that "
                        "RAG_EMBED_ENDPOINT_URL is an OpenAI-compatible embeddings server"
                    )
                items = [item for _, item in sorted(zip(order, items), key=lambda pair: pair[0])]
            rows = [item["embedding"] for item in items]
            if len({len(row) for row in rows}) > 1:  # numpy's own message for this names no cause
                raise EndpointError(
                    f"{self._where} sent vectors of uneven length ({min(map(len, rows))} to {max(map(len, rows))}) "
                    f"for model {self.model!r}; check that RAG_EMBED_ENDPOINT_URL is an OpenAI-compatible "
                    "embeddings server"
                )
            vectors = np.array(rows, dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EndpointError(
                f"{self._where} sent a reply that is not an OpenAI embeddings response ({_short(exc)}: "
                f"{_short(reply.text[:80])!r}); check that RAG_EMBED_ENDPOINT_URL is the server's OpenAI-compatible "
                "base (ending in /v1)"
            ) from None
        if vectors.ndim != 2 or len(vectors) != count or not vectors.shape[1]:
            raise EndpointError(
                f"{self._where} sent {len(vectors)} vectors of uneven or zero length for {count} texts; "
                "check that RAG_EMBED_ENDPOINT_URL is an OpenAI-compatible embeddings server"
            )
        if self.dimension and vectors.shape[1] != self.dimension:
            raise self._wrong_size(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise EndpointError(f"{self._where} sent zero or non-finite vectors for model {self.model!r}")
        return (vectors / norms).astype(np.float32)

    def _wrong_size(self, got: int) -> EndpointError:
        return EndpointError(
            f"{self._where} sends {got}-d vectors for model {self.model!r}, not {self.dimension}-d "
            f"(RAG_EMBED_ENDPOINT_DIMENSION); set it to {got}, or unset it to ask the endpoint"
        )


def _short(value: object) -> str:
    return " ".join(str(value).split())[:200]


def _message(reply: httpx.Response) -> str:
    """The server's error message: OpenAI's {"error": {"message"}}, Ollama's {"error": "..."}, or the text."""
    try:
        error = reply.json().get("error")
        text = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        text = None
    return _short(text or reply.text or reply.reason_phrase)[:160]


def _retry_after(reply: httpx.Response) -> float:
    """The server's requested pause (retry-after-ms or Retry-After seconds), within MAX_WAIT; 0 when
    it names none, and the backoff applies."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(MAX_WAIT, max(0.0, float(reply.headers[header]) * scale))
        except (KeyError, ValueError):
            continue
    return 0.0
