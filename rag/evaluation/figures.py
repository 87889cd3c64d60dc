"""Answer figures over (question, answer) pairs: answered, cited, grounded, key facts, abstention;
see eval/README.md for the definitions."""

from __future__ import annotations

from statistics import quantiles

from rag.answer import Answer
from rag.evaluation.suite import Question


def decided_by(answer: Answer) -> str:
    """The rule that decided whether `answer` abstained (see rag.abstain.RULES)."""
    if answer.assessment is None:
        return "failed"
    if answer.abstained and answer.assessment.answerable:
        return "model_abstained"
    return answer.assessment.rule


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 of `values` (latencies in ms), rounded for the report."""
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    if len(values) == 1:
        return {"p50": round(values[0], 2), "p95": round(values[0], 2)}
    q = quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2)}


def normalise(text: str) -> str:
    """Text as key facts are matched against answers: lower case, no thousands commas, single spaces."""
    return " ".join(text.lower().replace(",", "").split())


def answer_figures(results: list[tuple[Question, Answer]]) -> dict[str, float]:
    """Answer metrics over (question, answer) pairs; see eval/README.md for definitions."""
    answerable = [(q, a) for q, a in results if q.answerable]
    unanswerable = [(q, a) for q, a in results if not q.answerable]
    answered = [(q, a) for q, a in answerable if not a.abstained]
    abstained = [(q, a) for q, a in results if a.abstained]
    with_facts = [(q, a) for q, a in answerable if q.key_facts]
    cited = [
        (q, a.sources[n - 1].paper_id)
        for q, a in answered
        for n in {c for s in a.grounding.sentences for c in s.citations}
        if 0 < n <= len(a.sources)
    ]

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    figures: dict[str, float] = {}
    if answerable:
        figures["answered_rate"] = mean([0.0 if a.abstained else 1.0 for _, a in answerable])
    if answered:
        figures["fallback_rate"] = mean([1.0 if a.fell_back else 0.0 for _, a in answered])
        figures["citation_precision"] = mean([a.grounding.citation_precision for _, a in answered])
        figures["citation_recall"] = mean([a.grounding.citation_recall for _, a in answered])
        figures["supported_ratio"] = mean([a.grounding.supported_ratio for _, a in answered])
    if with_facts:
        figures["key_fact_recall"] = mean(
            [
                sum(normalise(f) in normalise(a.text) for f in q.key_facts) / len(q.key_facts)
                if not a.abstained
                else 0.0
                for q, a in with_facts
            ]
        )
    if cited:
        figures["gold_citation_rate"] = mean([1.0 if pid in q.gold else 0.0 for q, pid in cited])
    multi_part = [(q, a) for q, a in answered if len(a.parts) > 1]
    if multi_part:  # the answerer's own judgement: parts it found stated
        figures["parts_answered"] = mean([sum(p.answered for p in a.parts) / len(a.parts) for _, a in multi_part])
    with_parts = [(q, a) for q, a in answerable if q.parts]
    if with_parts:  # the suite's judgement: each part's key facts in the answer (abstentions count 0)
        figures["part_key_fact_recall"] = mean(
            [
                float(not a.abstained and all(normalise(f) in normalise(a.text) for f in facts))
                for q, a in with_parts
                for _, facts in q.parts
            ]
        )
    if unanswerable:
        figures["abstention_recall"] = mean([1.0 if a.abstained else 0.0 for _, a in unanswerable])
    if abstained:
        figures["abstention_precision"] = mean([0.0 if q.answerable else 1.0 for q, _ in abstained])
    return figures
