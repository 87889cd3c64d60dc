"""The abstention rules (rag/abstain.py) on constructed questions and evidence: no store, no
embedder. The model is replaced by one that always accepts, so each rule is seen on its own."""

from __future__ import annotations

from rag.abstain import TUNING, AnswerabilityModel, Evidence, assess, coverage
from rag.question import Question
from tests.fakes_text import TinyLexical

ACCEPT = AnswerabilityModel(("lead",), (0.0,), 10.0, 0.5, 0.5)  # probability ~1 whatever the evidence
REJECT = AnswerabilityModel(("lead",), (0.0,), -10.0, 0.5, 0.5)

GEMINI = "Gemini 1.5 Pro reaches a context length of ten million tokens."
FLASH = "FlashAttention-3 uses asynchrony and low-precision on Hopper GPUs."
FP8 = "FP8 formats beat INT8 on workload coverage across many networks."
CORPUS = [GEMINI, FLASH, FP8, "Diffusion models generate images from noise.", "Retrieval of papers by queries."]


def _assess(question: str, texts: list[str], model: AnswerabilityModel = ACCEPT):
    evidence = Evidence(texts, [0.9 - 0.1 * i for i in range(len(texts))], (0.5,) * len(texts))
    return assess(Question.parse(question), evidence, TinyLexical(CORPUS), model=model)  # type: ignore[arg-type]


def test_a_named_term_no_abstract_mentions_stops_the_answer():
    verdict = _assess("What is the context length of Gemini 2 Ultra?", [GEMINI, FP8])
    assert (verdict.answerable, verdict.rule) == (False, "named_term_missing")
    assert "Gemini 2" in verdict.reason


def test_named_terms_must_meet_in_one_abstract():
    verdict = _assess("Does FlashAttention-3 support FP8 on Hopper?", [FLASH.replace("low-precision", "BF16"), FP8])
    assert (verdict.answerable, verdict.rule) == (False, "named_terms_apart")
    assert _assess("Does FlashAttention-3 support FP8?", [FLASH + " It supports FP8.", FP8]).answerable
    # two parts may ask about two papers: each part's names meet in one abstract
    two = _assess("What context length does Gemini 1.5 Pro reach? How does FP8 compare with INT8?", [GEMINI, FP8])
    assert (two.answerable, two.rule) == (True, "answerable")
    apart = _assess("What context length does Gemini 1.5 Pro reach on FP8? How fast is it?", [GEMINI, FP8])
    assert (apart.answerable, apart.rule) == (False, "named_terms_apart")


def test_the_abstract_naming_the_terms_must_address_the_rest():
    verdict = _assess("What hardware was Gemini 1.5 Pro trained on?", [GEMINI])
    assert (verdict.answerable, verdict.rule) == (False, "rest_not_addressed")
    answered = _assess("What context length does Gemini 1.5 Pro reach?", [GEMINI])
    assert (answered.answerable, answered.rule) == (True, "answerable")


def test_words_the_corpus_never_uses_mean_another_topic_unless_the_evidence_covers_the_rest():
    verdict = _assess("How do volcanoes erupt under glaciers?", [CORPUS[3]])
    assert (verdict.answerable, verdict.rule) == (False, "unseen_words")
    assert "glacier" in verdict.reason and "volcano" in verdict.reason
    # one unseen word is not enough
    assert _assess("How do diffusion models generate volcanoes?", [CORPUS[3]]).rule == "answerable"
    assert TUNING.unseen_words == 2


def test_past_the_rules_the_model_decides_and_nothing_retrieved_is_no_answer():
    assert _assess("How do diffusion models generate images?", [CORPUS[3]], REJECT).rule == "model"
    assert _assess("How do diffusion models generate images?", []).rule == "nothing_retrieved"


def test_coverage_is_the_idf_weighted_share_of_question_words_present():
    lexical = TinyLexical(CORPUS)
    assert coverage("diffusion images", CORPUS[3], lexical) == 1.0  # type: ignore[arg-type]
    assert coverage("diffusion volcanoes", CORPUS[3], lexical) < 0.5  # type: ignore[arg-type]
    assert coverage(["diffus", "volcano"], CORPUS[3], lexical) == coverage("diffusion volcanoes", CORPUS[3], lexical)  # type: ignore[arg-type]
    assert coverage("which papers", CORPUS[3], lexical) == 0.0  # type: ignore[arg-type]


def test_a_reason_names_words_as_the_question_typed_them():
    from rag.abstain import as_typed
    from rag.terms import analyse

    asked = "How do swallows navigate during airspeed migrations?"
    assert as_typed(asked, analyse("swallows migrations")) == ["swallows", "migrations"]
    assert as_typed(asked, ["unknownstem"]) == ["unknownstem"]  # a stem the text does not hold stays as it is


def test_papers_asked_for_by_what_they_lack_but_not_by_what_they_do_besides():
    from rag.abstain import absence_asked

    assert absence_asked(Question.parse("Which papers do not evaluate on MMLU?")) == ["MMLU"]
    assert absence_asked(Question.parse("papers not using GPT-4")) == ["GPT-4"]
    assert absence_asked(Question.parse("Which studies not only use BERT but also GPT-4?")) == []
    assert absence_asked(Question.parse("Which methods don't require retraining BERT?")) == []  # a property


def test_a_name_with_accented_letters_is_read_whole():
    """ "Erdős" was cut at its first accented letter, and no abstract mentions "Erd"."""
    erdos = "We solve 12 Erdős problems with language models; Schrödinger bridges reach an FID of 8.1."
    for question in ("How many Erdős problems did the models solve?", "What FID do Schrödinger bridges reach?"):
        verdict = _assess(question, [erdos, FP8])
        assert verdict.answerable, (question, verdict.reason)
    missing = _assess("How many Hölder constants did the models bound?", [erdos, FP8])
    assert (missing.answerable, missing.rule, "Hölder" in missing.reason) == (False, "named_term_missing", True)


def test_how_a_question_frames_papers_is_no_topic_the_corpus_must_use():
    """A user's corpus seldom says "papers" or "report": "which papers report BLEU on WMT" asks about
    BLEU on WMT."""
    bleu = "Our model reaches 28.4 BLEU on the WMT 2014 English-to-German translation task."
    verdict = _assess("Which papers report BLEU on WMT 2014?", [bleu, FP8])
    assert (verdict.answerable, verdict.rule) == (True, "answerable")
