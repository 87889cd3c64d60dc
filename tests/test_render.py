"""Terminal output details that only show on a terminal (streaming)."""

from rich.console import Console

from rag import render
from rag.answer import NO_ANSWER, Answer
from rag.grounding import Grounding


def test_an_abstention_after_streamed_text_starts_on_its_own_line(monkeypatch):
    console = Console(record=True, width=100, force_terminal=False)
    monkeypatch.setattr(render, "console", console)
    monkeypatch.setattr(render, "_streamed", {"open": False})
    render.stream_token("The sources do not say")
    answer = Answer("q?", NO_ANSWER, True, "llm", "m", [], Grounding([]), [])
    render.print_answer(answer, streamed=True)
    lines = console.export_text().splitlines()
    assert lines[0] == "The sources do not say" and NO_ANSWER in lines[2]
    # nothing streamed (a clear miss abstains before any request): no blank line first
    console = Console(record=True, width=100, force_terminal=False)
    monkeypatch.setattr(render, "console", console)
    render.print_answer(answer, streamed=True)
    assert console.export_text().splitlines()[0] == NO_ANSWER


def test_a_search_result_is_shown_as_stored_no_emoji_codes_or_markup():
    from rag.retrieval import PaperHit, SearchResult

    hit = PaperHit(1, "id-[red]x[/red]", "A :smile: title", 0.5, "evidence with :rocket: and [bold]", "c1")
    with render.console.capture() as captured:
        render.print_search(SearchResult("q", [hit]))
    shown = captured.get()
    assert "A :smile: title" in shown and ":rocket:" in shown and "[bold]" in shown and "id-[red]x[/red]" in shown
