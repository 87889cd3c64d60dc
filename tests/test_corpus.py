import json

import pytest

from rag.corpus import (
    CorpusError,
    bundled_corpus_path,
    paper_id_for,
    read_corpus,
    scan_corpus,
)
from tests.conftest import write_jsonl


def test_bundled_corpus_has_223_clean_papers():
    papers = read_corpus(bundled_corpus_path())
    assert len(papers) == 223
    assert papers[0].title == "Variational Lossy Autoencoder"  # "Subscribe" glued to it is removed
    assert papers[-1].title == "Consistency-diversity-realism Pareto fronts of conditional image generative models"
    assert not any("Get trending papers" in p.title or p.title.startswith("Subscribe") for p in papers)
    assert len({p.id for p in papers}) == 223
    assert all(len(p.abstract) > 200 for p in papers)


def test_ids_come_from_the_normalised_title():
    assert paper_id_for("Densing Law of LLMs") == paper_id_for("  densing law of LLMs! ")
    assert paper_id_for("Densing Law of LLMs") != paper_id_for("Densing Laws of LLMs")
    assert paper_id_for("Densing Law of LLMs").startswith("densing-law-of-llms-")


def test_jsonl_csv_and_arxiv_records(tmp_path):
    jl = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"title": "A Paper", "abstract": "It  studies\nthings.", "authors": ["X", "Y"], "year": 2024},
            {"id": "custom-1", "title": "B Paper", "abstract": "Another one."},
        ],
    )
    papers = read_corpus(jl)
    assert [p.id for p in papers] == [paper_id_for("A Paper"), "custom-1"]
    assert papers[0].abstract == "It studies things." and papers[0].authors == "X, Y" and papers[0].year == "2024"

    csv_path = tmp_path / "b.csv"
    csv_path.write_text('title,abstract,url\n"C, a paper","Text with, commas.",http://x\n', encoding="utf-8")
    (paper,) = read_corpus(csv_path)
    assert paper.title == "C, a paper" and paper.abstract == "Text with, commas." and paper.url == "http://x"

    arxiv = write_jsonl(
        tmp_path / "arxiv-metadata-oai-snapshot.json",
        [
            {
                "id": "2101.00001",
                "title": "An arXiv\n  paper",
                "abstract": "  We show\n a thing.\n",
                "authors": "A. B, C. D",
                "categories": "cs.CL cs.LG",
                "update_date": "2021-01-05",
            },
        ],
    )
    (paper,) = read_corpus(arxiv)
    assert (paper.id, paper.title, paper.abstract, paper.year, paper.categories) == (
        "2101.00001",
        "An arXiv paper",
        "We show a thing.",
        "2021",
        "cs.CL cs.LG",
    )


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.jsonl", b"", "contains no papers"),
        ("blob.txt", b"\x00\x01\x02binary", "binary file"),
        ("latin1.txt", b"Title\nAbstract caf\xe9 text\n", ":2: invalid UTF-8"),
        (
            "noabs.jsonl",
            b'{"title": "T", "abstract": "x"}\n{"title": "No abstract"}\n',
            ":2: record 'No abstract' has no abstract",
        ),
        ("bad.jsonl", b'{"title": "T", "abstract": "x"}\n{"title": "T2", \n', ":2: malformed JSON"),
        (
            "dup.jsonl",
            b'{"id": "p1", "title": "T", "abstract": "x"}\n{"id": "p1", "title": "T", "abstract": "y"}\n',
            ":2: duplicate id 'p1'",
        ),
        ("odd.txt", b"Title one\nAbstract one.\nDangling title\n", ":3: title 'Dangling title' has no abstract"),
        ("nocols.csv", b"name,text\na,b\n", "lacks column(s) abstract, title"),
        ("paper.pdf", b"%PDF-1.4", "unknown file type"),
    ],
)
def test_bad_input_is_one_clear_error_naming_file_and_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError) as err:
        scan_corpus(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)


def test_repeated_identical_papers_are_tolerated(tmp_path):
    row = {"title": "Same", "abstract": "Same text."}
    assert len(scan_corpus(write_jsonl(tmp_path / "r.jsonl", [row, row]))) == 1


def test_json_array_file_is_rejected_with_a_hint(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text(json.dumps([{"title": "a", "abstract": "b"}]))
    with pytest.raises(CorpusError, match="JSON object"):
        scan_corpus(path)
