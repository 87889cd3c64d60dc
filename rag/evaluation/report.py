"""Writing a report: report.json (every figure), report.md (the tables a reader wants) and charts."""

from __future__ import annotations

import json
from pathlib import Path

from rag.evaluation.charts import write_charts
from rag.evaluation.gate import MAX_FAILED_SHARE


def _with_ci(block: dict, metric: str) -> str:
    value = block["overall"].get(metric)
    if value is None:
        return "–"
    ci = block.get("ci95", {}).get(metric)
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{value:.3f}"


def write_markdown(report: dict, path: Path) -> None:
    """The report as Markdown tables, overall figures with their 95% intervals."""
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
        types = ", ".join(f"{t} {f['abstention_recall']:.3f}" for t, f in block["by_type"].items()) or "–"
        rules = ", ".join(f"{rule} {n}" for rule, n in block["decided_by"].items()) or "– (no answerable question)"
        lines += [
            f"## Counterfactual abstention: {name}",
            "",
            "Answerable questions asked again with their gold papers excluded from retrieval. A single-paper",
            'or detail question must now abstain; a "which papers" one must only cite no hidden paper.',
            f"Abstention recall (single and detail) {_with_ci(block, 'abstention_recall')}; by type {types}.",
            f"Answers citing a hidden paper: {block['overall'].get('hidden_cited', 0.0):.3f}.",
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
    if "paraphrases" in report:
        w = report["paraphrases"]
        by_style = ", ".join(f"{k} {1 - a:.3f}" for k, a in w["accuracy_by_kind"].items())
        lines += [
            f"Written paraphrases of true claims (eval/drafts/paraphrases.jsonl, {w['pairs']}): "
            f"false-unsupported rate {1 - w['tpr']:.3f} (what strict mode would remove from a fluent "
            f"model's correct answer); by style: {by_style}.",
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
    agent = report.get("agent") or {}
    if agent.get("questions"):
        lines += [
            "## Agent mode",
            "",
            f"Of {agent['questions']} questions, the pre-check abstained on {agent['prechecked']:.1%} before "
            f"the model was asked; the agent answered {agent['answered_by_agent']:.1%} itself "
            f"({agent['tool_calls_per_run']:.2f} tool calls a run); {agent['normal_way']:.1%} went the "
            "normal way: "
            + (", ".join(f"{reason} ({n}x)" for reason, n in agent["fallbacks"].items()) or "none")
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


def save(report: dict, folder: Path) -> list[Path]:
    """report.json, report.md and the charts in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    write_markdown(report, folder / "report.md")
    return [folder / "report.json", folder / "report.md", *write_charts(report, folder)]
