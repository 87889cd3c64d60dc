"""Follow-up questions rewritten into standalone ones (rag/followup.py), with a scripted model
for the exact replies a small model gives instead of a rewrite."""

from __future__ import annotations

import pytest

from rag.followup import standalone_question
from tests.fakes import ScriptedLLM

HISTORY = [("which papers compare FP8 vs INT8?", "FP8 formats outperform INT8 [1].")]
FOLLOW_UP = "which of them proposes a format for NLP models?"
CARRIED = f"{FOLLOW_UP} (which papers compare FP8 vs INT8?)"


def test_a_question_that_does_not_refer_back_is_asked_as_it_is():
    llm = ScriptedLLM("never used")
    assert standalone_question("How many queries does LitSearch contain?", HISTORY, llm) == (
        "How many queries does LitSearch contain?"
    )
    assert llm.prompts == []


def test_the_models_rewrite_is_used():
    rewrite = "Which paper comparing FP8 and INT8 proposes a format for NLP models?"
    assert standalone_question(FOLLOW_UP, HISTORY, ScriptedLLM(rewrite)) == rewrite


@pytest.mark.parametrize(
    "reply",
    [
        "FP8 formats outperform INT8 in workload coverage [1].",  # an answer, not a rewrite
        "The sources do not answer this question.",
        "Bless the Lady on my grave, I am a loyal and compassionate soul.",  # none of the conversation's words
        "x",
        "why " * 200,
    ],
)
def test_a_reply_that_is_no_rewrite_carries_the_previous_question_instead(reply):
    assert standalone_question(FOLLOW_UP, HISTORY, ScriptedLLM(reply)) == CARRIED


def test_without_a_model_the_previous_question_is_carried():
    assert standalone_question(FOLLOW_UP, HISTORY) == CARRIED
