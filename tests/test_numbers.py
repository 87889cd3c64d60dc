"""The number a question asks for, and whether sentences state it (rag/numbers.py)."""

from __future__ import annotations

from rag.numbers import asks_number, states_asked_number


def test_questions_asking_for_a_number_are_told_from_others():
    assert asks_number("How many queries does LitSearch contain?")
    assert asks_number("By how much does guidance improve FID?")
    assert asks_number("What accuracy does Claude reach?")
    assert not asks_number("using the diffusion time of an input as an anomaly score")  # "score" names a thing
    assert not asks_number("Which papers compare FP8 vs INT8?")
    # "how many" describing what a method does is not what the question asks
    assert not asks_number("Is there an objective that teaches the model how many tokens are left?")
    assert not asks_number("training models to predict how many middle tokens remain")
    assert asks_number("Which method is it, and how many tokens are left?")
    assert asks_number("Does the paper report how many queries LitSearch has?")


def test_a_number_question_needs_a_number_of_the_kind_it_asks():
    counted = "How many queries does LitSearch contain?"
    assert states_asked_number(["LitSearch comprises 597 realistic literature search queries."], counted)
    assert not states_asked_number(["LitSearch was built from 2 sources of questions."], counted)  # counts no queries
    assert not states_asked_number(["LitSearch questions were written by experts."], counted)
    share = "What accuracy does Claude-3.5-Sonnet reach on the 4,425 questions?"
    assert states_asked_number(["Claude-3.5-Sonnet achieves 85.0% accuracy."], share)
    assert not states_asked_number(["The benchmark has 4,425 questions and 12 models."], share)  # no share
    assert not states_asked_number(["It covers 4,425 questions."], "How much does it cover of the 4,425 questions?")


def test_a_year_answers_when_a_paper_came_out_and_nothing_else_does():
    question = "When was the Transformer first introduced?"
    assert asks_number(question) and asks_number("In what year did LitSearch appear?")
    assert states_asked_number(["The Transformer of Vaswani et al. (2017) is now ubiquitous."], question)
    assert not states_asked_number(["We study 12 recently published papers."], question)
    assert not asks_number("When does the model fail to generalise?")
