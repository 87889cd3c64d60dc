"""Retrieval metrics through ir-measures (the maintained implementations, not our own formulas)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RETRIEVAL_MEASURES = ("R@5", "R@10", "RR@10", "nDCG@10")


def retrieval_metrics(
    gold: Mapping[str, Sequence[str] | Mapping[str, int]],
    ranked: Mapping[str, Sequence[str]],
    measures: Sequence[str] = RETRIEVAL_MEASURES,
) -> dict[str, float]:
    """Mean of each measure over the questions in `gold` (a question missing from `ranked`
    retrieved nothing and scores 0). Gold is a list of relevant ids or graded {id: relevance}."""
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    qrels = [
        ir_measures.Qrel(q, d, docs[d] if isinstance(docs, Mapping) else 1) for q, docs in gold.items() for d in docs
    ]
    run = [
        ir_measures.ScoredDoc(q, d, float(len(docs) - i))
        for q, docs in ranked.items()
        if q in gold
        for i, d in enumerate(docs)
    ]
    totals = {str(m): 0.0 for m in parsed}
    for metric in ir_measures.iter_calc(parsed, qrels, run):
        totals[str(metric.measure)] += metric.value
    n = len(gold) or 1
    return {m: totals[str(p)] / n for m, p in zip(measures, parsed)}
