"""A question, analysed once: retrieval, the abstention rules and the extractive answerer all read
the same terms, key tokens, specific terms, parts and embedding instead of deriving their own."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from rag.terms import analyse, key_tokens, specific_terms

if TYPE_CHECKING:
    import numpy as np

    from rag.embedders import Embedder

# Two or more questions in one ("how many X, and how large is Y?", "which model did best and with
# what score?") are split into parts, each answered on its own.
_PART_SPLIT = re.compile(
    r"\?\s+(?=\S)|;\s*|,?\s+and\s+(?=(?:how|what|which|who|when|where|why|whether|is|are|does|do|did|was|were"
    r"|can|could|with what|by how|to what)\b)",
    re.I,
)


# what joins two names in "LitSearch and Mr. TyDi", "AlphaQ vs BetaQ", "A, B or C"
_COORDINATOR = (
    r"\s*(?:,\s*(?:and\s+|or\s+)?|\s(?:and|or|vs\.?|versus)\s+|\s*&\s*|\s*/\s*)(?:the\s+|[A-Z][a-z]{0,3}\.\s*)?"
)


def joined_names(question: str, names: Sequence[str]) -> list[str]:
    """Those of `names` the question joins to another of them by and, or, vs or a comma."""
    return [
        a
        for a in names
        if any(
            re.search(re.escape(x) + _COORDINATOR + re.escape(y), question, re.I)
            for b in names
            if b != a
            for x, y in ((a, b), (b, a))
        )
    ]


def without_names(question: str, names: Sequence[str]) -> str:
    """`question` with each of `names` taken out along with what joins it to the rest:
    "How many queries do LitSearch and Mr. TyDi contain?" less TyDi asks of LitSearch alone."""
    for name in names:
        question = re.sub(
            rf"{_COORDINATOR}{re.escape(name)}\b|\b{re.escape(name)}{_COORDINATOR}", " ", question, count=1, flags=re.I
        )
    return " ".join(question.split())


def question_parts(question: str) -> list[str]:
    """The sub-questions of a question that asks several things; one part otherwise."""
    parts = [p.strip(" ,;?") for p in _PART_SPLIT.split(question)]
    parts = [p for p in parts if analyse(p)]
    return parts if len(parts) >= 2 else [question.strip()]


_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")
_WORD = re.compile(r"\b[A-Za-z]{2,}\b")


def unshouted(question: str) -> str:
    """A question typed in capitals ("HOW MANY QUERIES DOES LITSEARCH CONTAIN?") with its
    all-capital words in lower case: in capitals every word would read as an acronym the abstracts
    must spell the same way. A question with any lower-case letter is left as it is ("BERT vs GPT
    on MMLU?")."""
    if re.search(r"[a-z]", question) or len(_WORD.findall(question)) < 3:
        return question
    return _CAPS_WORD.sub(lambda m: m.group().lower(), question)


@dataclass(frozen=True)
class Question:
    """What a question says, as every stage reads it. Build it with `Question.parse`."""

    text: str
    terms: tuple[str, ...]  # analysed words in order, repeats kept: BM25 weighs a repeated word twice
    keys: frozenset[str]  # its key tokens (numbers, acronyms, named methods), normalised
    specific: tuple[str, ...]  # numbers, acronyms and names as typed; the abstention rules look for them
    parts: tuple[str, ...]  # the sub-questions; one part for a simple question
    embedder: Embedder | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, embedder: Embedder | None = None) -> Question:
        """Analyse `text`; its embedding is computed by `embedder` when first asked for."""
        text = unshouted(text)
        keys = key_tokens(text)
        return cls(
            text=text,
            terms=tuple(analyse(text)),
            keys=frozenset(keys),
            specific=tuple(specific_terms(text, keys)),
            parts=tuple(question_parts(text)),
            embedder=embedder,
        )

    @classmethod
    def of(cls, question: str | Question, embedder: Embedder | None = None) -> Question:
        """`question` itself, or a string parsed: public entry points accept either."""
        return question if isinstance(question, Question) else cls.parse(question, embedder)

    @cached_property
    def specific_keys(self) -> frozenset[str]:
        """Key tokens of the specific terms: what a sentence must name to state the question's names."""
        return frozenset(key_tokens(" ".join(self.specific)))

    @cached_property
    def vector(self) -> np.ndarray:
        """The question's unit embedding, computed once (retrieval, abstention and answering share it)."""
        if self.embedder is None:
            raise ValueError("this question was parsed without an embedder")
        return self.embedder.embed([self.text])[0]
