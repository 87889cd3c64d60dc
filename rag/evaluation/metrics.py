"""Retrieval metrics through ir-measures (the maintained implementations, not our own formulas)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RECALL_CURVE = tuple(range(1, 11))  # the k of the Recall@k curve in reports and charts
RETRIEVAL_MEASURES = ("R@5", "R@10", "RR@10", "nDCG@10")


def per_question(
    gold: Mapping[str, Sequence[str] | Mapping[str, int]],
    ranked: Mapping[str, Sequence[str]],
    measures: Sequence[str] = RETRIEVAL_MEASURES,
) -> dict[str, dict[str, float]]:
    """question -> measure -> value, for every question in `gold` (0 where nothing was retrieved)."""
    import ir_measures

    parsed = {str(ir_measures.parse_measure(m)): m for m in measures}
    qrels = [
        ir_measures.Qrel(q, d, docs[d] if isinstance(docs, Mapping) else 1) for q, docs in gold.items() for d in docs
    ]
    run = [
        ir_measures.ScoredDoc(q, d, float(len(docs) - i))
        for q, docs in ranked.items()
        if q in gold
        for i, d in enumerate(docs)
    ]
    out = {q: dict.fromkeys(measures, 0.0) for q in gold}
    for metric in ir_measures.iter_calc([ir_measures.parse_measure(m) for m in measures], qrels, run):
        out[metric.query_id][parsed[str(metric.measure)]] = metric.value
    return out


def retrieval_metrics(
    gold: Mapping[str, Sequence[str] | Mapping[str, int]],
    ranked: Mapping[str, Sequence[str]],
    measures: Sequence[str] = RETRIEVAL_MEASURES,
) -> dict[str, float]:
    """Mean of each measure over the questions in `gold` (a question missing from `ranked`
    retrieved nothing and scores 0). Gold is a list of relevant ids or graded {id: relevance}."""
    values = per_question(gold, ranked, measures)
    n = len(values) or 1
    return {m: sum(v[m] for v in values.values()) / n for m in measures}
