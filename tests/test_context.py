"""The model's context, counted (rag/context.py): sources packed within a token budget, best
first, never cut mid-sentence, and what was left out recorded in --json."""

import json

from rag.answer import answer_question
from rag.context import DEFAULT_WINDOW, model_window, pack
from rag.sentences import split_sentences
from rag.tokens import count_tokens
from tests.conftest import rag_json, run_rag
from tests.fakes import ScriptedLLM, serve
from tests.test_repair import FP8, S1, S2

A1 = "Alpha compresses activations to eight bits. It keeps accuracy on every benchmark we tried. It runs faster."
A2 = "Beta prunes attention heads. Pruning half of them costs little. The rest get retrained. Memory use falls by half."
A3 = "Gamma distils large teachers into small students. Students match teachers on reading comprehension."
SOURCES = [(1, "Alpha", A1), (2, "Beta", A2), (3, "Gamma", A3)]


def test_without_a_budget_every_source_goes_in_whole():
    packed = pack(SOURCES, None)
    assert packed.numbers == [1, 2, 3] and packed.left_out == []
    assert all(a in packed.block for _, _, a in SOURCES)


def test_a_tight_budget_keeps_the_best_sources_and_whole_sentences_only():
    whole_first = count_tokens(pack(SOURCES[:1], None).block) + 1
    budget = whole_first + 30  # room for the second source's title and a sentence or two
    packed = pack(SOURCES, budget)
    assert packed.used <= budget and count_tokens(packed.block) <= budget
    assert A1 in packed.block  # the best source whole
    kept_beta = packed.block.split("Abstract: ")[2].split("\n")[0]
    assert kept_beta and A2.startswith(kept_beta) and kept_beta != A2
    assert set(split_sentences(kept_beta)) <= set(split_sentences(A2))  # never part of a sentence
    assert packed.numbers == [1, 2]
    assert packed.left_out == [
        {"n": 2, "sentences_left_out": len(split_sentences(A2)) - len(split_sentences(kept_beta)), "whole": False},
        {"n": 3, "sentences_left_out": 2, "whole": True},
    ]
    assert '<source n="2">' in packed.block and '<source n="3">' not in packed.block


def test_a_source_cut_to_fit_keeps_the_sentences_around_the_matched_passage():
    """A long abstract whose answer is near its end: cut from the start, the prompt lost the
    sentence retrieval matched. The run kept is whole sentences around it, both sides in turn."""
    filler = [f"Background sentence number {i} describes prior tuatara surveys in general terms." for i in range(40)]
    fact = "The tuatara dataset contains exactly 4321 photographs."
    abstract = " ".join([*filler[:30], fact, *filler[30:]])
    budget = count_tokens(pack([(1, "Tuatara", " ".join(filler[:5]))], None).block) + 1
    packed = pack([(1, "Tuatara", abstract)], budget, [f"Tuatara. {filler[29]} {fact} {filler[30]}"])
    kept = split_sentences(packed.block.split("Abstract: ")[1].split("\n")[0])
    assert fact in kept, kept
    at = kept.index(fact)
    assert 2 <= at <= len(kept) - 2, kept  # context on both sides
    assert " ".join(kept) in abstract  # one run, in order
    assert packed.used <= budget and packed.left_out[0]["sentences_left_out"] == 41 - len(kept)
    leading = pack([(1, "Tuatara", abstract)], budget)  # no passage given: the leading sentences, as before
    assert leading.block.split("Abstract: ")[1].startswith(filler[0]) and fact not in leading.block


def test_the_window_comes_from_the_setting_then_known_openai_models():
    assert model_window("gpt-4o-mini", None) == 128_000
    assert model_window("gpt-4.1-mini", None) == 1_047_576
    assert model_window("smollm2", None) == DEFAULT_WINDOW
    assert model_window("gpt-4o-mini", 8000) == 8000


class WindowedLLM(ScriptedLLM):
    context_window = 1024
    max_tokens = 300


def test_the_prompt_fits_the_window_and_json_records_what_was_left_out(workspace):
    llm = WindowedLLM(f"{S1} [1]. {S2} [2].")
    answer = answer_question(FP8, workspace.retriever, llm=llm)
    system, user = llm.prompts[0]
    assert count_tokens(system) + count_tokens(user) + llm.max_tokens <= llm.context_window
    context = answer.as_json()["context"]
    assert context["left_out"] and context["source_tokens"] <= context["budget_tokens"]
    for item in context["left_out"]:
        assert (f'<source n="{item["n"]}">' in user) is not item["whole"]


def test_the_command_packs_for_the_configured_window_and_restricts_citations(bundled_dir):
    reply = json.dumps({"sentences": [{"text": f"{S1}.", "citations": [1]}]})
    with serve([reply]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url, "RAG_LLM_CONTEXT_TOKENS": "1024"}
        out = rag_json("ask", FP8, "--json", env=env)
    body = server.bodies[0]
    prompt = "".join(m["content"] for m in body["messages"])
    assert count_tokens(prompt) + body["max_tokens"] <= 1024
    in_prompt = [n for n in range(1, 6) if f'<source n="{n}">' in prompt]
    enum = body["response_format"]["json_schema"]["schema"]["properties"]["sentences"]["items"]["properties"]
    assert enum["citations"]["items"]["enum"] == in_prompt
    assert out["context"]["left_out"] and out["answer"] == f"{S1}. [1]"


def test_a_window_too_small_for_any_source_is_one_error_and_the_model_is_not_asked(bundled_dir):
    """With 600 tokens the model was asked with no source and its answer from memory shown as cited."""
    with serve(["unused"]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url, "RAG_LLM_CONTEXT_TOKENS": "600"}
        proc = run_rag("ask", FP8, env=env)
    assert proc.returncode == 1 and not server.bodies
    assert proc.stderr.strip().splitlines() == [
        "rag: error: the model's context window (600 tokens) leaves no room for a source after the reply "
        "(llm_max_tokens 400) and the prompt; raise llm_context_tokens or lower llm_max_tokens"
    ]
