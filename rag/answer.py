"""Answering a question: retrieve, decide whether the evidence can answer, answer, check.

The same function serves `rag ask`, `rag chat` and `rag eval`; the LLM (if any) and a token
callback are passed in, so callers choose streaming and backends without a second code path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from rag import extractive, structured
from rag.abstain import TUNING, Assessment, Evidence, assess, default_model, focus_words, gather_evidence
from rag.context import Packed, budget_for, llm_max_tokens, pack
from rag.errors import RagError
from rag.grounding import Grounding, SentenceCheck, Verifier, check
from rag.llm import LLM, EmptyReply
from rag.prompts import ABSTAIN_PHRASE, render
from rag.question import Question
from rag.repair import GroundingMode, Repaired, repair
from rag.retrieval import PaperHit, Retriever, SearchResult, query_words
from rag.retrievers import Mode
from rag.sentences import normalise_citations, own_references_marked, split_sentences
from rag.tokens import count_tokens

NO_ANSWER = "The corpus does not answer this question."


@dataclass
class Source:
    """A numbered source of an answer. Its abstract's own "[3]" reads "[ref 3]", so neither a quote
    nor the model takes it for a citation of this answer's source 3."""

    n: int
    paper_id: str
    title: str
    abstract: str

    def __post_init__(self) -> None:
        self.abstract = own_references_marked(self.abstract)

    def as_json(self, cited: bool | None = None) -> dict:
        out: dict = {"n": self.n, "paper_id": self.paper_id, "title": self.title}
        if cited is not None:
            out["cited"] = cited
        return out


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    mode: str  # "llm" | "extractive"
    model: str | None
    sources: list[Source]
    grounding: Grounding
    retrieval: list[PaperHit]
    assessment: Assessment | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    parts: list[extractive.Part] = field(default_factory=list)  # sub-questions, when it asks several
    removed: list[SentenceCheck] = field(default_factory=list)  # the model's unsupported sentences (strict)
    fell_back: bool = False  # the model's answer did not hold up; the text is the extractive answer
    changed: bool = False  # the repair step changed the model's answer (what was streamed is not the answer)
    context: Packed | None = None  # how the sources were packed into the model's prompt

    @property
    def quotes(self) -> bool:
        """Whether the text is sentences quoted from abstracts (extractive, or fallen back to it):
        shown as written, not read as Markdown."""
        return self.mode == "extractive" or self.fell_back

    @property
    def cited(self) -> set[int]:
        """Numbers of the sources some sentence of the answer cites."""
        return {n for s in self.grounding.sentences for n in s.citations}

    def sources_in_order(self) -> list[Source]:
        """Cited sources first, then the ones retrieved but not cited, each group by number."""
        cited = self.cited
        return sorted(self.sources, key=lambda s: (s.n not in cited, s.n))

    def as_json(self) -> dict:
        cited = self.cited
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "mode": self.mode,
            "model": self.model,
            "citations": [s.as_json(cited=s.n in cited) for s in self.sources_in_order()],
            "sentences": [s.as_json() for s in self.grounding.sentences],
            "grounding": self.grounding.as_json(),
            "retrieval": [h.as_json() for h in self.retrieval],
            "abstention": self.assessment.as_json() if self.assessment else None,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "usage": self.usage,
            "parts": [p.as_json() for p in self.parts],
            "removed": [{"text": s.text, "citations": s.citations, "verdict": s.verdict} for s in self.removed],
            "fell_back": self.fell_back,
            "context": self.context.as_json() if self.context else None,
        }


def model_abstained(text: str) -> bool:
    """Did the model reply with the prompt's abstain phrase?"""
    core = ABSTAIN_PHRASE.rstrip(".").lower()
    return core in " ".join(text.lower().split())


def gather(
    question: str | Question, found: SearchResult, retriever: Retriever, k: int, exclude: Collection[str] = ()
) -> tuple[list[PaperHit], list[Source], Evidence]:
    """The top `k` hits as numbered sources, and the evidence the answerability check reads (the
    top papers by hybrid score: the model was fitted on those, whatever retriever answers)."""
    question = Question.of(question, retriever.embedder)
    hits = found.results[:k]
    ranked = found.results
    if found.mode != "hybrid":
        ranked = retriever.search(question, TUNING.evidence_papers, exclude=exclude).results
    ranked = ranked[: TUNING.evidence_papers]
    abstracts = retriever.store.abstracts(list({h.paper_id for h in [*hits, *ranked]}))

    def abstract_of(hit: PaperHit) -> str:
        return abstracts.get(hit.paper_id, ("", hit.evidence))[1]

    sources = [Source(n, h.paper_id, h.title, abstract_of(h)) for n, h in enumerate(hits, start=1)]
    named = query_words(question.text)  # a paper the question names by its id has it in its evidence
    evidence = gather_evidence(
        question,
        [f"{h.paper_id}: " * (h.paper_id in named) + f"{h.title}. {abstract_of(h)}" for h in ranked],
        [h.score for h in ranked],
        retriever.embedder,
        [h.title for h in ranked],
    )
    return hits, sources, evidence


def _without_unfinished_end(text: str) -> str:
    """`text` less a last sentence the token cap cut off mid-way (no closing stop or citation)."""
    body = text.rstrip()
    last = (split_sentences(body) or [""])[-1]
    if not last or re.search(r"[.!?:)\]*_`\"']$", last) or not body.endswith(last):
        return text
    return body[: -len(last)].rstrip()


def ground_llm_answer(
    text: str,
    sources: list[Source],
    verifier: Verifier | None,
    grounding: GroundingMode,
    fallback: Callable[[], str],
    question: str = "",
    cut: bool = False,
    focus: Collection[str] = (),
) -> tuple[Repaired, bool]:
    """What every LLM answer goes through, whoever chose its sources (this module or rag/agent.py):
    the grounding check, then the repair `grounding` asks for, falling back to `fallback()`; and
    whether nothing of the model's answer held (every claim it made was removed). `cut`: the reply
    stopped at the token cap, so in strict mode its unfinished last sentence is not shown. `focus`:
    the question's focus words (rag.abstain.focus_words; see rag.repair.repair)."""
    numbered = {s.n: (s.title, s.abstract) for s in sources}
    text = normalise_citations(text)
    if cut and grounding == "strict":
        text = _without_unfinished_end(text)
    checked = check(text, numbered, verifier)
    fixed = repair(text, checked, numbered, verifier, grounding, fallback=fallback, question=question, focus=focus)
    # an empty fallback: the sources do not state the number the question asks for either
    fell_flat = fixed.fell_back and not fixed.text.strip()
    return fixed, fell_flat or (bool(checked.claims) and len(fixed.removed) == len(checked.claims))


@dataclass
class Checked:
    """The first half of every answer: the question analysed, the top `k` papers as numbered
    sources, and whether the evidence can answer at all (rag/abstain.py)."""

    asked: Question
    hits: list[PaperHit]
    sources: list[Source]
    assessment: Assessment
    timings: dict[str, float]

    def abstention(self, llm: LLM | None, started: float) -> Answer:
        """The answer to a clear miss, made before any model is asked (`started`: perf_counter
        when answering began): the same for `rag ask` and agent mode."""
        timings = {**self.timings, "verification": 0.0, "total": (time.perf_counter() - started) * 1000}
        mode_name, model = ("llm", llm.model) if llm else ("extractive", None)
        grounding, sources, hits = Grounding([]), self.sources, self.hits
        return Answer(
            self.asked.text, NO_ANSWER, True, mode_name, model, sources, grounding, hits, self.assessment, timings
        )


def _number_not_stated(assessment: Assessment) -> Assessment:
    """The verdict when the extractive answerer finds no number for a question asking one."""
    reason = "the best retrieved abstract states no number for what the question asks"
    return replace(assessment, answerable=False, reason=reason, rule="number_not_stated")


def _parts_not_stated(assessment: Assessment, parts: list[extractive.Part]) -> Assessment:
    """The verdict when a question of several parts has none the abstracts answer: what the answer
    would quote is on the paper's topic but states none of what was asked."""
    reason = "the retrieved abstracts state none of the parts asked: " + "; ".join(p.ask for p in parts)
    return replace(assessment, answerable=False, reason=reason, rule="parts_not_stated")


def fallback_gate(assessment: Assessment) -> Assessment | None:
    """The abstention for a model's answer that did not hold up and fell back to the extractive
    answer, or None to give that answer. With an LLM the pre-check stops only clear misses, the
    model deciding the rest; once its answer is set aside, the extractive answerer's own gate
    applies, so the fallback is the extractive answer, abstention included."""
    model = default_model()
    if assessment.confidence is None or assessment.confidence >= model.threshold:
        return None
    reason = (
        f"no retrieved passage addresses what the question asks (confidence {assessment.confidence:.2f} < "
        f"{model.threshold:.2f}), and the model's answer did not hold up"
    )
    return replace(assessment, answerable=False, reason=reason, rule="model")


def check_question(
    question: str, retriever: Retriever, k: int, mode: Mode, with_llm: bool, exclude: Collection[str] = ()
) -> Checked:
    """Retrieve for `question` and run the answerability check on what was found."""
    timings: dict[str, float] = {}
    asked = Question.parse(question, retriever.embedder)  # analysed once, read by every step after
    found = retriever.search(asked, k=max(k, TUNING.evidence_papers), mode=mode, exclude=exclude)
    timings["retrieval"] = found.timings_ms["total"]
    t = time.perf_counter()
    hits, sources, evidence = gather(asked, found, retriever, k, exclude)
    assessment = assess(asked, evidence, retriever.lexical, with_llm=with_llm)
    timings["assessment"] = (time.perf_counter() - t) * 1000
    return Checked(asked, hits, sources, assessment, timings)


def answer_question(
    question: str,
    retriever: Retriever,
    k: int = 5,
    mode: Mode = "hybrid",
    llm: LLM | None = None,
    on_token: Callable[[str], None] | None = None,
    verifier: Verifier | None = None,
    exclude: Collection[str] = (),
    grounding: GroundingMode = "strict",
) -> Answer:
    """Answer `question` from the top `k` papers; `on_token` receives streamed LLM text;
    `grounding` says what happens to the LLM's unsupported sentences (rag/repair.py)."""
    t0 = time.perf_counter()
    pre = check_question(question, retriever, k, mode, llm is not None, exclude)
    if not pre.assessment.answerable:
        return pre.abstention(llm, t0)
    asked, hits, sources, assessment, timings = pre.asked, pre.hits, pre.sources, pre.assessment, pre.timings
    pairs = [(s.title, s.abstract) for s in sources]

    mode_name = "llm" if llm else "extractive"
    model = llm.model if llm else None
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    parts: list[extractive.Part] = []
    context: Packed | None = None

    def finish(text: str, abstained: bool) -> Answer:
        nonlocal assessment
        t = time.perf_counter()
        checked = Grounding([])
        fixed = None
        if llm is not None and not abstained:
            fixed, _ = ground_llm_answer(
                text,
                sources,
                verifier,
                grounding,
                fallback=lambda: extractive.compose(asked, pairs, retriever.embedder, retriever.lexical),
                question=question,
                cut=bool(getattr(llm, "notice", "")),
                focus=focus_words(asked, retriever.lexical),
            )
            text, checked = fixed.text, fixed.grounding
            if fixed.fell_back and (gated := fallback_gate(assessment)):
                text, abstained, assessment, checked = NO_ANSWER, True, gated, Grounding([])
            elif fixed.fell_back and not text.strip():  # nor does the extractive answer hold a number asked for
                text, abstained, assessment = NO_ANSWER, True, _number_not_stated(assessment)
        elif not abstained:
            checked = check(text, {s.n: (s.title, s.abstract) for s in sources}, verifier)
        timings["verification"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        answer = Answer(
            question, text, abstained, mode_name, model, sources, checked, hits, assessment, timings, usage, parts
        )
        answer.context = context
        if fixed is not None:
            answer.removed, answer.fell_back, answer.changed = fixed.removed, fixed.fell_back, fixed.changed
        return answer

    t = time.perf_counter()
    if llm is None:
        text, parts = extractive.compose_parts(asked, pairs, retriever.embedder, retriever.lexical)
        if not text:  # it asks for a number the best source does not state
            assessment = _number_not_stated(assessment)
            return finish(NO_ANSWER, True)
        if parts and not any(p.answered for p in parts):
            assessment = _parts_not_stated(assessment, parts)
            return finish(NO_ANSWER, True)
    else:
        system = render("system")
        window = getattr(llm, "context_window", None)
        frame = render("answer", sources="", question=question)
        budget = budget_for(window, llm_max_tokens(llm), system, frame) if isinstance(window, int) else None
        packed = pack([(s.n, s.title, s.abstract) for s in sources], budget, [h.evidence for h in hits])
        if sources and not packed.numbers:  # the model would answer from memory, nothing to cite
            raise RagError(
                f"the model's context window ({window} tokens) leaves no room for a source after the reply "
                f"(llm_max_tokens {llm_max_tokens(llm)}) and the prompt; raise llm_context_tokens or lower llm_max_tokens"
            )
        user = render("answer", sources=packed.block, question=question)
        try:
            text = structured.generate(llm, system, user, packed.numbers, on_token or (lambda _: None)).strip()
        except EmptyReply as exc:
            if grounding != "strict":
                raise
            text = ""  # nothing of the model's holds up: strict mode shows the extractive answer instead
            llm.notice = str(exc)  # and the warning line says why
        context = packed
        usage = dict(llm.usage) or {
            "prompt_tokens": count_tokens(system) + count_tokens(user),
            "completion_tokens": count_tokens(text),
        }
    timings["generation"] = (time.perf_counter() - t) * 1000
    if llm is not None and model_abstained(text):
        return finish(NO_ANSWER, True)
    return finish(text, False)
