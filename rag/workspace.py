"""The objects a command needs (store, embedder, retriever), made once and only when used."""

from __future__ import annotations

from functools import cached_property

from rag.config import Settings
from rag.embedder import Embedder
from rag.retrieval import Retriever
from rag.store import Store


class Workspace:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> Store:
        return Store(self.settings)

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder.from_settings(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        """A retriever over a ready store: a store never written gets the bundled corpus first, an
        interrupted ingest is resumed or reported (see `ensure_index`)."""
        from rag.embedder import embedder_name
        from rag.ingest import ensure_index
        from rag.reranking import get_reranker

        self.store.check_embedder(embedder_name(self.settings.embed_quantized))
        ensure_index(self.store, lambda: self.embedder)
        return Retriever(self.store, self.embedder, reranker=get_reranker(self.settings))
