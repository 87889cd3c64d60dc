"""The model's context, counted: sources are packed into the prompt within a token budget.

The budget is the model's context window (`llm_context_tokens`; for known OpenAI models their
published window, otherwise DEFAULT_WINDOW) less the reply's `llm_max_tokens`, the prompt around
the sources and a margin for the chat template. Sources go in by retrieval rank, best evidence
first; a source that does not fit whole keeps its title and the run of whole sentences around the
passage retrieval matched (its leading sentences when no passage is given) that fits, never part of
a sentence; one that cannot keep a single sentence is left out. Tokens are counted
with tiktoken (cl100k), which other tokenizers match only roughly, hence the margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.prompts import sources_block
from rag.sentences import own_references_marked, split_sentences
from rag.tokens import count_tokens

DEFAULT_WINDOW = 4096  # llama.cpp's and Ollama's usual context for a model not listed below
MARGIN = 0.1  # share of the window kept free: chat template tokens and tokenizer differences

# Published context windows of OpenAI models (prefix match, longest first).
OPENAI_WINDOWS = {
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
}


def model_window(model: str, configured: int | None) -> int:
    """The context window to pack for: the setting, else a known OpenAI model's, else the default."""
    if configured:
        return configured
    for prefix in sorted(OPENAI_WINDOWS, key=len, reverse=True):
        if model.startswith(prefix):
            return OPENAI_WINDOWS[prefix]
    return DEFAULT_WINDOW


@dataclass
class Packed:
    block: str  # the sources as the prompt shows them
    numbers: list[int]  # sources in the prompt (whole or in part): the ones the model may cite
    budget: int
    used: int
    left_out: list[dict] = field(default_factory=list)  # {"n", "sentences_left_out", "whole"}

    def as_json(self) -> dict:
        return {"budget_tokens": self.budget, "source_tokens": self.used, "left_out": self.left_out}


def pack(sources: list[tuple[int, str, str]], budget: int | None, matched: list[str] | None = None) -> Packed:
    """`sources` ((n, title, abstract), best first) rendered within `budget` tokens (None: all);
    `matched[i]`: the passage retrieval matched in source i, kept first when the source is cut."""
    if budget is None:
        block = sources_block([(t, a) for _, t, a in sources], [n for n, _, _ in sources])
        return Packed(block, [n for n, _, _ in sources], 0, count_tokens(block))
    kept: list[tuple[int, str, str]] = []
    left_out: list[dict] = []
    used = 0
    for i, (n, title, abstract) in enumerate(sources):
        whole = count_tokens(sources_block([(title, abstract)], [n])) + 1
        if used + whole <= budget:
            kept.append((n, title, abstract))
            used += whole
            continue
        sentences = split_sentences(abstract)
        passage = own_references_marked(matched[i]) if matched and i < len(matched) else ""
        fitted = _run_that_fits(sentences, _Cost(n, title), budget - used, _matched_span(sentences, passage))
        if fitted:
            kept.append((n, title, " ".join(fitted)))
            used += _Cost(n, title)(fitted)
            left_out.append({"n": n, "sentences_left_out": len(sentences) - len(fitted), "whole": False})
        else:
            left_out.append({"n": n, "sentences_left_out": len(sentences), "whole": True})
    block = sources_block([(t, a) for _, t, a in kept], [n for n, _, _ in kept])
    return Packed(block, [n for n, _, _ in kept], budget, used, left_out)


def _matched_span(sentences: list[str], passage: str) -> tuple[int, int]:
    """The first and last of `sentences` inside `passage` (a chunk of the abstract); (0, 0) when
    none is: the leading sentences are kept then."""
    inside = [i for i, s in enumerate(sentences) if passage and s in passage]
    return (inside[0], inside[-1]) if inside else (0, 0)


@dataclass(frozen=True)
class _Cost:
    """Tokens a source takes in the prompt with only some of its sentences."""

    n: int
    title: str

    def __call__(self, run: list[str]) -> int:
        return count_tokens(sources_block([(self.title, " ".join(run))], [self.n])) + 1


def _run_that_fits(sentences: list[str], cost: _Cost, room: int, span: tuple[int, int]) -> list[str]:
    """The longest run of whole `sentences` within `room` tokens, grown from `span` one sentence at a time,
    on both sides in turn (the one before often names what the matched sentence speaks of)."""
    lo, hi = span

    def fits(run: list[str]) -> bool:
        return cost(run) <= room

    while hi > lo and not fits(sentences[lo : hi + 1]):
        hi -= 1
    if not sentences or not fits(sentences[lo : hi + 1]):
        return []
    grown = True
    while grown:
        grown = False
        if lo > 0 and fits(sentences[lo - 1 : hi + 1]):
            lo, grown = lo - 1, True
        if hi + 1 < len(sentences) and fits(sentences[lo : hi + 2]):
            hi, grown = hi + 1, True
    return sentences[lo : hi + 1]


def budget_for(window: int, max_tokens: int, system: str, frame: str) -> int:
    """Tokens left for sources: the window less the reply, the prompt around them and the margin."""
    return max(0, int(window * (1 - MARGIN)) - max_tokens - count_tokens(system) - count_tokens(frame))


def llm_max_tokens(llm: object) -> int:
    """The reply's token cap of an LLM backend (0 for stand-ins without one)."""
    value = getattr(llm, "max_tokens", 0)
    return value if isinstance(value, int) else 0
