"""Terminal rendering of search results and answers (rich); no logic beyond presentation.

Answers may carry inline Markdown (a paper title in *italics*, **bold**, `code`): on a terminal it
is shown styled, and piped output is plain text, so no literal asterisks reach either.
Messages (the extractive banner, notices) go to stderr; the answer and its sources to stdout.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from rag.grounding import ATTRIBUTED, BAD_CITATION, CORRECTED, NO_CLAIM, SUPPORTED, UNCITED, UNSUPPORTED

if TYPE_CHECKING:
    from rag.answer import Answer
    from rag.draft import DraftReport
    from rag.retrieval import SearchResult

console = Console(highlight=False, emoji=False, soft_wrap=not sys.stdout.isatty())
messages = Console(highlight=False, emoji=False, stderr=True)


def _snippet(text: str, width: int = 220) -> str:
    return textwrap.shorten(text, width=width, placeholder=" ...")


def print_search(result: SearchResult) -> None:
    if not result.results:
        console.print("No papers match.")
        return
    for hit in result.results:
        console.print(
            f"[bold]{hit.rank:>2}. {escape(hit.title)}[/bold]  [dim]{escape(hit.paper_id)}  {hit.score:.4f}[/dim]"
        )
        console.print(f"    {escape(_snippet(hit.evidence))}")


@dataclass(frozen=True)
class Label:
    """How a sentence's grounding verdict is shown, in the terminal and in the chat."""

    symbol: str
    short: str = ""  # the chat's words after the symbol; empty: the symbol alone
    flag: str = ""  # the terminal's words for a flagged sentence; empty: not flagged
    color: str = ""

    @property
    def chat(self) -> str:
        """The mark after a sentence in the chat's Markdown."""
        return f"{self.symbol} *({self.short})*" if self.short else self.symbol  # apart from the next sentence

    @property
    def terminal(self) -> str:
        return f"{self.symbol} {self.flag}"


LABELS = {
    SUPPORTED: Label("✓"),
    CORRECTED: Label("✓", "citation corrected"),
    ATTRIBUTED: Label("✓", "citation added"),
    UNSUPPORTED: Label("⚠", "unsupported", "not supported by the cited abstract", "yellow"),
    UNCITED: Label("⚠", "uncited", "no citation", "yellow"),
    BAD_CITATION: Label("✗", "bad citation", "cites a source that is not listed", "red"),
    NO_CLAIM: Label(""),
}
_FLAGGED = {verdict: label for verdict, label in LABELS.items() if label.flag}
_INLINE_STYLES = {"em": "italic", "strong": "bold", "s": "strike"}


def inline_markdown(markdown: str) -> Text:
    """One line of Markdown as styled text: emphasis and code become styles, markers vanish.
    Parsed by markdown-it (rich's own Markdown parser), not by hand."""
    from markdown_it import MarkdownIt

    text = Text()
    styles: list[str] = []
    for block in MarkdownIt("zero").enable(["emphasis", "backticks", "strikethrough"]).parseInline(markdown):
        for token in block.children or []:
            kind = token.type.removesuffix("_open").removesuffix("_close")
            if token.type.endswith("_open") and kind in _INLINE_STYLES:
                styles.append(_INLINE_STYLES[kind])
            elif token.type.endswith("_close") and kind in _INLINE_STYLES and styles:
                styles.pop()
            elif token.type == "code_inline":
                text.append(token.content, style="bold")
            elif token.type in ("softbreak", "hardbreak"):
                text.append(" ")
            else:
                text.append(token.content, style=" ".join(styles))
    return text


# A "which papers" line of an extractive answer: "- *Title* — a sentence quoted from it [n]"
_LISTED = re.compile(r"^- \*(.+?)\* — ")


def quoted_text(sentence: str) -> Text:
    """A sentence of an extractive answer as the abstract wrote it: its `__init__` or `**` are the
    abstract's characters, not Markdown; only a listed paper's title is styled (italic)."""
    if m := _LISTED.match(sentence):
        return Text.assemble("- ", (m.group(1), "italic"), " — ", sentence[m.end() :])
    return Text(sentence)


def quoted_markdown(sentence: str) -> str:
    """`quoted_text` for a Markdown view (the chat): the quote's Markdown characters escaped, its
    citations and a listed paper's italic title left as Markdown."""

    def escaped(text: str) -> str:
        pieces = re.split(r"(\[\d+(?:\s*[,;]\s*\d+)*\])", text)  # citations stay as they are
        return "".join(p if i % 2 else re.sub(r"([\\`*_~\[\]<>#|!])", r"\\\1", p) for i, p in enumerate(pieces))

    if m := _LISTED.match(sentence):
        return f"- *{escaped(m.group(1))}* — {escaped(sentence[m.end() :])}"
    return escaped(sentence)


_streamed = {"open": False}  # streamed text is on the terminal with no line end after it yet


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def stream_token(text: str) -> None:
    console.print(escape(text), end="", soft_wrap=True)
    _streamed["open"] = bool(text) or _streamed["open"]


def end_stream() -> bool:
    """End the line a stream left open, so an error that stopped it starts a line of its own;
    True when there was one (unchecked text is on the screen)."""
    if _streamed["open"]:
        console.print()
        _streamed["open"] = False
        return True
    return False


def _repair_note(verdict: str, cited_before: list[int] | None) -> str:
    if verdict == "corrected":
        was = "".join(f"[{n}]" for n in cited_before or [])
        return f"(citation corrected{' from ' + was if was else ''})"
    if verdict == "attributed":
        return "(citation added)"
    return ""


def _marked_text(answer: Answer) -> Text:
    out = Text()
    for i, s in enumerate(answer.grounding.sentences):
        if i:
            out.append("\n")
        out.append_text(quoted_text(s.text) if answer.quotes else inline_markdown(s.text))
        if label := _FLAGGED.get(s.verdict):
            out.append(f" {{{label.terminal}}}", style=label.color)
        if note := _repair_note(s.verdict, s.cited_before):
            out.append(f" {note}", style="dim")
    return out


def _print_removed(answer: Answer) -> None:
    from rag.repair import REMOVED_HEADING

    if answer.removed:
        console.print(f"\n[bold]{REMOVED_HEADING}:[/bold]")
        for s in answer.removed:
            console.print(Text.assemble(("  - ", "dim"), inline_markdown(s.text)), style="dim")


def print_answer(answer: Answer, streamed: bool = False, llm_off: bool = False) -> None:
    """An answer as `rag ask` shows it; `llm_off`: extractive because --no-llm asked for it."""
    if answer.abstained:
        if streamed and _streamed["open"]:  # the model's draft streamed before it became an abstention
            console.print("\n")
            _streamed["open"] = False
        console.print(f"[bold]{escape(answer.text)}[/bold]")
        if answer.assessment and not answer.assessment.answerable:
            console.print(f"[dim]Why: {escape(answer.assessment.reason)}.[/dim]")
        if answer.retrieval:
            console.print("\nClosest matches (not answers):")
            for hit in answer.retrieval:
                console.print(f"  - {escape(hit.title)}  [dim]{hit.paper_id}[/dim]")
        return
    if answer.mode == "extractive":
        why = "--no-llm" if llm_off else "no LLM configured"
        messages.print(f"[dim]Extractive answer ({why}): sentences quoted from the abstracts.[/dim]")
    if answer.fell_back:
        from rag.repair import FELL_BACK

        if streamed:
            console.print()
        messages.print(f"[yellow]{escape(FELL_BACK)}[/yellow]", soft_wrap=True)
    if streamed and answer.changed:  # what streamed was the model's draft; show the checked answer
        console.print("\n\n[bold]Checked against the sources:[/bold]")
        console.print(_marked_text(answer))
    elif streamed:
        console.print()
        flagged = [s for s in answer.grounding.sentences if s.verdict in _FLAGGED]
        if flagged:
            console.print("\n[bold]Grounding check flagged:[/bold]")
            for s in flagged:
                label = _FLAGGED[s.verdict]
                shown = quoted_text(s.text) if answer.quotes else inline_markdown(s.text)
                console.print(Text.assemble((f"  {label.terminal}: ", label.color), shown))
    else:
        console.print(_marked_text(answer))
    _print_removed(answer)
    missing = [p.ask.rstrip(" ?.!") for p in answer.parts if not p.answered]
    if missing:
        console.print(f"[yellow]Not stated in the abstracts: {escape('; '.join(missing))}.[/yellow]")
    cited = answer.cited
    console.print("\nSources:")
    also = [src for src in answer.sources_in_order() if src.n not in cited]
    for src in answer.sources_in_order():
        if src.n in cited:
            console.print(f"  [{src.n}] {escape(src.title)}  [dim]{src.paper_id}[/dim]")
    if also:
        console.print("[dim]Also retrieved, not cited:[/dim]")
        for src in also:
            console.print(f"[dim]  [{src.n}] {escape(src.title)}  {src.paper_id}[/dim]")
    g = answer.grounding
    claims = g.claims
    supported = sum(s.supported for s in claims)
    console.print(
        f"\n[dim]Grounding: {supported}/{len(claims)} sentences supported; citation precision "
        f"{g.citation_precision:.2f}, recall {g.citation_recall:.2f}. Mode: "
        f"{'extractive' if answer.quotes else answer.model}"
        f"{f' (fell back from {answer.model})' if answer.fell_back else ''}; "
        f"{answer.timings_ms.get('total', 0):.0f} ms.[/dim]"
    )


_CHECK_STYLE = {"supported": "green", "unsupported": "red", "missing": "yellow", "uncited": "cyan", "no_claim": "dim"}


def print_check(report: DraftReport) -> None:
    """`FILE:LINE: verdict [keys]`, the sentence, what the cited abstract says or what to cite
    instead; then the entries not in the corpus and a summary line."""
    for claim in report.claims:
        keys = f" [{', '.join(claim.keys)}]" if claim.keys else ""
        head = Text(f"{report.file}:{claim.line}: ")
        head.append(claim.label, style=_CHECK_STYLE.get(claim.verdict, ""))
        head.append(keys)
        console.print(head)
        console.print(Text(f"  {_snippet(claim.sentence, 300)}"))
        if claim.closest:
            console.print(Text(f"  the cited abstract says: {_snippet(claim.closest, 300)}", style="dim"))
        if claim.suggestion:
            s = claim.suggestion
            key = f" [{s['key']}]" if s.get("key") else " (not in the .bib file)"
            console.print(Text(f"  supported by: {s['title']} ({s['paper_id']}){key}", style="cyan"))
    if report.not_in_corpus:
        listed = ", ".join(c.key for c in report.not_in_corpus)
        bibs = " ".join(report.bib) or "FILE.bib"
        print(
            f"rag: {_count(len(report.not_in_corpus), 'cited entry is', 'cited entries are')} not in the corpus ({listed}); "
            f"add those with an abstract field with `rag ingest {bibs}`",
            file=sys.stderr,
        )
    s = report.summary
    parts = [f"{s['supported']} supported", f"{s['unsupported']} not supported by the cited paper"]
    parts.append(f"{s['missing']} cited paper not in corpus")
    if s["uncited"]:
        parts.append(f"{s['uncited']} uncited with a suggestion")
    checked = _count(s["checked"], "citing sentence", "citing sentences")
    console.print(Text(f"{report.file}: {checked} checked: " + ", ".join(parts)))
