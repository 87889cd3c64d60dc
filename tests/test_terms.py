"""Terms of a text (rag/terms.py): analysis, key tokens, whole-token matching, specific terms, acronyms."""

from __future__ import annotations

from rag.terms import acronyms, analyse, contains_key, key_tokens, normalise_key, specific_terms, terms


def test_analysis_drops_stop_and_question_words_and_stems():
    assert analyse("Which papers are comparing the retrievers?") == ["paper", "compar", "retriev"]
    assert analyse("retrieval retrieval") == ["retriev", "retriev"]  # repeats kept, BM25 weighs them
    assert terms("How does it do?") == set()


def test_key_tokens_are_numbers_acronyms_and_named_methods():
    assert key_tokens("LitSearch has 597 queries written by GPT-4 [1].") == {"litsearch", "597", "gpt4"}
    assert key_tokens("a GPT-4-generated set, BERT-based models") == {"gpt4", "bert"}
    assert key_tokens("over 500,000 evaluations") == {"500000"}
    assert key_tokens("(1) first, 2 second, and the model") == set()  # single digits mark lists
    assert key_tokens("Llama-2 reaches 92.64%") == {"llama2", "92.64%"}


def test_normalised_keys_ignore_case_hyphens_and_spaces():
    assert normalise_key("Llama-2") == normalise_key("llama 2") == normalise_key("LLaMA2") == "llama2"
    assert normalise_key("500,000.") == "500000"


def test_a_key_matches_only_as_a_whole_token():
    assert contains_key("We release Llama 2 and its chat models.", "llama2")
    assert contains_key("a 1.5x speed-up", "1.5")
    assert contains_key("several LLMs", "llm")  # a plural follows
    assert not contains_key("We fine-tune RoBERTa.", "bert")
    assert not contains_key("mT5 and ByT5", "t5")
    assert not contains_key("in 12 languages, 1.2 points", "2")
    assert not contains_key("anything", "")


def test_specific_terms_keep_names_as_typed_and_drop_their_parts():
    assert specific_terms("What is the context length of Gemini 1.5 Pro?") == ["Pro", "Gemini 1.5"]
    assert specific_terms("How many GPT-4-generated queries are in LitSearch?") == ["GPT-4-generated", "LitSearch"]
    assert specific_terms("how do diffusion models generate audio?") == []
    # the caller's key tokens are used when given
    assert specific_terms("Does FP8 beat INT8?", {"fp8"}) == ["FP8"]


def test_acronyms_map_to_the_words_they_stand_for():
    text = "We study Retrieval-Augmented Generation (RAG) and Large Language Models (LLMs). RAG helps."
    assert acronyms(text) == {"RAG": "Retrieval Augmented Generation", "LLMs": "Large Language Models"}
    assert acronyms("no definitions here (none)") == {}
