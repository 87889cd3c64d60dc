"""The table of readers: every suffix reaches its reader, and an unknown one is one error."""

from __future__ import annotations

import pytest

from rag import readers
from rag.corpus import CorpusError, iter_papers
from rag.jsonl import MAX_LINE_BYTES
from tests.conftest import write_jsonl

RECORD = {"title": "A Paper", "abstract": "It studies things."}


@pytest.mark.parametrize(
    "suffix, reader",
    [
        (".txt", readers.read_txt),
        (".jsonl", readers.read_jsonl),
        (".json", readers.read_json),
        (".ndjson", readers.read_jsonl),
        (".csv", readers.read_csv),
        (".bib", readers.read_bibtex),
        (".JSONL", readers.read_jsonl),  # suffixes are matched without case
    ],
)
def test_each_suffix_has_its_reader(tmp_path, suffix, reader):
    assert readers.reader_for(tmp_path / f"papers{suffix}") is reader


def test_every_reader_in_the_table_reads_its_kind_of_file(tmp_path):
    files = {
        ".txt": "A Paper\nIt studies things.\n",
        ".jsonl": None,
        ".json": None,
        ".ndjson": None,
        ".csv": "title,abstract\nA Paper,It studies things.\n",
        ".bib": "@article{p1, title={A Paper}, abstract={It studies things.}}\n",
    }
    assert set(files) == set(readers.READERS)
    for suffix, text in files.items():
        path = tmp_path / f"papers{suffix}"
        if text is None:
            write_jsonl(path, [RECORD])
        else:
            path.write_text(text, encoding="utf-8")
        (paper,) = list(iter_papers(path))
        assert (paper.title, paper.abstract) == (RECORD["title"], RECORD["abstract"]), suffix


@pytest.mark.parametrize("name", ["paper.pdf", "notes"])
def test_an_unknown_suffix_is_one_error_naming_the_file_and_the_known_types(tmp_path, name):
    path = tmp_path / name
    path.write_text("text", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        list(iter_papers(path))
    suffix = repr(path.suffix or "(none)")
    assert str(err.value) == f"{path}: unknown file type {suffix}; use .txt, .jsonl, .json, .csv or .bib"


def test_a_txt_corpus_without_line_breaks_is_refused_at_its_first_line(tmp_path):
    path = tmp_path / "flat.txt"
    path.write_bytes(b"A title. " * (MAX_LINE_BYTES // 9 + 1))
    with pytest.raises(CorpusError, match=r"flat.txt:1: line is over 8 MB"):
        list(readers.read_txt(path))
