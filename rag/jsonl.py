"""One reader for the JSON Lines files rag reads (corpora, suites, labels, BEIR sets): every
problem is one line naming the file and line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rag.errors import RagError


class JsonLinesError(RagError):
    """A JSON Lines file that cannot be read; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


# (path, line or None, message) -> the exception to raise; JsonLinesError or a subclass of the caller's.
ErrorFactory = Callable[[Path, int | None, str], Exception]

# No line of a file rag reads needs more: a record's fields are capped far below it (rag/corpus.py).
# A file without line breaks (a JSON array, a minified dump) is refused here, not read whole.
MAX_LINE_BYTES = 8 * 1024 * 1024


def numbered_lines(fh: BinaryIO, path: Path, error: ErrorFactory) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of an open binary file, each line read at most MAX_LINE_BYTES long."""
    number = 0
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise error(
                path,
                number,
                f"line is over {MAX_LINE_BYTES // (1024 * 1024)} MB, longer than any record may be; "
                "check that each record is on a line of its own",
            )
        yield number, raw


def read_jsonl(
    path: Path, error: ErrorFactory = JsonLinesError, expect: str = "a JSON object"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line. A line that is not UTF-8, not JSON or not a
    JSON object raises `error(path, line, message)`; `expect` says what each line should be."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise error(path, None, f"cannot read ({exc.strerror or exc})") from None
    with fh:
        for number, raw in numbered_lines(fh, path, error):
            try:  # a byte-order mark, as some editors write, is not part of the first object
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise error(path, number, f"invalid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(path, number, f"malformed JSON ({exc.msg}); each line must be one JSON object") from None
            except RecursionError:
                raise error(path, number, "JSON nested too deeply; each line must be one flat JSON object") from None
            except ValueError as exc:  # e.g. an integer with more digits than Python converts
                raise error(path, number, f"unreadable JSON value ({exc})") from None
            if not isinstance(row, dict):
                raise error(path, number, f"each line must be {expect}")
            yield number, row
