"""Readers of paper files, one per file type: READERS maps a file suffix to its reader.

A reader streams its file's records as Papers (built by `rag.corpus.make_paper`, which cleans and
checks them), so an arXiv metadata dump is never held in memory whole. Adding a file type (PDF,
say) is one reader function here plus its entry in READERS.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rag import jsonl
from rag.corpus import CorpusError, Paper, make_paper
from rag.errors import quoted

Reader = Callable[[Path], Iterator[Paper]]

# The bundled file is a copy of a paper-listing web page: two banner lines, and the button label
# "Subscribe" glued to the first title.
_PAGE_NOISE_LINES = ("Get trending papers in your email inbox",)
_PAGE_NOISE_PREFIX = "Subscribe"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, with invalid UTF-8 reported at the line where it occurs."""
    with path.open("rb") as fh:
        for number, raw in jsonl.numbered_lines(fh, path, CorpusError):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise CorpusError(path, number, f"invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None


# A wrapped abstract ("... the model\nis trained on ...") shifts every title and abstract after it:
# a title whose first word is a plain lower-case word, after an abstract that ends mid-sentence.
_SENTENCE_END = re.compile(r"[.!?)\]\"'\u201d]\s*$")
_CONTINUATION = re.compile(r"[a-z]+\b(?![-\w])")
# A missing title line swaps every title and abstract after it: a "title" of several sentences and
# over 300 characters is an abstract (arXiv titles stay far below; the bundled corpus's longest is 155).
_TITLE_MOST_CHARS = 300
_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")


def read_txt(path: Path) -> Iterator[Paper]:
    """Alternating title and abstract lines; blank lines and the page banner are skipped."""
    pending: tuple[int, str] | None = None
    last_abstract = ""
    for number, line in _lines(path):
        text = line.strip()
        if not text or (pending is None and text.startswith(_PAGE_NOISE_LINES)):
            continue
        if pending is None:
            if text.startswith(_PAGE_NOISE_PREFIX) and len(text) > len(_PAGE_NOISE_PREFIX):
                text = text[len(_PAGE_NOISE_PREFIX) :]
            if last_abstract and not _SENTENCE_END.search(last_abstract) and _CONTINUATION.match(text):
                raise CorpusError(
                    path,
                    number,
                    f"{quoted(text, 40)} would be a title, but it continues the abstract above, which stops "
                    "mid-sentence; put each title and each abstract on one line (or use .jsonl)",
                )
            if len(text) > _TITLE_MOST_CHARS and _SENTENCE_BREAK.search(text):
                raise CorpusError(
                    path,
                    number,
                    f"{quoted(text, 40)} would be a title but reads as an abstract ({len(text):,} characters, several "
                    "sentences); is a title line missing above it? Titles and abstracts alternate, one line each",
                )
            pending = (number, text)
        else:
            yield make_paper(path, pending[0], {"title": pending[1], "abstract": text})
            pending, last_abstract = None, text
    if pending is not None:
        raise CorpusError(path, pending[0], f"title {quoted(pending[1])} has no abstract line after it")


def read_jsonl(path: Path) -> Iterator[Paper]:
    """JSON Lines, including the arXiv metadata snapshot (id, title, abstract, authors, ...)."""
    for number, record in jsonl.read_jsonl(path, CorpusError, expect="a JSON object with 'title' and 'abstract'"):
        keyed = {str(key).lower(): value for key, value in record.items()}  # "Title" as CSV headers allow
        if len(keyed) < len(record):
            raise CorpusError(path, number, "the record names a field twice in different case; keep one")
        yield make_paper(path, number, keyed)


def read_csv(path: Path) -> Iterator[Paper]:
    """CSV with a header row naming at least `title` and `abstract`."""
    numbered = _lines(path)
    # a field may be as long as a line (refused beyond 8 MB): the csv module's own 128 KB limit
    # would call a long unused column "malformed" instead of leaving it unread
    csv.field_size_limit(max(csv.field_size_limit(), jsonl.MAX_LINE_BYTES))
    # Lines go back with their newline, so a quoted field spanning lines keeps its line break
    # (as white space) instead of gluing "abstract.Second" together.
    reader = csv.DictReader(f"{line}\n" for _, line in numbered)
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        if "new-line character seen in unquoted field" in str(exc):
            raise CorpusError(
                path, 1, "its lines end in a bare carriage return (an old Mac format); save it with \\n line endings"
            ) from None
        raise CorpusError(path, 1, f"malformed CSV header ({exc})") from None
    if repeated := sorted({h for h in header if h and header.count(h) > 1}):
        raise CorpusError(path, 1, f"CSV header repeats column(s) {', '.join(repeated)}; keep one of each")
    missing = {"title", "abstract"} - set(header)
    if missing:
        other = next(
            (name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if len(header) == 1 and sep in header[0]), ""
        )
        hint = f"; the file looks separated by {other}: save it with commas" if other else ""
        raise CorpusError(path, 1, f"CSV header lacks column(s) {', '.join(sorted(missing))}{hint}")
    reader.fieldnames = header
    try:
        for row in reader:
            if None in row:  # more values than columns: a field with a comma the writer did not quote
                raise CorpusError(
                    path, reader.line_num,
                    f"the row has {len(row[None])} more value(s) than the header's {len(header)} columns; "
                    "quote fields that contain commas",
                )  # fmt: skip
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            yield make_paper(path, reader.line_num, row)
    except csv.Error as exc:
        raise CorpusError(path, reader.line_num, f"malformed CSV ({exc})") from None


def read_bibtex(path: Path) -> Iterator[Paper]:
    """BibTeX entries that have an abstract; the others are listed by `bib_without_abstract`.

    The id is the one a .txt or .jsonl record of the same title gets, so a paper listed in both
    is one paper; arXiv id and DOI are kept as metadata, and the URL defaults to the arXiv page."""
    from rag import bibtex

    for entry in bibtex.read_bib(path):
        if not entry.abstract:
            continue
        arxiv = entry.arxiv_id
        url = entry.fields.get("url", "") or (f"https://arxiv.org/abs/{arxiv}" if arxiv else "")
        record = {"title": entry.title, "abstract": entry.abstract, "url": url, "authors": entry.authors}
        paper = make_paper(path, entry.line, {**record, "year": entry.year})
        yield Paper(**{**paper.__dict__, "doi": entry.doi, "arxiv_id": arxiv})


def bib_without_abstract(path: Path) -> list[str]:
    """`KEY (line N)` for each entry of a .bib file that has no abstract and so is not ingested."""
    from rag import bibtex

    return [f"{e.key} (line {e.line})" for e in bibtex.read_bib(Path(path)) if not e.abstract]


READERS: dict[str, Reader] = {
    ".txt": read_txt,
    ".jsonl": read_jsonl,
    ".json": read_jsonl,
    ".ndjson": read_jsonl,
    ".csv": read_csv,
    ".bib": read_bibtex,
}


def reader_for(path: Path) -> Reader:
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise CorpusError(
            path, None, f"unknown file type {suffix or '(none)'!r}; use .txt, .jsonl, .json, .csv or .bib"
        )
    return reader
