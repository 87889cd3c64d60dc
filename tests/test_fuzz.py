"""Fuzzing the places where outside text enters: corpus readers and the question path.

Arbitrary Unicode (control characters, escape sequences, lone surrogates), huge values and
nested JSON: reading either yields clean papers or stops with CorpusError, never another
exception, and no control character comes out. Bounded to run in well under 30 s."""

import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.corpus import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, CorpusError, read_corpus
from rag.sanitise import StreamCleaner, clean, has_surrogate, normalise_question

FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what may never come out (\n and \t may)
CONTROLS = [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)]
PIECES = ["\x1b[", "\x1b]0;", "\x1b]8;;http://x", "\x1b\\", "\x9b", "\x9d", "\x9c", "[2J", "31m", "\r\n", "\x07"]

chars = st.one_of(st.characters(), st.sampled_from(CONTROLS + ["\ud800", "\udc80", "\udfff"]))
hostile_text = st.lists(st.one_of(chars, st.sampled_from(PIECES)), max_size=40).map("".join)
huge_text = st.builds(lambda s, n: s * n, st.sampled_from(["ab ", "\x1b[", "x\x00", "é\u0085"]), st.integers(0, 12_000))
texts = st.one_of(hostile_text, hostile_text, huge_text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
field = st.one_of(texts, texts, json_values)
records = st.fixed_dictionaries(
    {"title": field, "abstract": field},
    optional={"id": field, "authors": field, "year": field, "url": field, "categories": field},
)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _read_and_check(path) -> None:
    try:
        papers = read_corpus(path)
    except CorpusError as exc:
        assert str(exc).startswith(str(path))
        return
    for paper in papers:
        for value in (paper.id, paper.title, paper.abstract, paper.url, paper.authors, paper.year, paper.categories):
            assert isinstance(value, str) and not FORBIDDEN.search(value) and not has_surrogate(value)
            assert "\n" not in value and "\t" not in value
        assert 0 < len(paper.title) <= MAX_TITLE_CHARS and 0 < len(paper.abstract) <= MAX_ABSTRACT_CHARS


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8


@FUZZ
@given(rows=st.lists(records, min_size=1, max_size=3), ascii_only=st.booleans())
def test_jsonl_records(folder, rows, ascii_only):
    path = folder / "fuzz.jsonl"
    lines = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows)
    path.write_bytes(_encode(lines))
    _read_and_check(path)


@FUZZ
@given(depth=st.integers(1, 50_000), wrap=st.booleans())
def test_nested_json(folder, depth, wrap):
    nested = "[" * depth + "]" * depth
    path = folder / "nested.jsonl"
    path.write_text(f'{{"title": "T", "abstract": {nested}}}\n' if wrap else nested + "\n")
    _read_and_check(path)


@FUZZ
@given(rows=st.lists(st.lists(texts, min_size=2, max_size=3), min_size=1, max_size=3))
def test_csv_rows(folder, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["title", "abstract", "url"][: max(len(r) for r in rows)])
    writer.writerows(rows)
    path = folder / "fuzz.csv"
    path.write_bytes(_encode(out.getvalue()))
    _read_and_check(path)


@FUZZ
@given(lines=st.lists(texts, min_size=1, max_size=6))
def test_text_files(folder, lines):
    path = folder / "fuzz.txt"
    path.write_bytes(_encode("\n".join(lines)))
    _read_and_check(path)


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".txt", ".jsonl", ".csv"]))
def test_arbitrary_bytes(folder, data, suffix):
    path = folder / f"bytes{suffix}"
    path.write_bytes(data)
    _read_and_check(path)


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_question_path_and_stream_cleaner(text, cuts):
    question = normalise_question(text)
    assert not FORBIDDEN.search(question) and not has_surrogate(question)
    assert "\n" not in question and "\t" not in question and question == question.strip()
    cleaned = clean(text)
    assert not FORBIDDEN.search(cleaned) and not has_surrogate(cleaned)
    # the same text in arbitrary deltas: never a control character, whatever the split
    cleaner = StreamCleaner()
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(cleaner.feed(text[start : start + cut]))
        start += cut
    pieces.append(cleaner.feed(text[start:]))
    pieces.append(cleaner.flush())
    assert not FORBIDDEN.search("".join(pieces)) and not has_surrogate("".join(pieces))
