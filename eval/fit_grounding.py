"""Calibrate rag.repair.MIN_KEPT (strict mode's fallback threshold) on the tune suite.

    OPENAI_BASE_URL=http://127.0.0.1:8078/v1 RAG_LLM_MODEL=smollm2 python eval/fit_grounding.py \
        [--suite eval/suites/tune.jsonl] [--cache grounding-cache.jsonl] [--limit N]

Each question is answered once by the configured LLM in `mark` mode (the model's answer as it
wrote it, checked) and once extractively; answers are cached line by line, so a long run can be
resumed. The repair step is then replayed offline at every threshold, and the figures of `mark`
and of `strict` at each threshold are printed. The chosen threshold is the one with the highest
key-fact recall (ties: the configured MIN_KEPT when it is among them, else the lowest threshold,
which keeps the most of the model's own answer).
Nothing is chosen on the test suite: `--suite eval/suites/test.jsonl` only reports it (read the
row of the configured MIN_KEPT, not the "chosen" line).
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import zip_longest
from pathlib import Path

from rag.abstain import focus_words
from rag.answer import NO_ANSWER, Answer, Source, answer_question, check_question, fallback_gate
from rag.config import load_settings
from rag.evaluation.figures import answer_figures, percentiles
from rag.evaluation.suite import load_suite
from rag.extractive import compose
from rag.grounding import Grounding, check
from rag.jsonl import read_jsonl
from rag.llm import LLMError
from rag.question import Question
from rag.repair import MIN_KEPT, repair
from rag.sentences import normalise_citations
from rag.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def collect(suite_path: Path, cache: Path, limit: int | None) -> list[dict]:
    settings = load_settings()
    ws = Workspace(settings)
    suite = load_suite(suite_path, ws.store.titles())
    llm = ws.llm
    if llm is None:
        raise SystemExit("configure an LLM (OPENAI_BASE_URL / RAG_LLM_MODEL)")
    done = {}
    if cache.exists():
        for _, row in read_jsonl(cache):
            done[row["id"]] = row
    # round-robin over question types, so a run stopped early still covers each (detail questions,
    # the ones with key facts, are not all at the end)
    by_type: dict[str, list] = {}
    for q in suite.questions:
        by_type.setdefault(q.type, []).append(q)
    order = [q for group in zip_longest(*by_type.values()) for q in group if q is not None]
    questions = order[:limit] if limit else order
    with cache.open("a") as out:
        for q in questions:
            if q.id in done:
                continue
            t = time.perf_counter()
            try:
                a = answer_question(q.question, ws.retriever, k=settings.top_k, llm=llm, grounding="mark")
                failed = ""
            except LLMError as exc:
                a, failed = None, str(exc)
            seconds = time.perf_counter() - t
            ex = answer_question(q.question, ws.retriever, k=settings.top_k, grounding="mark")
            row = {
                "id": q.id,
                "failed": failed,
                "abstained": a.abstained if a else True,
                "text": a.text if a else "",
                "sources": [[s.n, s.paper_id, s.title, s.abstract] for s in (a.sources if a else [])],
                "extractive": ex.text,
                "extractive_abstained": ex.abstained,
                "total_ms": seconds * 1000,
                "usage": a.usage if a else {},
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            done[q.id] = row
            print(f"{q.id} {seconds:5.1f} s  {row['text'][:80]!r}", flush=True)
    return [done[q.id] for q in questions if q.id in done]


def replay(rows: list[dict], suite_path: Path, min_kept: float | None) -> tuple[list, list]:
    """(question, answer) pairs: mark mode when `min_kept` is None, else strict at that threshold;
    and, with mark mode only (it does not depend on the threshold), the extractive answers."""
    settings = load_settings()
    ws = Workspace(settings)
    suite = load_suite(suite_path, ws.store.titles())
    verifier = ws.verifier  # the configured grounding check, as `rag ask` runs it
    by_id = {q.id: q for q in suite.questions}
    pairs, extractive = [], []
    for row in rows:
        if row["failed"]:
            continue  # counted separately: a failed reply says nothing about the repair step
        q = by_id[row["id"]]
        sources = [Source(n, pid, title, abstract) for n, pid, title, abstract in row["sources"]]
        numbered = {s.n: (s.title, s.abstract) for s in sources}
        if min_kept is None:  # the extractive answerer is the code as it is now (the cache keeps the model's text)
            extractive.append((q, answer_question(q.question, ws.retriever, k=settings.top_k, grounding="mark")))
        if row["abstained"]:
            pairs.append((q, Answer(q.question, row["text"], True, "llm", None, sources, Grounding([]), [])))
            continue
        text = normalise_citations(row["text"])  # as rag.answer.ground_llm_answer reads a reply
        g = check(text, numbered, verifier)
        a = Answer(q.question, text, False, "llm", None, sources, g, [])
        if min_kept is not None:
            fixed = repair(
                text,
                g,
                numbered,
                verifier,
                mode="strict",
                # as `rag ask` does: the extractive answer composed from the same sources, also
                # when the extractive answerer's own (stricter) answerability check abstained
                fallback=lambda q=q, s=sources: compose(
                    q.question, [(x.title, x.abstract) for x in s], ws.embedder, ws.lexical
                ),
                min_kept=min_kept,
                question=q.question,
                focus=focus_words(Question.parse(q.question), ws.lexical),
            )
            a.text, a.grounding, a.removed, a.fell_back = fixed.text, fixed.grounding, fixed.removed, fixed.fell_back
            if fixed.fell_back and not fixed.text.strip():  # no number where one is asked: abstain, as `rag ask`
                a.text, a.abstained, a.grounding = NO_ANSWER, True, Grounding([])
            elif fixed.fell_back:  # the extractive answerer's own gate, as `rag ask` applies to a fallback
                pre = check_question(q.question, ws.retriever, settings.top_k, settings.retriever, with_llm=True)
                if fallback_gate(pre.assessment):
                    a.text, a.abstained, a.grounding = NO_ANSWER, True, Grounding([])
        pairs.append((q, a))
    return pairs, extractive


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", type=Path, default=REPO / "eval" / "suites" / "tune.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("grounding-cache.jsonl"))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--replay-only", action="store_true")
    args = parser.parse_args()
    if args.replay_only:
        rows = [row for _, row in read_jsonl(args.cache)]
    else:
        rows = collect(args.suite, args.cache, args.limit)
    cols = [
        "answered_rate",
        "abstention_recall",
        "supported_ratio",
        "citation_precision",
        "citation_recall",
        "key_fact_recall",
        "fallback_rate",
    ]
    failed = sum(bool(r["failed"]) for r in rows)
    print(f"{len(rows)} questions ({failed} failed); latency {percentiles([r['total_ms'] for r in rows])} ms")
    print("mode".ljust(14) + " ".join(c[:18].rjust(18) for c in cols))
    mark, extractive = replay(rows, args.suite, None)
    for name, pairs in (("extractive", extractive), ("mark", mark)):
        f = answer_figures(pairs)
        print(name.ljust(14) + " ".join(f"{f.get(c, 0):18.3f}" for c in cols))
    recall = {}
    for t in THRESHOLDS:
        f = answer_figures(replay(rows, args.suite, t)[0])
        print(f"strict {t:.1f}".ljust(14) + " ".join(f"{f.get(c, 0):18.3f}" for c in cols))
        recall[t] = f.get("key_fact_recall", 0)
    top = max(recall.values(), default=0.0)
    best = [t for t, r in recall.items() if r >= top - 1e-9]
    if best:
        # the configured value stays when the figures cannot tell it from a better one
        chosen = MIN_KEPT if MIN_KEPT in best else best[0]
        print(f"chosen MIN_KEPT = {chosen} (key-fact recall {top:.3f}; best: {', '.join(map(str, best))})")


if __name__ == "__main__":
    main()
