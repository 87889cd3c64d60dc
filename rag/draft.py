"""`rag check`: a researcher's own draft (LaTeX or Markdown) checked against the papers it cites.

A draft is turned into sentences with their source line and the citation keys they carry
(pylatexenc walks LaTeX, markdown-it-py parses Markdown, pandoc-style `[@key]` citations are read
from its text). Keys resolve through a .bib file (bibtexparser) to corpus papers, matched by arXiv
id, DOI or normalised title. Each citing sentence is judged by the same grounding verifier that
checks `rag ask`'s answers, against the abstracts of the papers it cites. No UI here: the CLI and
the MCP server render the `DraftReport`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag.bibtex import BibEntry, PaperMeta, arxiv_id_of, read_bib
from rag.corpus import CorpusError, normalise_title
from rag.errors import RagError
from rag.grounding import GROUNDING, NO_CLAIM, SUPPORTED, Verifier, check, makes_claim
from rag.sanitise import clean
from rag.sentences import split_sentences
from rag.store import abstract_of, chunk_rows
from rag.terms import terms

if TYPE_CHECKING:
    from rag.retrieval import Retriever
    from rag.store import Store

# Verdicts of a draft sentence (the JSON's `verdict`), and how the terminal says them.
MISSING = "missing"  # a cited paper is not in the corpus, and those that are do not support it
UNSUPPORTED = "unsupported"
UNCITED = "uncited"  # only with --suggest: no citation, but a corpus paper supports it
VERDICTS = (SUPPORTED, UNSUPPORTED, MISSING, UNCITED, NO_CLAIM)
LABELS = {
    SUPPORTED: "supported",
    UNSUPPORTED: "not supported by the cited paper",
    MISSING: "cited paper not in corpus",
    UNCITED: "uncited claim",
    NO_CLAIM: "no checkable claim",
}
BAD_CITATION_LABEL = "cites a source that was not given"
FailOn = Literal["unsupported", "missing", "never"]


@dataclass(frozen=True)
class DraftTuning:
    """`rag check`'s numbers for suggesting papers. Both set by hand with `rag check` (commit
    88e9453); nothing fitted them (the labelled drafts in eval/drafts measure verdicts, not
    suggestions)."""

    # retrieved papers tried as a suggestion for one sentence (hand-set)
    suggest_depth: int = 5
    # --suggest looks for a paper for an uncited sentence only when it has this many content words
    # beyond the grounding check's minimum for a claim (hand-set)
    uncited_extra_terms: int = 2


DRAFT = DraftTuning()

_MARK = re.compile(r"\s*\[@@(\d+)\]")  # a citation's place in the extracted text
_DRAFT_SUFFIXES = {".tex": "latex", ".latex": "latex", ".md": "markdown", ".markdown": "markdown"}


class DraftError(RagError):
    """A draft that cannot be read or resolved; the message names the file and line."""


@dataclass
class DraftSentence:
    text: str  # plain text, citations removed
    line: int
    keys: list[str]


@dataclass
class Draft:
    path: Path
    kind: str  # "latex" | "markdown"
    sentences: list[DraftSentence]
    bib_names: list[str] = field(default_factory=list)  # as \bibliography{} or front matter names them
    empty_cites: list[int] = field(default_factory=list)  # lines of citations that name no key: \cite{}, [@]
    unread: list[str] = field(default_factory=list)  # files \input{} or \include{} names: not read here


# ---- reading drafts ----------------------------------------------------------------------------


def _read_source(path: Path) -> str:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise DraftError(f"{path}: {what}; give a .tex or .md draft")
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DraftError(f"{path}: is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in data[:8192]:
        raise DraftError(f"{path}: looks like a binary file, not a .tex or .md draft")
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n")  # a draft saved on Windows reads the same
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DraftError(f"{path}:{line}: invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None
    # escape sequences (text pasted from a terminal) never reach the terminal, and a zero-width space
    # does not split "59\u200b7" into two numbers; a bare CR becomes a line end, so lines still count
    return clean(text)


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, max(0, pos)) + 1


def clean_sentence(text: str) -> str:
    text = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", _MARK.sub("", text).strip())  # a list item's bullet
    # brackets that held only a citation: "()", "(e.g., )", "(see )"
    text = re.sub(r"\(\s*(?:(?:e\.g|i\.e|cf)\.,?|see)?\s*\)", "", " ".join(text.split())).replace("( ", "(")
    return re.sub(r"\s+([.,;:!?)])", r"\1", " ".join(text.split())).strip()


# Citations right after a sentence's end (". \\cite{k}", ".\\footnote{\\cite{k}}", ". [@k]")
_MARKS_AFTER_END = re.compile(r"([.!?]+[\"'”’)]*)((?:\s*\[@@\d+\])+)(?=\s*(.?))")


def _marks_before_end(flat: str) -> str:
    """`flat` with citations that follow a sentence's end moved before it: they cite that sentence
    (as rag ask reads "queries. [1]"), unless a lower-case word follows, which makes them the start
    of the next ("\\cite{a} show that ..."). Same length, so offsets into `flat` still hold."""

    def move(m: re.Match[str]) -> str:
        return m.group(0) if m.group(3).islower() else m.group(2) + m.group(1)

    return _MARKS_AFTER_END.sub(move, flat)


def _sentences(text: str, line_of: Callable[[int], int], cites: list[list[str]]) -> list[DraftSentence]:
    """Sentences of extracted text (paragraphs at blank lines), each with its line and keys."""
    out: list[DraftSentence] = []
    for para in re.finditer(r"(?:[^\n]|\n(?![ \t\r\f\v]*\n))+", text):
        flat = _marks_before_end(para.group(0).replace("\n", " "))
        cursor = 0
        for sentence in split_sentences(flat):
            head = sentence[:20]
            found = flat.find(head, cursor)
            start = found if found >= 0 else cursor
            cursor = start + len(head) if found >= 0 else cursor
            keys: list[str] = []
            for m in _MARK.finditer(sentence):
                keys += [k for k in cites[int(m.group(1))] if k not in keys]
            clean = clean_sentence(sentence)
            if not keys and not re.search(r"\w", clean):
                continue  # punctuation alone: the full stop after a footnote read apart
            if clean or keys:
                out.append(DraftSentence(clean, line_of(para.start() + start), keys))
    return out


_CITE_MACROS = (
    "cite citep citet citealp citealt citeauthor citeyear citenum parencite textcite autocite footcite "
    "footcitetext supercite smartcite fullcite Cite Citep Citet Citealp Citealt Parencite Textcite Autocite "
    "Smartcite nocite"
).split()
# biblatex's multi-citations: \cites{a}{b}, each key group after the first a group of its own
_MULTI_CITE_MACROS = (
    "cites parencites textcites autocites footcites supercites smartcites Cites Parencites Textcites Autocites "
    "Smartcites"
).split()
_MORE_CITE_GROUPS = re.compile(r"(?:\[[^\[\]]*\]|\{[^{}]*\})*")
_NOTE_MACROS = ("footnote", "footnotetext")  # their text is read, citations included (see `walk`)
_BIB_MACROS = ("bibliography", "addbibresource")
_INPUT_MACROS = ("input", "include", "subfile")  # another file's text: named, not followed
# A macro whose argument cites (\textbf{... \cite{k}}, \caption{...}) is read inside, not flattened to
# text (which drops the citation); a heading or caption is a paragraph of its own.
_CITE_NAMES = "|".join(sorted({*_CITE_MACROS, *_MULTI_CITE_MACROS}, key=len, reverse=True))
_CITES_INSIDE = re.compile(rf"\\(?:{_CITE_NAMES})\b")
_OWN_PARAGRAPH = {"part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph", "caption"}
_VERBATIM_ENVS = {"verbatim", "verbatim*", "lstlisting", "minted", "comment"}
_MATH_ENVS = {"equation", "equation*", "align", "align*", "gather", "gather*", "multline", "eqnarray", "displaymath"}


# Inline math a claim states in words: "$\\sim$600" is "about 600", "$>500$" "more than 500"
_MATH_WORDS = {
    "sim": "about", "approx": "about", "simeq": "about", "geq": "at least", "ge": "at least",
    "geqslant": "at least", "leq": "at most", "le": "at most", "leqslant": "at most", "gg": "far more than",
    "ll": "far less than", "gt": "more than", "lt": "less than", "times": "×", "pm": "±", "%": "%",
}  # fmt: skip
_MATH_MACRO = re.compile(r"\\(%|[A-Za-z]+)")
_MATH_TEXT = re.compile(r"\\(?:mathrm|text|textrm|mathit|mathbf|mathsf|operatorname)\s*\{([^{}]*)\}")


def _math_words(latex: str) -> str:
    """Simple inline math as the words it stands for ("$24.8\\,\\%$" -> "24.8%", "$>500$" ->
    "more than 500"); anything else stays as written."""
    inner = re.sub(r"^\$|\$$|^\\\(|\\\)$", "", latex.strip())
    text = _MATH_TEXT.sub(r"\1", inner)
    text = re.sub(r"\\[,;:! ]|~|[{}]", " ", text).replace(">", " \\gt ").replace("<", " \\lt ")
    text = _MATH_MACRO.sub(lambda m: f" {_MATH_WORDS[m.group(1)]} " if m.group(1) in _MATH_WORDS else m.group(0), text)
    if "\\" in text or "^" in text or "_" in text:
        return latex  # real mathematics: shown and checked as written
    words = re.sub(r"(?<=\d)\s+%", "%", " ".join(text.split()))
    return (" " if text[:1].isspace() else "") + words + (" " if text[-1:].isspace() else "")


def _latex_walker(source: str):
    from pylatexenc.latexwalker import LatexWalker, get_default_latex_context_db
    from pylatexenc.macrospec import MacroSpec

    db = get_default_latex_context_db()
    db.add_context_category(
        "rag-citations",
        macros=[MacroSpec(name, "*[[{") for name in _CITE_MACROS]
        + [MacroSpec(name, "[[{") for name in _MULTI_CITE_MACROS]
        + [MacroSpec(name, "[{") for name in (*_BIB_MACROS, *_NOTE_MACROS)]
        + [MacroSpec(name, "{") for name in _INPUT_MACROS],
        prepend=True,
    )
    return LatexWalker(source, latex_context=db, tolerant_parsing=False)


def _arg_text(node, index: int = -1) -> str:
    args = node.nodeargd.argnlist if node.nodeargd else []
    arg = args[index] if args else None
    if arg is None:
        return ""
    return arg.latex_verbatim().strip()[1:-1] if arg.latex_verbatim().strip().startswith("{") else ""


def _unclosed(source: str) -> tuple[int, str] | None:
    """The line and name of the first '{' or \\begin{env} nothing closes (escaped braces and
    comments aside): the parser only notices where the file or the enclosing environment ends."""
    opened: list[tuple[int, str]] = []
    line = 1
    for m in re.finditer(r"\\(begin|end)\s*\{([^{}]*)\}|\\.|%[^\n]*|[{}\n]", source):
        token = m.group()
        line += token.count("\n") if m.group(1) else 0
        if m.group(1) == "begin":
            opened.append((line, f"\\begin{{{m.group(2)}}}"))
        elif m.group(1) == "end":
            name = f"\\begin{{{m.group(2)}}}"
            if opened and opened[-1][1] == name:
                opened.pop()
            elif name in (n for _, n in opened):  # it ends inside a group or environment it opened
                return opened[-1]
        elif token == "\n":
            line += 1
        elif token == "{":
            opened.append((line, "{"))
        elif token == "}" and opened and opened[-1][1] == "{":
            opened.pop()
    return opened[0] if opened else None


# Text a LaTeX draft switches off: `\iffalse ... \fi` and the comment package's environment.
_SWITCHED_OFF = re.compile(r"\\iffalse\b.*?\\fi\b|\\begin\{comment\}.*?\\end\{comment\}", re.S)


def _switched_off_blanked(source: str) -> str:
    """`source` with switched-off text blanked, its lines kept so later line numbers still hold."""
    return _SWITCHED_OFF.sub(lambda m: "\n" * m.group().count("\n"), source)


def read_latex(path: Path, source: str) -> Draft:
    from pylatexenc.latex2text import LatexNodes2Text
    from pylatexenc.latexwalker import (
        LatexCharsNode,
        LatexCommentNode,
        LatexEnvironmentNode,
        LatexGroupNode,
        LatexMacroNode,
        LatexMathNode,
        LatexWalkerParseError,
    )

    source = _switched_off_blanked(source)
    try:
        nodes, _, _ = _latex_walker(source).get_latex_nodes()
    except LatexWalkerParseError as exc:
        first = str(exc).splitlines()[0]
        first = re.sub(r"\s*@\(\d+,\d+\)\s*$", "", first)
        line = getattr(exc, "lineno", None) or 1
        if opened := _unclosed(source):
            line, what = opened
            close = "}" if what == "{" else what.replace("begin", "end", 1)
            raise DraftError(f"{path}:{line}: this {what} is never closed; add the missing {close}") from None
        raise DraftError(
            f"{path}:{line}: cannot parse the LaTeX: {first} (unbalanced braces or environments?)"
        ) from None
    l2t = LatexNodes2Text(math_mode="verbatim")
    pieces: list[str] = []
    starts: list[tuple[int, int, bool]] = []  # (text offset, source offset, verbatim chars?)
    cites: list[list[str]] = []
    bib_names: list[str] = []
    empty_cites: list[int] = []
    unread: list[str] = []
    offset = 0
    marks_only = False  # inside a note that only cites ("See \\cite{a}."): its citations, not its words

    def emit(text: str, pos: int, chars: bool = False) -> None:
        nonlocal offset
        if marks_only and not _MARK.fullmatch(text):
            return
        starts.append((offset, pos, chars))
        pieces.append(text)
        offset += len(text)

    def _cites(node) -> bool:  # l2t would write a citation as "<cit.>", a word of a claim
        return isinstance(node, LatexMacroNode) and node.macroname in (*_CITE_MACROS, *_MULTI_CITE_MACROS)

    def walk(nodelist) -> None:
        nonlocal marks_only
        nodes = list(nodelist or [])
        i = 0
        while i < len(nodes):
            node = nodes[i]
            i += 1
            if isinstance(node, LatexCommentNode):
                continue
            if isinstance(node, LatexMacroNode) and node.macroname in _MULTI_CITE_MACROS:
                keys = [k.strip() for k in _arg_text(node).split(",") if k.strip()]
                end = node.pos + node.len
                more = _MORE_CITE_GROUPS.match(source, end)  # [pre][post]{keys}, each after the first
                for group in re.findall(r"\{([^{}]*)\}", more.group(0) if more else ""):
                    keys += [k.strip() for k in group.split(",") if k.strip()]
                end = more.end() if more else end
                while i < len(nodes) and nodes[i].pos < end:
                    i += 1
                if keys:
                    cites.append(keys)
                    emit(f" [@@{len(cites) - 1}]", node.pos)
                else:
                    empty_cites.append(_line_at(source, node.pos))
                continue
            if isinstance(node, LatexMacroNode) and node.macroname in _NOTE_MACROS:
                args = node.nodeargd.argnlist if node.nodeargd else []
                note = args[-1] if args else None
                # a note that only cites ("See \\cite{a}.") lends its citations, not its words, to
                # the sentence it annotates; one with a claim of its own is a paragraph apart (read
                # where it stands, "...\\footnote{It has 12 queries.}." joined two claims)
                apart = isinstance(note, LatexGroupNode) and makes_claim(
                    l2t.nodelist_to_text([n for n in note.nodelist if not _cites(n)]), cited=False
                )
                emit("\n\n" if apart else " ", node.pos)
                if isinstance(note, LatexGroupNode):
                    outer, marks_only = marks_only, marks_only or not apart
                    walk(note.nodelist)
                    marks_only = outer
                if apart:
                    emit("\n\n", node.pos + node.len)
                continue
            if isinstance(node, LatexEnvironmentNode):
                name = node.environmentname
                if name in _VERBATIM_ENVS or name in _MATH_ENVS:
                    emit(" ", node.pos)
                    continue
                emit("\n\n", node.pos)
                walk(node.nodelist)
                emit("\n\n", node.pos + node.len)
                continue
            if isinstance(node, LatexMacroNode) and node.macroname in _CITE_MACROS:
                keys = [k.strip() for k in _arg_text(node).split(",") if k.strip()]
                if node.macroname != "nocite" and keys:
                    cites.append(keys)
                    emit(f" [@@{len(cites) - 1}]", node.pos)
                elif node.macroname != "nocite":
                    empty_cites.append(_line_at(source, node.pos))
                continue
            if isinstance(node, LatexMacroNode) and node.macroname in _BIB_MACROS:
                bib_names.extend(n.strip() for n in _arg_text(node).split(",") if n.strip())
                emit("\n\n", node.pos)
                continue
            if isinstance(node, LatexMacroNode) and node.macroname in _INPUT_MACROS:
                if name := _arg_text(node).strip():
                    unread.append(name)
                emit("\n\n", node.pos)
                continue
            if isinstance(node, LatexCharsNode):
                emit(node.chars, node.pos, chars=True)
                continue
            if isinstance(node, LatexMacroNode | LatexGroupNode) and _CITES_INSIDE.search(node.latex_verbatim()):
                if isinstance(node, LatexGroupNode):
                    walk(node.nodelist)
                    continue
                apart = node.macroname.rstrip("*") in _OWN_PARAGRAPH
                emit("\n\n" if apart else " ", node.pos)
                for arg in node.nodeargd.argnlist if node.nodeargd else []:
                    if isinstance(arg, LatexGroupNode):
                        walk(arg.nodelist)
                emit("\n\n" if apart else "", node.pos + node.len)
                continue
            if isinstance(node, LatexMathNode) and node.displaytype == "inline":
                emit(_math_words(node.latex_verbatim()), node.pos)
                continue
            emit(l2t.nodelist_to_text([node]), node.pos)

    document = next((n for n in nodes if isinstance(n, LatexEnvironmentNode) and n.environmentname == "document"), None)
    if document is not None:
        # the preamble holds no prose, but may name the bibliography (biblatex)
        for node in nodes:
            if isinstance(node, LatexMacroNode) and node.macroname in _BIB_MACROS:
                bib_names.extend(n.strip() for n in _arg_text(node).split(",") if n.strip())
        walk(document.nodelist)
    else:
        walk(nodes)
    text = "".join(pieces)

    def line_of(text_pos: int) -> int:
        lo, hi = 0, len(starts) - 1
        while lo < hi:  # the last piece starting at or before text_pos
            mid = (lo + hi + 1) // 2
            if starts[mid][0] <= text_pos:
                lo = mid
            else:
                hi = mid - 1
        if not starts:
            return 1
        t0, src, chars = starts[lo]
        if chars:
            piece = pieces[lo]
            inside = text_pos - t0
            # the sentence starts after the piece's leading white space
            src += inside
            return _line_at(source, src + len(piece[inside:]) - len(piece[inside:].lstrip()))
        return _line_at(source, src)

    return Draft(path, "latex", _sentences(text, line_of, cites), bib_names, empty_cites, unread)


# A key starts with a letter (any script), digit or _, or is any text in braces: @{10.1000/xyz}.
_PANDOC_GROUP = re.compile(r"\[([^\[\]]*?(?<![\w.])-?@(?:\w|\{)[^\[\]]*)\](?!\()")
_PANDOC_KEY = re.compile(r"(?<![\w.@/:])-?@(?:\{([^{}\s]+)\}|(\w(?:[\w:.#$%&+?<>~/-]*\w)?))")
# an in-text citation may carry its locator in brackets after it: "@doe99 [p. 33] says"
_PANDOC_IN_TEXT = re.compile(_PANDOC_KEY.pattern + r"(?:[ \t]?\[[^\[\]@\n]*\](?![(\[]))?")
_AT = "\ue000"  # a literal @ while citations are read (a private-use character no draft holds)
_PANDOC_EMPTY = re.compile(r"\[\s*-?@\s*(?:;\s*-?@\s*)*\]")  # a citation naming no key: [@]
_FOOTNOTE_LABEL = re.compile(r"\[\^[^\]\s]+\]:?")  # pandoc's [^1] marks and "[^1]:" definitions
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*\n", re.S)


def _line_counter(text: str, first: int) -> Callable[[int], int]:
    return lambda pos: first + text.count("\n", 0, pos)


def _front_matter_bibliography(front: str, path: Path) -> list[str]:
    """The files pandoc's `bibliography:` names, in any of YAML's forms: one path, a flow list
    (`[a.bib, b.bib]`) or a block list (one `- a.bib` line each). A list left open or a mapping
    is a mistake to name, not a file to look for ("[unclosed.bib")."""
    lines = front.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"bibliography:[ \t]*(.*?)\s*$", line)
        if not m:
            continue
        value = m.group(1)
        where = f"{path}:{i + 2}"  # the front matter starts on the line after the opening ---
        if value.startswith("[") and not value.endswith("]"):
            raise DraftError(f"{where}: the bibliography list is never closed; end it with ]")
        if value.startswith("{"):
            raise DraftError(f"{where}: bibliography names files, not a mapping; write bibliography: refs.bib")
        if value.startswith("["):
            items = value.strip("[]").split(",")
        elif value:
            items = [value]
        else:
            items = []
            for item in lines[i + 1 :]:
                listed = re.match(r"\s*-\s*(.+?)\s*$", item)
                if not listed:
                    break
                items.append(listed.group(1))
        return [name for item in items if (name := item.strip().strip("'\"").strip())]
    return []


# Where a Markdown draft holds prose: paragraphs, headings and table cells (and an HTML block that
# cites, read with its tags taken out).
_PROSE_OPEN = {"paragraph_open", "heading_open", "th_open", "td_open"}


_FOOTNOTE_DEFINITION = re.compile(r"^\[\^([^\]\s]+)\]:[ \t]*(.*)$", re.M)


def _citing_footnotes_lent(source: str) -> str:
    """`source` with each footnote that only cites ("[^1]: See [@a].") lending its citations to the
    sentence that carries its mark, as a LaTeX note that only cites does; the definition's line is
    left blank, so line numbers hold. A footnote with a claim of its own stays, checked apart."""
    lent: dict[str, str] = {}

    def definition(m: re.Match[str]) -> str:
        body = m.group(2)
        groups = [g.group(0) for g in _PANDOC_GROUP.finditer(body)]
        rest = _PANDOC_GROUP.sub(" ", body)
        groups += [f"[{k.group(0)}]" for k in _PANDOC_KEY.finditer(rest)]
        if not groups or makes_claim(_PANDOC_KEY.sub(" ", rest), cited=False):
            return m.group(0)
        lent[m.group(1)] = " ".join(groups)
        return ""

    source = _FOOTNOTE_DEFINITION.sub(definition, source)
    if not lent:
        return source
    marks = re.compile(r"\[\^(" + "|".join(re.escape(label) for label in lent) + r")\](?!:)")
    return marks.sub(lambda m: " " + lent[m.group(1)], source)


def read_markdown(path: Path, source: str) -> Draft:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

    bib_names: list[str] = []
    front = _FRONT_MATTER.match(source)
    if front:
        bib_names = _front_matter_bibliography(front.group(1), path)
        source = "\n" * front.group(0).count("\n") + source[front.end() :]  # keep line numbers
    # "\@" is pandoc's literal @, and an address's @ ("<https://medium.com/@someone>") no citation:
    # both stand as _AT until the citations are read
    tokens = MarkdownIt("commonmark").enable("table").parse(_citing_footnotes_lent(source.replace("\\@", _AT)))
    sentences: list[DraftSentence] = []
    cites: list[list[str]] = []
    empty_cites: list[int] = []
    for i, token in enumerate(tokens):
        if token.type == "html_block" and token.map and _PANDOC_GROUP.search(token.content):
            token.children = [Token("text", "", 0, content=re.sub(r"<[^>]*>", " ", token.content))]
        elif token.type != "inline" or i == 0 or tokens[i - 1].type not in _PROSE_OPEN or not token.map:
            continue

        def group(m: re.Match[str]) -> str:
            keys = [braced or plain for braced, plain in _PANDOC_KEY.findall(m.group(1))]
            cites.append(keys)
            return f" [@@{len(cites) - 1}]"

        def bare(m: re.Match[str]) -> str:  # an in-text citation: "@doe99 shows that ..."
            cites.append([m.group(1) or m.group(2)])
            return f"[@@{len(cites) - 1}]"

        pieces: list[tuple[bool, str]] = []  # (in a code span, text): `[@key]` in code is code, as for pandoc
        in_autolink = False
        for child in token.children or []:
            if child.type in ("link_open", "link_close"):
                in_autolink = child.type == "link_open" and child.markup == "autolink"
            elif child.type in ("text", "image", "code_inline"):
                content = child.content.replace("@", _AT) if in_autolink else child.content
                pieces.append((child.type == "code_inline", content))
            elif child.type in ("softbreak", "hardbreak"):
                pieces.append((False, "\n"))
        text = ""
        line_of = _line_counter(text, token.map[0] + 1)
        for code, run in groupby(pieces, key=lambda piece: piece[0]):
            joined = "".join(t for _, t in run)
            if not code:
                empty_cites += [
                    line_of(len(text)) + joined.count("\n", 0, m.start()) for m in _PANDOC_EMPTY.finditer(joined)
                ]
                joined = _PANDOC_IN_TEXT.sub(bare, _PANDOC_GROUP.sub(group, _FOOTNOTE_LABEL.sub("", joined)))
            text += joined.replace(_AT, "@")
        sentences += _sentences(text, _line_counter(text, token.map[0] + 1), cites)
    return Draft(path, "markdown", sentences, bib_names, empty_cites)


def read_draft(path: Path) -> Draft:
    """Sentences of a .tex or .md draft with their lines and citation keys."""
    path = Path(path)
    if path.is_dir():
        raise DraftError(f"{path}: is a directory; give a .tex or .md file")
    kind = _DRAFT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DraftError(f"{path}: unknown draft type {path.suffix or '(none)'!r}; give a .tex or .md file")
    source = _read_source(path)
    if not source.strip():
        raise DraftError(f"{path}: the draft is empty; nothing to check")
    return read_latex(path, source) if kind == "latex" else read_markdown(path, source)


def bib_for(draft: Draft, bib: Path | None) -> list[Path]:
    """The .bib files for a draft: `bib` if given, else those the draft names, next to it; none
    for a draft that cites nothing (its uncited sentences can still be given --suggest)."""
    if bib is not None:
        return [Path(bib)]
    if not draft.bib_names and not any(s.keys for s in draft.sentences):
        return []
    if not draft.bib_names:
        how = "\\bibliography{}" if draft.kind == "latex" else "a `bibliography:` front-matter line"
        raise DraftError(f"{draft.path}: no .bib file given and none named by {how}; pass --bib FILE")
    paths: list[Path] = []
    for name in draft.bib_names:
        p = Path(name)
        p = p if p.suffix.lower() == ".bib" else p.with_name(p.name + ".bib")
        p = p if p.is_absolute() else draft.path.parent / p
        if p not in paths:
            paths.append(p)
    return paths


def load_entries(paths: Iterable[Path]) -> dict[str, BibEntry]:
    entries: dict[str, BibEntry] = {}
    for path in paths:
        try:
            for entry in read_bib(path):
                entries.setdefault(entry.key, entry)
        except CorpusError as exc:
            raise DraftError(str(exc)) from None
    return entries


# ---- matching bib entries to corpus papers -----------------------------------------------------


def _meta(m: Mapping[str, Any], document: str) -> PaperMeta:
    return PaperMeta(
        paper_id=str(m["paper_id"]),
        title=str(m["title"]),
        authors=str(m.get("authors", "")),
        year=str(m.get("year", "")),
        url=str(m.get("url", "")),
        arxiv_id=str(m.get("arxiv_id", "")),
        doi=str(m.get("doi", "")),
        abstract=abstract_of(m, document),
    )


def paper_metas(store: Store, paper_ids: list[str]) -> list[PaperMeta]:
    """Metadata of stored papers, in the order of `paper_ids` (unknown ids left out)."""
    if not paper_ids:
        return []
    got = store.collection.get(
        where={"$and": [{"paper_id": {"$in": list(paper_ids)}}, {"chunk": 0}]}, include=["metadatas", "documents"]
    )
    found = {str(m["paper_id"]): _meta(m, text) for _, text, m in chunk_rows(got)}
    return [found[p] for p in paper_ids if p in found]


class CorpusIndex:
    """Stored papers by arXiv id, DOI and normalised title, for matching bib entries."""

    def __init__(self, papers: Iterable[PaperMeta]) -> None:
        self.papers: dict[str, PaperMeta] = {}
        self.by_arxiv: dict[str, str] = {}
        self.by_doi: dict[str, str] = {}
        self.by_title: dict[str, str] = {}
        for meta in papers:
            self.papers[meta.paper_id] = meta
            if arxiv := arxiv_id_of(meta):
                self.by_arxiv.setdefault(arxiv.lower(), meta.paper_id)
            doi = meta.doi or (meta.url.split("doi.org/", 1)[1] if "doi.org/" in meta.url else "")
            if doi:
                self.by_doi.setdefault(doi.lower(), meta.paper_id)
            self.by_title.setdefault(normalise_title(meta.title), meta.paper_id)

    @classmethod
    def from_store(cls, store: Store, page: int = 5000) -> CorpusIndex:
        metas = []
        offset = 0
        while True:
            got = store.collection.get(
                where={"chunk": 0}, include=["metadatas", "documents"], limit=page, offset=offset
            )
            metas += [_meta(m, text) for _, text, m in chunk_rows(got)]
            if len(got["ids"]) < page:
                break
            offset += page
        return cls(metas)

    def match(self, entry: BibEntry) -> PaperMeta | None:
        pid = (
            (self.by_arxiv.get(entry.arxiv_id.lower()) if entry.arxiv_id else None)
            or (self.by_doi.get(entry.doi) if entry.doi else None)
            or (self.by_title.get(normalise_title(entry.title)) if entry.title else None)
        )
        return self.papers.get(pid) if pid else None


# ---- judging -------------------------------------------------------------------------------------


def closest_sentence(claim: str, abstract: str) -> str:
    """The abstract sentence sharing the most content words with the claim."""
    sents = split_sentences(abstract) or [abstract]
    claim_terms = terms(claim)
    return max(sents, key=lambda s: len(claim_terms & terms(s)))


def judge(claim: str, papers: list[PaperMeta], verifier: Verifier | None = None) -> tuple[str, float]:
    """(verdict, score) of one claim against the abstracts of `papers`, by the grounding check."""
    if not papers:
        return MISSING, 0.0
    numbers = ", ".join(str(i + 1) for i in range(len(papers)))
    answer = f"{claim.rstrip(' .;:')} [{numbers}]."
    sources = {i + 1: (p.title, p.abstract) for i, p in enumerate(papers)}
    checked = check(answer, sources, verifier).sentences
    if not checked:
        return NO_CLAIM, 0.0
    last = checked[-1]
    return last.verdict, last.score


@dataclass
class CitedPaper:
    key: str
    paper_id: str | None
    title: str

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "paper_id": self.paper_id, "title": self.title}


@dataclass
class ClaimCheck:
    line: int
    sentence: str
    keys: list[str]
    verdict: str
    score: float = 0.0
    cited: list[CitedPaper] = field(default_factory=list)
    closest: str | None = None  # the closest sentence of the cited abstracts, when unsupported
    suggestion: dict[str, Any] | None = None  # a corpus paper that supports it: paper_id, title, key

    @property
    def label(self) -> str:
        return LABELS[self.verdict]

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "sentence": self.sentence,
            "keys": self.keys,
            "verdict": self.verdict,
            "score": round(self.score, 3),
            "cited": [c.as_json() for c in self.cited],
            "closest": self.closest,
            "suggestion": self.suggestion,
        }


@dataclass
class DraftReport:
    file: str
    bib: list[str]
    claims: list[ClaimCheck]
    not_in_corpus: list[CitedPaper]

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.claims)

    @property
    def summary(self) -> dict[str, int]:
        return {
            "checked": sum(c.verdict in (SUPPORTED, UNSUPPORTED, MISSING) for c in self.claims),
            **{v: self.count(v) for v in VERDICTS},
            "entries_not_in_corpus": len(self.not_in_corpus),
        }

    def failed(self, fail_on: FailOn) -> bool:
        if fail_on == "never":
            return False
        if fail_on == "missing":
            return bool(self.count(UNSUPPORTED) or self.count(MISSING))
        return bool(self.count(UNSUPPORTED))

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "bib": self.bib,
            "claims": [c.as_json() for c in self.claims],
            "not_in_corpus": [c.as_json() for c in self.not_in_corpus],
            "summary": self.summary,
        }


class Checker:
    """Judges claims against cited corpus papers and finds a corpus paper that supports a claim."""

    def __init__(
        self, index: CorpusIndex, retriever: Retriever | None = None, verifier: Verifier | None = None
    ) -> None:
        self.index = index
        self.retriever = retriever
        self.verifier = verifier

    def supporting_paper(self, claim: str, exclude: Iterable[str] = ()) -> PaperMeta | None:
        """The best-ranked of the top retrieved papers (not in `exclude`) whose abstract supports `claim`."""
        if self.retriever is None:
            return None
        hits = self.retriever.search(claim, k=DRAFT.suggest_depth, exclude=set(exclude)).results
        for hit in hits:
            meta = self.index.papers.get(hit.paper_id)
            if meta is not None and judge(claim, [meta], self.verifier)[0] == SUPPORTED:
                return meta
        return None

    def claim(
        self,
        line: int,
        sentence: str,
        cited: list[CitedPaper],
        suggest: bool = True,
        keys_by_paper: dict[str, str] | None = None,
    ) -> ClaimCheck:
        """The verdict of one sentence citing `cited` (paper_id None: not in the corpus)."""
        keys = [c.key for c in cited]
        if not makes_claim(sentence, cited=True):
            return ClaimCheck(line, sentence, keys, NO_CLAIM, cited=cited)
        found = [self.index.papers[c.paper_id] for c in cited if c.paper_id in self.index.papers]
        if not found:
            verdict, score = MISSING, 0.0
        else:
            verdict, score = judge(sentence, found, self.verifier)
            if verdict != SUPPORTED and len(found) < len(cited):
                verdict = MISSING  # the missing paper may be the one that supports it
        result = ClaimCheck(line, sentence, keys, verdict, score, cited)
        if verdict == UNSUPPORTED:
            best = max(found, key=lambda p: len(terms(sentence) & terms(closest_sentence(sentence, p.abstract))))
            result.closest = closest_sentence(sentence, best.abstract)
        if verdict in (UNSUPPORTED, MISSING) and suggest:
            other = self.supporting_paper(sentence, exclude=[p.paper_id for p in found])
            if other is not None:
                result.suggestion = _suggestion(other, keys_by_paper)
        return result


def _suggestion(meta: PaperMeta, keys_by_paper: dict[str, str] | None) -> dict[str, Any]:
    return {"paper_id": meta.paper_id, "title": meta.title, "key": (keys_by_paper or {}).get(meta.paper_id)}


def check_draft(
    draft: Draft,
    entries: dict[str, BibEntry],
    checker: Checker,
    bib_paths: list[Path] | None = None,
    suggest_uncited: bool = False,
) -> DraftReport:
    """Every citing sentence of `draft` judged; with `suggest_uncited`, uncited checkable sentences
    that a corpus paper supports are reported too, with that paper."""
    if draft.empty_cites:
        lines = ", ".join(str(n) for n in draft.empty_cites[1:])
        also = f" (also on line{'s' if len(draft.empty_cites) > 2 else ''} {lines})" if lines else ""
        raise DraftError(
            f"{draft.path}:{draft.empty_cites[0]}: a citation names no key{also}; add the key or remove it"
        )
    unknown: dict[str, int] = {}  # key -> first line citing it: all named at once, not one a run
    for s in draft.sentences:
        for key in s.keys:
            if key not in entries:
                unknown.setdefault(key, s.line)
    if unknown:
        names = ", ".join(str(p) for p in bib_paths or []) or "the .bib file"
        (key, line), *more = unknown.items()
        also = f" (also {', '.join(f'{k!r} on line {n}' for k, n in more)})" if more else ""
        raise DraftError(
            f"{draft.path}:{line}: citation key {key!r} is not in {names}{also}; "
            + ("add them or fix the keys" if more else "add it or fix the key")
        )
    matched = {key: checker.index.match(entry) for key, entry in entries.items()}
    keys_by_paper = {m.paper_id: key for key, m in matched.items() if m is not None}
    cited_keys = {k for s in draft.sentences for k in s.keys}
    claims: list[ClaimCheck] = []
    for s in draft.sentences:
        if s.keys:
            cited = []
            for k in s.keys:
                meta = matched[k]
                cited.append(CitedPaper(k, meta.paper_id if meta else None, meta.title if meta else entries[k].title))
            claims.append(checker.claim(s.line, s.text, cited, keys_by_paper=keys_by_paper))
        elif (
            suggest_uncited
            and makes_claim(s.text, cited=False)
            and len(terms(s.text)) >= GROUNDING.min_claim_terms + DRAFT.uncited_extra_terms
        ):
            other = checker.supporting_paper(s.text)
            if other is not None:
                claims.append(ClaimCheck(s.line, s.text, [], UNCITED, suggestion=_suggestion(other, keys_by_paper)))
    missing = [CitedPaper(k, None, entries[k].title) for k in entries if k in cited_keys and matched[k] is None]
    return DraftReport(str(draft.path), [str(p) for p in bib_paths or []], claims, missing)


# ---- measuring on a labelled set ---------------------------------------------------------------


def measure(rows: list[dict[str, Any]], entries: dict[str, BibEntry], checker: Checker) -> dict[str, Any]:
    """Balanced accuracy and the precision of the "not supported" flag on labelled sentences
    (`sentence`, `keys`, `label` supported|unsupported, `kind`); sentences whose cited papers are
    not in the corpus are counted apart, not scored."""
    tp = tn = fp = fn = 0
    by_kind: dict[str, list[bool]] = {}
    skipped = 0
    for row in rows:
        cited = []
        for key in row["keys"]:
            meta = checker.index.match(entries[key]) if key in entries else None
            cited.append(CitedPaper(key, meta.paper_id if meta else None, meta.title if meta else ""))
        result = checker.claim(0, row["sentence"], cited, suggest=False)
        if result.verdict in (MISSING, NO_CLAIM):
            skipped += 1
            continue
        said = result.verdict == SUPPORTED
        truth = row["label"] == SUPPORTED
        tp += said and truth
        tn += (not said) and (not truth)
        fp += said and not truth
        fn += (not said) and truth
        by_kind.setdefault(row.get("kind", "?"), []).append(said == truth)
    pos, neg = tp + fn, tn + fp
    tpr = tp / pos if pos else 0.0
    tnr = tn / neg if neg else 0.0
    flagged = tn + fn
    return {
        "sentences": tp + tn + fp + fn,
        "not_scored": skipped,
        "balanced_accuracy": round((tpr + tnr) / 2, 4),
        "unsupported_precision": round(tn / flagged, 4) if flagged else 0.0,
        "tpr": round(tpr, 4),
        "tnr": round(tnr, 4),
        "accuracy_by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
    }


def bundled_drafts() -> Path | None:
    """eval/drafts of a checkout (or the copy a wheel ships), if present."""
    from importlib import resources

    packaged = Path(str(resources.files("rag") / "_drafts"))
    folder = packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "eval" / "drafts"
    return folder if (folder / "labels.jsonl").is_file() else None


def measure_bundled(index: CorpusIndex, verifier: Verifier | None = None) -> dict[str, Any] | None:
    """`measure` on eval/drafts/labels.jsonl with eval/drafts/refs.bib; None when not shipped."""
    from rag.jsonl import read_jsonl

    folder = bundled_drafts()
    if folder is None:
        return None
    rows = [row for _, row in read_jsonl(folder / "labels.jsonl")]
    entries = load_entries([folder / "refs.bib"])
    return measure(rows, entries, Checker(index, None, verifier))
