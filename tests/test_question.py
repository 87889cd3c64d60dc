"""The question value (rag/question.py): analysed once, embedded once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rag.question import Question, question_parts
from tests.fakes_text import BagOfWords


def test_a_question_carries_every_view_the_stages_read():
    q = Question.parse("How many queries does LitSearch contain, and how were the queries written?")
    assert q.terms == ("mani", "queri", "litsearch", "contain", "queri", "written")
    assert q.keys == {"litsearch"}
    assert q.specific == ("LitSearch",)
    assert q.specific_keys == {"litsearch"}
    assert q.parts == ("How many queries does LitSearch contain", "how were the queries written")


def test_a_simple_question_is_one_part():
    assert Question.parse("which papers compare FP8 and INT8?").parts == ("which papers compare FP8 and INT8?",)
    assert question_parts("Which model did best and with what score?") == ["Which model did best", "with what score"]


def test_the_embedding_is_computed_once_and_only_when_asked():
    embedder = BagOfWords()
    q = Question.parse("What does FlashAttention-3 do on H100?", embedder)  # type: ignore[arg-type]
    assert embedder.calls == []
    first, second = q.vector, q.vector
    assert embedder.calls == [["What does FlashAttention-3 do on H100?"]]
    assert first is second and np.isclose(np.linalg.norm(first), 1.0)


def test_parsed_questions_are_values():
    q = Question.parse("How large is the model?")
    assert Question.of(q) is q
    assert Question.of("How large is the model?") == q
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.text = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="without an embedder"):
        _ = q.vector


def test_names_joined_by_and_or_vs_are_found_and_taken_out_one_at_a_time():
    from rag.question import joined_names, without_names

    asked = "How many queries do LitSearch and Mr. TyDi contain?"
    assert joined_names(asked, ["LitSearch", "TyDi"]) == ["LitSearch", "TyDi"]
    assert without_names(asked, ["TyDi"]) == "How many queries do LitSearch contain?"
    assert without_names(asked, ["LitSearch"]) == "How many queries do TyDi contain?"
    assert joined_names("Does FP8 beat INT8 on BERT, GPT-2 or T5?", ["FP8", "INT8", "BERT", "GPT-2", "T5"]) == [
        "BERT",
        "GPT-2",
        "T5",
    ]


def test_a_question_in_capitals_reads_its_words_as_words():
    from rag.question import Question

    shouted = Question.parse("HOW MANY QUERIES DOES LITSEARCH CONTAIN?")
    assert shouted.specific == () and "contain" in shouted.terms
    assert Question.parse("WHICH PAPERS COMPARE FP8 VS INT8?").specific == ("FP8", "INT8")
    # a few acronyms in an ordinary question stay names
    assert Question.parse("Does MoE help on MMLU?").specific == ("MoE", "MMLU")
    assert Question.parse("BERT vs GPT on MMLU?").specific == ("BERT", "GPT", "MMLU")
