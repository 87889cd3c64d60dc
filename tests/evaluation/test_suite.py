"""Loading suites: gold titles resolved to ids, each bad line named by file and line."""

import pytest

from rag.evaluation.suite import SuiteError, bundled_suites, load_suite
from tests.conftest import REPO, write_jsonl


def test_suite_loader_accepts_titles_and_ids_and_names_bad_lines(tmp_path):
    titles = {"p1": "Paper A", "p2": "Paper B"}
    good = write_jsonl(
        tmp_path / "good.jsonl",
        [
            {"id": "a", "question": "q?", "type": "single", "gold": ["paper a"]},
            {"id": "b", "question": "q2?", "type": "multi", "gold": ["p1", "Paper B"], "key_facts": ["x"]},
            {"id": "c", "question": "q3?", "type": "unanswerable", "gold": []},
        ],
    )
    suite = load_suite(good, titles)
    assert [q.gold for q in suite.questions] == [("p1",), ("p1", "p2"), ()]
    cases = [
        ('{"id": "a", "question": "q", "type": "single", "gold": ["Nope"]}', "neither a paper id nor a title"),
        ('{"id": "a", "question": "q", "type": "weird", "gold": ["p1"]}', "type 'weird'"),
        ('{"id": "a", "question": "q", "type": "single"', "malformed JSON"),
        ('{"id": "a", "question": "", "type": "single", "gold": ["p1"]}', "missing or empty 'question'"),
        ('{"id": 5, "question": "q", "type": "single", "gold": ["p1"]}', r"'id' must be text, not int \(5\); quote it"),
        ('{"id": "a", "question": "q", "type": "unanswerable", "gold": ["p1"]}', "cannot have gold"),
        ('{"id": "ok", "question": "q", "type": "single", "gold": ["p1"]}', "duplicate question id 'ok'"),
        ("[1, 2]", "each line must be a JSON object"),
    ]
    for line, message in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"id": "ok", "question": "fine?", "type": "single", "gold": ["p1"]}\n' + line + "\n")
        with pytest.raises(SuiteError, match=message) as err:
            load_suite(bad, titles)
        assert f"{bad}:2:" in str(err.value)


def test_multi_part_questions_keep_their_parts(tmp_path):
    row = {
        "id": "m",
        "question": "What is A, and what is B?",
        "type": "multi",
        "gold": ["p1"],
        "parts": [{"ask": "What is A?", "key_facts": ["a"]}, {"ask": "What is B?"}],
    }
    (question,) = load_suite(write_jsonl(tmp_path / "m.jsonl", [row]), {"p1": "Paper A"}).questions
    assert question.parts == (("What is A?", ("a",)), ("What is B?", ()))
    assert question.answerable


def test_missing_empty_and_undecodable_suites_are_one_line(tmp_path):
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "none.jsonl", {})
    with pytest.raises(SuiteError, match="is a directory; give the suite's .jsonl file"):
        load_suite(tmp_path, {})
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(SuiteError, match="the suite has no questions"):
        load_suite(tmp_path / "empty.jsonl", {})
    (tmp_path / "latin1.jsonl").write_bytes(b'\n{"id": "q", "question": "caf\xe9", "type": "unanswerable"}\n')
    with pytest.raises(SuiteError, match=r"latin1.jsonl:2: invalid UTF-8"):
        load_suite(tmp_path / "latin1.jsonl", {})


def test_bundled_suites_are_tune_then_test():
    assert [p.stem for p in bundled_suites()] == ["tune", "test"]


def test_dev_suite_loads(workspace):
    suite = load_suite(REPO / "eval" / "suites" / "tune.jsonl", workspace.store.titles())
    assert len(suite.questions) >= 40
    assert {q.type for q in suite.questions} == {"single", "multi", "detail", "unanswerable"}
