"""The composition root: every command, the chat and the MCP server get the store, embedder,
retriever, LLM and grounding verifier here, each built once, on first use, from the settings,
and closed by `close()` (or by leaving a `with` block).

Nothing heavy is imported until a part is asked for, so `rag search` never loads the LLM client."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.embedders import Embedder, embedder_identity, get_embedder
from rag.retrieval import Retriever
from rag.store import Store

if TYPE_CHECKING:
    from types import TracebackType

    from rag.forked_llm import ForkedLLM
    from rag.grounding import Verifier
    from rag.lexical import LexicalIndex
    from rag.llm import LLM, OpenAICompatible


class Workspace:
    """What a command works with, made once and only when used.

    `forked_llm` suits one-shot commands: the LLM client then loads in a helper process while the
    store opens (ask for `llm` before `retriever`; see rag/forked_llm.py). `llm` stands in for the
    configured LLM (the chat's tests pass scripted ones); it is used unless the settings turn the
    LLM off, and the workspace does not close it."""

    def __init__(self, settings: Settings, *, forked_llm: bool = False, llm: LLM | None = None) -> None:
        self.settings = settings
        self._forked = forked_llm
        self._given_llm = llm
        self._opened_llm: ForkedLLM | OpenAICompatible | None = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @cached_property
    def store(self) -> Store:
        return Store(self.settings)

    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        """A retriever over a ready store: a store never written gets the bundled corpus first, an
        interrupted ingest is resumed or reported (see `ensure_index`)."""
        from rag.ingest import ensure_index
        from rag.reranking import get_reranker

        identity = embedder_identity(self.settings)
        self.store.check_embedder(identity)
        ensure_index(self.store, lambda: self.embedder)
        self.store.warm(identity.dimension)
        return Retriever(self.store, self.embedder, reranker=get_reranker(self.settings))

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index of the store; the retriever reopens it when an ingest has changed the store."""
        return self.retriever.lexical

    @cached_property
    def llm(self) -> LLM | None:
        """The configured LLM, or None for extractive answers."""
        if self.settings.llm == "off":
            return None
        if self._given_llm is not None:
            return self._given_llm
        if not self.settings.llm_enabled:
            return None
        if self._forked:
            from rag.forked_llm import ForkedLLM

            self._opened_llm = ForkedLLM(self.settings)
        else:
            from rag.llm import OpenAICompatible

            self._opened_llm = OpenAICompatible(self.settings)
        return self._opened_llm

    @cached_property
    def verifier(self) -> Verifier:
        """The grounding check the `verifier` setting names; only `llm` builds the LLM for it."""
        from rag.grounding import make_verifier

        return make_verifier(
            self.settings,
            self.llm if self.settings.verifier == "llm" else None,
            embed=lambda texts: self.embedder.embed_cached(texts),  # built only if a claim needs it
        )

    def close(self) -> None:
        """Close what this workspace opened (the LLM helper or client, the Chroma client). Parts
        are built again if asked for afterwards; objects handed out before stay closed."""
        built = self.__dict__
        for name in ("verifier", "llm", "retriever", "embedder"):
            built.pop(name, None)
        if self._opened_llm is not None:
            self._opened_llm.close()
            self._opened_llm = None
        store = built.pop("store", None)
        if store is not None:
            store.close()
