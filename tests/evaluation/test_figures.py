"""Answer and counterfactual figures over hand-made answers, no store."""

import pytest

from rag.abstain import Assessment
from rag.answer import Answer, Source
from rag.evaluation.counterfactual import counterfactual_block, counterfactual_figures
from rag.evaluation.figures import answer_figures, decided_by, percentiles
from rag.evaluation.suite import Question
from rag.grounding import Grounding, check

SOURCES = {
    1: ("Paper A", "Method X reaches 91.5% accuracy on benchmark Y."),
    2: ("Paper B", "Method Z is slow on long inputs."),
}


def fake_answer(question: Question, text: str, abstained: bool = False) -> Answer:
    sources = [Source(n, f"p{n}", t, a) for n, (t, a) in SOURCES.items()]
    return Answer(question.question, text, abstained, "extractive", None, sources, check(text, SOURCES), [])


def test_answer_figures_with_bad_missing_and_extra_citations():
    q1 = Question("1", "How accurate is X?", "detail", ("p1",), ("91.5%",))
    q2 = Question("2", "Is Z fast?", "single", ("p2",))
    q3 = Question("3", "What about W?", "unanswerable", ())
    results = [
        (q1, fake_answer(q1, "Method X reaches 91.5% accuracy on benchmark Y [1][2].")),  # extra citation
        (q2, fake_answer(q2, "Method Z is slow on long inputs. Method Z is slow on long inputs [5].")),  # missing, bad
        (q3, fake_answer(q3, "The corpus does not answer this question.", abstained=True)),
    ]
    figures = answer_figures(results)
    assert figures["answered_rate"] == 1.0
    assert figures["citation_recall"] == pytest.approx((1.0 + 0.0) / 2)
    assert figures["citation_precision"] == pytest.approx((1 / 2 + 0.0) / 2)
    assert figures["key_fact_recall"] == 1.0
    assert figures["gold_citation_rate"] == pytest.approx(1 / 2)  # p1 (gold) and p2 (not gold for q1)
    assert figures["abstention_recall"] == 1.0 and figures["abstention_precision"] == 1.0
    assert figures["fallback_rate"] == 0.0


def test_fallback_rate_counts_answers_that_fell_back_to_the_extractive_one():
    q1 = Question("1", "How accurate is X?", "detail", ("p1",), ("91.5%",))
    q2 = Question("2", "Is Z fast?", "single", ("p2",))
    fell = fake_answer(q1, "Method X reaches 91.5% accuracy on benchmark Y [1].")
    fell.fell_back = True
    figures = answer_figures([(q1, fell), (q2, fake_answer(q2, "Method Z is slow on long inputs [2]."))])
    assert figures["fallback_rate"] == 0.5


def test_key_facts_match_without_case_commas_or_extra_spaces():
    q = Question("1", "How many?", "detail", ("p1",), ("1,024 Tokens",))
    answer = fake_answer(q, "It reads 1024   tokens at once [1].")
    assert answer_figures([(q, answer)])["key_fact_recall"] == 1.0


def test_percentiles_of_none_one_and_many_values():
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
    assert percentiles([3.14159]) == {"p50": 3.14, "p95": 3.14}
    assert percentiles([float(v) for v in range(1, 101)]) == {"p50": 50.5, "p95": 95.05}


def _abstention(question: Question, rule: str, answerable: bool = False, abstained: bool = True) -> Answer:
    assessment = Assessment(answerable, "", 0.0, 0.0, rule=rule)
    return Answer(question.question, "", abstained, "extractive", None, [], Grounding([]), [], assessment)


def test_counterfactual_counts_abstentions_and_names_the_deciding_rule():
    qs = [Question(str(i), f"q{i}?", t, ("p1",)) for i, t in enumerate(["single", "detail", "detail"])]
    failed = Answer("q?", "(failed: x)", True, "llm", None, [], Grounding([]), [])  # a failure is no abstention
    pairs = [
        (qs[0], _abstention(qs[0], "named_term_missing")),
        (qs[1], _abstention(qs[1], "model", answerable=True)),  # the model itself declined
        (qs[2], failed),
    ]
    assert counterfactual_figures(pairs) == {"abstention_recall": round(2 / 3, 4), "hidden_cited": 0.0}
    assert counterfactual_figures([]) == {}
    assert [decided_by(a) for _, a in pairs] == ["named_term_missing", "model_abstained", "failed"]
    block = counterfactual_block(pairs)
    assert block["by_type"] == {"single": {"abstention_recall": 1.0}, "detail": {"abstention_recall": 0.5}}
    assert block["decided_by"] == {"failed": 1, "model_abstained": 1, "named_term_missing": 1}
    assert set(block["ci95"]) == {"abstention_recall", "hidden_cited"}


def test_counterfactual_asks_a_which_papers_question_only_to_cite_no_hidden_paper():
    single = Question("s", "q?", "single", ("p1",))
    multi = Question("m", "which papers?", "multi", ("p1", "p2"))
    other = Source(1, "p3", "Other", "An abstract.")
    hidden = Source(2, "p2", "Hidden", "An abstract.")
    cites = check("A claim [1]. Another claim [2].", {1: ("Other", "An abstract."), 2: ("Hidden", "An abstract.")})
    answered = Answer("which papers?", "x", False, "extractive", None, [other, hidden], cites, [])
    abstained = _abstention(single, "model")
    figures = counterfactual_figures([(single, abstained), (multi, answered)])
    assert figures == {"abstention_recall": 1.0, "hidden_cited": 0.5}  # the multi answer is no failed abstention
    clean = Answer("which papers?", "x", False, "extractive", None, [other], cites, [])
    assert counterfactual_figures([(multi, clean)]) == {"hidden_cited": 0.0}
    assert counterfactual_block([(single, abstained), (multi, clean)])["by_type"]["multi"] == {"abstention_recall": 0.0}


def test_the_agent_block_tells_the_pre_check_the_agent_and_the_normal_way_apart():
    from rag.agent import AgentAnswer, Step
    from rag.evaluation.harness import agent_block

    def one(steps: int, fallback: str | None, abstained: bool = False) -> AgentAnswer:
        plain = Answer("q?", "text", abstained, "llm", "m", [], Grounding([]), [])
        return AgentAnswer.of(plain, [Step("search", {"query": "q"})] * steps, [], fallback)

    answers = [one(0, None, abstained=True), one(1, None), one(3, None), one(1, "no citation"), one(0, "no tools")]
    assert agent_block(answers) == {
        "questions": 5,
        "prechecked": 0.2,
        "answered_by_agent": 0.4,
        "normal_way": 0.4,
        "tool_calls_per_run": 1.67,
        "fallbacks": {"no citation": 1, "no tools": 1},
    }


def test_a_counterfactual_block_of_no_answerable_question_reads_as_none(tmp_path):
    from rag.evaluation.report import write_markdown

    block = {"overall": {}, "by_type": {}, "decided_by": {}}
    report = {
        "suite": "s",
        "questions": 1,
        "question_types": {"unanswerable": 1},
        "retrieval": {},
        "answers": {},
        "latency_ms": {},
        "tokens": {"prompt_tokens": 0, "completion_tokens": 0},
        "counterfactual": {"extractive": block},
    }
    write_markdown(report, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "by type –." in text and "Decided by: – (no answerable question)." in text and "by type ." not in text
