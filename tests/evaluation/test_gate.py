"""The regression gate: which figures count, which direction is worse, and what is refused."""

import json

import pytest

from rag.errors import RagError
from rag.evaluation.gate import compare, compare_files, failure_problem, flatten
from tests.conftest import run_rag

BASE = {
    "retrieval": {"hybrid": {"overall": {"nDCG@10": 0.95, "R@10": 0.99}}},
    "answers": {"extractive": {"overall": {"citation_recall": 1.0}}},
}


def test_flatten_takes_every_overall_figure_and_the_verifier():
    report = {**BASE, "counterfactual": {"extractive": {"overall": {"abstention_recall": 0.5}}}}
    report["verifier"] = {"balanced_accuracy": 0.97, "pairs": 3}
    assert flatten(report) == {
        "retrieval.hybrid.nDCG@10": 0.95,
        "retrieval.hybrid.R@10": 0.99,
        "answers.extractive.citation_recall": 1.0,
        "counterfactual.extractive.abstention_recall": 0.5,
        "verifier.balanced_accuracy": 0.97,
    }


def test_a_drop_beyond_the_tolerance_fails_and_a_rise_in_fallbacks_too():
    worse = json.loads(json.dumps(BASE))
    worse["retrieval"]["hybrid"]["overall"]["nDCG@10"] = 0.90
    rows, failed = compare(BASE, worse)
    assert failed and ("retrieval.hybrid.nDCG@10", 0.95, 0.90, pytest.approx(-0.05)) in rows
    assert not compare(BASE, BASE)[1] and not compare(worse, BASE)[1]
    low = {"retrieval": {}, "answers": {"llm": {"overall": {"fallback_rate": 0.2}}}}
    high = {"retrieval": {}, "answers": {"llm": {"overall": {"fallback_rate": 0.5}}}}
    assert compare(low, high)[1] and not compare(high, low)[1]


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ([1, 2], "not a JSON object"),
        ({"retrieval": [1]}, "'retrieval' is not a mapping"),
        ({"retrieval": {"bm25": {"overall": {"R@5": "high"}}}}, "is not a number"),
        ({}, "holds no retrieval or answer figures"),
        ({"retrieval": {"dense": {"overall": {"R@5": 0.5}}}}, "share no retrieval or answer figure"),
        ({"retrieval": {}, "answers": {}, "drafts": {"balanced_accuracy": 0.9}}, "share no retrieval or answer figure"),
        ({"retrieval": {"hybrid": {"overall": {"nDCG@10": float("nan")}}}}, "is not a number"),
    ],
)
def test_reports_of_another_shape_are_refused(other, message):
    with pytest.raises(RagError, match=message):
        compare(BASE, other)


def test_a_figure_missing_from_the_new_report_fails():
    fewer = {"retrieval": {"hybrid": {"overall": {"R@10": 0.99}}}, "answers": BASE["answers"]}
    rows, failed = compare(BASE, fewer)
    assert failed and [r[0] for r in rows if r[2] != r[2]] == ["retrieval.hybrid.nDCG@10"]
    assert not compare(fewer, BASE)[1]  # a figure the baseline lacks is new, not lost
    # a retriever or answerer the new run did not run is left out, not lost
    assert not compare(BASE, {"retrieval": BASE["retrieval"], "answers": {}})[1]


def test_failure_problem_names_the_answerer_and_first_error():
    ok = {"failures": {"llm": {"failed": 1, "questions": 10, "share": 0.1, "errors": {"timeout": 1}}}}
    assert failure_problem(ok) is None
    bad = {"failures": {"llm": {"failed": 3, "questions": 10, "share": 0.3, "errors": {"timeout": 2, "empty": 1}}}}
    assert failure_problem(bad) == (
        "3 of 10 llm answers failed (30%, more than 20%); the figures are not meaningful. First error: timeout"
    )


def test_compare_files_prints_one_line_per_figure(tmp_path):
    worse = json.loads(json.dumps(BASE))
    worse["retrieval"]["hybrid"]["overall"]["nDCG@10"] = 0.90
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    lines, failed = compare_files(tmp_path / "base.json", tmp_path / "worse.json")
    assert failed and len(lines) == 3
    assert lines[2] == f"{'retrieval.hybrid.nDCG@10':<55}  0.9500 ->  0.9000  (-0.0500)  REGRESSION"
    with pytest.raises(RagError, match="cannot read report"):
        compare_files(tmp_path / "base.json", tmp_path / "missing.json")


def test_compare_fails_on_a_real_regression(tmp_path):
    worse = json.loads(json.dumps(BASE))
    worse["retrieval"]["hybrid"]["overall"]["nDCG@10"] = 0.90
    same = json.loads(json.dumps(BASE))
    same["answers"]["extractive"]["overall"]["citation_recall"] = 0.99
    paths = {}
    for name, report in {"base": BASE, "worse": worse, "same": same}.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report))
    bad = run_rag("eval", "--compare", str(paths["base"]), str(paths["worse"]))
    assert bad.returncode == 1 and "REGRESSION" in bad.stdout and "retrieval.hybrid.nDCG@10" in bad.stdout
    assert (
        bad.stderr.strip() == f"rag: error: a figure dropped by more than 0.02, or is missing, against {paths['base']}"
    )
    ok = run_rag("eval", "--compare", str(paths["base"]), str(paths["same"]))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.endswith("no figure dropped by more than 0.02\n")


def test_reports_of_two_suites_and_a_third_file_are_refused(tmp_path):
    with pytest.raises(RagError, match="the baseline is of suite 'tune' and the new report of 'test'"):
        compare({**BASE, "suite": "tune"}, {**BASE, "suite": "test"})
    rows, failed = compare({**BASE, "suite": "tune"}, {**BASE, "suite": "tune"})
    assert not failed and rows
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    for tolerance in ("nan", "-1", "1.5"):  # nan once passed every gate
        proc = run_rag(
            "eval", "--compare", str(tmp_path / "base.json"), str(tmp_path / "base.json"), "--tolerance", tolerance
        )
        assert proc.returncode == 2 and "--tolerance must be a drop from 0 to 1" in proc.stderr
    extra = run_rag("eval", "--compare", str(tmp_path / "base.json"), str(tmp_path / "base.json"), "third.json")
    assert extra.returncode == 2
    assert (
        extra.stderr == "rag: error: --compare takes two reports, BASELINE.json NEW.json; third.json is one too many\n"
    )


def test_reports_of_other_questions_are_refused_and_left_out_blocks_are_named(tmp_path):
    one = {**BASE, "per_question": [{"id": "q1"}, {"id": "q2"}]}
    other = {**BASE, "per_question": [{"id": "q1"}, {"id": "q3"}]}
    with pytest.raises(RagError, match=r"different questions \(2 and 2, 1 shared\)"):
        compare(one, other)
    assert not compare(one, one)[1]
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    (tmp_path / "hybrid.json").write_text(json.dumps({"retrieval": BASE["retrieval"], "answers": {}}))
    lines, failed = compare_files(tmp_path / "base.json", tmp_path / "hybrid.json")
    assert not failed and lines[0] == "not compared (the new run left them out): answers.extractive"
