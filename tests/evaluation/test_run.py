"""`rag eval` end to end on small suites over the bundled store, and the option checks."""

import json

import pytest

from rag.evaluation.run import EvalOptions, EvalUsageError
from tests.conftest import REPO, make_settings, rag_json, run_rag, write_jsonl


def test_options_keep_the_retriever_order_and_refuse_unknown_names():
    options = EvalOptions.parse("bm25,hybrid", "extractive,llm")
    assert options.retrievers == ["hybrid", "bm25"] and options.answerers == ["extractive", "llm"]
    assert EvalOptions.parse("", "").retrievers == [] and EvalOptions.parse("", "").answerers == []
    with pytest.raises(EvalUsageError, match="unknown retriever 'sparse'; use "):
        EvalOptions.parse("bm25,sparse", "")
    with pytest.raises(EvalUsageError, match="unknown answerer .human.; use extractive, llm, agent"):
        EvalOptions.parse("", "human")


def test_llm_answerer_and_judge_need_an_llm(tmp_path):
    no_llm = make_settings(tmp_path)
    EvalOptions.parse("bm25", "extractive").check(no_llm)
    for options in (
        EvalOptions.parse("", "llm"),
        EvalOptions.parse("", "agent"),
        EvalOptions.parse("", "", judge=True),
    ):
        with pytest.raises(EvalUsageError, match="need an LLM"):
            options.check(no_llm)


def test_usage_errors_exit_2(tmp_path):
    env = {"RAG_DATA_DIR": str(tmp_path / "d")}
    for args, message in [
        (["--retrievers", "sparse"], "unknown retriever 'sparse'"),
        (["--answerers", "human"], "unknown answerer 'human'"),
        (["--answerers", "llm"], "the llm and agent answerers and --judge need an LLM"),
        (["--answerers", "agent"], "the llm and agent answerers and --judge need an LLM"),
    ]:
        proc = run_rag("eval", *args, "--out", str(tmp_path / "out"), env=env)
        assert proc.returncode == 2 and proc.stderr.startswith("rag: error: ") and message in proc.stderr
    assert not (tmp_path / "out").exists()
    # a file where the report folder goes is refused before the run, not after it
    (tmp_path / "taken").write_text("x")
    proc = run_rag("eval", "--retrievers", "bm25", "--out", str(tmp_path / "taken"), env=env)
    assert proc.returncode == 2 and "--out " in proc.stderr and "is a file; give a folder" in proc.stderr
    assert not (tmp_path / "d").exists()  # nothing was run


def test_eval_end_to_end_on_a_small_suite_agrees_with_search_and_ask(tmp_path, bundled_dir):
    suite = write_jsonl(
        tmp_path / "small.jsonl",
        [
            {
                "id": "d1",
                "question": "How many queries does the LitSearch benchmark contain?",
                "type": "detail",
                "gold": ["LitSearch: A Retrieval Benchmark for Scientific Literature Search"],
                "key_facts": ["597"],
            },
            {
                "id": "m1",
                "question": "which papers compare FP8 vs INT8?",
                "type": "multi",
                "gold": [
                    "Efficient Post-training Quantization with FP8 Formats",
                    "ZeroQuant-FP: A Leap Forward in LLMs Post-Training W4A8 Quantization Using Floating-Point Formats",
                ],
            },
            {
                "id": "u1",
                "question": "What speedup does FlashAttention-3 give on H100 GPUs?",
                "type": "unanswerable",
                "gold": [],
            },
        ],
    )
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    out = tmp_path / "out"
    proc = run_rag("eval", str(suite), "--retrievers", "bm25,hybrid", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# rag eval: small")
    assert (out / "recall_at_k.png").stat().st_size > 1000
    assert report["git_commit"] and report["versions"]["chromadb"] and report["timestamp"]
    assert report["verifier"]["balanced_accuracy"] >= 0.9
    # the harness's figures agree with an independent computation from rag search/ask --json
    searched = {
        qid: [r["paper_id"] for r in rag_json("search", q, "-k", "10", "--json", env=env)["results"]]
        for qid, q in [
            ("d1", "How many queries does the LitSearch benchmark contain?"),
            ("m1", "which papers compare FP8 vs INT8?"),
        ]
    }
    gold = {row["id"]: row["ranked"]["hybrid"] for row in report["per_question"] if row["type"] != "unanswerable"}
    assert gold == searched
    asked = rag_json("ask", "How many queries does the LitSearch benchmark contain?", "--json", env=env)
    d1 = next(r for r in report["per_question"] if r["id"] == "d1")
    assert d1["answers"]["extractive"]["answer"] == asked["answer"]
    overall = report["answers"]["extractive"]["overall"]
    assert overall["key_fact_recall"] == 1.0 and overall["abstention_recall"] == 1.0


def test_counterfactual_eval_hides_gold_papers_and_names_the_deciding_rule(tmp_path, bundled_dir):
    suite = write_jsonl(
        tmp_path / "cf.jsonl",
        [
            {
                "id": "d1",
                "question": "How many queries does the LitSearch benchmark contain?",
                "type": "detail",
                "gold": ["LitSearch: A Retrieval Benchmark for Scientific Literature Search"],
                "key_facts": ["597"],
            },
            {
                "id": "s1",
                "question": "lossless compression of model weights",
                "type": "single",
                "gold": ["ZipNN: Lossless Compression for AI Models"],
            },
        ],
    )
    out = tmp_path / "out"
    proc = run_rag(
        "eval",
        str(suite),
        "--retrievers",
        "",
        "--counterfactual",
        "--out",
        str(out),
        env={"RAG_DATA_DIR": str(bundled_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    cf = report["counterfactual"]["extractive"]
    assert sum(cf["decided_by"].values()) == 2
    d1 = next(r for r in report["per_question"] if r["id"] == "d1")
    assert d1["counterfactual"]["extractive"]["abstained"] is True
    assert d1["counterfactual"]["extractive"]["decided_by"] == "named_term_missing"
    assert cf["overall"]["abstention_recall"] >= 0.5
    assert "Counterfactual abstention" in (out / "report.md").read_text()


def test_eval_without_matplotlib_says_how_to_get_charts(tmp_path, bundled_dir):
    import os
    import subprocess
    import sys

    suite = write_jsonl(
        tmp_path / "one.jsonl",
        [
            {
                "id": "s1",
                "question": "lossless compression of model weights",
                "type": "single",
                "gold": ["ZipNN: Lossless Compression for AI Models"],
            }
        ],
    )
    runner = "import sys; sys.modules['matplotlib'] = None; from rag.cli import main; sys.argv = ['rag', *sys.argv[1:]]; main()"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            runner,
            "eval",
            str(suite),
            "--retrievers",
            "hybrid",
            "--answerers",
            "",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "RAG_DATA_DIR": str(bundled_dir)},
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no charts written: matplotlib is not installed (pip install 'rag[charts]')" in proc.stderr
    assert not list((tmp_path / "out").glob("*.png")) and (tmp_path / "out" / "report.json").is_file()
    # the written paraphrases are all true claims: their figure is the share wrongly rejected
    written = json.loads((tmp_path / "out" / "report.json").read_text())["paraphrases"]
    assert "balanced_accuracy" not in written and written["false_unsupported"] == round(1 - written["tpr"], 4)


def test_a_suite_without_answerable_questions_has_no_retrieval_figures_rather_than_zeros(tmp_path, bundled_dir):
    suite = write_jsonl(
        tmp_path / "none.jsonl",
        [{"id": "u1", "question": "What is the boiling point of tungsten?", "type": "unanswerable", "gold": []}],
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "recall_at_k.png").write_bytes(b"an earlier run's chart")
    proc = run_rag(
        "eval", str(suite), "--retrievers", "hybrid", "--out", str(out), env={"RAG_DATA_DIR": str(bundled_dir)}
    )
    assert proc.returncode == 0, proc.stderr
    assert not (out / "recall_at_k.png").exists()  # no recall to chart: the old chart does not stay as if it were
    assert "matplotlib is not installed" not in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["retrieval"]["hybrid"]["overall"] == {}
    assert "| hybrid | – | – | – | – |" in (out / "report.md").read_text()
    assert report["answers"]["extractive"]["overall"]["abstention_recall"] == 1.0
