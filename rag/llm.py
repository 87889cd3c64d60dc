"""LLM backends behind one small interface: a chat call that streams text.

`OpenAICompatible` is the built-in backend: LlamaIndex's `OpenAILike` over the `openai` client,
for OpenAI itself and for any OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio).
Anything with a `stream(system, user)` method and `model`/`endpoint`/`usage` attributes can
stand in for it, which is how the tests queue canned replies for exact-format cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from rag.errors import RagError
from rag.tokens import count_tokens

if TYPE_CHECKING:
    from rag.config import Settings


class LLMError(RagError):
    pass


class LLM(Protocol):
    model: str
    endpoint: str
    usage: dict[str, int]

    def stream(self, system: str, user: str) -> Iterator[str]:
        """Yield the reply's text as it arrives; set `usage` when done."""
        ...


def _explain(exc: Exception, endpoint: str, timeout: float) -> str:
    import openai

    where = f"the LLM endpoint {endpoint}"
    if isinstance(exc, openai.APITimeoutError):
        return f"{where} did not answer within {timeout:g} s; raise RAG_LLM_TIMEOUT or check the server"
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
    if isinstance(exc, openai.APIStatusError):
        return f"{where} failed with HTTP {exc.status_code}; try again later or check the server's log"
    return f"{where} sent a malformed or cut-off reply ({type(exc).__name__}); try again or check the server"


class OpenAICompatible:
    """OpenAI or any OpenAI-compatible server, through LlamaIndex's OpenAILike."""

    def __init__(self, settings: Settings, max_retries: int = 2) -> None:
        from llama_index.llms.openai_like import OpenAILike

        self.model = settings.llm_model
        self.endpoint = settings.endpoint
        self.timeout = settings.llm_timeout
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        # The openai client retries connection errors, 429 and 5xx with backoff before any text
        # arrives, which is safe; a stream cut midway is reported, never retried.
        self._llm = OpenAILike(
            model=self.model,
            api_base=self.endpoint,
            api_key=key,
            timeout=self.timeout,
            max_retries=max_retries,
            is_chat_model=True,
            context_window=8192,
            temperature=0.0,
            max_tokens=400,
        )

    def _messages(self, system: str, user: str):
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]

    def stream(self, system: str, user: str) -> Iterator[str]:
        parts: list[str] = []
        reported: dict[str, int] = {}
        try:
            for chunk in self._llm.stream_chat(self._messages(system, user)):
                usage = getattr(chunk.raw, "usage", None) if chunk.raw is not None else None
                if usage:
                    reported = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                if chunk.delta:
                    parts.append(chunk.delta)
                    yield chunk.delta
        except RagError:
            raise
        except Exception as exc:
            raise LLMError(_explain(exc, self.endpoint, self.timeout)) from None
        text = "".join(parts)
        if not text.strip():
            raise LLMError(f"the LLM endpoint {self.endpoint} returned an empty reply; check the model ({self.model})")
        self.usage = reported or {
            "prompt_tokens": count_tokens(system) + count_tokens(user),
            "completion_tokens": count_tokens(text),
        }


def complete(llm: LLM, system: str, user: str) -> str:
    """The whole reply of any LLM, for calls that need no streaming."""
    return "".join(llm.stream(system, user))
