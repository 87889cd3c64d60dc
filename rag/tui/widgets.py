"""Widgets of the chat, by area: the conversation, the sources, the question box, the status line."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, ListItem, ListView, Markdown, Static

from rag.render import LABELS, quoted_markdown
from rag.repair import FELL_BACK, REMOVED_HEADING, uncited
from rag.sentences import CITATION, split_sentences, strip_citations
from rag.terms import terms

if TYPE_CHECKING:  # not imported at run time: a chat over `rag serve` never loads the answering code
    from rag.answer import Answer as LocalAnswer
    from rag.serve.client import Answered

    Answer = LocalAnswer | Answered  # an answer made here, or one rebuilt from the server's JSON


def _linked(sentence: str) -> str:
    """Citations become links the user can click to open the source."""
    return CITATION.sub(
        lambda m: " ".join(f"[\\[{n.strip()}\\]](source:{n.strip()})" for n in re.split(r"[,;]", m.group(1))), sentence
    )


def marked_markdown(answer: Answer) -> str:
    """The answer with each sentence's grounding verdict after it."""
    if answer.abstained:
        closest = "\n".join(f"- {h.title}" for h in answer.retrieval)
        return f"**{answer.text}**\n\nClosest matches (not answers):\n\n{closest}"
    parts = []
    for s in answer.grounding.sentences:
        mark = LABELS[s.verdict].chat if s.verdict in LABELS else ""
        piece = f"{_linked(quoted_markdown(s.text) if answer.quotes else s.text)} {mark}".rstrip()
        parts.append(("\n" if s.text.startswith(("- ", "* ")) else " ") + piece)
    text = "".join(parts).strip()
    if answer.mode == "extractive":
        text = "*Extractive answer: sentences quoted from the abstracts.*\n\n" + text
    if answer.fell_back:
        text = f"*{FELL_BACK}*\n\n" + text
    if answer.removed:
        removed = "\n".join(f"- ~~{uncited(s.text)}~~" for s in answer.removed)
        text += f"\n\n**{REMOVED_HEADING}:**\n\n{removed}"
    return text


class TurnView(Vertical):
    """One question and its answer, streamed as Markdown."""

    DEFAULT_CSS = """
    TurnView { height: auto; margin: 0 0 1 0; }
    TurnView .question { color: $accent; text-style: bold; padding: 0 1; }
    TurnView Markdown { margin: 0; padding: 0 1; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question
        self.text = ""
        self.streamed_chunks = 0
        self.answer: Answer | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"› {self.question}", classes="question", markup=False)
        yield Markdown("…", open_links=False)

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    def append(self, token: str) -> None:
        self.text += token
        self.streamed_chunks += 1
        self.markdown.update(self.text)

    def show(self, markdown: str) -> None:
        self.markdown.update(markdown)

    def finish(self, answer: Answer) -> None:
        self.answer = answer
        self.text = answer.text
        self.show(marked_markdown(answer))


class Conversation(VerticalScroll):
    DEFAULT_CSS = "Conversation { height: 1fr; }"


class SourcesPane(Vertical):
    """The numbered papers of the current answer; selecting one shows its abstract with the
    sentences the answer relied on highlighted."""

    DEFAULT_CSS = """
    SourcesPane { width: 42%; border-left: solid $primary; }
    SourcesPane ListView { height: auto; max-height: 45%; }
    SourcesPane #abstract { height: 1fr; padding: 0 1; }
    """

    class Opened(Message):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

    def __init__(self) -> None:
        super().__init__(id="sources")
        self.answer: Answer | None = None
        self.abstracts: dict[int, tuple[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield ListView(id="source-list")
        with VerticalScroll(id="abstract"):
            yield Static("Sources of the current answer appear here.", id="abstract-text", markup=False)

    def show_answer(self, answer: Answer) -> None:
        self.answer = answer
        self.abstracts = {s.n: (s.title, s.abstract) for s in answer.sources}
        items = self.query_one(ListView)
        items.clear()
        cited = answer.cited
        for s in answer.sources_in_order():
            if s.n in cited:
                label = Text(f"[{s.n}] {s.title}")
            else:  # retrieved but not cited: shown apart, so it does not look like support
                label = Text(f"[{s.n}] {s.title} (also retrieved, not cited)", style="dim")
            items.append(ListItem(Static(label), name=str(s.n)))
        self.query_one("#abstract-text", Static).update(
            "Click a citation [N] in the answer, or press ctrl+o and pick a source (Enter or its number)."
        )

    def show_saved(self, sources: list[dict], abstracts: dict[str, tuple[str, str]]) -> None:
        """Sources of a resumed answer, cited first as when it was given (no grounding marks are
        kept; turns saved before the cited flag was kept list every source as cited)."""
        self.answer = None
        self.abstracts = {s["n"]: abstracts[s["paper_id"]] for s in sources if s["paper_id"] in abstracts}
        items = self.query_one(ListView)
        items.clear()
        for s in sorted(sources, key=lambda s: not s.get("cited", True)):
            if s.get("cited", True):
                label = Text(f"[{s['n']}] {s['title']}")
            else:
                label = Text(f"[{s['n']}] {s['title']} (also retrieved, not cited)", style="dim")
            items.append(ListItem(Static(label), name=str(s["n"])))
        self.query_one("#abstract-text", Static).update(
            "Press ctrl+o and pick a source (Enter or its number) to read its abstract."
        )

    def open(self, n: int) -> bool:
        if n not in self.abstracts:
            return False
        title, abstract = self.abstracts[n]
        used = [
            strip_citations(s.text)
            for s in (self.answer.grounding.sentences if self.answer else [])
            if n in s.citations
        ]
        text = Text(f"[{n}] {title}\n\n", style="bold")
        for sentence in split_sentences(abstract):
            words = terms(sentence)
            support = any(words and len(words & terms(u)) / len(words) >= 0.5 for u in used)
            text.append(sentence + " ", style="black on yellow" if support else "")
        self.query_one("#abstract-text", Static).update(text)
        names = [item.name for item in self.query_one(ListView).query(ListItem)]
        if str(n) in names:
            self.query_one(ListView).index = names.index(str(n))
        return True

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if event.item.name:
            self.post_message(self.Opened(int(event.item.name)))

    def on_key(self, event) -> None:
        """In the source list, a digit opens that source."""
        if event.character and event.character.isdigit() and event.character != "0":
            event.stop()
            self.post_message(self.Opened(int(event.character)))


class QuestionInput(Input):
    """The question box; up and down walk through earlier questions."""

    BINDINGS = [("up", "older", "Earlier question"), ("down", "newer", "Later question")]

    def __init__(self, history: list[str]) -> None:
        super().__init__(placeholder="Ask about the papers… (Enter sends, Esc cancels)", id="question")
        self.history = history
        self.position = len(history)

    def remember(self, question: str) -> None:
        if not self.history or self.history[-1] != question:
            self.history.append(question)
        self.position = len(self.history)

    def action_older(self) -> None:
        if self.position > 0:
            self.position -= 1
            self.value = self.history[self.position]
            self.cursor_position = len(self.value)

    def action_newer(self) -> None:
        if self.position < len(self.history) - 1:
            self.position += 1
            self.value = self.history[self.position]
        else:
            self.position = len(self.history)
            self.value = ""
        self.cursor_position = len(self.value)


class StatusLine(Static):
    DEFAULT_CSS = "StatusLine { height: 1; background: $panel; color: $text-muted; padding: 0 1; }"
