"""BibTeX in and out: reading `.bib` files (bibtexparser 2) and writing cited papers as entries.

Reading is strict where a silent loss would mislead: a block bibtexparser cannot parse (such as an
unclosed brace) or a repeated key is a `FILE:LINE: problem` error, never skipped. Field values are
turned from LaTeX into text with pylatexenc, so `{BERT}` and `\\emph{x}` match the corpus's plain
titles.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rag.corpus import CorpusError
from rag.errors import quoted
from rag.sanitise import unaccented

_ARXIV_ID = re.compile(r"(?:arxiv[:/]\s*|abs/|pdf/)?(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?", re.I)
_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/([^\s?#]+?)(?:v\d+)?(?:\.pdf)?(?:[?#].*)?$", re.I)
_DOI = re.compile(r"(10\.\d{4,9}/\S+)")


@dataclass(frozen=True)
class BibEntry:
    """One entry: its key, type, fields (lower-case names, values as plain text) and line (1-based)."""

    key: str
    type: str
    fields: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def title(self) -> str:
        return self.fields.get("title", "")

    @property
    def abstract(self) -> str:
        return self.fields.get("abstract", "")

    @property
    def year(self) -> str:
        match = re.search(r"\d{4}", self.fields.get("year", "") or self.fields.get("date", ""))
        return match.group(0) if match else ""

    @property
    def authors(self) -> str:
        """Authors as "First Last, First Last" (BibTeX's "Last, First and ..." turned round)."""
        raw = self.fields.get("author", "")
        names = [n.strip() for n in re.split(r"\s+and\s+", raw) if n.strip()]
        out = []
        for name in names:
            if "," in name:
                last, _, first = name.partition(",")
                name = f"{first.strip()} {last.strip()}".strip()
            out.append(" ".join(name.split()))
        return ", ".join(out)

    @property
    def arxiv_id(self) -> str:
        """From eprint (with archivePrefix arXiv, or an id that looks like one), journal or URL."""
        eprint = self.fields.get("eprint", "")
        prefix = self.fields.get("archiveprefix", "") or self.fields.get("eprinttype", "")
        if eprint and (prefix.lower() == "arxiv" or not prefix):
            match = _ARXIV_ID.fullmatch(eprint.strip())
            if match:
                return match.group(1)
        for name in ("journal", "url", "howpublished", "note"):
            value = self.fields.get(name, "")
            if m := _ARXIV_URL.search(value):
                return m.group(1)
            if "arxiv" in value.lower() and (m := _ARXIV_ID.search(value)):
                return m.group(1)
        return ""

    @property
    def doi(self) -> str:
        value = self.fields.get("doi", "")
        if not value:
            url = self.fields.get("url", "")
            value = url if "doi.org/" in url else ""
        match = _DOI.search(value)
        return match.group(1).rstrip(".").lower() if match else ""


@lru_cache(maxsize=1)
def _latex_to_text():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(strict_latex_spaces=True)


def latex_text(value: str) -> str:
    """A BibTeX value as plain text: braces, accents and simple macros resolved."""
    if not any(c in value for c in "\\{}$~"):
        return " ".join(value.split())
    try:
        text = _latex_to_text().latex_to_text(value)
    except Exception:  # pylatexenc is tolerant; anything odd keeps the raw value
        text = value.replace("{", "").replace("}", "")
    return " ".join(text.replace("\xad", "").split())  # "Lit\\-Search": a hyphenation hint, not a character


def _read_text(path: Path) -> str:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise CorpusError(path, None, f"{what}; give the path of a .bib file")
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CorpusError(path, None, "is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in data[:8192]:
        raise CorpusError(path, None, "looks like a binary file, not a .bib file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(path, line, f"invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None


# One operand of a field's value: "quoted", {braced} (one level of inner braces), or a name; the
# operands are joined by `#`.
_OPERAND = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\{(?:[^{}]|\{[^{}]*\})*\}|[A-Za-z0-9_:.+-]+)\s*(#|$)')


def _field_value(raw: str, strings: dict[str, str], depth: int = 0) -> str:
    """A field's value as BibTeX reads it: delimiters taken off, operands joined by `#`
    ("Alpha Paper on " # wb), @string names resolved; a name nothing defines stays as written,
    and a value that is not such operands is kept whole."""
    operands, pos = [], 0
    while pos < len(raw):
        m = _OPERAND.match(raw, pos)
        if m is None or m.end() == pos:
            return raw
        operands.append(m.group(1))
        pos = m.end()
    parts = []
    for operand in operands:
        if operand[0] in '"{':
            parts.append(operand[1:-1])
        elif (named := strings.get(operand.lower())) is not None and depth < 8:
            parts.append(_field_value(named, strings, depth + 1))
        else:
            parts.append(operand)
    return "".join(parts)


def parse_bib(text: str, path: Path | str = "<bib>") -> list[BibEntry]:
    """Every entry of a BibTeX text; a block that fails to parse or a repeated key is an error."""
    import bibtexparser
    from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock

    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # failures are raised below, not logged
    library = bibtexparser.parse_string(text, parse_stack=[])  # values as written: see _field_value
    for block in library.failed_blocks:
        line = (block.start_line or 0) + 1
        raw = (block.raw or "").strip()
        head = raw.splitlines()[0] if raw else ""
        if isinstance(block, DuplicateBlockKeyBlock):
            raise CorpusError(path, line, f"duplicate key {block.key!r}; each entry needs its own key")
        if isinstance(block, DuplicateFieldKeyBlock):
            key = m.group(1) if (m := re.match(r"@\w+\s*[{(]\s*([^,\s]+)", raw)) else "this entry"
            twice = ", ".join(sorted(block.duplicate_keys))
            raise CorpusError(path, line, f"entry {key} has the field {twice} twice; keep one of them")
        raise CorpusError(
            path, line, f"cannot parse the entry starting {quoted(head)} (unbalanced braces or quotes?); fix the entry"
        )
    strings = {key.lower(): str(block.value) for key, block in library.strings_dict.items()}
    entries = []
    for e in library.entries:
        fields = {f.key.lower(): latex_text(_field_value(str(f.value), strings)) for f in e.fields}
        entries.append(BibEntry(key=e.key, type=e.entry_type.lower(), fields=fields, line=(e.start_line or 0) + 1))
    return entries


def read_bib(path: Path) -> list[BibEntry]:
    """The entries of a .bib file (see parse_bib); a missing, binary or non-UTF-8 file is an error."""
    path = Path(path)
    return parse_bib(_read_text(path), path)


# ---- writing -------------------------------------------------------------------------------------

_STOPWORDS = frozenset("a an the on of in for and to with from towards toward is are via do does".split())


def _ascii_word(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unaccented(text).lower())


def cite_key(title: str, authors: str = "", year: str = "") -> str:
    """A stable key: first author's last name + year + first significant title word
    ("vaswani2017attention"); without authors, the first two title words and the year."""
    words = [w for w in (_ascii_word(w) for w in re.split(r"[\s\-:/]+", title)) if w]
    significant = [w for w in words if w not in _STOPWORDS] or words or ["paper"]
    first_author = re.split(r",|\s+and\s+|;", authors)[0].strip() if authors else ""  # "A. B and C. von D"
    last = _ascii_word(first_author.split()[-1]) if first_author.split() else ""
    if last:
        return f"{last}{year}{significant[0]}"
    return f"{significant[0]}{year}{significant[1] if len(significant) > 1 else ''}"


def _escape(value: str) -> str:
    """A value safe inside braces: TeX specials escaped, braces balanced."""
    value = " ".join(value.split())
    value = re.sub(r"([&%$#_])", r"\\\1", value)
    return value.replace("{", "(").replace("}", ")")


@dataclass(frozen=True)
class PaperMeta:
    """What a BibTeX entry is written from: a stored paper's metadata."""

    paper_id: str
    title: str
    authors: str = ""
    year: str = ""
    url: str = ""
    arxiv_id: str = ""
    doi: str = ""
    abstract: str = ""


def arxiv_id_of(meta: PaperMeta) -> str:
    """The arXiv id stated by the metadata, the URL, or a paper id that is one (arXiv snapshots)."""
    if meta.arxiv_id:
        return meta.arxiv_id
    if m := _ARXIV_URL.search(meta.url):
        return m.group(1)
    if _ARXIV_ID.fullmatch(meta.paper_id) and re.match(r"\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7}", meta.paper_id):
        return re.sub(r"v\d+$", "", meta.paper_id)
    return ""


def to_bibtex(papers: Iterable[PaperMeta], taken: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(key, entry text) for each paper; keys stable across runs and made unique with a, b, ...
    suffixes against each other and against `taken`."""
    used = set(taken)
    out = []
    for meta in papers:
        base = cite_key(meta.title, meta.authors, meta.year)
        key, n = base, 0
        while key in used:
            key = f"{base}{chr(ord('a') + n)}"
            n += 1
        used.add(key)
        arxiv = arxiv_id_of(meta)
        fields = [("title", f"{{{_escape(meta.title)}}}")]
        if meta.authors:
            fields.append(("author", _escape(" and ".join(a.strip() for a in meta.authors.split(",") if a.strip()))))
        if meta.year:
            fields.append(("year", meta.year))
        if arxiv:
            fields += [("eprint", arxiv), ("archivePrefix", "arXiv")]
        if meta.doi:
            fields.append(("doi", _escape(meta.doi)))
        url = meta.url or (f"https://arxiv.org/abs/{arxiv}" if arxiv else "")
        if url:
            fields.append(("url", url.replace("{", "%7B").replace("}", "%7D")))
        kind = "article" if meta.doi else "misc"
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        out.append((key, f"@{kind}{{{key},\n{body}\n}}\n"))
    return out


def check_bib_target(path: Path) -> None:
    """Refuse, before any answer is asked for, a .bib target `write_bib` could not add to: a
    folder, a file in a folder that does not exist, a file that does not parse, or a path that is no
    .bib file (a mistyped `--bib draft.md` must not write into the draft)."""
    path = Path(path)
    if path.suffix.lower() != ".bib" and not path.is_dir():
        raise CorpusError(path, None, "is not a .bib file; give a path ending in .bib")
    if path.is_dir():
        raise CorpusError(path, None, "is a directory; give the path of a .bib file")
    if not path.parent.is_dir():
        raise CorpusError(path, None, f"the folder {path.parent} does not exist; create it or give another path")
    if path.exists():
        read_bib(path)
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        where = "the file" if path.exists() else f"the folder {path.parent}"
        raise CorpusError(path, None, f"cannot be written ({where} is read-only to you); give a writable path")


def write_bib(path: Path, papers: list[PaperMeta]) -> tuple[list[str], int]:
    """Add `papers` to the .bib file at `path` (created if missing); papers whose title is already
    in it are not written again, and existing entries are kept as they are. Returns the keys of
    the papers, new or already present, and how many were written."""
    from rag.corpus import normalise_title

    path = Path(path)
    existing = read_bib(path) if path.exists() else []
    by_title = {normalise_title(e.title): e.key for e in existing if e.title}
    keys: list[str] = []
    new: list[PaperMeta] = []
    for meta in papers:
        if (key := by_title.get(normalise_title(meta.title))) is not None:
            keys.append(key)
        elif meta.paper_id not in {m.paper_id for m in new}:
            new.append(meta)
    entries = to_bibtex(new, taken=[e.key for e in existing])
    keys += [k for k, _ in entries]
    if entries or not path.exists():
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        try:
            path.write_text(text + sep + "\n".join(entry for _, entry in entries), encoding="utf-8")
        except OSError as exc:  # a read-only file system, a full disk: os.access cannot foresee every case
            raise CorpusError(path, None, f"cannot be written ({exc.strerror or exc}); give a writable path") from None
    return keys, len(entries)
