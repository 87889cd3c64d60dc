import json
import os
import re

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


def test_latex_specials_and_html_entities_are_read_as_the_characters_they_stand_for(tmp_path):
    """An arXiv abstract's "97.3\\%" was stored as written, so a claim of "97.3%" found no number."""
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "title": "Gr&ouml;bner Bases for Q\\&A",
                "abstract": "It keeps 97.3\\% of accuracy &amp; 40\\% memory; R&D &x stays.",
            }
        ],
    )
    [paper] = read_corpus(path)
    assert paper.title == "Gröbner Bases for Q&A"
    assert paper.abstract == "It keeps 97.3% of accuracy & 40% memory; R&D &x stays."


def test_ids_come_from_the_normalised_title():
    assert paper_id_for("Densing Law of LLMs") == paper_id_for("  densing law of LLMs! ")
    assert paper_id_for("Densing Law of LLMs") != paper_id_for("Densing Laws of LLMs")
    assert paper_id_for("Densing Law of LLMs").startswith("densing-law-of-llms-")
    # titles without Latin letters get ids of their own (they once all shared one), ASCII still
    chinese = [paper_id_for("大型语言模型的量化研究"), paper_id_for("稀疏注意力机制的高效实现")]
    russian = paper_id_for("Квантование больших языковых моделей")
    assert len({*chinese, russian}) == 3 and all(i.isascii() and i.startswith("paper-") for i in [*chinese, russian])
    assert paper_id_for("!!!") != paper_id_for("???")


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
        ("papers.jsonl", b"\x1f\x8b\x08\x00\x00", "is gzip-compressed; decompress it first"),
        ("wide.txt", "Title\nAbstract.\n".encode("utf-16"), "is UTF-16 text; re-save it as UTF-8"),
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
        (
            "duptitle.jsonl",  # no id given: the clash is the title, and the fix an id
            b'{"title": "Zebra", "abstract": "x"}\n{"title": "Zebra", "abstract": "y"}\n',
            ":2: two papers have the title 'Zebra' (first at line 1) and different text; keep one, or give each an id",
        ),
        ("odd.txt", b"Title one\nAbstract one.\nDangling title\n", ":3: title 'Dangling title' has no abstract"),
        (
            "wrapped.txt",
            b"Guava\nWe present Guava, whose abstract\nis wrapped over lines\nand has 5 results.\n",
            ":3: 'is wrapped over lines' would be a title, but it continues the abstract above",
        ),
        (
            "swapped.txt",  # the first title line is missing: every abstract after it would be a title
            b"We study zebras. " * 20 + b"\nZebra Stripes Revisited\n" + b"We study horses. " * 20 + b"\n",
            ":1: 'We study zebras. We study zebras. We st…' would be a title but reads as an abstract (339",
        ),
        ("nocols.csv", b"name,text\na,b\n", "lacks column(s) abstract, title"),
        (
            "semi.csv",
            b"title;abstract\na;b\n",
            "lacks column(s) abstract, title; the file looks separated by semicolons",
        ),
        (
            "shifted.csv",
            b"title,abstract,year\nZebra, the striped one,Zebras are studied.,2020\n",
            ":2: the row has 1 more value(s) than the header's 3 columns; quote fields that contain commas",
        ),
        ("twice.csv", b"title,abstract,Abstract\nT,x,y\n", ":1: CSV header repeats column(s) abstract"),
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


def test_a_json_file_holding_one_array_of_records_is_read(tmp_path):
    """How most tools export: `[{...}, {...}]`, pretty-printed or on one line; errors name the line."""
    rows = [{"Title": "Wombat burrows", "abstract": "We map burrows."}, {"title": "Koala naps", "abstract": "Long."}]
    pretty, flat = tmp_path / "pretty.json", tmp_path / "flat.json"
    pretty.write_text(json.dumps(rows, indent=2))
    flat.write_text(json.dumps(rows))
    for path in (pretty, flat):
        assert [p.title for p in read_corpus(path)] == ["Wombat burrows", "Koala naps"]
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"title": "A", "abstract": "B"},\n  "just text",\n  {"title": "C"}\n]\n')
    with pytest.raises(CorpusError, match=r"bad.json:3: each element of the array must be a JSON object"):
        scan_corpus(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"title": "A", "abstract": "B"}\n  {"title": "C", "abstract": "D"}\n]\n')
    with pytest.raises(CorpusError, match=r"broken.json:3: malformed JSON \(expected ',' or ']'"):
        scan_corpus(broken)
    lines = tmp_path / "lines.json"  # JSON Lines under a .json name, as before
    lines.write_text("\n".join(json.dumps(r) for r in rows))
    assert len(read_corpus(lines)) == 2


def test_csv_fields_keep_their_line_breaks_as_white_space(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_bytes(b'title,abstract\n"A\r\ntitle","First abstract.\nSecond sentence.\r\nThird."\nB,Two.\n')
    first, second = read_corpus(path)
    assert first.title == "A title" and first.abstract == "First abstract. Second sentence. Third."
    assert second.line == 6  # line numbers still count the physical lines


def test_a_long_unused_csv_column_is_not_malformed_and_bare_carriage_returns_are_named(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("title,abstract,notes\nA paper,An abstract.," + "x" * 200_000 + "\n")
    (paper,) = read_corpus(path)
    assert paper.title == "A paper"  # the csv module's 128 KB field limit once called this malformed
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"title,abstract\rA,B\r")
    with pytest.raises(CorpusError, match=r"mac.csv:1: its lines end in a bare carriage return"):
        read_corpus(mac)


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"title": "T", "abstract": ["x", "y"]}, ":1: field 'abstract' is a list, not text"),
        ({"title": "T", "abstract": 42}, ":1: field 'abstract' is int, not text"),
        ({"title": "T", "abstract": {"text": "x"}}, ":1: field 'abstract' is an object, not text"),
        ({"title": ["T"], "abstract": "x"}, ":1: field 'title' is a list, not text"),
        ({"title": "T", "abstract": "x", "url": 3.5}, ":1: field 'url' is float, not text"),
        (
            {"title": "T", "abstract": "x", "authors": [["A"]]},
            ":1: field 'authors' lists something other than text; give a list of strings",
        ),
        ({"title": "T", "abstract": "x\ud800y"}, ":1: field 'abstract' holds an unpaired surrogate"),
        ({"title": "T" * 1001, "abstract": "x"}, ":1: title is 1,001 characters, over the limit of 1,000"),
        ({"title": "T", "abstract": "a " * 10_001}, ":1: abstract of 'T' is 20,001 characters, over the limit"),
        (
            {"title": "T", "abstract": "x", "id": "i" * 301},
            ":1: the id of 'T' is 301 characters, over the limit of 300",
        ),
        (
            {"title": "T", "abstract": "x", "categories": "cs.LG " * 5_000},
            ":1: field 'categories' of 'T' is over 20,000",
        ),
        ({"title": "T", "abstract": "x", "update_date": "not-a-date"}, ":1: update_date 'not-a-date' is not a date"),
        (  # the title as written, not a repr with its backslashes doubled
            {"title": r"$\mathcal{O}(n \log n)$ Sorting", "abstract": " "},
            r":1: record '$\mathcal{O}(n \log n)$ Sorting' has no abstract",
        ),
    ],
)
def test_records_of_the_wrong_type_or_size_are_refused(tmp_path, record, expected):
    path = write_jsonl(tmp_path / "r.jsonl", [record])  # json.dumps writes "\ud800" as an escape
    with pytest.raises(CorpusError) as err:
        scan_corpus(path)
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_a_collaborations_thousands_of_authors_are_cut_to_the_first_ones(tmp_path):
    authors = ", ".join(f"A. Author{i}" for i in range(3000))  # about 40,000 characters
    (paper,) = read_corpus(write_jsonl(tmp_path / "r.jsonl", [{"title": "T", "abstract": "x", "authors": authors}]))
    assert paper.authors.startswith("A. Author0, A. Author1,") and paper.authors.endswith(" et al.")
    assert len(paper.authors) <= 20_000 + len(" et al.") and ", A. Author2999" not in paper.authors


def test_titles_in_lower_case_after_an_abstract_ending_in_a_link_are_titles(tmp_path):
    """The wrapped-abstract check needs both signs: an abstract ending mid-sentence and a title
    starting with a plain lower-case word; "mT5" and "word2vec" after a URL are titles."""
    path = tmp_path / "c.txt"
    path.write_text(
        "A\nCode at https://github.com/x/y\nmT5: a massively multilingual transformer\nIt works.\n"
        "B\nSee https://example.org\nword2vec explained\nIt explains.\n"
    )
    assert [p.title for p in read_corpus(path)] == [
        "A",
        "mT5: a massively multilingual transformer",
        "B",
        "word2vec explained",
    ]


def test_jsonl_field_names_in_any_case_as_csv_headers(tmp_path):
    (paper,) = read_corpus(write_jsonl(tmp_path / "r.jsonl", [{"Title": "T", "Abstract": "x", "Authors": "A"}]))
    assert (paper.title, paper.abstract, paper.authors) == ("T", "x", "A")
    with pytest.raises(CorpusError, match=":1: the record names a field twice in different case"):
        read_corpus(write_jsonl(tmp_path / "twice.jsonl", [{"title": "T", "Title": "U", "abstract": "x"}]))


def test_numbers_and_lists_stay_allowed_where_they_are_natural(tmp_path):
    record = {"id": 7, "title": "T", "abstract": "x", "year": 2024, "url": None, "categories": ["cs.CL", "cs.LG"]}
    (paper,) = read_corpus(write_jsonl(tmp_path / "n.jsonl", [record]))
    assert (paper.id, paper.year, paper.url, paper.categories) == ("7", "2024", "", "cs.CL cs.LG")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("[" * 100_000 + "]" * 100_000, ":1: JSON nested too deeply"),
        ('{"title": "T", "abstract": "x", "year": ' + "9" * 5000 + "}", ":1: unreadable JSON value"),
    ],
)
def test_deep_or_huge_json_is_one_error(tmp_path, line, expected):
    path = tmp_path / "deep.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CorpusError) as err:
        scan_corpus(path)
    assert str(err.value).startswith(f"{path}{expected}")


def test_a_10_mb_abstract_is_refused_quickly(tmp_path):
    import time

    path = write_jsonl(tmp_path / "huge.jsonl", [{"title": "T", "abstract": "word. " * 1_700_000}])
    started = time.monotonic()
    with pytest.raises(CorpusError, match="huge.jsonl:1: line is over 8 MB, longer than any record may be"):
        scan_corpus(path)
    assert time.monotonic() - started < 5


def test_a_hostile_record_stops_ingest_before_anything_is_written(tmp_path):
    from tests.conftest import run_rag

    good = write_jsonl(tmp_path / "good.jsonl", [{"title": "Fine", "abstract": "A fine abstract."}])
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"title": "Ok", "abstract": "Ok."}, {"title": "List", "abstract": ["x", "y"]}],
    )
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    assert run_rag("ingest", str(good), env=env).returncode == 0
    proc = run_rag("ingest", str(bad), env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"rag: error: {bad}:2: field 'abstract' is a list, not text; give it as a string"
    ]
    stats = run_rag("stats", env=env)
    assert re.search(r"papers\s+1\n", stats.stdout), stats.stdout


@pytest.mark.parametrize(
    "line, expected",
    [
        ("[" * 100_000 + "]" * 100_000, ":1: JSON nested too deeply"),
        ('{"id": "q1", "question": "a\\ud800", "type": "unanswerable"}', ":1: the line holds an unpaired surrogate"),
        ('{"id": "q1", "question": "q", "type": "unanswerable", "notes": [1]}', ":1: 'notes' must be a string"),
        ('{"id": "q1", "question": ["q"], "type": "unanswerable"}', ":1: 'question' must be text, not list"),
        ('{"id": "q1", "question": "q", "type": "unanswerable", "n": ' + "9" * 5000 + "}", ":1: unreadable JSON"),
    ],
)
def test_bad_suite_lines_are_one_error(tmp_path, line, expected):
    from rag.evaluation.suite import SuiteError, load_suite

    path = tmp_path / "suite.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path, {})
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_suite_questions_are_cleaned(tmp_path):
    from rag.evaluation.suite import load_suite

    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "q", "question": "what\x1b[2J is\r\nit?", "type": "unanswerable"}])
    assert load_suite(path, {}).questions[0].question == "what is it?"


def test_a_directory_or_a_missing_path_is_named_as_such(tmp_path):
    from rag.bibtex import read_bib
    from rag.corpus import iter_papers

    with pytest.raises(CorpusError, match="is a directory, not a corpus file; give a .txt"):
        list(iter_papers(tmp_path))
    with pytest.raises(CorpusError, match="no such file; give a .txt"):
        list(iter_papers(tmp_path / "absent.jsonl"))
    os.mkfifo(tmp_path / "pipe.jsonl")
    with pytest.raises(CorpusError, match="is not a regular file"):
        list(iter_papers(tmp_path / "pipe.jsonl"))
    with pytest.raises(CorpusError, match="is a directory; give the path of a .bib file"):
        read_bib(tmp_path)


def test_a_year_field_keeps_a_year_or_nothing(tmp_path):
    rows = [
        {"title": "Paper A", "abstract": "Alpha.", "year": 99999999999999999999},
        {"title": "Paper B", "abstract": "Beta.", "year": "May 2023"},
        {"title": "Paper C", "abstract": "Gamma.", "update_date": "2021-04-01"},
        {"title": "Paper D", "abstract": "Delta.", "year": 2019.0},  # as pandas writes a column with gaps
    ]
    papers = read_corpus(write_jsonl(tmp_path / "y.jsonl", rows))
    assert [p.year for p in papers] == ["", "2023", "2021", "2019"]


def test_zero_width_characters_neither_reach_the_terminal_nor_make_a_second_paper(tmp_path):
    rows = [
        {"title": "Platy\u200bpus electro\u2060reception", "abstract": "Platy\u200bpus bills\ufeff sense fields."},
        {"title": "Platypus electroreception", "abstract": "Platypus bills sense fields."},
    ]
    papers = read_corpus(write_jsonl(tmp_path / "zw.jsonl", rows))
    assert len({p.id for p in papers}) == 1
    assert papers[0].title == "Platypus electroreception" and papers[0].abstract == "Platypus bills sense fields."
    (joined,) = read_corpus(write_jsonl(tmp_path / "zwj.jsonl", [{"title": "Platy\u200dpus", "abstract": "A."}]))
    assert joined.title == "Platy\u200dpus"  # a joiner, which scripts need, is kept in the text
    assert joined.id == paper_id_for("Platypus")  # but not in the id
