"""`rag check`: drafts parsed with their lines and keys, verdicts on the sample drafts in eval/drafts
against the real bundled store, exit codes, and bad input as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.draft import CorpusIndex, DraftError, bib_for, measure_bundled, read_draft
from tests.conftest import REPO, run_rag

DRAFTS = REPO / "eval" / "drafts"


def test_latex_sentences_keep_lines_keys_and_bibliography(tmp_path: Path) -> None:
    tex = tmp_path / "d.tex"
    tex.write_text(
        "\\documentclass{article}\n\\addbibresource{refs.bib}\n\\begin{document}\n"
        "Large models help~\\citep[see][p.~3]{a, b}. A second claim\n"
        "wraps \\cite{c} onto the next line.\n% a comment \\cite{zz}\n\\emph{Bold} 3.5\\% gain \\citet{d}.\n"
        "\\bibliography{refs}\n\\end{document}\n"
    )
    draft = read_draft(tex)
    got = [(s.line, s.keys, s.text) for s in draft.sentences]
    assert got == [
        (4, ["a", "b"], "Large models help."),
        (4, ["c"], "A second claim wraps onto the next line."),
        (7, ["d"], "Bold 3.5% gain."),
    ]
    assert draft.bib_names == ["refs.bib", "refs"]


def test_switched_off_latex_is_not_checked(tmp_path: Path) -> None:
    tex = tmp_path / "d.tex"
    tex.write_text(
        "\\begin{document}\n\\iffalse\nAn old claim \\cite{a}.\n\\fi\n"
        "\\begin{comment}\nA dropped claim \\cite{b}.\n\\end{comment}\nThe kept claim \\cite{c}.\n\\end{document}\n"
    )
    assert [(s.line, s.keys) for s in read_draft(tex).sentences] == [(8, ["c"])]


def test_latex_citations_in_footnotes_and_biblatex_multi_citations_count(tmp_path: Path) -> None:
    tex = tmp_path / "d.tex"
    tex.write_text(
        "\\begin{document}\nSmolTulu scores 67.7\\% on IFEval\\footnote{As reported by \\cite{smol}.}.\n"
        "Both report gains \\cites{a}[p.~2]{b}{c}.\n\\end{document}\n"
    )
    got = [(s.line, s.keys) for s in read_draft(tex).sentences]
    assert got == [(2, ["smol"]), (3, ["a", "b", "c"])], got


def test_a_footnote_with_a_claim_of_its_own_is_checked_apart_from_the_sentence_it_annotates(tmp_path: Path) -> None:
    """ "... NLP papers \\cite{lit}\\footnote{It has 12 queries.}." was one claim, flagged as unsupported."""
    tex = tmp_path / "d.tex"
    tex.write_text(
        "\\begin{document}\nLitSearch holds queries about NLP papers \\cite{lit}\\footnote{It has 12 queries.}. "
        "Dense retrievers do well \\cite{lit}.\n\\end{document}\n"
    )
    got = [(s.keys, s.text) for s in read_draft(tex).sentences]
    assert got == [
        (["lit"], "LitSearch holds queries about NLP papers"),
        ([], "It has 12 queries."),
        (["lit"], "Dense retrievers do well."),
    ], got


def test_markdown_pandoc_citations(tmp_path: Path) -> None:
    md = tmp_path / "d.md"
    md.write_text(
        "---\nbibliography: refs.bib\n---\n# Title\n\nFirst claim [@a; @b]. Second\nclaim [see @c, p. 3]. "
        "Mail x@y.com.\n\n- As @d shows.\n\n```\n[@zz] code\n```\n"
    )
    draft = read_draft(md)
    assert [(s.line, s.keys) for s in draft.sentences] == [(4, []), (6, ["a", "b"]), (6, ["c"]), (7, []), (9, ["d"])]
    assert draft.bib_names == ["refs.bib"]


def test_an_in_text_citations_locator_is_part_of_the_citation(tmp_path: Path) -> None:
    """pandoc's `@key [p. 4]`: the bracket is the locator, not a sentence end at "p."."""
    md = tmp_path / "d.md"
    md.write_text("As @lit [p. 4] shows, the queries are hard. Then @b [see also] agrees. A [link](x) here.\n")
    assert [(s.keys, s.text) for s in read_draft(md).sentences] == [
        (["lit"], "As shows, the queries are hard."),
        (["b"], "Then agrees."),
        ([], "A link here."),
    ]


def test_a_citation_written_in_a_code_span_is_code(tmp_path: Path) -> None:
    md = tmp_path / "d.md"
    md.write_text("Write `[@key]` to cite [@a]. The `@b` form cites in the text.\n")
    draft = read_draft(md)
    assert [(s.keys, s.text) for s in draft.sentences] == [
        (["a"], "Write [@key] to cite."),
        ([], "The @b form cites in the text."),
    ]


def test_an_address_with_an_at_and_an_escaped_at_are_not_citations(tmp_path: Path) -> None:
    """`<https://medium.com/@someone>` stopped the whole check: "citation key 'someone' is not in the .bib"."""
    md = tmp_path / "d.md"
    md.write_text(
        "Benchmarks [@lit]. See <https://medium.com/@someone> and https://medium.com/@a/post. Write \\@b to cite.\n"
    )
    assert [(s.keys, s.text) for s in read_draft(md).sentences] == [
        (["lit"], "Benchmarks."),
        ([], "See https://medium.com/@someone and https://medium.com/@a/post."),
        ([], "Write @b to cite."),
    ]


def test_markdown_footnote_marks_are_not_claim_text(tmp_path: Path) -> None:
    """Pandoc footnotes: the definition's citations are read, its "[^1]:" label is not text."""
    md = tmp_path / "d.md"
    md.write_text("Models shrink losslessly.[^note]\n\n[^note]: ZipNN saves a third of the size [@zipnn].\n")
    assert [(s.line, s.keys, s.text) for s in read_draft(md).sentences] == [
        (1, [], "Models shrink losslessly."),
        (3, ["zipnn"], "ZipNN saves a third of the size."),
    ]


def test_a_footnote_that_only_cites_lends_its_citations_to_the_sentence_it_marks(tmp_path: Path) -> None:
    """ "[^a]: See [@lit]." was checked as the claim "See." while the sentence it annotates was not."""
    md = tmp_path / "d.md"
    md.write_text(
        "LitSearch holds 9999 queries.[^a] Dense retrievers lead it.[^b]\n\n[^a]: See [@lit].\n[^b]: Cf. @dense.\n"
    )
    assert [(s.line, s.keys, s.text) for s in read_draft(md).sentences] == [
        (1, ["lit"], "LitSearch holds 9999 queries."),
        (1, ["dense"], "Dense retrievers lead it."),
    ]


@pytest.mark.parametrize(
    "source",
    [
        "LitSearch holds 9999 queries. \\cite{lit}\nRetrieval benchmarks are useful.\n",
        "LitSearch holds 9999 queries.\\footnote{\\cite{lit}}\nRetrieval benchmarks are useful.\n",
        "LitSearch holds 9999 queries.\\footnote{See \\cite{lit}.}\nRetrieval benchmarks are useful.\n",
        "LitSearch holds 9999 queries.\\footnote{For details, see \\cite{lit}.} Retrieval benchmarks are useful.\n",
        "LitSearch holds 9999 queries\\footnote{Cf.~\\cite{lit}.}. Retrieval benchmarks are useful.\n",
    ],
)
def test_a_citation_after_the_full_stop_cites_the_sentence_before_it(tmp_path: Path, source: str) -> None:
    """Chicago-style notes and ". \\cite{k}" cite the sentence they follow, not the next one, and
    a note's "See" is no claim of its own."""
    tex = tmp_path / "d.tex"
    tex.write_text(source)
    assert [(s.keys, s.text) for s in read_draft(tex).sentences] == [
        (["lit"], "LitSearch holds 9999 queries."),
        ([], "Retrieval benchmarks are useful."),
    ]


def test_a_citation_that_starts_a_sentence_stays_with_it(tmp_path: Path) -> None:
    tex = tmp_path / "d.tex"
    tex.write_text("Dense retrieval is strong. \\cite{lit} show that queries are hard. Markdown too.\n")
    md = tmp_path / "d.md"
    md.write_text("LitSearch holds 597 queries. [@lit]\n\nDense retrieval is strong.[@a] [@b] It is.\n")
    assert [(s.keys, s.text) for s in read_draft(tex).sentences] == [
        ([], "Dense retrieval is strong."),
        (["lit"], "show that queries are hard."),
        ([], "Markdown too."),
    ]
    assert [(s.keys, s.text) for s in read_draft(md).sentences] == [
        (["lit"], "LitSearch holds 597 queries."),
        (["a", "b"], "Dense retrieval is strong."),
        ([], "It is."),
    ]


@pytest.mark.parametrize(
    "front",
    [
        "bibliography: [refs.bib, 'more.bib']",
        'bibliography:\n  - refs.bib\n  - "more.bib"\ntitle: A draft',
    ],
)
def test_markdown_front_matter_may_list_several_bib_files(tmp_path: Path, front: str) -> None:
    """Pandoc's list forms of `bibliography:`, as a draft with several .bib files writes them."""
    md = tmp_path / "d.md"
    md.write_text(f"---\n{front}\n---\nA claim [@a].\n")
    draft = read_draft(md)
    assert draft.bib_names == ["refs.bib", "more.bib"]
    assert bib_for(draft, None) == [tmp_path / "refs.bib", tmp_path / "more.bib"]


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("bibliography: [refs.bib, more.bib", "d.md:3: the bibliography list is never closed; end it with ]"),
        ("bibliography: {a: 1}", "d.md:3: bibliography names files, not a mapping"),
    ],
)
def test_a_bibliography_line_that_names_no_file_is_named_at_its_line(tmp_path: Path, front: str, message: str) -> None:
    md = tmp_path / "d.md"
    md.write_text(f"---\ntitle: A draft\n{front}\n---\nA claim [@a].\n")
    with pytest.raises(DraftError, match=re.escape(message)):
        read_draft(md)


def _check_json(*args: str, env: dict) -> tuple[int, dict]:
    proc = run_rag("check", *args, "--json", env=env)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_sample_latex_draft_verdicts(bundled_dir: Path) -> None:
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    code, report = _check_json(str(DRAFTS / "sample.tex"), "--suggest", env=env)
    assert code == 1  # two claims are not supported by what they cite
    by_line = {c["line"]: c for c in report["claims"]}
    assert by_line[10]["verdict"] == "supported" and by_line[10]["keys"] == ["bf16"]
    assert by_line[12]["verdict"] == "unsupported"  # 76.7% where the abstract says 67.7%
    assert "67.7%" in by_line[12]["closest"]
    assert by_line[16]["verdict"] == "unsupported"  # the right claim, the wrong paper ...
    assert by_line[16]["suggestion"]["key"] == "guidance"  # ... and the paper that supports it
    assert by_line[24]["verdict"] == "missing"
    assert by_line[25]["verdict"] == "uncited" and by_line[25]["suggestion"]["key"] == "peakperf"
    assert [c["key"] for c in report["not_in_corpus"]] == ["kaplan2020scaling"]
    assert report["summary"]["supported"] == 4 and report["summary"]["unsupported"] == 2
    assert report["bib"] == [str(DRAFTS / "refs.bib")]

    text = run_rag("check", str(DRAFTS / "sample.tex"), "--fail-on", "never", env=env)
    assert text.returncode == 0
    assert f"{DRAFTS / 'sample.tex'}:12: not supported by the cited paper [smoltulu]" in text.stdout
    assert "cited paper not in corpus [kaplan2020scaling]" in text.stdout
    assert "rag ingest" in text.stderr


def test_sample_markdown_draft(bundled_dir: Path) -> None:
    code, report = _check_json(str(DRAFTS / "sample.md"), env={"RAG_DATA_DIR": str(bundled_dir)})
    assert code == 1
    verdicts = {c["line"]: c["verdict"] for c in report["claims"]}
    assert verdicts == {8: "supported", 11: "unsupported", 13: "supported", 16: "supported", 18: "supported"}


def test_fail_on_missing(bundled_dir: Path, tmp_path: Path) -> None:
    md = tmp_path / "d.md"
    md.write_text("Loss falls as a power law in model size, data and compute [@kaplan2020scaling].\n")
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    bib = str(DRAFTS / "refs.bib")
    assert run_rag("check", str(md), "--bib", bib, env=env).returncode == 0
    assert run_rag("check", str(md), "--bib", bib, "--fail-on", "missing", env=env).returncode == 1


@pytest.mark.parametrize(
    ("name", "content", "bib", "expected"),
    [
        (
            "unbalanced.tex",
            b"\\begin{document}\nA claim {here \\cite{bf16}.\n\\end{document}\n",
            True,
            "d/unbalanced.tex:2: this { is never closed; add the missing }",
        ),
        (
            "unclosed-env.tex",
            b"\\begin{document}\n\\begin{itemize}\n\\item A claim \\cite{bf16}.\n\\end{document}\n",
            True,
            "d/unclosed-env.tex:2: this \\begin{itemize} is never closed; add the missing \\end{itemize}",
        ),
        (
            "unclosed-end.tex",
            b"\\begin{document}\nA claim \\cite{bf16}. 100\\% \\{ sure.\n% a comment {\n\\begin{itemize}\n\\item x\n",
            True,
            "d/unclosed-end.tex:1: this \\begin{document} is never closed; add the missing \\end{document}",
        ),
        ("nobib.tex", b"A claim \\cite{bf16}.\n", False, "no .bib file given"),
        ("unknown.md", b"Line one.\n\nA claim [@nosuchkey].\n", True, "d/unknown.md:3: citation key 'nosuchkey'"),
        (
            "unknowns.md",
            b"A claim [@nokey1].\n\nAnother [@nokey2; @nokey1].\n",
            True,
            "refs.bib (also 'nokey2' on line 3); add them or fix the keys",
        ),
        (
            "empty.md",
            b"A claim [@bf16].\n\nAnother [@]. And `[@]` in code.\n",
            True,
            "d/empty.md:3: a citation names no key",
        ),
        (
            "empty.tex",
            b"\\begin{document}\nA claim \\cite{}.\nMore \\citep{ , }.\n\\end{document}\n",
            True,
            "d/empty.tex:2: a citation names no key (also on line 3); add the key or remove it",
        ),
        ("binary.md", b"\x00\x01\x02PK", True, "binary"),
        ("utf16.md", "A claim [@bf16].\n".encode("utf-16"), True, "d/utf16.md: is UTF-16 text; re-save it as UTF-8"),
        ("latin1.md", "Caf\u00e9 claim [@bf16].\n".encode("latin-1"), True, "invalid UTF-8"),
        ("draft.docx", b"text", True, "unknown draft type"),
        ("blank.tex", b"\n  \n", False, "d/blank.tex: the draft is empty; nothing to check"),
        ("missing.md", None, True, "no such file"),
        ("chapters", "folder", True, "d/chapters: is a directory; give a .tex or .md file"),
    ],
)
def test_bad_input_is_one_line(bundled_dir: Path, tmp_path: Path, name, content, bib, expected) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    path = folder / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    args = ["check", str(path)] + (["--bib", str(DRAFTS / "refs.bib")] if bib else [])
    proc = run_rag(*args, env={"RAG_DATA_DIR": str(bundled_dir)})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rag: error: "), proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_bib_named_by_draft(tmp_path: Path) -> None:
    tex = tmp_path / "d.tex"
    tex.write_text("A claim \\cite{x}.\n\\bibliography{absent}\n")
    proc = run_rag("check", str(tex))
    assert proc.returncode == 1 and "absent.bib: no such file" in proc.stderr


def test_unreadable_draft_raises_draft_error(tmp_path: Path) -> None:
    with pytest.raises(DraftError, match="x.tex:1: this { is never closed"):
        read_draft(_write(tmp_path / "x.tex", "\\textbf{open"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_measured_on_the_labelled_set(workspace) -> None:
    """The figures the README reports (eval/drafts/labels.jsonl against the bundled corpus)."""
    figures = measure_bundled(CorpusIndex.from_store(workspace.store))
    assert figures is not None
    assert figures["sentences"] == 48 and figures["not_scored"] == 0
    assert figures["accuracy_by_kind"]["wrong_citation"] == 1.0
    assert figures["balanced_accuracy"] >= 0.8 and figures["unsupported_precision"] >= 0.85


def test_citations_in_formatting_headings_captions_and_tables_are_read(tmp_path: Path) -> None:
    tex = _write(
        tmp_path / "d.tex",
        "\\begin{document}\n"
        "\\textbf{Gadgets improve recall by 99\\% \\cite{a}.}\n"
        "\\emph{Widgets improve throughput \\citep{b}.} \\label{x}\n"
        "\\section{Zorblax reach low perplexity \\cite{c}}\n"
        "\\begin{table}\\caption{Gadgets improve recall \\cite{a}.}\\end{table}\n"
        "{Grouped claim about widgets \\cite{b}.}\n"
        "\\end{document}\n",
    )
    got = [(s.line, s.keys) for s in read_draft(tex).sentences if s.keys]
    assert got == [(2, ["a"]), (3, ["b"]), (4, ["c"]), (5, ["a"]), (6, ["b"])]
    assert all("x" != s.text for s in read_draft(tex).sentences)  # a label is no prose
    md = tmp_path / "d.md"
    md.write_bytes(
        "---\r\nbibliography: refs.bib\r\n---\r\n"  # saved on Windows
        "## Zorblax reach low perplexity [@c]\r\n\r\n"
        "| claim |\r\n|---|\r\n| Gadgets improve recall by 98% [@a]. |\r\n\r\n"
        "<div>Widgets improve throughput by 92% [@b].</div>\r\n\r\n"
        "Widgets improve throughput [@\u00fcn\u00efcode]. And again [@{10.1000/xyz}].\r\n".encode()
    )
    draft = read_draft(md)
    assert draft.bib_names == ["refs.bib"]
    assert [(s.line, s.keys) for s in draft.sentences if s.keys] == [
        (4, ["c"]),
        (8, ["a"]),
        (10, ["b"]),
        (12, ["\u00fcn\u00efcode"]),
        (12, ["10.1000/xyz"]),
    ]


def test_an_included_file_is_named_as_not_read(bundled_dir: Path, tmp_path: Path) -> None:
    tex = _write(
        tmp_path / "main.tex", "\\begin{document}\nIntro.\n\\input{intro}\n\\include{ch/two}\n\\end{document}\n"
    )
    assert read_draft(tex).unread == ["intro", "ch/two"]
    proc = run_rag("check", str(tex), "--bib", str(DRAFTS / "refs.bib"), env={"RAG_DATA_DIR": str(bundled_dir)})
    assert f"rag: {tex}: the file it includes, intro, is not read; check that file on its own" in proc.stderr
    assert "ch/two, is not read" in proc.stderr and "Traceback" not in proc.stderr


def test_a_draft_citing_nothing_needs_no_bib_and_its_claims_get_suggestions(bundled_dir: Path, tmp_path: Path) -> None:
    draft = _write(tmp_path / "plain.md", "We propose LitSearch, a benchmark of 597 literature search queries.\n")
    proc = run_rag("check", str(draft), "--suggest", env={"RAG_DATA_DIR": str(bundled_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "uncited claim" in proc.stdout and "LitSearch: A Retrieval Benchmark" in proc.stdout


def test_references_into_a_paper_end_no_sentence_and_state_no_number(tmp_path: Path) -> None:
    """ "(cf. Tab. 2)" split the claim at "Tab." and "(Fig. 7)" or "Ajith et al. (2024)" were read as
    numbers the abstract must state; math hedges are words; a draft's escape sequences are dropped."""
    tex = tmp_path / "d.tex"
    tex.write_text(
        "FP8 beats INT8 (cf. Tab.~2) \\cite{zq}.\n"
        "See pp. 4--5 and Sec. IV for FP8 \\supercite{zq}.\n"
        "LitSearch has $\\sim$600 queries and $>500$ of them are hard \\smartcite{lit}.\n"
        "Written \x1b[31min red\x1b[0m \\cite{lit}.\n"
    )
    assert [(s.line, s.keys, s.text) for s in read_draft(tex).sentences] == [
        (1, ["zq"], "FP8 beats INT8 (cf. Tab. 2)."),
        (2, ["zq"], "See pp. 4–5 and Sec. IV for FP8."),
        (3, ["lit"], "LitSearch has about 600 queries and more than 500 of them are hard."),
        (4, ["lit"], "Written in red."),
    ]
    from rag.sentences import without_pointers

    assert without_pointers("FP8 beats INT8 (Fig. 7), see Table 5 and Section 4.2.") == "FP8 beats INT8."
    assert without_pointers("Ajith et al. (2024) list 597 queries (Ajith et al., 2024).") == (
        "Ajith et al. list 597 queries."
    )
    assert without_pointers("In 2024, LitSearch listed 597 queries.") == "In 2024, LitSearch listed 597 queries."


def test_a_claim_with_a_figure_number_or_an_author_year_is_checked_on_what_it_claims(bundled_dir: Path) -> None:
    from rag.grounding import check
    from rag.workspace import Workspace
    from tests.conftest import make_settings

    ws = Workspace(make_settings(bundled_dir))
    title, abstract = next(iter(ws.store.abstracts(["litsearch-a-retrieval-benchmark-for-9a09dd"]).values()))
    sources = {1: (title, abstract)}
    for claim in (
        "Ajith et al. (2024) introduce LitSearch, a benchmark of 597 literature search queries (Table 1) [1].",
        "LitSearch comprises 597 realistic literature search queries (see Fig. 7) [1].",
    ):
        assert check(claim, sources, ws.verifier).sentences[0].verdict == "supported", claim
    wrong = "LitSearch comprises 5970 realistic literature search queries (see Fig. 7) [1]."
    assert check(wrong, sources, ws.verifier).sentences[0].verdict == "unsupported"
