"""`rag eval`: run suites through the same retrieval and answering code as `rag search`/`rag ask`,
and report retrieval, grounding, abstention and latency figures, overall and per question type."""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from statistics import quantiles

from rag.answer import Answer, answer_question
from rag.errors import RagError
from rag.grounding import Grounding
from rag.llm import LLM, LLMError
from rag.metrics import bootstrap_ci, per_question, retrieval_metrics
from rag.repair import GroundingMode
from rag.retrieval import Mode, Retriever
from rag.suite import TYPES, Question, Suite

RECALL_CURVE = tuple(range(1, 11))
TOLERANCE = 0.02
# `rag eval` exits 1 when more than this share of an answerer's questions failed (an endpoint
# that is down or misbehaving): figures over the few answers that came back would mislead.
MAX_FAILED_SHARE = 0.2
LOWER_IS_BETTER = (".fallback_rate",)  # figures the --compare gate fails on a rise, not a drop


@dataclass
class QuestionResult:
    question: Question
    ranked: dict[str, list[str]] = field(default_factory=dict)  # retriever -> paper ids
    answers: dict[str, Answer] = field(default_factory=dict)  # answerer -> answer
    counterfactual: dict[str, Answer] = field(default_factory=dict)  # answerer -> answer without the gold papers


def decided_by(answer: Answer) -> str:
    """The rule that decided whether `answer` abstained (see rag.abstain.RULES)."""
    if answer.assessment is None:
        return "failed"
    if answer.abstained and answer.assessment.answerable:
        return "model_abstained"
    return answer.assessment.rule


def counterfactual_figures(results: list[tuple[Question, Answer]]) -> dict[str, float]:
    """Answerable questions asked again with their gold papers excluded from retrieval: the right
    answer is now an abstention, with on-topic neighbours still retrieved (the hard near-miss)."""
    if not results:
        return {}
    abstained = sum(a.abstained and a.assessment is not None for _, a in results)  # a failed answer is no abstention
    return {"abstention_recall": round(abstained / len(results), 4)}


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    if len(values) == 1:
        return {"p50": round(values[0], 2), "p95": round(values[0], 2)}
    q = quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2)}


def _normalise(text: str) -> str:
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
                sum(_normalise(f) in _normalise(a.text) for f in q.key_facts) / len(q.key_facts)
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
                float(not a.abstained and all(_normalise(f) in _normalise(a.text) for f in facts))
                for q, a in with_parts
                for _, facts in q.parts
            ]
        )
    if unanswerable:
        figures["abstention_recall"] = mean([1.0 if a.abstained else 0.0 for _, a in unanswerable])
    if abstained:
        figures["abstention_precision"] = mean([0.0 if q.answerable else 1.0 for q, _ in abstained])
    return figures


def _failed(question: str, message: str) -> Answer:
    """A question whose answer failed (e.g. the LLM endpoint sent an empty reply)."""
    return Answer(question, f"(failed: {message})", True, "llm", None, [], Grounding([]), [])


def _by_type(questions: list[Question], fn: Callable[[list[Question]], dict]) -> dict[str, dict]:
    return {t: fn(subset) for t in TYPES if (subset := [q for q in questions if q.type == t])}


def run(
    suite: Suite,
    retriever: Retriever,
    retrievers: list[Mode],
    answerers: list[str],
    llm: LLM | None = None,
    k: int = 5,
    progress: Callable[[int, int], None] | None = None,
    counterfactual: bool = False,
    grounding: GroundingMode = "strict",
) -> dict:
    """Every figure of one suite; `counterfactual` also asks each answerable question again with
    its gold papers excluded from retrieval (see counterfactual_figures)."""
    results = [QuestionResult(q) for q in suite.questions]
    latency: dict[str, list[float]] = {"retrieval": [], "generation": [], "verification": []}
    tokens = {"prompt_tokens": 0, "completion_tokens": 0}
    failures: dict[str, dict[str, int]] = {name: {} for name in answerers}  # answerer -> message -> count
    answerable_count = sum(q.answerable for q in suite.questions)
    steps = len(results) * (len(retrievers) + len(answerers)) + (
        answerable_count * len(answerers) if counterfactual else 0
    )
    done = 0
    for r in results:
        for mode in retrievers:
            found = retriever.search(r.question.question, k=10, mode=mode)
            r.ranked[mode] = [h.paper_id for h in found.results]
            latency["retrieval"].append(found.timings_ms["total"])
            done += 1
            if progress:
                progress(done, steps)
        for name in answerers:
            try:
                answer = answer_question(
                    r.question.question, retriever, k=k, llm=llm if name == "llm" else None, grounding=grounding
                )
            except LLMError as exc:  # one bad reply is a missing answer, not the end of the run
                answer = _failed(r.question.question, str(exc))
                failures[name][str(exc)] = failures[name].get(str(exc), 0) + 1
            r.answers[name] = answer
            if counterfactual and r.question.answerable:
                try:
                    r.counterfactual[name] = answer_question(
                        r.question.question,
                        retriever,
                        k=k,
                        llm=llm if name == "llm" else None,
                        exclude=frozenset(r.question.gold),
                        grounding=grounding,
                    )
                except LLMError as exc:
                    r.counterfactual[name] = _failed(r.question.question, str(exc))
                    failures[name][str(exc)] = failures[name].get(str(exc), 0) + 1
                done += 1
            for stage in ("generation", "verification") if retrievers else ("retrieval", "generation", "verification"):
                if stage in answer.timings_ms:
                    latency[stage].append(answer.timings_ms[stage])
            for key in tokens:
                tokens[key] += answer.usage.get(key, 0)
            done += 1
            if progress:
                progress(done, steps)

    def retrieval_for(mode: str, qs: list[Question]) -> dict[str, float]:
        chosen = [r for r in results if r.question in qs and r.question.answerable]
        gold = {r.question.id: list(r.question.gold) for r in chosen}
        ranked = {r.question.id: r.ranked[mode] for r in chosen}
        measures = [f"R@{n}" for n in RECALL_CURVE] + ["RR@10", "nDCG@10"]
        figures = retrieval_metrics(gold, ranked, measures) if gold else {m: 0.0 for m in measures}
        return {m: round(v, 4) for m, v in figures.items()}

    def answers_for(name: str, qs: list[Question]) -> dict[str, float]:
        return answer_figures([(r.question, r.answers[name]) for r in results if r.question in qs])

    def retrieval_ci(mode: str) -> dict[str, list[float]]:
        chosen = [r for r in results if r.question.answerable]
        values = per_question(
            {r.question.id: list(r.question.gold) for r in chosen},
            {r.question.id: r.ranked[mode] for r in chosen},
            ["R@5", "R@10", "RR@10", "nDCG@10"],
        )
        return bootstrap_ci(
            list(values.values()), lambda rows: {m: sum(v[m] for v in rows) / len(rows) for m in rows[0]}
        )

    def counterfactual_for(name: str) -> dict:
        pairs = [(r.question, r.counterfactual[name]) for r in results if name in r.counterfactual]
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

    questions = suite.questions
    asked = len(questions) + (answerable_count if counterfactual else 0)  # answers each answerer gave
    return {
        "suite": suite.name,
        "questions": len(questions),
        "question_types": {t: sum(q.type == t for q in questions) for t in TYPES},
        "retrieval": {
            m: {
                "overall": retrieval_for(m, questions),
                # retrieval has no gold papers to find for unanswerable questions
                "by_type": _by_type([q for q in questions if q.answerable], partial(retrieval_for, m)),
                "ci95": retrieval_ci(m),
            }
            for m in retrievers
        },
        "answers": {
            a: {
                "overall": answers_for(a, questions),
                "by_type": _by_type(questions, partial(answers_for, a)),
                "ci95": bootstrap_ci([(r.question, r.answers[a]) for r in results], answer_figures),
            }
            for a in answerers
        },
        "counterfactual": {a: counterfactual_for(a) for a in answerers} if counterfactual else {},
        "failures": {
            name: {
                "failed": sum(messages.values()),
                "questions": asked,
                "share": round(sum(messages.values()) / asked, 4) if asked else 0.0,
                "errors": dict(sorted(messages.items(), key=lambda m: -m[1])),
            }
            for name, messages in failures.items()
        },
        "latency_ms": {stage: _pct(values) for stage, values in latency.items()},
        "tokens": tokens,
        "per_question": [
            {
                "id": r.question.id,
                "type": r.question.type,
                "ranked": r.ranked,
                "answers": {
                    name: {
                        "abstained": a.abstained,
                        "decided_by": decided_by(a),
                        "answer": a.text,
                        "grounding": a.grounding.as_json(),
                    }
                    for name, a in r.answers.items()
                },
                "counterfactual": {
                    name: {"abstained": a.abstained, "decided_by": decided_by(a), "answer": a.text}
                    for name, a in r.counterfactual.items()
                },
            }
            for r in results
        ],
    }


def provenance(config: dict) -> dict:
    """What produced a report: configuration, git commit, package versions, time."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions: dict[str, str | None] = {}
    for pkg in ("rag", "chromadb", "bm25s", "llama-index-core", "openai", "ir-measures", "onnxruntime"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "config": config,
        "git_commit": commit or None,
        "versions": versions,
        "python": platform.python_version(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def failure_problem(report: dict, limit: float = MAX_FAILED_SHARE) -> str | None:
    """Why a report should not pass (too many failed answers), or None."""
    for name, f in report.get("failures", {}).items():
        if isinstance(f, dict) and f.get("share", 0) > limit:
            first = next(iter(f["errors"]), "")
            return (
                f"{f['failed']} of {f['questions']} {name} answers failed ({f['share']:.0%}, more than "
                f"{limit:.0%}); the figures are not meaningful. First error: {first}"
            )
    return None


def flatten(report: dict) -> dict[str, float]:
    """The figures a regression gate compares: every overall retrieval and answer figure."""
    flat: dict[str, float] = {}
    for section in ("retrieval", "answers", "counterfactual"):
        for name, block in report.get(section, {}).items():
            for metric, value in block.get("overall", {}).items():
                flat[f"{section}.{name}.{metric}"] = value
    if "verifier" in report:
        flat["verifier.balanced_accuracy"] = report["verifier"]["balanced_accuracy"]
    if "drafts" in report:
        flat["drafts.balanced_accuracy"] = report["drafts"]["balanced_accuracy"]
    return flat


def _figures(report: object, which: str) -> dict[str, float]:
    """flatten(), after checking that `report` has the shape `rag eval` writes."""
    problem = f"the {which} report is not a report.json written by `rag eval`"
    if not isinstance(report, dict):
        raise RagError(f"{problem} (it is not a JSON object)")
    for section in ("retrieval", "answers"):
        blocks = report.get(section, {})
        if not isinstance(blocks, dict) or not all(
            isinstance(b, dict) and isinstance(b.get("overall", {}), dict) for b in blocks.values()
        ):
            raise RagError(f"{problem} ({section!r} is not a mapping of figures)")
    verifier = report.get("verifier", {})
    if not isinstance(verifier, dict) or ("verifier" in report and "balanced_accuracy" not in verifier):
        raise RagError(f"{problem} ('verifier' lacks balanced_accuracy)")
    flat = flatten(report)
    bad = [k for k, v in flat.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise RagError(f"{problem} ({bad[0]} is not a number)")
    if not flat:
        raise RagError(f"{problem} (it holds no retrieval or answer figures)")
    return flat


def compare(
    baseline: dict, new: dict, tolerance: float = TOLERANCE
) -> tuple[list[tuple[str, float, float, float]], bool]:
    """(figure, baseline, new, delta) rows and whether any figure dropped by more than `tolerance`.

    Reports of another shape (not written by `rag eval`, or sharing no figure) are refused:
    comparing nothing must not pass the gate."""
    old_flat, new_flat = _figures(baseline, "baseline"), _figures(new, "new")
    if not set(old_flat) & set(new_flat):
        raise RagError("the two reports share no figure; compare reports of the same suite, retrievers and answerers")
    rows = []
    failed = False
    for key in sorted(old_flat):
        if key not in new_flat:
            continue
        delta = new_flat[key] - old_flat[key]
        rows.append((key, old_flat[key], new_flat[key], delta))
        worse = delta if key.endswith(LOWER_IS_BETTER) else -delta
        failed |= worse > tolerance
    return rows, failed


def _with_ci(block: dict, metric: str) -> str:
    value = block["overall"].get(metric)
    if value is None:
        return "–"
    ci = block.get("ci95", {}).get(metric)
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{value:.3f}"


def write_markdown(report: dict, path: Path) -> None:
    lines = [f"# rag eval: {report['suite']}", ""]
    lines += [
        f"{report['questions']} questions ({', '.join(f'{n} {t}' for t, n in report['question_types'].items() if n)}); "
        f"commit {str(report.get('git_commit'))[:10]}, {report.get('timestamp', '')}.",
        "",
    ]
    if report["retrieval"]:
        lines += [
            "## Retrieval (paper level)",
            "",
            "| retriever | Recall@5 | Recall@10 | MRR@10 | nDCG@10 |",
            "|---|---|---|---|---|",
        ]
        for name, block in report["retrieval"].items():
            cells = [_with_ci(block, m) for m in ("R@5", "R@10", "RR@10", "nDCG@10")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", "Overall figures carry a 95% bootstrap interval over questions in brackets.", ""]
    answer_cols = [
        "answered_rate",
        "citation_precision",
        "citation_recall",
        "supported_ratio",
        "fallback_rate",
        "key_fact_recall",
        "part_key_fact_recall",
        "gold_citation_rate",
        "abstention_precision",
        "abstention_recall",
    ]
    for name, block in report["answers"].items():
        lines += [
            f"## Answers: {name}",
            "",
            "| scope | " + " | ".join(answer_cols) + " |",
            "|---" * (len(answer_cols) + 1) + "|",
        ]
        lines.append("| overall | " + " | ".join(_with_ci(block, c) for c in answer_cols) + " |")
        for scope, figures in block["by_type"].items():
            cells = [f"{figures[c]:.3f}" if c in figures else "–" for c in answer_cols]
            lines.append(f"| {scope} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, block in report.get("counterfactual", {}).items():
        types = ", ".join(f"{t} {f['abstention_recall']:.3f}" for t, f in block["by_type"].items())
        rules = ", ".join(f"{rule} {n}" for rule, n in block["decided_by"].items())
        lines += [
            f"## Counterfactual abstention: {name}",
            "",
            "Answerable questions asked again with their gold papers excluded from retrieval; the right",
            f"answer is an abstention. Abstention recall {_with_ci(block, 'abstention_recall')} ({types}).",
            f"Decided by: {rules}.",
            "",
        ]
    if "verifier" in report:
        v = report["verifier"]
        lines += [
            "## Grounding verifier",
            "",
            f"Balanced accuracy {v['balanced_accuracy']:.3f} on {v['pairs']} labelled pairs "
            f"(true-positive rate {v['tpr']:.3f}, true-negative rate {v['tnr']:.3f}).",
            "",
        ]
    if "drafts" in report:
        d = report["drafts"]
        lines += [
            "## Draft checking (`rag check`, eval/drafts/labels.jsonl)",
            "",
            f'Balanced accuracy {d["balanced_accuracy"]:.3f}, precision of the "not supported" flag '
            f"{d['unsupported_precision']:.3f} on {d['sentences']} labelled draft sentences "
            f"({d['not_scored']} not scored: cited paper not in the store); by kind: "
            + ", ".join(f"{k} {v:.3f}" for k, v in d["accuracy_by_kind"].items())
            + ".",
            "",
        ]
    failures = {n: f for n, f in report.get("failures", {}).items() if isinstance(f, dict) and f.get("failed")}
    if failures:
        lines += [
            "## Failed answers",
            "",
            "| answerer | failed | of | share | most frequent error |",
            "|---|---|---|---|---|",
        ]
        for name, f in failures.items():
            error, count = next(iter(f["errors"].items()))
            error = error.replace("|", "\\|")
            lines.append(f"| {name} | {f['failed']} | {f['questions']} | {f['share']:.1%} | {error} ({count}x) |")
        lines += [
            "",
            "Failed answers count as abstentions in the figures above; more than "
            f"{MAX_FAILED_SHARE:.0%} failed makes `rag eval` exit 1.",
            "",
        ]
    elif report.get("answers"):
        lines += ["No answer failed.", ""]
    lines += ["## Latency (ms)", "", "| stage | p50 | p95 |", "|---|---|---|"]
    for stage, p in report["latency_ms"].items():
        lines.append(f"| {stage} | {p['p50']:.1f} | {p['p95']:.1f} |")
    lines += [
        "",
        f"Tokens: {report['tokens']['prompt_tokens']} prompt, {report['tokens']['completion_tokens']} completion.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_charts(report: dict, folder: Path) -> list[Path]:
    """PNG charts, when matplotlib (the `charts` extra) is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    if report["retrieval"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, block in report["retrieval"].items():
            ax.plot(RECALL_CURVE, [block["overall"][f"R@{k}"] for k in RECALL_CURVE], marker="o", label=name)
        ax.set(xlabel="k (papers)", ylabel="Recall@k", title=f"Recall@k: {report['suite']}", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "recall_at_k.png", dpi=110)
        plt.close(fig)
        written.append(folder / "recall_at_k.png")
    for name, block in report["answers"].items():
        metrics = ["answered_rate", "citation_precision", "citation_recall", "key_fact_recall", "abstention_recall"]
        types = list(block["by_type"])
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            ax.bar(
                [x + i * width for x in range(len(types))],
                [block["by_type"][t].get(metric, 0) for t in types],
                width,
                label=metric,
            )
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(types))], types)
        ax.set(ylim=(0, 1.05), title=f"Answer metrics by question type: {name}")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        out = folder / f"answers_{name}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written


def save(report: dict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    write_markdown(report, folder / "report.md")
    return [folder / "report.json", folder / "report.md", *write_charts(report, folder)]
