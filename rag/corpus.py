"""Paper collections: what a paper is, its id, the limits and cleaning every record goes through,
and reading whole files (the readers of each file type are in rag/readers.py).

`read_corpus` makes one full validating pass before anything is returned to the caller's loop, so
a file with a bad record is rejected as a whole and nothing of it is half-ingested.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.errors import RagError, quoted
from rag.sanitise import clean, has_surrogate, invisible_removed, unaccented

BUNDLED_CORPUS = "hf_papers_abstracts.txt"

# Longest title and abstract accepted, in characters after white space is collapsed. Real
# abstracts stay under about 3,000 characters (arXiv caps them at 1,920); a record far beyond
# that is a mistake or an attack, and would stall the sentence splitter.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
MAX_ID_CHARS = 300  # a paper id is shown on every result line; DOIs and arXiv ids are far shorter
MAX_FIELD_CHARS = 20_000  # any other field; a longer author list is cut to its first names, "et al."


class CorpusError(RagError):
    """A corpus file that cannot be read; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Paper:
    """One paper: what retrieval indexes (title, abstract) and what answers show."""

    id: str
    title: str
    abstract: str
    url: str = ""
    authors: str = ""
    year: str = ""
    categories: str = ""
    line: int = field(default=0, compare=False)
    doi: str = ""
    arxiv_id: str = ""
    date: str = field(default="", compare=False)  # YYYY-MM-DD (arXiv's update_date) or a year, for --since

    @property
    def content_hash(self) -> str:
        """Changes whenever the indexed text changes, so re-ingest knows what to replace."""
        return hashlib.sha1(f"{self.title}\n{self.abstract}".encode()).hexdigest()[:16]


def normalise_title(title: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a title: its Latin letters and digits,
    or, for a title written without them (Chinese, Russian, ...), its letters in any script, so
    that no two such titles share one form (and one paper id)."""
    text = invisible_removed(unaccented(title)).lower()  # "Platy\u200dpus" is "Platypus"
    return " ".join(re.findall(r"[a-z0-9]+", text)) or " ".join(re.findall(r"[^\W_]+", text))


def paper_id_for(title: str) -> str:
    """A stable, readable id from the normalised title: a short slug plus a hash suffix."""
    norm = normalise_title(title)
    slug = ""
    for word in norm.split():
        if len(slug) + len(word) + 1 > 40 or not word.isascii():  # ids stay ASCII: URLs, BibTeX keys
            break
        slug = f"{slug}-{word}" if slug else word
    digest = hashlib.sha1((norm or title.strip()).encode()).hexdigest()[:6]
    return f"{slug or 'paper'}-{digest}"


def bundled_corpus_path() -> Path:
    return Path(str(resources.files("rag") / "data" / BUNDLED_CORPUS))


# arXiv abstracts keep LaTeX's escaped specials ("97.3\\% of full accuracy") and scraped ones HTML
# entities ("Gr&ouml;bner"): as written, a claim of "97.3%" or "Gröbner" would not match them.
_LATEX_SPECIAL = re.compile(r"\\([%&_#$])")
_HTML_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def _clean(text: str) -> str:
    """Control characters and escape sequences out, LaTeX's escaped specials and HTML entities
    resolved, white space (newlines too) collapsed."""
    text = _LATEX_SPECIAL.sub(r"\1", text)
    if "&" in text:
        text = _HTML_ENTITY.sub(lambda m: html.unescape(m.group()), text)
    return " ".join(clean(text).replace("\xad", "").split())  # a soft hyphen is a line-breaking hint


def _check_binary(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(8192)
    if head.startswith(b"\x1f\x8b"):
        raise CorpusError(path, None, f"is gzip-compressed; decompress it first (gunzip -k {path.name})")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CorpusError(path, None, "is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in head:
        raise CorpusError(
            path, None, "looks like a binary file, not text; give a .txt, .jsonl, .json, .csv or .bib file"
        )


_LIST_FIELDS = {"authors": ", ", "categories": " "}  # fields that may be lists of strings, and their joiner


def _text(path: Path, line: int, record: dict, name: str, numbers: bool = False) -> str:
    """A field's text; a value of the wrong type is refused rather than turned into text."""
    value = record.get(name)
    if value is None:
        return ""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif numbers and isinstance(value, float) and value.is_integer():  # pandas writes 2021.0 in a column with gaps
        value = str(int(value))
    if name in _LIST_FIELDS and isinstance(value, list) and all(isinstance(a, str) for a in value):
        value = _LIST_FIELDS[name].join(value)
    if not isinstance(value, str):
        if name in _LIST_FIELDS and isinstance(value, list):
            raise CorpusError(path, line, f"field {name!r} lists something other than text; give a list of strings")
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__
        raise CorpusError(path, line, f"field {name!r} is {kind}, not text; give it as a string")
    if has_surrogate(value):
        raise CorpusError(
            path, line, f"field {name!r} holds an unpaired surrogate (such as \\ud800), not valid Unicode"
        )
    return _clean(value)


def _shortened_authors(authors: str) -> str:
    """A collaboration's thousands of names (arXiv lists them all) cut to the first ones, "et al."."""
    if len(authors) <= MAX_FIELD_CHARS:
        return authors
    cut = authors.rfind(",", 0, MAX_FIELD_CHARS)
    return authors[: cut if cut > 0 else MAX_FIELD_CHARS].rstrip() + " et al."


_DATE = re.compile(r"\d{4}(?:-\d{2}){0,2}")  # YYYY-MM-DD as arXiv writes it (or YYYY-MM, YYYY): --since compares text
# a year as a record may state it ("2023", "2023-05-01", "May 2023")
_YEAR = re.compile(r"(?<!\d)(?:1[5-9]\d\d|20\d\d)(?!\d)")


def make_paper(path: Path, line: int, record: dict) -> Paper:
    """A record's paper, cleaned and checked against the limits; CorpusError names what is wrong."""
    title = _text(path, line, record, "title")
    abstract = _text(path, line, record, "abstract")
    if not title:
        raise CorpusError(path, line, "record has no title")
    if not abstract:
        raise CorpusError(path, line, f"record {quoted(title)} has no abstract")
    if len(title) > MAX_TITLE_CHARS:
        raise CorpusError(
            path, line, f"title is {len(title):,} characters, over the limit of {MAX_TITLE_CHARS:,}; shorten it"
        )
    if len(abstract) > MAX_ABSTRACT_CHARS:
        raise CorpusError(
            path,
            line,
            f"abstract of {quoted(title)} is {len(abstract):,} characters, over the limit of "
            f"{MAX_ABSTRACT_CHARS:,}; shorten it or split the record",
        )
    for name in ("id", "url", "year", "categories", "update_date"):
        value = record.get(name)
        if isinstance(value, str | list) and len(str(value)) > MAX_FIELD_CHARS:
            raise CorpusError(
                path, line, f"field {name!r} of {quoted(title)} is over {MAX_FIELD_CHARS:,} characters; shorten it"
            )
    given_id = _text(path, line, record, "id", numbers=True)
    if len(given_id) > MAX_ID_CHARS:
        raise CorpusError(
            path,
            line,
            f"the id of {quoted(title)} is {len(given_id):,} characters, over the limit of {MAX_ID_CHARS}; shorten it",
        )
    updated = _text(path, line, record, "update_date")
    if updated and not _DATE.fullmatch(updated):
        raise CorpusError(path, line, f"update_date {updated[:40]!r} is not a date; write it as YYYY-MM-DD")
    year = _text(path, line, record, "year", numbers=True) or updated
    return Paper(
        id=given_id or paper_id_for(title),
        title=title,
        abstract=abstract,
        url=_text(path, line, record, "url"),
        authors=_shortened_authors(_text(path, line, record, "authors")),
        year=(found.group(0) if (found := _YEAR.search(year)) else ""),  # "99999999" is no year
        categories=_text(path, line, record, "categories"),
        line=line,
        date=updated or (year if _DATE.fullmatch(year) else ""),  # no usable date fails a --since filter
    )


@dataclass(frozen=True)
class Selection:
    """Which papers of a file to take: any of these arXiv categories (none: all), updated on
    or after this date (YYYY-MM-DD; none: all). A paper without a date fails a date filter."""

    categories: frozenset[str] = frozenset()
    since: str = ""

    def __bool__(self) -> bool:
        return bool(self.categories or self.since)

    def _in_category(self, paper: Paper) -> bool:
        return not self.categories or bool(categories_of(" ".join(self.categories)) & categories_of(paper.categories))

    def keeps(self, paper: Paper) -> bool:
        if not self._in_category(paper):
            return False
        return not self.since or (bool(paper.date) and paper.date >= self.since[: len(paper.date)])

    def undated(self, paper: Paper) -> bool:
        """Dropped by --since for having no date at all (counted, so the user hears of them)."""
        return bool(self.since) and not paper.date and self._in_category(paper)

    def describe(self) -> str:
        parts = [f"--category {','.join(sorted(self.categories))}"] if self.categories else []
        return " ".join(parts + ([f"--since {self.since}"] if self.since else []))


def categories_of(text: str) -> frozenset[str]:
    """arXiv categories as a record or --category lists them: "cs.CL cs.LG", "cs.CL,cs.LG";
    compared in lower case ("CS.CL" is cs.CL)."""
    return frozenset(c.lower() for c in re.split(r"[\s,;]+", text) if c)


def parse_selection(categories: str | None, since: str | None) -> Selection:
    """The --category and --since options; ValueError says what is wrong."""
    import datetime

    cats = frozenset(c for c in re.split(r"[\s,;]+", categories or "") if c)
    if categories is not None and not cats:  # `--category "$CATS"` with CATS unset would take everything
        raise ValueError("--category names no category; give one or more, such as cs.CL,cs.LG")
    if since is not None and not since.strip():
        raise ValueError("--since is empty; give a date as YYYY-MM-DD")
    if since:
        try:
            since = datetime.date.fromisoformat(since).isoformat()
        except ValueError:
            raise ValueError(f"--since {since!r} is not a date; give it as YYYY-MM-DD") from None
    return Selection(cats, since or "")


def iter_papers(path: Path) -> Iterator[Paper]:
    """Stream the papers of one file without validating across records."""
    path = Path(path)
    if not path.is_file():
        what = (
            "is a directory, not a corpus file"
            if path.is_dir()
            else "is not a regular file (a pipe or a device)"
            if path.exists()
            else "no such file"
        )
        raise CorpusError(path, None, f"{what}; give a .txt, .jsonl, .json, .csv or .bib file of papers")
    from rag.readers import reader_for  # the readers build papers with make_paper

    _check_binary(path)
    return reader_for(path)(path)


def duplicate(paper: Paper, first_line: int) -> str:
    """Why `paper` clashes with the paper of the same id at `first_line`: its id, or, when the id
    was made from the title, the title the two share."""
    if paper.id == paper_id_for(paper.title):
        return (
            f"two papers have the title {quoted(paper.title, 80)} (first at line {first_line}) and different text; "
            "keep one, or give each an id field"
        )
    return f"duplicate id {paper.id!r} (first at line {first_line}) with different text"


def scan_corpus(path: Path) -> dict[str, str]:
    """Validate a whole file in one streaming pass; return paper id -> content hash.

    Raises CorpusError for an empty file or a duplicate id whose text differs. Repeats of the
    same paper with the same text are tolerated (listing pages often repeat entries).
    """
    path = Path(path)
    hashes: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for paper in iter_papers(path):
        previous = hashes.get(paper.id)
        if previous is not None and previous != paper.content_hash:
            raise CorpusError(path, paper.line, duplicate(paper, first_line[paper.id]))
        hashes[paper.id] = paper.content_hash
        first_line.setdefault(paper.id, paper.line)
    if not hashes:
        raise CorpusError(path, None, "contains no papers")
    return hashes


def read_corpus(path: Path) -> list[Paper]:
    """All papers of a small file, validated; duplicates of identical papers dropped."""
    scan_corpus(path)
    seen: set[str] = set()
    papers = []
    for paper in iter_papers(path):
        if paper.id not in seen:
            seen.add(paper.id)
            papers.append(paper)
    return papers
