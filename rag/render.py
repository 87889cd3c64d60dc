"""Terminal rendering of search results and answers (rich); no logic beyond presentation."""

from __future__ import annotations

import textwrap

from rich.console import Console
from rich.markup import escape

from rag.retrieval import SearchResult

console = Console(highlight=False)


def _snippet(text: str, width: int = 220) -> str:
    return textwrap.shorten(text, width=width, placeholder=" ...")


def print_search(result: SearchResult) -> None:
    if not result.results:
        console.print("No papers match.")
        return
    for hit in result.results:
        console.print(f"[bold]{hit.rank:>2}. {escape(hit.title)}[/bold]  [dim]{hit.paper_id}  {hit.score:.4f}[/dim]")
        console.print(f"    {escape(_snippet(hit.evidence))}")
