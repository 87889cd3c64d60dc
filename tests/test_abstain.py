"""Abstention: the named-term rules and the answerability model, on the real store."""

from __future__ import annotations

import json
import sys

import pytest

from rag.abstain import AnswerabilityModel, Evidence, assess, default_model, features
from rag.answer import answer_question, gather
from rag.terms import specific_terms
from tests.conftest import REPO


def _evidence(workspace, question: str, exclude=()):
    retriever = workspace.retriever
    found = retriever.search(question, k=5, exclude=exclude)
    return gather(question, found, retriever, 5, exclude)[2]


def test_named_terms_are_found_through_modifiers_and_spelling():
    from rag.terms import mentions

    assert specific_terms("What is the context length of Gemini 1.5 Pro?") == ["Pro", "Gemini 1.5"]
    assert "GPT-4-generated" in specific_terms("How many GPT-4-generated queries are in LitSearch?")
    assert mentions("queries written by GPT-4 and by authors", "GPT-4-generated")
    assert mentions("at a resolution of 256×256 on ImageNet", "256x256")
    assert not mentions("We fine-tune RoBERTa.", "BERT")


def test_the_model_file_is_the_one_the_fit_writes():
    data = json.loads((REPO / "rag" / "data" / "abstention.json").read_text())
    model = default_model()
    assert list(model.names) == data["features"] and model.threshold == data["threshold"]
    assert 0 < model.threshold_llm <= model.threshold < 1  # with an LLM only clear misses stop


def test_features_separate_an_answering_paper_from_its_neighbours(workspace):
    question = "How many queries does the LitSearch benchmark contain?"
    gold = {h.paper_id for h in workspace.retriever.search(question, k=1).results}
    with_gold = features(question, _evidence(workspace, question), workspace.retriever.lexical)
    without = features(question, _evidence(workspace, question, gold), workspace.retriever.lexical)
    assert with_gold["sentence_similarity"] > without["sentence_similarity"]
    assert with_gold["lead"] > without["lead"]
    assert with_gold["rare_coverage"] > without["rare_coverage"]
    assert with_gold["sentence_lead"] > without["sentence_lead"]  # the answering sentence stands out
    assert with_gold["sentence_lead"] > 0.05


def test_a_model_below_its_threshold_abstains_and_says_so(workspace):
    question = "How many queries does the LitSearch benchmark contain?"
    evidence = _evidence(workspace, question)
    strict = AnswerabilityModel(("sentence_similarity",), (0.0,), 0.0, threshold=0.9, threshold_llm=0.1)
    verdict = assess(question, evidence, workspace.retriever.lexical, model=strict)
    assert not verdict.answerable and verdict.rule == "model" and verdict.confidence == 0.5
    assert assess(question, evidence, workspace.retriever.lexical, with_llm=True, model=strict).answerable


def test_counterfactual_question_abstains_when_its_paper_is_hidden(workspace):
    question = "How many queries does the LitSearch benchmark contain?"
    answered = answer_question(question, workspace.retriever)
    assert not answered.abstained
    gold = answered.sources[0].paper_id
    hidden = answer_question(question, workspace.retriever, exclude={gold})
    assert hidden.abstained and gold not in {h.paper_id for h in hidden.retrieval}
    assert hidden.assessment is not None and hidden.assessment.rule == "named_term_missing"


def test_a_question_of_many_unknown_names_gets_a_short_reason(workspace):
    names = ["Zorblax", "Quimbly", "Fraxon", "Drellin", "Vostrak", "Plimbo", "Krandle", "Snorvit"]
    answer = answer_question(f"How do {', '.join(names)} compare on ImageNet?", workspace.retriever)
    assert answer.abstained and answer.assessment is not None
    assert answer.assessment.rule == "named_term_missing" and answer.assessment.reason.endswith("and 2 more")


def test_fit_logistic_recovers_a_separating_direction():
    import numpy as np

    sys.path.insert(0, str(REPO / "eval"))
    from fit_abstention import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(float)
    w = fit_logistic(x, y)
    assert w[1] > 0 and w[2] < 0 and abs(w[0]) < abs(w[1])


def test_a_question_asking_for_a_number_the_abstract_does_not_state_abstains(workspace):
    question = (
        "How many training tokens were used to train the DS-MoE-6B model that trains densely and infers sparsely?"
    )
    answer = answer_question(question, workspace.retriever)
    assert answer.abstained and answer.assessment is not None
    assert answer.assessment.rule == "number_not_stated" and not answer.assessment.answerable
    assert "states no number" in answer.assessment.reason
    assert answer.sources and "DS-MoE" in answer.sources[0].abstract  # the paper was found; the count is not in it
    stated = answer_question("How many queries does the LitSearch benchmark contain?", workspace.retriever)
    assert not stated.abstained and "597" in stated.text


def test_a_question_of_several_parts_none_of_which_the_abstracts_state_abstains(workspace):
    """ "What GPUs and how many were used to train DenseFormer?" quoted DenseFormer's claim and
    another paper's sentence on mid-tier GPUs; neither part is stated."""
    answer = answer_question("what GPUs and how many were used to train DenseFormer models", workspace.retriever)
    assert answer.abstained and answer.assessment is not None
    assert answer.assessment.rule == "parts_not_stated" and "what GPUs" in answer.assessment.reason
    assert [p.answered for p in answer.parts] == [False, False]
    assert answer.sources and "DenseFormer" in answer.sources[0].title  # the paper was found
    # one part stated is an answer that names the other as not stated
    some = answer_question(
        "How many queries does LitSearch contain, and which GPUs were used to build it?", workspace.retriever
    )
    assert not some.abstained and "597" in some.text and some.parts[0].answered


def test_a_how_much_faster_question_is_answered_only_by_a_factor(workspace):
    """ "How much faster is Seismic than graph-based retrieval?" was answered by "evaluation has
    been limited to ... a few million documents": a number, but no speed-up."""
    answer = answer_question(
        "how much faster is Seismic than graph-based retrieval on the 138M-passage MsMarco-v2 set", workspace.retriever
    )
    assert answer.abstained and answer.assessment is not None and answer.assessment.rule == "number_not_stated"
    stated = answer_question("How much faster is DS-MoE-6B than Mistral-7B?", workspace.retriever)
    assert not stated.abstained and "1.86" in stated.text


def test_sentence_lead_is_the_first_papers_best_sentence_over_every_other_papers_best():
    assert Evidence(["a", "b", "c"], [0.9, 0.5, 0.4], (0.8, 0.5, 0.7)).sentence_lead == pytest.approx(0.1)
    assert Evidence(["a", "b"], [0.9, 0.5], (0.6, 0.8)).sentence_lead == pytest.approx(-0.2)  # another stands out
    assert Evidence(["a"], [0.9], (0.8,)).sentence_lead == pytest.approx(0.8)  # no neighbour at all
    assert Evidence([], [], ()).sentence_lead == 0.0 == Evidence([], [], ()).sentence_similarity
    assert Evidence(["a", "b"], [0.9, 0.5], (0.6, 0.8)).sentence_similarity == 0.8  # the best of any paper


def test_questions_on_who_wrote_a_paper_or_when_it_came_out_abstain_unless_a_year_is_stated(workspace):
    """Abstracts name neither authors nor dates: "When was LitSearch published?" was answered by
    "... recently published papers" and "Who are the authors" by "... written by their authors"."""
    who = answer_question("Who are the authors of LitSearch?", workspace.retriever)
    assert who.abstained and who.assessment is not None and who.assessment.rule == "authors_asked"
    when = answer_question("When was the LitSearch benchmark published?", workspace.retriever)
    assert when.abstained and when.assessment is not None and when.assessment.rule == "number_not_stated"
    # what the authors of a paper propose is a question on its content
    what = answer_question(
        "What benchmark do the authors of LitSearch propose for literature search?", workspace.retriever
    )
    assert not what.abstained and "LitSearch" in what.text


def test_papers_asked_for_by_a_name_they_lack_abstain_while_a_property_they_avoid_is_answered(workspace):
    """Retrieval finds the papers naming a term: "which papers do not evaluate on MMLU" was answered
    with the two MMLU papers. A capitalised NOT is emphasis, not an acronym to look for."""
    for asked in ("Which papers do not evaluate on MMLU?", "Which paper does NOT use GPT-4?"):
        lacking = answer_question(asked, workspace.retriever)
        assert lacking.abstained and lacking.assessment is not None, asked
        assert lacking.assessment.rule == "absence_asked", asked
        assert "NOT" not in lacking.assessment.reason
    # what a method avoids is stated by its abstract ("eliminating the need for ... parameter")
    avoids = answer_question(
        "faster density-based clustering that doesn't need DBSCAN's hard-to-tune distance parameter",
        workspace.retriever,
    )
    assert not avoids.abstained and "HDBSCAN" in avoids.text


def test_questions_about_the_corpus_itself_name_no_topic_and_abstain(workspace):
    """ "Which paper is the most cited?" was answered by quoting LitSearch ("... recent ML and NLP
    papers"); a summary asked of a topic is still answered."""
    for asked in ("Which paper is the most cited?", "What's new?", "Summarise the corpus"):
        meta = answer_question(asked, workspace.retriever)
        assert meta.abstained and meta.assessment is not None and meta.assessment.rule == "no_topic", asked
    topic = answer_question("Summarise the work on FP8 quantization", workspace.retriever)
    assert not topic.abstained and "FP8" in topic.text
