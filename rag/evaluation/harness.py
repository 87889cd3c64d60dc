"""Running one suite through the same retrieval and answering code as `rag search`/`rag ask`:
every retrieval, answer, counterfactual, failure, latency and per-question figure of a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from rag.answer import Answer, answer_question
from rag.config import Settings
from rag.evaluation.bootstrap import bootstrap_ci
from rag.evaluation.counterfactual import counterfactual_block
from rag.evaluation.figures import answer_figures, decided_by, percentiles
from rag.evaluation.metrics import RECALL_CURVE, per_question, retrieval_metrics
from rag.evaluation.suite import TYPES, Question, Suite
from rag.grounding import Grounding, Verifier
from rag.llm import LLM, LLMError
from rag.repair import GroundingMode
from rag.retrieval import Retriever
from rag.retrievers import Mode


@dataclass
class QuestionResult:
    question: Question
    ranked: dict[str, list[str]] = field(default_factory=dict)  # retriever -> paper ids
    answers: dict[str, Answer] = field(default_factory=dict)  # answerer -> answer
    counterfactual: dict[str, Answer] = field(default_factory=dict)  # answerer -> answer without the gold papers


def _failed(question: str, message: str) -> Answer:
    """A question whose answer failed (e.g. the LLM endpoint sent an empty reply)."""
    return Answer(question, f"(failed: {message})", True, "llm", None, [], Grounding([]), [])


def _by_type(questions: list[Question], fn: Callable[[list[Question]], dict]) -> dict[str, dict]:
    return {t: fn(subset) for t in TYPES if (subset := [q for q in questions if q.type == t])}


def run_suite(
    suite: Suite,
    retriever: Retriever,
    retrievers: list[Mode],
    answerers: list[str],
    llm: LLM | None = None,
    k: int = 5,
    progress: Callable[[int, int], None] | None = None,
    counterfactual: bool = False,
    grounding: GroundingMode = "strict",
    verifier: Verifier | None = None,
    settings: Settings | None = None,
) -> dict:
    """Every figure of one suite; `counterfactual` also asks each answerable question again with
    its gold papers excluded from retrieval (see rag.evaluation.counterfactual); `verifier` is the
    configured grounding check (the overlap one when None); `settings` configure the agent
    answerer (agent mode, rag.agent), which the other answerers do not need."""

    def ask(name: str, question: str, exclude: frozenset[str] = frozenset()) -> Answer:
        if name == "agent":
            from rag.agent import answer_with_agent

            if settings is None:
                raise ValueError("the agent answerer needs the settings")
            return answer_with_agent(question, settings, retriever, llm, verifier, lambda _: None, exclude=exclude)
        return answer_question(
            question,
            retriever,
            k=k,
            llm=llm if name == "llm" else None,
            exclude=exclude,
            verifier=verifier,
            grounding=grounding,
        )

    results = [QuestionResult(q) for q in suite.questions]
    latency: dict[str, list[float]] = {"retrieval": [], "generation": [], "verification": []}
    tokens = {"prompt_tokens": 0, "completion_tokens": 0}
    failures: dict[str, dict[str, int]] = {name: {} for name in answerers}  # answerer -> message -> count
    answerable_count = sum(q.answerable for q in suite.questions)
    steps = len(results) * (len(retrievers) + len(answerers)) + (
        answerable_count * len(answerers) if counterfactual else 0
    )
    done = 0
    for r in results:
        for mode in retrievers:
            found = retriever.search(r.question.question, k=10, mode=mode)
            r.ranked[mode] = [h.paper_id for h in found.results]
            latency["retrieval"].append(found.timings_ms["total"])
            done += 1
            if progress:
                progress(done, steps)
        for name in answerers:
            try:
                answer = ask(name, r.question.question)
            except LLMError as exc:  # one bad reply is a missing answer, not the end of the run
                answer = _failed(r.question.question, str(exc))
                failures[name][str(exc)] = failures[name].get(str(exc), 0) + 1
            r.answers[name] = answer
            if counterfactual and r.question.answerable:
                try:
                    r.counterfactual[name] = ask(name, r.question.question, frozenset(r.question.gold))
                except LLMError as exc:
                    r.counterfactual[name] = _failed(r.question.question, str(exc))
                    failures[name][str(exc)] = failures[name].get(str(exc), 0) + 1
                done += 1
            for stage in ("generation", "verification") if retrievers else ("retrieval", "generation", "verification"):
                if stage in answer.timings_ms:
                    latency[stage].append(answer.timings_ms[stage])
            for key in tokens:
                tokens[key] += answer.usage.get(key, 0)
            done += 1
            if progress:
                progress(done, steps)

    def retrieval_for(mode: str, qs: list[Question]) -> dict[str, float]:
        chosen = [r for r in results if r.question in qs and r.question.answerable]
        gold = {r.question.id: list(r.question.gold) for r in chosen}
        ranked = {r.question.id: r.ranked[mode] for r in chosen}
        measures = [f"R@{n}" for n in RECALL_CURVE] + ["RR@10", "nDCG@10"]
        if not gold:  # nothing to find: no figure, not a zero that reads as a failure
            return {}
        return {m: round(v, 4) for m, v in retrieval_metrics(gold, ranked, measures).items()}

    def answers_for(name: str, qs: list[Question]) -> dict[str, float]:
        return answer_figures([(r.question, r.answers[name]) for r in results if r.question in qs])

    def retrieval_ci(mode: str) -> dict[str, list[float]]:
        chosen = [r for r in results if r.question.answerable]
        values = per_question(
            {r.question.id: list(r.question.gold) for r in chosen},
            {r.question.id: r.ranked[mode] for r in chosen},
            ["R@5", "R@10", "RR@10", "nDCG@10"],
        )
        return bootstrap_ci(
            list(values.values()), lambda rows: {m: sum(v[m] for v in rows) / len(rows) for m in rows[0]}
        )

    questions = suite.questions
    asked = len(questions) + (answerable_count if counterfactual else 0)  # answers each answerer gave
    return {
        "suite": suite.name,
        "questions": len(questions),
        "question_types": {t: sum(q.type == t for q in questions) for t in TYPES},
        "retrieval": {
            m: {
                "overall": retrieval_for(m, questions),
                # retrieval has no gold papers to find for unanswerable questions
                "by_type": _by_type([q for q in questions if q.answerable], partial(retrieval_for, m)),
                "ci95": retrieval_ci(m),
            }
            for m in retrievers
        },
        "answers": {
            a: {
                "overall": answers_for(a, questions),
                "by_type": _by_type(questions, partial(answers_for, a)),
                "ci95": bootstrap_ci([(r.question, r.answers[a]) for r in results], answer_figures),
            }
            for a in answerers
        },
        "counterfactual": {
            a: counterfactual_block([(r.question, r.counterfactual[a]) for r in results if a in r.counterfactual])
            for a in answerers
        }
        if counterfactual
        else {},
        "agent": agent_block([r.answers["agent"] for r in results]) if "agent" in answerers else {},
        "failures": {
            name: {
                "failed": sum(messages.values()),
                "questions": asked,
                "share": round(sum(messages.values()) / asked, 4) if asked else 0.0,
                "errors": dict(sorted(messages.items(), key=lambda m: -m[1])),
            }
            for name, messages in failures.items()
        },
        "latency_ms": {stage: percentiles(values) for stage, values in latency.items()},
        "tokens": tokens,
        "per_question": [
            {
                "id": r.question.id,
                "type": r.question.type,
                "ranked": r.ranked,
                "answers": {
                    name: {
                        "abstained": a.abstained,
                        "decided_by": decided_by(a),
                        "answer": a.text,
                        "grounding": a.grounding.as_json(),
                    }
                    for name, a in r.answers.items()
                },
                "counterfactual": {
                    name: {"abstained": a.abstained, "decided_by": decided_by(a), "answer": a.text}
                    for name, a in r.counterfactual.items()
                },
            }
            for r in results
        ],
    }


def agent_block(answers: list[Answer]) -> dict:
    """How agent mode went, as shares of the questions: abstained by the pre-check before the model
    was asked; answered by the agent itself (it searched, and its answer was used); gone the normal
    way (each reason counted). And the tool calls of each run of the agent."""
    from rag.agent import AgentAnswer

    agent = [a for a in answers if isinstance(a, AgentAnswer)]
    reasons: dict[str, int] = {}
    for a in agent:
        if a.fallback:
            reasons[a.fallback] = reasons.get(a.fallback, 0) + 1
    ran = [a for a in agent if a.steps]
    n = len(agent) or 1
    return {
        "questions": len(agent),
        "prechecked": round(sum(not a.steps and a.fallback is None for a in agent) / n, 4),
        "answered_by_agent": round(sum(a.fallback is None for a in ran) / n, 4),
        "normal_way": round(sum(bool(a.fallback) for a in agent) / n, 4),
        "tool_calls_per_run": round(sum(len(a.steps) for a in ran) / (len(ran) or 1), 2),
        "fallbacks": dict(sorted(reasons.items(), key=lambda r: -r[1])),
    }
