"""The one JSON Lines reader: objects with their line numbers, every problem one line naming file:line."""

import pytest

from rag.errors import RagError
from rag.jsonl import MAX_LINE_BYTES, JsonLinesError, read_jsonl


class OwnError(RagError):
    def __init__(self, path, line, message):
        super().__init__(f"own {path}:{line}: {message}")


def test_objects_come_with_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('\ufeff{"a": 1}\n\n   \n{"b": "é"}\r\n')  # with a byte-order mark
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"b": "é"})]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n{"a": \n', ":2: malformed JSON (Expecting value)"),
        (b'{"a": 1}\n[1, 2]\n', ":2: each line must be a JSON object"),
        (b'"text"\n', ":1: each line must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", ":1: JSON nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}\n", ":1: unreadable JSON value"),
        (b'{"a": 1}\n{"a": "caf\xe9"}\n', ":2: invalid UTF-8 (invalid continuation byte); re-save the file as UTF-8"),
    ],
)
def test_each_problem_is_one_line_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(JsonLinesError) as err:
        list(read_jsonl(path))
    assert str(err.value).startswith(f"{path}{message}") and "\n" not in str(err.value)


def test_the_caller_chooses_the_error_and_what_a_line_should_be(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("[1]\n")
    with pytest.raises(OwnError, match=r"^own .*bad.jsonl:1: each line must be a paper object$"):
        list(read_jsonl(path, OwnError, expect="a paper object"))
    with pytest.raises(JsonLinesError, match=r"missing.jsonl: cannot read \(No such file or directory\)"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_a_line_longer_than_any_record_is_refused_before_it_is_read_whole(tmp_path):
    path = tmp_path / "one-line.jsonl"
    path.write_bytes(b'{"a": 1}\n{"title": "' + b"x" * MAX_LINE_BYTES + b'"}\n')
    rows = read_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(
        JsonLinesError,
        match=r"one-line.jsonl:2: line is over 8 MB, longer than any record may be; check that each record is on a line of its own$",
    ):
        next(rows)
