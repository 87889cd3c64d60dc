"""Choosing the LLM and the grounding verifier from settings."""

from __future__ import annotations

from collections.abc import Iterator

from rag.config import Settings, SettingsError
from rag.errors import RagError
from rag.grounding import LLMVerifier, OverlapVerifier
from rag.llm import LLM, LLMError, OpenAICompatible, complete
from rag.prompts import render


class ForkedLLM:
    """The configured LLM, run in a forked helper process for one-shot commands.

    Importing LlamaIndex and the openai client costs about a second, as much as opening the store
    and retrieving. Threads cannot overlap the two (imports hold the GIL); a process forked before
    the store is opened can, so the request leaves about a second sooner. The helper receives
    (system, user) prompts over a pipe and sends back text deltas, then usage or an error line."""

    def __init__(self, settings: Settings) -> None:
        import multiprocessing

        self.model = settings.llm_model
        self.endpoint = settings.endpoint
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(settings, child), daemon=True)
        self._process.start()
        child.close()

    def stream(self, system: str, user: str) -> Iterator[str]:
        self._conn.send((system, user))
        while True:
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                raise LLMError(f"the LLM client for {self.endpoint} stopped unexpectedly; try again") from None
            if kind == "delta":
                yield value
            elif kind == "done":
                self.usage = value
                return
            else:
                raise LLMError(value)


def _serve(settings: Settings, conn) -> None:
    try:
        llm: OpenAICompatible | None = OpenAICompatible(settings)
        error = ""
    except Exception as exc:  # reported with the first request
        llm, error = None, f"the LLM client could not start ({exc})"
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if llm is None:
            conn.send(("error", error))
            continue
        try:
            for delta in llm.stream(*request):
                conn.send(("delta", delta))
            conn.send(("done", llm.usage))
        except RagError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:
            conn.send(("error", f"the LLM client failed ({type(exc).__name__}: {exc})"))


def open_llm(settings: Settings, forked: bool = False) -> LLM | None:
    """The configured LLM, or None for extractive answers. `forked` suits one-shot commands that
    call it before opening the store (see ForkedLLM)."""
    if not settings.llm_enabled:
        return None
    return ForkedLLM(settings) if forked else OpenAICompatible(settings)


def open_verifier(settings: Settings, llm: LLM | None) -> OverlapVerifier:
    if settings.verifier == "overlap":
        return OverlapVerifier()
    if llm is None:
        raise SettingsError(
            "verifier = llm needs an LLM: set OPENAI_BASE_URL or OPENAI_API_KEY, or use verifier = overlap"
        )

    def judge(claim: str, passages: list[str]) -> bool:
        reply = complete(
            llm,
            "You check whether passages support a claim.",
            render("judge", claim=claim, passages="\n\n".join(passages)),
        )
        return reply.strip().lower().startswith("yes")

    return LLMVerifier(judge)
