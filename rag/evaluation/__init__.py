"""The evaluation behind `rag eval`: suites, figures, reports and the regression gate.

    suite          question suites (JSON Lines) and the bundled ones
    metrics        retrieval metrics (ir-measures); bootstrap: 95% intervals over questions
    figures        answer figures; counterfactual: abstention with the gold papers hidden
    harness        one suite through retrieval and answering: every figure of a report
    verifier_set   a labelled set for the grounding verifier; judge: the optional LLM judge
    beir           a BEIR dataset through the same ingest and retrieval
    report         report.json and report.md; charts: the PNG charts; provenance
    gate           `--compare` and the failed-answers check
    run            what `rag eval` does, given a Workspace and plain options

The names below are imported on first use, so importing the package stays cheap."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.evaluation.gate import compare, compare_files
    from rag.evaluation.harness import run_suite
    from rag.evaluation.run import EvalOptions, EvalUsageError, SuiteOutcome, run_beir, run_suites
    from rag.evaluation.suite import Question, Suite, SuiteError, bundled_suites, load_suite

_WHERE = {
    "compare": "gate",
    "compare_files": "gate",
    "run_suite": "harness",
    "EvalOptions": "run",
    "EvalUsageError": "run",
    "SuiteOutcome": "run",
    "run_beir": "run",
    "run_suites": "run",
    "Question": "suite",
    "Suite": "suite",
    "SuiteError": "suite",
    "bundled_suites": "suite",
    "load_suite": "suite",
}
__all__ = [
    "EvalOptions",
    "EvalUsageError",
    "Question",
    "Suite",
    "SuiteError",
    "SuiteOutcome",
    "bundled_suites",
    "compare",
    "compare_files",
    "load_suite",
    "run_beir",
    "run_suite",
    "run_suites",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"rag.evaluation.{_WHERE[name]}"), name)
