"""Choosing the LLM and the grounding verifier from settings."""

from __future__ import annotations

import threading
from functools import lru_cache

from rag.config import Settings, SettingsError
from rag.grounding import LLMVerifier, OverlapVerifier
from rag.llm import LLM, OpenAICompatible
from rag.prompts import render


class PendingLLM:
    """The configured LLM, its client library imported in a background thread.

    Importing LlamaIndex costs about a second; starting it before retrieval lets the two overlap,
    so the request leaves sooner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._thread = threading.Thread(target=_import_client, daemon=True)
        self._thread.start()

    @lru_cache(maxsize=1)
    def get(self) -> LLM:
        self._thread.join()
        return OpenAICompatible(self.settings)


def _import_client() -> None:
    import llama_index.llms.openai_like  # noqa: F401


def open_llm(settings: Settings) -> PendingLLM | None:
    return PendingLLM(settings) if settings.llm_enabled else None


def open_verifier(settings: Settings, llm: PendingLLM | None) -> OverlapVerifier:
    if settings.verifier == "overlap":
        return OverlapVerifier()
    if llm is None:
        raise SettingsError("verifier = llm needs an LLM: set OPENAI_BASE_URL or OPENAI_API_KEY, or use verifier = overlap")

    def judge(claim: str, passages: list[str]) -> bool:
        reply = llm.get().complete(
            "You check whether passages support a claim.", render("judge", claim=claim, passages="\n\n".join(passages))
        )
        return reply.strip().lower().startswith("yes")

    return LLMVerifier(judge)
