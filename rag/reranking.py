"""The step after fusion that may reorder the fused papers (a cross-encoder, an LLM judge).

The default does nothing. A reranker is one class with `name` and `rerank`, registered in
`RERANKERS` under the name the `reranker` setting uses (haiku.rag's `reranking/base.py` and
`get_reranker()` are the model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.question import Question
    from rag.retrieval import PaperHit


class Reranker(Protocol):
    name: str

    def rerank(self, question: Question, hits: list[PaperHit], k: int) -> list[PaperHit]:
        """The best `k` of `hits` (every fused paper, best first), best first; ranks are renumbered
        by the retriever."""
        ...


class NoReranker:
    """Keeps the fused order."""

    name = "none"

    def rerank(self, question: Question, hits: list[PaperHit], k: int) -> list[PaperHit]:
        return hits[:k]


RERANKERS: dict[str, Callable[[Settings], Reranker]] = {"none": lambda settings: NoReranker()}


def get_reranker(settings: Settings) -> Reranker:
    """The reranker the settings name."""
    return RERANKERS[settings.reranker](settings)
