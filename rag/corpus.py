"""Reading paper collections: the bundled abstracts file, JSON Lines, CSV and arXiv snapshots.

Every reader streams its file line by line, so an arXiv metadata dump is never held in memory
whole. `read_corpus` makes one full validating pass before anything is returned to the caller's
loop, so a file with a bad record is rejected as a whole and nothing of it is half-ingested.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.errors import RagError
from rag.sanitise import clean, has_surrogate

BUNDLED_CORPUS = "hf_papers_abstracts.txt"

# The bundled file is a copy of a paper-listing web page: two banner lines, and the button label
# "Subscribe" glued to the first title.
_PAGE_NOISE_LINES = ("Get trending papers in your email inbox",)
_PAGE_NOISE_PREFIX = "Subscribe"

_JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_CSV_SUFFIXES = {".csv"}
_TEXT_SUFFIXES = {".txt"}
_BIB_SUFFIXES = {".bib"}

# Longest title and abstract accepted, in characters after white space is collapsed. Real
# abstracts stay under about 3,000 characters (arXiv caps them at 1,920); a record far beyond
# that is a mistake or an attack, and would stall the sentence splitter.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000


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
    """Case-, accent- and punctuation-insensitive form of a title."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


def paper_id_for(title: str) -> str:
    """A stable, readable id from the normalised title: a short slug plus a hash suffix."""
    norm = normalise_title(title)
    slug = ""
    for word in norm.split():
        if len(slug) + len(word) + 1 > 40:
            break
        slug = f"{slug}-{word}" if slug else word
    digest = hashlib.sha1(norm.encode()).hexdigest()[:6]
    return f"{slug or 'paper'}-{digest}"


def bundled_corpus_path() -> Path:
    return Path(str(resources.files("rag") / "data" / BUNDLED_CORPUS))


def _clean(text: str) -> str:
    """Control characters and escape sequences out, white space (newlines too) collapsed."""
    return " ".join(clean(text).split())


def _check_binary(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise CorpusError(path, None, "looks like a binary file, not text; give a .txt, .jsonl or .csv file")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, with invalid UTF-8 reported at the line where it occurs."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise CorpusError(path, number, f"invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None


_LIST_FIELDS = {"authors": ", ", "categories": " "}  # fields that may be lists of strings, and their joiner


def _text(path: Path, line: int, record: dict, name: str, numbers: bool = False) -> str:
    """A field's text; a value of the wrong type is refused rather than turned into text."""
    value = record.get(name)
    if value is None:
        return ""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if name in _LIST_FIELDS and isinstance(value, list) and all(isinstance(a, str) for a in value):
        value = _LIST_FIELDS[name].join(value)
    if not isinstance(value, str):
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__
        raise CorpusError(path, line, f"field {name!r} is {kind}, not text; give it as a string")
    if has_surrogate(value):
        raise CorpusError(
            path, line, f"field {name!r} holds an unpaired surrogate (such as \\ud800), not valid Unicode"
        )
    return _clean(value)


def _make_paper(path: Path, line: int, record: dict) -> Paper:
    title = _text(path, line, record, "title")
    abstract = _text(path, line, record, "abstract")
    if not title:
        raise CorpusError(path, line, "record has no title")
    if not abstract:
        raise CorpusError(path, line, f"record {title[:60]!r} has no abstract")
    if len(title) > MAX_TITLE_CHARS:
        raise CorpusError(
            path, line, f"title is {len(title):,} characters, over the limit of {MAX_TITLE_CHARS:,}; shorten it"
        )
    if len(abstract) > MAX_ABSTRACT_CHARS:
        raise CorpusError(
            path,
            line,
            f"abstract of {title[:60]!r} is {len(abstract):,} characters, over the limit of "
            f"{MAX_ABSTRACT_CHARS:,}; shorten it or split the record",
        )
    given_id = _text(path, line, record, "id", numbers=True)
    updated = _text(path, line, record, "update_date")
    year = _text(path, line, record, "year", numbers=True) or updated
    return Paper(
        id=given_id or paper_id_for(title),
        title=title,
        abstract=abstract,
        url=_text(path, line, record, "url"),
        authors=_text(path, line, record, "authors"),
        year=year[:4],
        categories=_text(path, line, record, "categories"),
        line=line,
        date=updated or year,
    )


def _read_text(path: Path) -> Iterator[Paper]:
    """Alternating title and abstract lines; blank lines and the page banner are skipped."""
    pending: tuple[int, str] | None = None
    for number, line in _lines(path):
        text = line.strip()
        if not text or (pending is None and text.startswith(_PAGE_NOISE_LINES)):
            continue
        if pending is None:
            if text.startswith(_PAGE_NOISE_PREFIX) and len(text) > len(_PAGE_NOISE_PREFIX):
                text = text[len(_PAGE_NOISE_PREFIX) :]
            pending = (number, text)
        else:
            yield _make_paper(path, pending[0], {"title": pending[1], "abstract": text})
            pending = None
    if pending is not None:
        raise CorpusError(path, pending[0], f"title {pending[1][:60]!r} has no abstract line after it")


def _read_jsonl(path: Path) -> Iterator[Paper]:
    """JSON Lines, including the arXiv metadata snapshot (id, title, abstract, authors, ...)."""
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(path, number, f"malformed JSON ({exc.msg}); each line must be one JSON object") from None
        except RecursionError:
            raise CorpusError(path, number, "JSON nested too deeply; each line must be one flat JSON object") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise CorpusError(path, number, f"unreadable JSON value ({exc})") from None
        if not isinstance(record, dict):
            raise CorpusError(path, number, "each line must be a JSON object with 'title' and 'abstract'")
        yield _make_paper(path, number, record)


def _read_csv(path: Path) -> Iterator[Paper]:
    """CSV with a header row naming at least `title` and `abstract`."""
    numbered = _lines(path)
    # Lines go back with their newline, so a quoted field spanning lines keeps its line break
    # (as white space) instead of gluing "abstract.Second" together.
    reader = csv.DictReader(f"{line}\n" for _, line in numbered)
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise CorpusError(path, 1, f"malformed CSV header ({exc})") from None
    missing = {"title", "abstract"} - set(header)
    if missing:
        raise CorpusError(path, 1, f"CSV header lacks column(s) {', '.join(sorted(missing))}")
    reader.fieldnames = header
    try:
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            yield _make_paper(path, reader.line_num, row)
    except csv.Error as exc:
        raise CorpusError(path, reader.line_num, f"malformed CSV ({exc})") from None


def _read_bib(path: Path) -> Iterator[Paper]:
    """BibTeX entries that have an abstract; the others are listed by `bib_without_abstract`.

    The id is the one a .txt or .jsonl record of the same title gets, so a paper listed in both
    is one paper; arXiv id and DOI are kept as metadata, and the URL defaults to the arXiv page."""
    from rag.bibtex import read_bib

    for entry in read_bib(path):
        if not entry.abstract:
            continue
        arxiv = entry.arxiv_id
        url = entry.fields.get("url", "") or (f"https://arxiv.org/abs/{arxiv}" if arxiv else "")
        record = {"title": entry.title, "abstract": entry.abstract, "url": url, "authors": entry.authors}
        paper = _make_paper(path, entry.line, {**record, "year": entry.year})
        yield Paper(**{**paper.__dict__, "doi": entry.doi, "arxiv_id": arxiv})


def bib_without_abstract(path: Path) -> list[str]:
    """`KEY (line N)` for each entry of a .bib file that has no abstract and so is not ingested."""
    from rag.bibtex import read_bib

    return [f"{e.key} (line {e.line})" for e in read_bib(Path(path)) if not e.abstract]


def _reader_for(path: Path):
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return _read_jsonl
    if suffix in _CSV_SUFFIXES:
        return _read_csv
    if suffix in _TEXT_SUFFIXES:
        return _read_text
    if suffix in _BIB_SUFFIXES:
        return _read_bib
    raise CorpusError(path, None, f"unknown file type {suffix or '(none)'!r}; use .txt, .jsonl, .json, .csv or .bib")


@dataclass(frozen=True)
class Selection:
    """Which papers of a file to take: any of these arXiv categories (none: all), updated on
    or after this date (YYYY-MM-DD; none: all). A paper without a date fails a date filter."""

    categories: frozenset[str] = frozenset()
    since: str = ""

    def __bool__(self) -> bool:
        return bool(self.categories or self.since)

    def keeps(self, paper: Paper) -> bool:
        if self.categories and not self.categories & set(paper.categories.split()):
            return False
        return not self.since or (bool(paper.date) and paper.date >= self.since[: len(paper.date)])

    def describe(self) -> str:
        parts = [f"--category {','.join(sorted(self.categories))}"] if self.categories else []
        return " ".join(parts + ([f"--since {self.since}"] if self.since else []))


def parse_selection(categories: str | None, since: str | None) -> Selection:
    """The --category and --since options; ValueError says what is wrong."""
    import datetime

    cats = frozenset(c.strip() for c in (categories or "").split(",") if c.strip())
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
        raise CorpusError(path, None, "no such file")
    _check_binary(path)
    return _reader_for(path)(path)


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
            raise CorpusError(
                path,
                paper.line,
                f"duplicate id {paper.id!r} (first at line {first_line[paper.id]}) with different text",
            )
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
