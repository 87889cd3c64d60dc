"""Counterfactual abstention: answerable questions asked again with their gold papers excluded
from retrieval. A single-paper or detail question has lost the paper that answers it, so the right
answer is an abstention; a "which papers" question may still be answered by papers outside its gold
list, so what is asked of it is only that it cites no hidden paper."""

from __future__ import annotations

from rag.answer import Answer
from rag.evaluation.bootstrap import bootstrap_ci
from rag.evaluation.figures import decided_by
from rag.evaluation.suite import TYPES, Question

MUST_ABSTAIN = ("single", "detail")  # question types whose counterfactual must be an abstention


def _abstained(answer: Answer) -> bool:
    return answer.abstained and answer.assessment is not None  # a failed answer is no abstention


def _cites_hidden(question: Question, answer: Answer) -> bool:
    cited = answer.cited
    return any(s.n in cited and s.paper_id in question.gold for s in answer.sources)


def counterfactual_figures(results: list[tuple[Question, Answer]]) -> dict[str, float]:
    """`abstention_recall` over the questions that must abstain (MUST_ABSTAIN), and
    `hidden_cited`: the share of answers that cite a hidden paper (the exclusion failing)."""
    if not results:
        return {}
    figures = {"hidden_cited": round(sum(_cites_hidden(q, a) for q, a in results) / len(results), 4)}
    must = [a for q, a in results if q.type in MUST_ABSTAIN]
    if must:
        figures["abstention_recall"] = round(sum(map(_abstained, must)) / len(must), 4)
    return figures


def counterfactual_block(pairs: list[tuple[Question, Answer]]) -> dict:
    """One answerer's counterfactual section of a report: figures overall, abstentions by type (a
    "which papers" question's too, for information), the overall figures' bootstrap intervals, and
    which rule decided each answer."""
    rules: dict[str, int] = {}
    for _, a in pairs:
        rules[decided_by(a)] = rules.get(decided_by(a), 0) + 1
    return {
        "overall": counterfactual_figures(pairs),
        "by_type": {
            t: {"abstention_recall": round(sum(_abstained(a) for _, a in subset) / len(subset), 4)}
            for t in TYPES
            if (subset := [p for p in pairs if p[0].type == t])
        },
        "ci95": bootstrap_ci(pairs, counterfactual_figures),
        "decided_by": dict(sorted(rules.items())),
    }
