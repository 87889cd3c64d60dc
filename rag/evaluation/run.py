"""What `rag eval` does, without the terminal: choose retrievers and answerers, run each suite,
add the verifier, draft-checking and judge figures and the provenance, and write the reports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from rag.config import Settings
from rag.errors import RagError
from rag.retrievers import MODES, Mode
from rag.workspace import Workspace

ANSWERERS = ("extractive", "llm", "agent")  # agent: agent mode (rag ask --agent)

# label -> a context that yields a progress callback (done, total), or None for no progress shown
ProgressFactory = Callable[[str], AbstractContextManager[Callable[[int, int], None] | None]]


class EvalUsageError(RagError):
    """Options that do not go together (an unknown name, an LLM answerer without an LLM): a usage
    error, which the CLI reports with exit code 2."""


@dataclass(frozen=True)
class EvalOptions:
    retrievers: list[Mode]
    answerers: list[str]
    judge: bool = False
    counterfactual: bool = False

    @classmethod
    def parse(cls, retrievers: str, answerers: str, judge: bool = False, counterfactual: bool = False) -> EvalOptions:
        """Options from the comma-separated names `rag eval` takes (empty for none); retrievers
        run in the order of MODES whatever order they are given in."""
        for r in retrievers.split(","):
            if r and r not in MODES:
                raise EvalUsageError(f"unknown retriever {r!r}; use {', '.join(MODES)}")
        chosen_answerers = [a for a in answerers.split(",") if a]
        for a in chosen_answerers:
            if a not in ANSWERERS:
                raise EvalUsageError(f"unknown answerer {a!r}; use {', '.join(ANSWERERS)}")
        chosen = [m for m in MODES if m in retrievers.split(",")]
        return cls(chosen, chosen_answerers, judge, counterfactual)

    def check(self, settings: Settings) -> None:
        """Refuse options the settings cannot serve, before any work starts."""
        if ({"llm", "agent"} & set(self.answerers) or self.judge) and not settings.llm_enabled:
            raise EvalUsageError(
                "the llm and agent answerers and --judge need an LLM: set OPENAI_BASE_URL or OPENAI_API_KEY"
            )


@dataclass(frozen=True)
class SuiteOutcome:
    """One suite's report, where it was written, and why it should fail the run (or None)."""

    name: str
    folder: Path
    report: dict
    written: list[Path]
    problem: str | None


def run_beir(ws: Workspace, folder: Path, options: EvalOptions, out: Path) -> dict:
    """`rag eval --beir`: score the retrievers (all of them when none is chosen) on a BEIR dataset
    and write out/beir.json."""
    from rag.evaluation.beir import evaluate_beir
    from rag.evaluation.provenance import provenance

    report = evaluate_beir(folder, ws, options.retrievers or list(MODES))
    report.update(provenance({"beir": str(folder), "retrievers": options.retrievers}))
    out.mkdir(parents=True, exist_ok=True)
    (out / "beir.json").write_text(json.dumps(report, indent=1))
    return report


def run_suites(
    ws: Workspace,
    suite_paths: list[Path] | None,
    options: EvalOptions,
    out: Path,
    progress: ProgressFactory | None = None,
) -> Iterator[SuiteOutcome]:
    """Run each suite (the bundled ones when none is given) and write its report to `out`, or to
    out/<suite> when there are several; yields each suite's outcome as soon as it is written."""
    from rag.draft import CorpusIndex, bundled_drafts, measure_bundled
    from rag.evaluation import harness
    from rag.evaluation.gate import failure_problem
    from rag.evaluation.provenance import provenance
    from rag.evaluation.report import save
    from rag.evaluation.suite import bundled_suites, load_suite
    from rag.evaluation.verifier_set import build, measure, written_pairs

    settings = ws.settings
    retriever = ws.retriever
    titles = ws.store.titles()
    llm = ws.llm
    paths = suite_paths or bundled_suites()
    for suite_path in paths:
        suite = load_suite(suite_path, titles)
        bar = progress(f"eval {suite.name}") if progress else nullcontext()
        with bar as step:
            report = harness.run_suite(
                suite,
                retriever,
                options.retrievers,
                options.answerers,
                llm=llm if {"llm", "agent"} & set(options.answerers) else None,
                k=settings.top_k,
                progress=step,
                counterfactual=options.counterfactual,
                grounding=settings.grounding,
                verifier=ws.verifier,
                settings=settings,
            )
        abstracts = ws.store.abstracts(sorted(titles))
        report["verifier"] = measure(build([abstracts[pid] for pid in sorted(abstracts)]), ws.verifier)
        drafts_folder = bundled_drafts()
        if drafts_folder and (drafts_folder / "paraphrases.jsonl").is_file():
            true_claims = measure(written_pairs(drafts_folder / "paraphrases.jsonl", abstracts), ws.verifier)
            # every pair is a true claim: the figure is the share rejected, not a balanced accuracy
            report["paraphrases"] = {
                "pairs": true_claims["pairs"],
                "false_unsupported": round(1 - true_claims["tpr"], 4),
                "tpr": true_claims["tpr"],
                "accuracy_by_kind": true_claims["accuracy_by_kind"],
            }
        if (drafts := measure_bundled(CorpusIndex.from_store(ws.store), ws.verifier)) is not None:
            report["drafts"] = drafts  # `rag check` on eval/drafts/labels.jsonl
        if options.judge and llm is not None:
            from rag.evaluation.judge import judge_report

            report["judge"] = judge_report(report, suite, ws, llm)
        report.update(
            provenance(
                {
                    "suite": str(suite_path),
                    "retrievers": options.retrievers,
                    "answerers": options.answerers,
                    "top_k": settings.top_k,
                    "counterfactual": options.counterfactual,
                    "llm_model": settings.llm_model if llm else None,
                    "grounding": settings.grounding,
                    "verifier": settings.verifier,
                }
            )
        )
        folder = out if len(paths) == 1 else out / suite.name
        written = save(report, folder)
        yield SuiteOutcome(suite.name, folder, report, written, failure_problem(report))
