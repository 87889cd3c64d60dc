"""The objects a command needs (store, embedder, retriever), made once and only when used."""

from __future__ import annotations

from functools import cached_property

from rag.config import Settings
from rag.embedders import Embedder, embedder_identity, get_embedder
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
        return get_embedder(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        """A retriever over a ready store: a store never written gets the bundled corpus first, an
        interrupted ingest is resumed or reported (see `ensure_index`)."""
        from rag.ingest import ensure_index

        self.store.check_embedder(embedder_identity(self.settings))
        ensure_index(self.store, lambda: self.embedder)
        return Retriever(self.store, self.embedder)
