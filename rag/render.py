"""Terminal rendering of search results and answers (rich); no logic beyond presentation."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rag.answer import Answer
    from rag.retrieval import SearchResult

console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())


def _snippet(text: str, width: int = 220) -> str:
    return textwrap.shorten(text, width=width, placeholder=" ...")


def print_search(result: SearchResult) -> None:
    if not result.results:
        console.print("No papers match.")
        return
    for hit in result.results:
        console.print(f"[bold]{hit.rank:>2}. {escape(hit.title)}[/bold]  [dim]{hit.paper_id}  {hit.score:.4f}[/dim]")
        console.print(f"    {escape(_snippet(hit.evidence))}")


_MARKS = {
    "unsupported": ("yellow", "⚠ not supported by the cited abstract"),
    "uncited": ("yellow", "⚠ no citation"),
    "bad_citation": ("red", "✗ cites a source that is not listed"),
}


def stream_token(text: str) -> None:
    console.print(escape(text), end="", soft_wrap=True)


def _marked_text(answer: Answer) -> str:
    parts = []
    for s in answer.grounding.sentences:
        mark = _MARKS.get(s.verdict)
        text = escape(s.text)
        parts.append(f"{text} [{mark[0]}]{{{mark[1]}}}[/{mark[0]}]" if mark else text)
    return "\n".join(parts)


def print_answer(answer: Answer, streamed: bool = False) -> None:
    if answer.abstained:
        console.print(f"[bold]{escape(answer.text)}[/bold]")
        if answer.assessment and not answer.assessment.answerable:
            console.print(f"[dim]Why: {escape(answer.assessment.reason)}.[/dim]")
        if answer.retrieval:
            console.print("\nClosest matches (not answers):")
            for hit in answer.retrieval:
                console.print(f"  - {escape(hit.title)}  [dim]{hit.paper_id}[/dim]")
        return
    if answer.mode == "extractive":
        console.print("[dim]Extractive answer (no LLM configured): sentences quoted from the abstracts.[/dim]")
    if streamed:
        console.print()
        flagged = [s for s in answer.grounding.sentences if s.verdict in _MARKS]
        if flagged:
            console.print("\n[bold]Grounding check flagged:[/bold]")
            for s in flagged:
                color, label = _MARKS[s.verdict]
                console.print(f"  [{color}]{label}:[/{color}] {escape(s.text)}")
    else:
        console.print(_marked_text(answer))
    cited = {n for s in answer.grounding.sentences for n in s.citations}
    console.print("\nSources:")
    for src in answer.sources:
        style = "" if src.n in cited else "dim"
        line = f"  [{src.n}] {escape(src.title)}  [dim]{src.paper_id}[/dim]"
        console.print(f"[{style}]{line}[/{style}]" if style else line)
    g = answer.grounding
    claims = g.claims
    supported = sum(s.supported for s in claims)
    console.print(
        f"\n[dim]Grounding: {supported}/{len(claims)} sentences supported; citation precision "
        f"{g.citation_precision:.2f}, recall {g.citation_recall:.2f}. Mode: "
        f"{answer.model if answer.mode == 'llm' else 'extractive'}; "
        f"{answer.timings_ms.get('total', 0):.0f} ms.[/dim]"
    )
