"""Retrieval metrics and bootstrap intervals: hand-computed cases, no store."""

import math

import pytest

from rag.evaluation.bootstrap import bootstrap_ci
from rag.evaluation.metrics import per_question, retrieval_metrics


def test_retrieval_metrics_on_hand_computed_cases():
    gold = {"q1": ["a", "b"], "q2": ["c"]}
    perfect = retrieval_metrics(gold, {"q1": ["a", "b", "x"], "q2": ["c"]})
    assert perfect == {"R@5": 1.0, "R@10": 1.0, "RR@10": 1.0, "nDCG@10": 1.0}
    empty = retrieval_metrics(gold, {})
    assert empty == {"R@5": 0.0, "R@10": 0.0, "RR@10": 0.0, "nDCG@10": 0.0}
    partial = retrieval_metrics(gold, {"q1": ["x", "a"], "q2": ["y", "z", "w", "v", "u", "c"]})
    assert partial["R@5"] == pytest.approx((0.5 + 0.0) / 2)
    assert partial["R@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert partial["RR@10"] == pytest.approx((1 / 2 + 1 / 6) / 2)
    # q1: DCG = 1/log2(3); IDCG = 1 + 1/log2(3). q2: DCG = 1/log2(7); IDCG = 1
    ndcg_q1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    ndcg_q2 = 1 / math.log2(7)
    assert partial["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)


def test_per_question_scores_every_gold_question_and_ignores_others():
    values = per_question({"q1": ["a"], "q2": ["b"]}, {"q1": ["a"], "q3": ["b"]}, ["R@5"])
    assert values == {"q1": {"R@5": 1.0}, "q2": {"R@5": 0.0}}


def test_graded_relevance_counts_in_ndcg():
    graded = retrieval_metrics({"q": {"a": 2, "b": 1}}, {"q": ["b", "a"]}, ["nDCG@10"])["nDCG@10"]
    ideal = retrieval_metrics({"q": {"a": 2, "b": 1}}, {"q": ["a", "b"]}, ["nDCG@10"])["nDCG@10"]
    assert ideal == pytest.approx(1.0) and graded < ideal


def test_bootstrap_interval_holds_the_mean_and_is_repeatable():
    values = [0.0] * 30 + [1.0] * 70

    def mean(sample):
        return {"m": sum(sample) / len(sample)}

    low, high = bootstrap_ci(values, mean)["m"]
    assert low < 0.7 < high and 0.05 < high - low < 0.3
    assert bootstrap_ci(values, mean) == bootstrap_ci(values, mean)
    assert bootstrap_ci([], mean) == {}
