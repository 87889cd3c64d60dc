"""Optional LLM judge for `rag eval --judge`: is each answer correct and faithful to its sources?

Verdicts are cached on disk by model and prompt, so re-running a suite asks nothing twice."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rag.evaluation.suite import Suite
from rag.llm import LLM
from rag.prompts import render
from rag.workspace import Workspace


class VerdictCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, bool] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def ask(self, llm: LLM, prompt: str) -> bool:
        key = hashlib.sha256(f"{llm.model}\n{prompt}".encode()).hexdigest()
        if key not in self.data:
            reply = "".join(llm.stream("You are a strict grader. Answer yes or no.", prompt))
            self.data[key] = reply.strip().lower().startswith("yes")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data))
        return self.data[key]


def judge_report(report: dict, suite: Suite, ws: Workspace, llm: LLM) -> dict:
    """Share of answered questions the judge finds faithful to the sources and correct."""
    cache = VerdictCache(Path(ws.settings.data_dir) / "judge-cache.json")
    by_id = {q.id: q for q in suite.questions}
    out: dict[str, dict[str, float]] = {}
    for name in report["answers"]:
        faithful, correct = [], []
        for row in report["per_question"]:
            entry = row["answers"][name]
            question = by_id[row["id"]]
            if entry["abstained"] or not question.answerable:
                continue
            gold = ws.store.abstracts(list(question.gold))
            passages = "\n\n".join(f"{t}. {a}" for t, a in gold.values())
            faithful.append(cache.ask(llm, render("judge", claim=entry["answer"], passages=passages)))
            expected = "; ".join(question.key_facts) or "the gold papers above"
            correct.append(
                cache.ask(
                    llm,
                    render(
                        "judge",
                        claim=f"Question: {question.question}\nAnswer: {entry['answer']}\n(Expected to state: {expected})",
                        passages=passages,
                    ),
                )
            )
        out[name] = {
            "faithfulness": round(sum(faithful) / len(faithful), 4) if faithful else 0.0,
            "correctness": round(sum(correct) / len(correct), 4) if correct else 0.0,
            "judged": len(faithful),
        }
    return out
