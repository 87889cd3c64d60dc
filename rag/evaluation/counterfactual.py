"""Counterfactual abstention: answerable questions asked again with their gold papers excluded
from retrieval, where the right answer is an abstention."""

from __future__ import annotations

from rag.answer import Answer
from rag.evaluation.bootstrap import bootstrap_ci
from rag.evaluation.figures import decided_by
from rag.evaluation.suite import TYPES, Question


def counterfactual_figures(results: list[tuple[Question, Answer]]) -> dict[str, float]:
    """Answerable questions asked again with their gold papers excluded from retrieval: the right
    answer is now an abstention, with on-topic neighbours still retrieved (the hard near-miss)."""
    if not results:
        return {}
    abstained = sum(a.abstained and a.assessment is not None for _, a in results)  # a failed answer is no abstention
    return {"abstention_recall": round(abstained / len(results), 4)}


def counterfactual_block(pairs: list[tuple[Question, Answer]]) -> dict:
    """One answerer's counterfactual section of a report: figures overall and by type, their
    bootstrap intervals, and which rule decided each answer."""
    rules: dict[str, int] = {}
    for _, a in pairs:
        rules[decided_by(a)] = rules.get(decided_by(a), 0) + 1
    return {
        "overall": counterfactual_figures(pairs),
        "by_type": {
            t: counterfactual_figures(subset) for t in TYPES if (subset := [p for p in pairs if p[0].type == t])
        },
        "ci95": bootstrap_ci(pairs, counterfactual_figures),
        "decided_by": dict(sorted(rules.items())),
    }
