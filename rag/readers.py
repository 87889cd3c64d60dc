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
        yield _record_paper(path, number, record)


def _record_paper(path: Path, number: int, record: dict) -> Paper:
    keyed = {str(key).lower(): value for key, value in record.items()}  # "Title" as CSV headers allow
    if len(keyed) < len(record):
        raise CorpusError(path, number, "the record names a field twice in different case; keep one")
    return make_paper(path, number, keyed)


# A .json file holding one array of records (how most tools export) is read whole, so it is capped;
# JSON Lines, read a line at a time, is not.
MAX_ARRAY_BYTES = 512 * 1024 * 1024


def read_json(path: Path) -> Iterator[Paper]:
    """A .json file: one JSON array of records, or JSON Lines."""
    try:
        with path.open("rb") as fh:
            start = fh.read(4096).decode("utf-8-sig", errors="ignore").lstrip()
    except OSError:
        start = ""  # read_jsonl names the problem
    if not start.startswith("["):
        yield from read_jsonl(path)
        return
    if path.stat().st_size > MAX_ARRAY_BYTES:
        raise CorpusError(
            path, None, f"a JSON array over {MAX_ARRAY_BYTES // 2**20} MB; write it as JSON Lines, one record a "
            f"line (jq -c '.[]' {path.name} > {path.stem}.jsonl)"
        )  # fmt: skip
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(path, line, f"invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None
    for number, record in _array_records(path, text):
        yield _record_paper(path, number, record)


_SPACE = re.compile(r"\s*")


def _array_records(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """(line where it starts, record) for each element of the JSON array `text`."""
    import json

    decoder, at, line, counted = json.JSONDecoder(), text.index("[") + 1, 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    while True:
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if text.startswith("]", at):
            if text[at + 1 :].strip():
                raise CorpusError(path, line_at(at + 1), "text after the array's closing ']'; a file holds one array")
            return
        try:
            record, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise CorpusError(path, line_at(exc.pos), f"malformed JSON ({exc.msg}) in the array") from None
        except RecursionError:
            raise CorpusError(path, line_at(at), "JSON nested too deeply; give each record as a flat object") from None
        if not isinstance(record, dict):
            raise CorpusError(
                path, line_at(at), "each element of the array must be a JSON object with 'title' and 'abstract'"
            )
        yield line_at(at), record
        at = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", at):
            at += 1
        elif not text.startswith("]", at):
            raise CorpusError(path, line_at(at), "malformed JSON (expected ',' or ']' between the array's records)")


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
    ".json": read_json,
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
