"""`rag eval --beir` on a tiny BEIR folder made from the bundled corpus."""

import json

import pytest

from rag.errors import RagError
from rag.evaluation.beir import evaluate_beir
from rag.workspace import Workspace
from tests.conftest import make_settings, run_rag, write_jsonl


def test_beir_dataset_from_the_bundled_corpus(tmp_path, bundled_dir):
    from rag.corpus import bundled_corpus_path, read_corpus

    papers = read_corpus(bundled_corpus_path())[:40]
    folder = tmp_path / "mini-beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": p.id, "title": p.title, "text": p.abstract} for p in papers])
    # each query is a paper's title; its paper is the one relevant document
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": p.title} for i, p in enumerate(papers[:20])])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{p.id}\t1\n" for i, p in enumerate(papers[:20]))
    )
    proc = run_rag(
        "eval", "--beir", str(folder), "--out", str(tmp_path / "out"), env={"RAG_DATA_DIR": str(tmp_path / "d")}
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "beir.json").read_text())
    assert report["documents"] == 40 and report["queries"] == 20
    for mode in ("bm25", "dense", "hybrid"):
        assert report["retrieval"][mode]["R@100"] == 1.0
        assert report["retrieval"][mode]["nDCG@10"] > 0.9


def test_bad_beir_lines_are_one_error_naming_the_line(tmp_path):
    folder = tmp_path / "bad-beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "a document"}])
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n{"_id": "q2"}\n')
    ws = Workspace(make_settings(tmp_path / "d"))
    with pytest.raises(RagError, match=r"queries.jsonl:2: no 'text' field"):
        evaluate_beir(folder, ws, ["bm25"])
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"\n')
    with pytest.raises(RagError, match=r"queries.jsonl:1: malformed JSON"):
        evaluate_beir(folder, ws, ["bm25"])
    (folder / "queries.jsonl").unlink()
    with pytest.raises(RagError, match="is not a BEIR dataset: .*queries.jsonl is missing"):
        evaluate_beir(folder, ws, ["bm25"])


@pytest.mark.parametrize(
    ("qrels", "problem"),
    [
        ("query-id\tcorpus-id\tscore\n", "no relevance judgment with a score above 0"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t0\n", "no relevance judgment with a score above 0"),
        ("q1\td1\t1\n", "the first line must be the header query-id, corpus-id, score"),
        ("query-id\tcorpus-id\tscore\nq9\td1\t1\n", "none of the judged queries is in it"),
    ],
)
def test_qrels_that_judge_nothing_are_an_error_not_zero_figures(tmp_path, qrels, problem):
    folder = tmp_path / "empty-beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "a document"}])
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "a query"}])
    with pytest.raises(RagError, match=problem):
        evaluate_beir(folder, Workspace(make_settings(tmp_path / "d")), ["bm25"])
