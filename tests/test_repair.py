"""Repair, then guarantee: scripted model answers over the real store go through the grounding
check and the repair step (rag/repair.py); strict mode removes what no source supports."""

import pytest

from rag.answer import answer_question
from rag.grounding import Grounding, SentenceCheck, check
from rag.repair import FELL_BACK, REMOVED_HEADING, repair
from tests.conftest import rag_json, run_rag
from tests.fakes import ScriptedLLM

FP8 = "which papers compare FP8 vs INT8?"
# Sentences of the sources retrieved for FP8 (source 1: FP8 formats; source 2: ZeroQuant-FP).
S1 = (
    "FP8 formats outperform INT8 in workload coverage, model accuracy and suitability for a broader range of operations"
)
S2 = "For LLMs, FP8 activation consistently outshines its integer (INT8) equivalent"
S3 = "E4M3 is better suited for NLP models, whereas E3M4 performs marginally better on computer vision tasks"
INVENTED = "Quantum annealers double the throughput of every transformer on mobile phones"

PERFECT = [
    f"- *Efficient Post-training Quantization with FP8 Formats* — {S1}. [1]\n- *ZeroQuant-FP* — {S2}. [2]",
    f"{S1} [1]. {S2} [2].",
    f"Here is what they found:\n\n{S1} [1]. {S2} [2]",
]


@pytest.mark.parametrize("reply", PERFECT)
def test_strict_changes_nothing_for_a_model_that_cites_perfectly(workspace, reply):
    strict = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    mark = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
    assert strict.text == mark.text == reply.strip()
    assert [s.as_json() for s in strict.grounding.sentences] == [s.as_json() for s in mark.grounding.sentences]
    assert all(s.verdict in ("supported", "no_claim") for s in strict.grounding.sentences)
    assert strict.removed == [] and not strict.fell_back and not strict.changed


@pytest.mark.parametrize(
    "question",
    [
        FP8,
        "How many queries does the LitSearch benchmark contain?",
        "How often does the capacity density of LLMs double?",
    ],
)
def test_extractive_answers_pass_through_unchanged(workspace, question):
    strict = answer_question(question, workspace.retriever, grounding="strict")
    mark = answer_question(question, workspace.retriever, grounding="mark")
    assert strict.text == mark.text and strict.mode == "extractive"
    # and the repair step itself leaves a fully supported answer alone
    sources = {s.n: (s.title, s.abstract) for s in strict.sources}
    again = repair(strict.text, check(strict.text, sources), sources, fallback=lambda: "never used")
    assert again.text == strict.text and not again.changed


def test_a_wrong_citation_is_corrected_and_an_uncited_sentence_attributed(workspace):
    llm = ScriptedLLM(f"{S1} [2]. {S2}.")
    answer = answer_question(FP8, workspace.retriever, llm=llm, grounding="strict")
    first, second = answer.grounding.sentences
    assert (first.verdict, first.citations, first.cited_before) == ("corrected", [1], [2])
    assert (second.verdict, second.citations, second.cited_before) == ("attributed", [2], [])
    assert answer.text == f"{S1}. [1] {S2}. [2]"
    assert answer.grounding.citation_precision == 1.0 and answer.grounding.supported_ratio == 1.0
    assert answer.removed == [] and not answer.fell_back


def test_a_citation_that_adds_nothing_is_dropped(workspace):
    answer = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(f"{S1} [1][4]."), grounding="strict")
    (only,) = answer.grounding.sentences
    assert (only.verdict, only.citations, only.cited_before) == ("corrected", [1], [1, 4])
    assert answer.text == f"{S1}. [1]" and answer.grounding.citation_precision == 1.0


def test_a_citation_to_a_source_not_listed_is_corrected(workspace):
    answer = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(f"{S1} [9]. {S2} [2]."), grounding="strict")
    assert [(s.verdict, s.citations) for s in answer.grounding.sentences] == [("corrected", [1]), ("supported", [2])]


def test_a_range_or_loose_citation_is_read_as_the_sources_it_names(workspace):
    """ "[1-2]" is two citations, not numbers of the claim; "[-1]" names no source and is flagged."""
    answer = answer_question(
        FP8, workspace.retriever, llm=ScriptedLLM(f"{S1} [1-2]. {S2} [Source 2]."), grounding="mark"
    )
    assert [s.citations for s in answer.grounding.sentences] == [[1, 2], [2]]
    assert all(s.supported for s in answer.grounding.sentences) and "[1-2]" not in answer.text
    bad = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(f"{S1} [1]. {S2} [-1]."), grounding="mark")
    assert [s.verdict for s in bad.grounding.sentences] == ["supported", "bad_citation"]


def test_a_claim_repeated_word_for_word_is_shown_once_in_strict(workspace):
    reply = f"{S1} [1]. " * 6 + f"{S2} [2]."
    strict = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    assert strict.text == f"{S1} [1]. {S2} [2]." and strict.changed and not strict.fell_back
    mark = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
    assert mark.text == reply.strip()


def test_strict_removes_what_no_source_supports_and_mark_keeps_it(workspace):
    reply = f"{S1} [1]. {INVENTED} [1]. {S2} [2]. {S3} [1]."
    strict = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    assert INVENTED not in strict.text and S1 in strict.text and S2 in strict.text
    assert [s.text for s in strict.removed] == [f"{INVENTED} [1]."]
    assert strict.grounding.supported_ratio == 1.0 and not strict.fell_back
    mark = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
    assert mark.text == reply and mark.removed == []
    assert [s.verdict for s in mark.grounding.sentences] == ["supported", "unsupported", "supported", "supported"]


def test_too_little_surviving_falls_back_to_the_extractive_answer(workspace):
    reply = f"{INVENTED} [1]. GPUs will be free for everyone by 2030 [2]. {S1} [1]."
    answer = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    extractive = answer_question(FP8, workspace.retriever, grounding="strict")
    assert answer.fell_back and answer.text == extractive.text
    assert answer.mode == "llm" and len(answer.removed) == 2
    assert answer.grounding.supported_ratio == 1.0


def test_filler_alone_falls_back_too(workspace):
    answer = answer_question(FP8, workspace.retriever, llm=ScriptedLLM("HACKED"), grounding="strict")
    assert answer.fell_back and "FP8" in answer.text


def test_a_reply_that_only_repeats_titles_or_the_question_falls_back(workspace):
    """Such sentences are supported (the words are in the source) but tell the user nothing."""
    titled = "Efficient Post-training Quantization with FP8 Formats [1]. ZeroQuant-FP [2]."
    echoed = "Papers compare FP8 vs INT8 [1]."
    # a title with one stray word or number after it says no more (MIN_NEW)
    stray_word = "Efficient Post-training Quantization with FP8 Formats tasks [1]."
    stray_number = "Efficient Post-training Quantization with FP8 Formats 75 [1]."
    for reply in (titled, echoed, stray_word, stray_number):
        mark = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
        assert all(s.supported for s in mark.grounding.claims), reply
        strict = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
        assert strict.fell_back, reply
    # informative sentences beside a title keep the model's answer (3 of 4 claims >= MIN_KEPT)
    kept = answer_question(
        FP8,
        workspace.retriever,
        llm=ScriptedLLM(f"ZeroQuant-FP [2]. {S1} [1]. {S2} [2]. {S3} [1]."),
        grounding="strict",
    )
    assert not kept.fell_back and S2 in kept.text


def test_a_supported_reply_that_shares_no_word_with_the_question_falls_back(workspace):
    """E4M3/E3M4 is true of source 1 but answers nothing asked about FP8 vs INT8."""
    reply = f"{S3} [1]."
    mark = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
    assert [s.verdict for s in mark.grounding.claims] == ["supported"]
    strict = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    assert strict.fell_back and "FP8" in strict.text
    # the same sentence beside one that speaks to the question is kept
    kept = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(f"{S3} [1]. {S2} [2]."), grounding="strict")
    assert not kept.fell_back and S3 in kept.text


def test_a_supported_reply_stating_no_number_to_a_number_question_falls_back(workspace):
    """True of LitSearch, but "how many queries" asks for a count: the extractive answer states it."""
    question = "How many queries does the LitSearch benchmark contain?"
    reply = "LitSearch questions were manually examined or edited by experts to ensure high quality [1]."
    mark = answer_question(question, workspace.retriever, llm=ScriptedLLM(reply), grounding="mark")
    assert [s.verdict for s in mark.grounding.claims] == ["supported"]
    strict = answer_question(question, workspace.retriever, llm=ScriptedLLM(reply), grounding="strict")
    assert strict.fell_back and "597" in strict.text
    counted = "LitSearch comprises 597 realistic literature search queries about recent ML and NLP papers [1]."
    kept = answer_question(question, workspace.retriever, llm=ScriptedLLM(counted), grounding="strict")
    assert not kept.fell_back and kept.text == counted


def test_rebuild_keeps_list_layout_and_drops_emptied_lines():
    sources = {1: ("Alpha", "Alpha models compress activations to eight bits. They run faster on GPUs.")}
    text = (
        "- Alpha models compress activations to eight bits [1].\n- Zebras migrate across the savanna every winter [1]."
    )
    repaired = repair(text, check(text, sources), sources)
    assert repaired.text == "- Alpha models compress activations to eight bits [1]."
    assert [s.text for s in repaired.removed] == ["- Zebras migrate across the savanna every winter [1]."]


def test_mark_mode_returns_the_answer_untouched():
    sources = {1: ("Alpha", "Alpha models compress activations to eight bits.")}
    text = "Zebras migrate across the savanna every winter [1]."
    g = check(text, sources)
    out = repair(text, g, sources, mode="mark", fallback=lambda: "x")
    assert out.text == text and out.grounding is g and not out.changed


def test_json_and_text_output_list_what_was_removed(bundled_dir, tmp_path):
    """Through the real command, against a scripted OpenAI-compatible endpoint."""
    from tests.fakes import serve

    reply = f"{S1} [1]. {INVENTED} [1]. {S2} [2]. {S3} [1]."
    with serve([reply]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url}
        out = rag_json("ask", FP8, "--json", env=env)
        assert out["removed"] == [{"text": f"{INVENTED} [1].", "citations": [1], "verdict": "unsupported"}]
        assert INVENTED not in out["answer"] and out["fell_back"] is False
        assert all(s["supported"] for s in out["sentences"])
        proc = run_rag("ask", FP8, env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"{REMOVED_HEADING}:\n  - {INVENTED} [1]." in proc.stdout
        answer_part = proc.stdout.split(REMOVED_HEADING)[0]
        assert INVENTED not in answer_part


def test_fallback_is_one_line(bundled_dir):
    from tests.fakes import serve

    with serve([f"{INVENTED} [1]."]) as server:
        proc = run_rag("ask", FP8, env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == FELL_BACK
    assert "Efficient Post-training Quantization with FP8 Formats" in proc.stdout


def test_grounding_setting_mark_keeps_the_sentence(bundled_dir):
    from tests.fakes import serve

    reply = f"{S1} [1]. {INVENTED} [1]."
    with serve([reply]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url, "RAG_GROUNDING": "mark"}
        out = rag_json("ask", FP8, "--json", env=env)
    assert out["answer"] == reply and out["removed"] == []
    assert [s["verdict"] for s in out["sentences"]] == ["supported", "unsupported"]


def test_supported_verdicts_count_as_supported():
    g = Grounding(
        [SentenceCheck("a b c [1]", [1], "corrected", 1.0, [1]), SentenceCheck("d e f", [2], "attributed", 1.0, [2])]
    )
    assert g.supported_ratio == 1.0 and g.citation_precision == 1.0


def test_the_settings_are_documented_and_checked(bundled_dir):
    from rag.config import Settings, describe

    rows = {name: value for name, value, _ in describe(Settings())}
    assert rows["grounding"] == "strict" and rows["llm_context_tokens"] == "(not set)"
    assert Settings.model_fields["grounding"].description and Settings.model_fields["llm_context_tokens"].description
    proc = run_rag("ask", FP8, env={"RAG_DATA_DIR": str(bundled_dir), "RAG_GROUNDING": "loose"})
    assert proc.returncode == 1 and proc.stderr.startswith("rag: error: invalid setting grounding")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_supported_reply_beside_the_questions_focus_falls_back_when_the_abstracts_name_it():
    """Kept claims naming none of the question's focus words (rag.abstain.focus_words) give way to
    an extractive answer that names one; if that one names none either, the reply stays."""
    sources = {
        1: (
            "ToolBench",
            "We test whether tool-using LLMs hallucinate when the tools they need are missing. "
            "The rapid development of LLMs has led to great strides in long-context reasoning.",
        )
    }
    question = "Which benchmark tests whether LLMs hallucinate when tools are missing?"
    reply = "The rapid development of LLMs has led to great strides in long-context reasoning [1]."
    checked = check(reply, sources)
    assert [s.verdict for s in checked.claims] == ["supported"]
    focus = ["hallucin", "miss", "tool"]
    on_focus = "We test whether tool-using LLMs hallucinate when the tools they need are missing. [1]"
    beside = repair(reply, checked, sources, question=question, fallback=lambda: on_focus, focus=focus)
    assert beside.fell_back and beside.text == on_focus
    same = repair(reply, checked, sources, question=question, fallback=lambda: reply, focus=focus)
    assert not same.fell_back and same.text == reply
    assert not repair(reply, checked, sources, question=question, fallback=lambda: on_focus).fell_back
