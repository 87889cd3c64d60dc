"""Fit the answerability model of rag/abstain.py on the tune suite; writes rag/data/abstention.json.

    python eval/fit_abstention.py [--suite eval/suites/tune.jsonl]

Positives: the suite's answerable questions. Negatives: its unanswerable questions, and every
answerable question asked again with its gold papers excluded from retrieval (counterfactual: the
neighbours stay, the answer is gone). Questions the named-term rules already decide are left out:
the model only sees what reaches it. Logistic regression (Newton's method, L2 penalty 1.0), then
two thresholds: the extractive one keeps ANSWERED of the answerable questions that reach the model
answered, the one used with an LLM keeps ANSWERED_LLM (it stops clear misses; the LLM decides the
rest).
The test suite is never read here: it reports what this fit does on questions it did not see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rag.abstain import MODEL_PATH, AnswerabilityModel, assess, features
from rag.answer import gather
from rag.config import load_settings
from rag.evaluation.suite import load_suite
from rag.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
ANSWERED = 0.97
ANSWERED_LLM = 0.99
L2 = 1.0


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> np.ndarray:
    """Weights (bias first) of an L2-penalised logistic regression, by Newton's method."""
    x = np.c_[np.ones(len(x)), x]
    w = np.zeros(x.shape[1])
    penalty = l2 * np.diag(np.r_[0.0, np.ones(x.shape[1] - 1)])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=REPO / "eval" / "suites" / "tune.jsonl")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    ws = Workspace(load_settings())
    retriever = ws.retriever
    suite = load_suite(args.suite, ws.store.titles())
    open_model = AnswerabilityModel(("sentence_similarity",), (0.0,), 0.0, 0.0, 0.0)  # lets every case through
    rows: list[tuple[dict[str, float], int, str]] = []
    for q in suite.questions:
        cases = [((), 1 if q.answerable else 0, "answerable" if q.answerable else "unanswerable")]
        if q.answerable:
            cases.append((frozenset(q.gold), 0, "counterfactual"))
        for exclude, label, kind in cases:
            found = retriever.search(q.question, k=5, exclude=exclude)
            _, _, evidence = gather(q.question, found, retriever, 5, exclude)
            if assess(q.question, evidence, retriever.lexical, model=open_model).rule != "answerable":
                continue  # decided by the named-term rules
            rows.append((features(q.question, evidence, retriever.lexical), label, kind))
    names = sorted(rows[0][0])
    x = np.array([[f[n] for n in names] for f, _, _ in rows])
    y = np.array([label for _, label, _ in rows], dtype=float)
    w = fit_logistic(x, y)
    model = AnswerabilityModel(tuple(names), tuple(float(v) for v in w[1:]), float(w[0]), 0.0, 0.0)
    scores = np.array([model.probability(f) for f, _, _ in rows])
    positives = np.sort(scores[y == 1])

    def threshold(share: float) -> float:
        """The score that keeps `share` of the answerable questions reaching the model answered."""
        return float(positives[int((1 - share) * len(positives))])

    t, t_llm = threshold(ANSWERED), threshold(ANSWERED_LLM)
    kinds = [kind for _, _, kind in rows]
    data = {
        "features": names,
        "weights": [round(float(v), 4) for v in w[1:]],
        "bias": round(float(w[0]), 4),
        "threshold": round(t, 4),
        "threshold_llm": round(t_llm, 4),
        "fitted_on": f"{args.suite.relative_to(REPO) if args.suite.is_relative_to(REPO) else args.suite} "
        "and its counterfactual questions, by eval/fit_abstention.py",
        "cases": {k: kinds.count(k) for k in ("answerable", "unanswerable", "counterfactual")},
        "tune_figures": {
            kind: round(float(np.mean([s >= t for s, k in zip(scores, kinds) if k == kind])), 4)
            for kind in ("answerable", "unanswerable", "counterfactual")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
