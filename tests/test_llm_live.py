"""The OpenAI-compatible path against a real local model (SmolLM2-135M served by llama.cpp).

The model is tiny: it follows the chat format but invents citations and facts. These tests show
the whole path working and the grounding check catching what the model makes up."""

import re

from tests.conftest import rag_json, run_rag

QUESTIONS = [
    "which papers compare FP8 vs INT8?",
    "How often does the capacity density of LLMs double?",
    "How many queries does the LitSearch benchmark contain?",
]


def test_local_llm_answers_and_grounding_flags_what_it_invents(bundled_dir, llm_url):
    """In mark mode the model's answer is shown as written, and the check marks what it invents."""
    env = {
        "RAG_DATA_DIR": str(bundled_dir),
        "OPENAI_BASE_URL": llm_url,
        "RAG_LLM_MODEL": "smollm2",
        "RAG_GROUNDING": "mark",
    }
    flagged = 0
    for question in QUESTIONS:
        out = rag_json("ask", question, "-k", "3", "--json", env=env)
        assert out["mode"] == "llm" and out["model"] == "smollm2"
        assert out["usage"]["prompt_tokens"] > 100 and out["usage"]["completion_tokens"] > 0
        assert out["timings_ms"]["generation"] > 0
        if out["abstained"]:
            continue
        sources = {c["n"] for c in out["citations"]}
        for s in out["sentences"]:
            cited = [
                int(n) for group in re.findall(r"\[([\d,\s]+)\]", s["text"]) for n in re.split(r"[,\s]+", group) if n
            ]
            assert s["citations"] == list(dict.fromkeys(cited))
            if s["verdict"] == "bad_citation":
                assert set(s["citations"]) - sources
            if s["verdict"] == "uncited":
                assert s["citations"] == []
            if s["verdict"] == "supported":
                assert s["citations"] and set(s["citations"]) <= sources
            flagged += not s["supported"] and s["verdict"] != "no_claim"
    assert flagged > 0, "the grounding check flagged nothing the tiny model wrote"


def test_local_llm_plain_output_lists_sources_and_grounding(bundled_dir, llm_url):
    env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": llm_url, "RAG_LLM_MODEL": "smollm2"}
    proc = run_rag("ask", QUESTIONS[1], "-k", "3", "--no-stream", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Sources:" in proc.stdout and "[1] " in proc.stdout
    assert "Grounding:" in proc.stdout and "smollm2" in proc.stdout


def test_local_llm_in_strict_mode_shows_only_supported_sentences(bundled_dir, llm_url):
    env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": llm_url, "RAG_LLM_MODEL": "smollm2"}
    for question in QUESTIONS:
        out = rag_json("ask", question, "-k", "3", "--json", env=env)
        if out["abstained"]:
            continue
        assert all(s["supported"] or s["verdict"] == "no_claim" for s in out["sentences"]), out["sentences"]
        assert out["grounding"]["citation_precision"] == 1.0
        for removed in out["removed"]:
            assert removed["text"] not in out["answer"]
