"""Follow-up questions: rewrite a question that leans on the conversation into a standalone one.

With an LLM the condense prompt (prompts/condense.txt) does it. Without one, a question that
refers back ("it", "they", "this paper", "what about ...") carries the previous standalone
question along, so retrieval still sees what it is about."""

from __future__ import annotations

import re

from rag.llm import LLM, complete
from rag.prompts import ABSTAIN_PHRASE, render
from rag.sentences import CITATION
from rag.terms import terms

_REFERS_BACK = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|the paper|the papers|the same|above|previous)\b"
    r"|^\s*(and|what about|how about|why|also)\b",
    re.I,
)


def refers_back(question: str) -> bool:
    return bool(_REFERS_BACK.search(question))


def standalone_question(question: str, history: list[tuple[str, str]], llm: LLM | None = None) -> str:
    """`history`: earlier (standalone question, answer) pairs, oldest first."""
    if not history or not refers_back(question):
        return question
    carried = f"{question} ({history[-1][0]})"
    if llm is None:
        return carried
    transcript = "\n".join(f"User: {q}\nAssistant: {a[:600]}" for q, a in history[-3:])
    rewritten = complete(
        llm, "You rewrite follow-up questions.", render("condense", history=transcript, question=question)
    )
    rewritten = " ".join(rewritten.split())
    # a reply that is no rewrite (too short or long, an answer with citations, the abstention
    # sentence, words of neither the question nor the conversation's questions) is not used
    asked = terms(" ".join([question, *(q for q, _ in history[-3:])]))
    if (
        not 3 <= len(rewritten) <= 400
        or CITATION.search(rewritten)
        or ABSTAIN_PHRASE.lower() in rewritten.lower()
        or not terms(rewritten) & asked
    ):
        return carried
    return rewritten
