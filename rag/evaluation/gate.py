"""The regression gate: compare two reports figure by figure (`rag eval --compare`), and refuse a
report whose answers failed too often to mean anything."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rag.errors import RagError

TOLERANCE = 0.02
# `rag eval` exits 1 when more than this share of an answerer's questions failed (an endpoint
# that is down or misbehaving): figures over the few answers that came back would mislead.
MAX_FAILED_SHARE = 0.2
LOWER_IS_BETTER = (".fallback_rate", ".hidden_cited")  # figures the --compare gate fails on a rise, not a drop


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
    bad = [k for k, v in flat.items() if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v)]
    if bad:
        raise RagError(f"{problem} ({bad[0]} is not a number)")
    if not flat:
        raise RagError(f"{problem} (it holds no retrieval or answer figures)")
    return flat


def _block(key: str) -> str:
    """The part of a report a figure belongs to: "retrieval.hybrid", "answers.llm", "verifier"."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in ("retrieval", "answers", "counterfactual") else parts[0]


def compare(
    baseline: dict, new: dict, tolerance: float = TOLERANCE
) -> tuple[list[tuple[str, float, float, float]], bool]:
    """(figure, baseline, new, delta) rows and whether any figure dropped by more than `tolerance`
    or is missing from a retriever's or answerer's block the new report has (a row whose new value
    and delta are NaN).

    Reports of another shape (not written by `rag eval`, or sharing no figure) are refused:
    comparing nothing must not pass the gate."""
    old_flat, new_flat = _figures(baseline, "baseline"), _figures(new, "new")
    suites = (baseline.get("suite"), new.get("suite"))
    if all(isinstance(x, str) for x in suites) and suites[0] != suites[1]:
        raise RagError(
            f"the baseline is of suite {suites[0]!r} and the new report of {suites[1]!r}; compare one suite's reports"
        )
    asked = [{str(q.get("id")) for q in r.get("per_question", []) if isinstance(q, dict)} for r in (baseline, new)]
    if all(asked) and asked[0] != asked[1]:
        raise RagError(
            f"the reports are of different questions ({len(asked[0])} and {len(asked[1])}, "
            f"{len(asked[0] & asked[1])} shared); compare reports of the same suite file"
        )
    if not any(k.startswith(("retrieval.", "answers.")) for k in set(old_flat) & set(new_flat)):
        raise RagError(
            "the two reports share no retrieval or answer figure; compare reports of the same suite, "
            "retrievers and answerers"
        )
    ran = {_block(k) for k in new_flat}  # a retriever or answerer the new run left out is not compared
    rows = []
    failed = False
    for key in sorted(old_flat):
        if key not in new_flat:
            if _block(key) in ran:  # a figure the new report lost is no figure that held
                rows.append((key, old_flat[key], math.nan, math.nan))
                failed = True
            continue
        delta = new_flat[key] - old_flat[key]
        rows.append((key, old_flat[key], new_flat[key], delta))
        worse = delta if key.endswith(LOWER_IS_BETTER) else -delta
        failed |= worse > tolerance
    return rows, failed


def read_report(path: Path) -> dict:
    """A report.json, or one line saying why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RagError(f"cannot read report {path}: {exc}") from None


def compare_files(baseline: Path, new: Path, tolerance: float = TOLERANCE) -> tuple[list[str], bool]:
    """The lines `rag eval --compare` prints (one per figure, flagging regressions) and whether
    any figure got worse by more than `tolerance`."""
    old_report, new_report = read_report(baseline), read_report(new)
    rows, failed = compare(old_report, new_report, tolerance)
    lines = []
    ran = {_block(k) for k in _figures(new_report, "new")}
    if skipped := sorted({_block(k) for k in _figures(old_report, "baseline")} - ran):
        lines.append(f"not compared (the new run left them out): {', '.join(skipped)}")
    for key, old, now, delta in rows:
        if math.isnan(now):
            lines.append(f"{key:<55} {old:7.4f} -> missing  MISSING")
            continue
        worse = delta if key.endswith(LOWER_IS_BETTER) else -delta
        flag = "  REGRESSION" if worse > tolerance else ""
        lines.append(f"{key:<55} {old:7.4f} -> {now:7.4f}  ({delta:+.4f}){flag}")
    return lines, failed
