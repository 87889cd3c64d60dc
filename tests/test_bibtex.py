"""BibTeX in (`rag ingest refs.bib`) and out (`rag ask --bib`), against a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.bibtex import PaperMeta, cite_key, parse_bib, read_bib, to_bibtex, write_bib
from rag.corpus import CorpusError
from tests.conftest import run_rag

REFS = r"""@article{vaswani2017attention,
  title = {Attention Is {All} You Need},
  author = {Vaswani, Ashish and Shazeer, Noam},
  year = {2017},
  eprint = {1706.03762},
  archivePrefix = {arXiv},
  abstract = {The dominant sequence transduction models are based on complex recurrent or
    convolutional neural networks. We propose a new simple network architecture, the
    Transformer, based solely on attention mechanisms.}
}

@inproceedings{devlin2019bert,
  title = {{BERT}: Pre-training of Deep Bidirectional Transformers},
  author = {Devlin, Jacob},
  year = 2019,
  doi = {10.18653/v1/N19-1423},
  abstract = {We introduce a new language representation model called \emph{BERT}, which
    stands for Bidirectional Encoder Representations from Transformers.}
}

@misc{noabstract2020,
  title = {A Paper Without an Abstract},
  year = {2020}
}
"""


def test_parse_fields() -> None:
    entries = {e.key: e for e in parse_bib(REFS)}
    v = entries["vaswani2017attention"]
    assert v.title == "Attention Is All You Need" and v.arxiv_id == "1706.03762" and v.year == "2017"
    assert v.authors == "Ashish Vaswani, Noam Shazeer" and v.line == 1
    b = entries["devlin2019bert"]
    assert b.title.startswith("BERT: Pre-training") and b.doi == "10.18653/v1/n19-1423"
    assert "called BERT, which" in b.abstract
    assert entries["noabstract2020"].abstract == ""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("@misc{a,\n  title = {Open {brace},\n  year = {2020}\n}\n@misc{b, title={B}}\n", ":1: cannot parse"),
        ("@misc{a, title={A}}\n\n@misc{a, title={B}}\n", ":3: duplicate key 'a'"),
        ("@misc{a7, title={A},\n  year=2024, title={B}}\n", ":1: entry a7 has the field title twice; keep one"),
    ],
)
def test_bad_bib_names_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.bib"
    path.write_text(text)
    with pytest.raises(CorpusError, match=problem):
        read_bib(path)


def test_a_utf16_bib_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "refs.bib"
    path.write_bytes("@misc{a, title={A}, abstract={B}}\n".encode("utf-16"))
    with pytest.raises(CorpusError, match="is UTF-16 text; re-save it as UTF-8"):
        read_bib(path)


def test_round_trip_keys_stable() -> None:
    metas = [
        PaperMeta("1706.03762", "Attention Is All You Need", "Ashish Vaswani, Noam Shazeer", "2017"),
        PaperMeta("x-1", "Attention Is All You Need", "Ashish Vaswani", "2017", doi="10.1234/a_b"),
        PaperMeta("lit", "LitSearch: A Retrieval Benchmark for Scientific Literature Search"),
    ]
    first = to_bibtex(metas)
    assert [k for k, _ in first] == ["vaswani2017attention", "vaswani2017attentiona", "litsearchretrieval"]
    assert to_bibtex(metas) == first  # the same keys on every run
    parsed = parse_bib("\n".join(text for _, text in first))
    assert [e.title for e in parsed] == [m.title for m in metas]
    assert parsed[0].arxiv_id == "1706.03762" and parsed[0].authors == "Ashish Vaswani, Noam Shazeer"
    assert parsed[0].fields["url"] == "https://arxiv.org/abs/1706.03762"
    assert parsed[1].doi == "10.1234/a_b"
    assert cite_key("On the Dangers of Stochastic Parrots", "Emily M. Bender", "2021") == "bender2021dangers"
    # the first author of "A and B", not the last word of the list
    assert cite_key("Quote Me", "F. O'Six and G. von Seven", "2023") == "osix2023quote"
    assert cite_key("Attention Is All You Need", "Vaswani, Ashish and Shazeer, Noam", "2017") == "vaswani2017attention"


def test_write_bib_keeps_existing_entries(tmp_path: Path) -> None:
    path = tmp_path / "refs.bib"
    path.write_text(REFS)
    keys, written = write_bib(
        path, [PaperMeta("a", "Attention Is All You Need"), PaperMeta("b", "A New Paper", year="2024")]
    )
    assert keys == ["vaswani2017attention", "new2024paper"] and written == 1
    entries = read_bib(path)
    assert [e.key for e in entries] == ["vaswani2017attention", "devlin2019bert", "noabstract2020", "new2024paper"]
    assert write_bib(path, [PaperMeta("b", "A New Paper", year="2024")]) == (["new2024paper"], 0)
    assert len(read_bib(path)) == 4


def test_a_bib_file_that_cannot_be_written_is_one_line() -> None:
    """The kernel refuses the write (as a read-only file system does): an error naming the file."""
    from rag.corpus import CorpusError

    with pytest.raises(CorpusError, match=r"rag-test\.bib: cannot be written \(.+\); give a writable path"):
        write_bib(Path("/proc/rag-test.bib"), [PaperMeta("b", "A New Paper", year="2024")])


def test_ingest_bib_lists_entries_without_abstract(tmp_path: Path) -> None:
    bib = tmp_path / "refs.bib"
    bib.write_text(REFS)
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    proc = run_rag("ingest", str(bib), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "1 entry has no abstract field and is not ingested: noabstract2020 (line 21)" in proc.stderr
    assert "2 papers: 2 added" in proc.stderr
    found = json.loads(run_rag("search", "Transformer attention", "--json", "-k", "2", env=env).stdout)
    assert found["results"][0]["title"] == "Attention Is All You Need"

    from rag.draft import CorpusIndex, read_draft
    from rag.workspace import Workspace
    from tests.conftest import make_settings

    index = CorpusIndex.from_store(Workspace(make_settings(tmp_path / "data")).store)
    meta = index.papers[index.by_arxiv["1706.03762"]]
    assert meta.authors == "Ashish Vaswani, Noam Shazeer" and meta.year == "2017"
    assert index.by_doi["10.18653/v1/n19-1423"]
    # a draft citing them resolves by arXiv id, DOI and title
    draft = tmp_path / "d.md"
    draft.write_text("The Transformer is based solely on attention mechanisms [@vaswani2017attention].\n")
    assert read_draft(draft).sentences[0].keys == ["vaswani2017attention"]
    report = json.loads(run_rag("check", str(draft), "--bib", str(bib), "--json", env=env).stdout)
    assert report["claims"][0]["verdict"] == "supported"


def test_ingest_bad_bib_changes_nothing(tmp_path: Path) -> None:
    bib = tmp_path / "bad.bib"
    bib.write_text("@misc{a,\n  title = {Open {brace},\n  abstract = {x}\n")
    proc = run_rag("ingest", str(bib), env={"RAG_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"rag: error: {bib}:1: cannot parse") and proc.stderr.count("\n") == 1


def test_ask_writes_cited_sources_as_bibtex(bundled_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "answer.bib"
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    proc = run_rag("ask", "How many queries does the LitSearch benchmark contain?", "--bib", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    entries = read_bib(out)
    assert [e.key for e in entries] == ["litsearchretrieval"]
    assert entries[0].title == "LitSearch: A Retrieval Benchmark for Scientific Literature Search"
    first = out.read_text()
    assert f"{out}: 1 of 1 cited sources added as BibTeX (litsearchretrieval)" in proc.stderr
    again = run_rag("ask", "How many queries does the LitSearch benchmark contain?", "--bib", str(out), env=env)
    assert again.returncode == 0
    assert out.read_text() == first  # the same source is not written twice, and the line says so
    assert f"{out}: 0 of 1 cited sources added as BibTeX (litsearchretrieval), 1 already there" in again.stderr


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("missing/answer.bib", "the folder"),
        (".", "is a directory"),
        ("broken.bib", "cannot parse the entry"),
        ("notes.txt", "notes.txt: is not a .bib file; give a path ending in .bib"),
    ],
)
def test_ask_refuses_a_bib_target_it_could_not_write_before_answering(
    bundled_dir: Path, tmp_path: Path, target: str, problem: str
) -> None:
    (tmp_path / "broken.bib").write_text("@article{x, title={A\n")
    (tmp_path / "notes.txt").write_text("My notes.\n")
    proc = run_rag(
        "ask",
        "How many queries does the LitSearch benchmark contain?",
        "--bib",
        str(tmp_path / target),
        env={"RAG_DATA_DIR": str(bundled_dir)},
    )
    assert proc.returncode == 1
    assert proc.stdout == ""  # no answer printed, then an error
    assert len(proc.stderr.splitlines()) == 1 and problem in proc.stderr, proc.stderr
    assert (tmp_path / "broken.bib").read_text() == "@article{x, title={A\n"
    assert (tmp_path / "notes.txt").read_text() == "My notes.\n"


def test_string_macros_and_concatenation_are_resolved_not_stored_raw() -> None:
    entries = parse_bib(
        '@string{wb = "Widgets"}\n@string{two = {Two } # wb}\n'
        '@misc{a, title = "Alpha Paper on " # wb, abstract = "Quoted with " # "joined text.", month = jan}\n'
        '@misc{b, title = two # " and " # {More {Stuff}}, abstract = {C# code, and "x # y"}}\n'
    )
    assert [(e.key, e.title, e.fields["abstract"]) for e in entries] == [
        ("a", "Alpha Paper on Widgets", "Quoted with joined text."),
        ("b", "Two Widgets and More Stuff", 'C# code, and "x # y"'),
    ]
    assert entries[0].fields["month"] == "jan"  # a name nothing defines stays as written


def test_a_hyphenation_hint_in_a_title_is_no_character() -> None:
    """`Lit\\-Search` was read with a soft hyphen, so the cited paper was "not in the corpus"."""
    [entry] = parse_bib("@misc{lit, title = {Lit\\-Search: A Retrieval Benchmark}, abstract = {x}}\n")
    assert entry.title == "LitSearch: A Retrieval Benchmark"
