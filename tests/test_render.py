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


def _quoting_answer(fell_back: bool) -> Answer:
    from rag.answer import Source
    from rag.grounding import check

    text = "- *The __init__ paper* — We call __init__ with **weights** w_1 and `x` [1]"
    sources = [Source(1, "p1", "The __init__ paper", "We call __init__ with **weights** w_1 and `x`.")]
    mode, model = ("llm", "small-model") if fell_back else ("extractive", None)
    answer = Answer("q?", text, False, mode, model, sources, check(text, {1: ("t", sources[0].abstract)}), [])
    answer.fell_back = fell_back
    return answer


def test_quotes_from_abstracts_are_shown_as_written_not_as_markdown(monkeypatch):
    """An abstract's `__init__` or `**` is what it says, not emphasis; only the listed title is styled.
    The footer names the extractive answer, and the model it fell back from."""
    for fell_back in (False, True):
        console = Console(record=True, width=200, force_terminal=True)
        monkeypatch.setattr(render, "console", console)
        monkeypatch.setattr(render, "messages", Console(record=True, width=200, force_terminal=True))
        render.print_answer(_quoting_answer(fell_back))
        shown = console.export_text()
        assert "We call __init__ with **weights** w_1 and `x` [1]" in shown, shown
        assert "- The __init__ paper — " in shown
        footer = "Mode: extractive (fell back from small-model);" if fell_back else "Mode: extractive;"
        assert footer in shown
    # a model's own Markdown is still styled
    from rag.grounding import check

    text = "FP8 is **faster** than INT8 [1]."
    model = Answer("q?", text, False, "llm", "m", [], check(text, {1: ("t", "FP8 is faster than INT8.")}), [])
    assert render._marked_text(model).plain == "FP8 is faster than INT8 [1]."


def test_the_chat_escapes_a_quotes_markdown_but_keeps_its_citation_links():
    from rag.tui.widgets import marked_markdown

    shown = marked_markdown(_quoting_answer(False))
    assert "We call \\_\\_init\\_\\_ with \\*\\*weights\\*\\* w\\_1 and \\`x\\`" in shown
    assert "- *The \\_\\_init\\_\\_ paper* — " in shown and "(source:1)" in shown
