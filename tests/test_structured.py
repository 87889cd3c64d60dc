"""Structured citations (rag/structured.py): the JSON protocol against a scripted
OpenAI-compatible server (format cases a real server cannot be made to show), and the real
SmolLM2 server."""

import json

import pytest

from rag.answer import answer_question
from rag.llm import OpenAICompatible
from rag.structured import MEMORY_FILE, SentenceStream, sentence_text
from tests.conftest import make_settings, rag_json, run_rag
from tests.fakes import serve
from tests.test_repair import FP8, S1, S2

JSON_REPLY = json.dumps({"sentences": [{"text": f"{S1}.", "citations": [1]}, {"text": f"{S2}.", "citations": [2]}]})
EXPECTED = f"{S1}. [1] {S2}. [2]"


def test_sentences_are_handed_out_as_they_complete():
    stream = SentenceStream()
    got: list[tuple[int, str]] = []
    for i in range(0, len(JSON_REPLY), 5):
        for s in stream.feed(JSON_REPLY[i : i + 5]):
            got.append((i, s))
    assert [s for _, s in got] == [f"{S1}. [1]"]  # the second is not complete until the JSON closes
    first_at = got[0][0]
    assert first_at < JSON_REPLY.index(S2) + 10  # handed out as soon as the next sentence began
    assert stream.finish() == [f"{S2}. [2]"]


def test_a_reply_cut_off_keeps_its_complete_sentences():
    stream = SentenceStream()
    cut = JSON_REPLY[: JSON_REPLY.index(S2) + 10]
    assert stream.feed(cut) == [f"{S1}. [1]"]
    assert stream.finish() == []


def test_citations_written_in_the_text_count_and_are_not_doubled():
    assert sentence_text({"text": "FP8 wins [2].", "citations": [1, 2]}) == "FP8 wins. [1][2]"
    assert sentence_text({"text": "  No citation here.  ", "citations": []}) == "No citation here."
    assert sentence_text({"text": 3}) == ""
    # only positive integers name a source; the rest is dropped, not shown as if it were a citation
    assert sentence_text({"text": "FP8 beats INT8.", "citations": [42, -1, 0, "x", True]}) == "FP8 beats INT8. [42]"


def _llm(tmp_path, url):
    return OpenAICompatible(make_settings(tmp_path, llm="auto", openai_base_url=url, llm_timeout=10))


def _memory(tmp_path) -> dict:
    return json.loads((tmp_path / MEMORY_FILE).read_text())


def test_json_schema_is_asked_for_and_streamed_by_sentence(workspace, tmp_path):
    with serve([JSON_REPLY]) as server:
        shown: list[str] = []
        answer = answer_question(FP8, workspace.retriever, llm=_llm(tmp_path, server.url), on_token=shown.append)
    rf = server.bodies[0]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    items = rf["json_schema"]["schema"]["properties"]["sentences"]["items"]
    assert items["properties"]["citations"]["items"]["enum"] == [1, 2, 3, 4, 5]  # only the sources given
    assert answer.text == EXPECTED and "".join(shown) == EXPECTED
    assert shown == [f"{S1}. [1]", f" {S2}. [2]"]  # whole sentences, never raw JSON
    assert [s.verdict for s in answer.grounding.sentences] == ["supported", "supported"]
    assert list(_memory(tmp_path).values()) == ["json_schema"]


@pytest.mark.parametrize("refusal", [400, 422, 500])
def test_a_refused_schema_falls_to_the_llama_cpp_form_and_is_remembered(workspace, tmp_path, refusal):
    with serve([JSON_REPLY], formats=("json_object",), refusal=refusal) as server:
        llm = _llm(tmp_path, server.url)
        first = answer_question(FP8, workspace.retriever, llm=llm)
        asked = len(server.bodies)
        second = answer_question(FP8, workspace.retriever, llm=llm)
    assert first.text == second.text == EXPECTED
    assert server.bodies[asked - 1]["response_format"]["type"] == "json_object"
    assert server.bodies[asked - 1]["response_format"]["schema"]["properties"]["sentences"]["minItems"] == 1
    assert len(server.bodies) == asked + 1  # detected once: the second answer asks the right way at once
    assert server.bodies[-1]["response_format"]["type"] == "json_object"
    assert list(_memory(tmp_path).values()) == ["json_object"]


def test_no_structured_output_at_all_means_plain_text_with_citations(workspace, tmp_path):
    reply = f"{S1} [1]. {S2} [2]."
    with serve([reply], formats=()) as server:
        llm = _llm(tmp_path, server.url)
        first = answer_question(FP8, workspace.retriever, llm=llm)
        asked = len(server.bodies)
        answer_question(FP8, workspace.retriever, llm=llm)
    assert first.text == reply and asked == 3  # json_schema, json_object, then plain text
    assert "response_format" not in server.bodies[-1] and len(server.bodies) == asked + 1
    assert list(_memory(tmp_path).values()) == ["text"]


def test_one_malformed_reply_does_not_undo_a_format_that_has_worked(workspace, tmp_path):
    """JSON of another shape (a small model's slip) is answered again in plain text, but the
    endpoint still takes the schema: the next answer asks for it again."""
    text = f"{S1} [1]. {S2} [2]."
    with serve([JSON_REPLY, '{"answer": "FP8"}', text, JSON_REPLY]) as server:
        llm = _llm(tmp_path, server.url)
        first = answer_question(FP8, workspace.retriever, llm=llm)
        second = answer_question(FP8, workspace.retriever, llm=llm)
        assert list(_memory(tmp_path).values()) == ["json_schema"]
        third = answer_question(FP8, workspace.retriever, llm=llm)
    assert first.text == third.text == EXPECTED and second.text == text
    assert ["response_format" in body for body in server.bodies] == [True, True, False, True]
    assert list(_memory(tmp_path).values()) == ["json_schema"]


@pytest.mark.parametrize(
    ("wrapped", "shown_before"),  # the reply, and what of it is on the screen before the sentences
    [
        (f"```json\n{JSON_REPLY}\n```", ""),
        (f"```\n{JSON_REPLY}\n```\n", ""),
        (f"Here is the answer in JSON:\n{JSON_REPLY}", "Here is the answer in JSON:\n"),
        (f"Here is the answer in JSON:\n\n```json\n{JSON_REPLY}\n```", "Here is the answer in JSON:\n\n"),
        (f"FP8 wins [1].\n\n{JSON_REPLY}\n\nHope this helps!", "FP8 wins [1].\n\n"),
    ],
)
def test_json_in_a_fence_or_after_a_preamble_line_is_read_as_json(workspace, tmp_path, wrapped, shown_before):
    """Models and proxies wrap the JSON asked for in a ```json fence or introduce it with a line:
    its sentences are read (the raw JSON is never shown or checked), and the format stays remembered."""
    with serve([[wrapped[i : i + 3] for i in range(0, len(wrapped), 3)]]) as server:
        shown: list[str] = []
        answer = answer_question(FP8, workspace.retriever, llm=_llm(tmp_path, server.url), on_token=shown.append)
    assert answer.text == EXPECTED and len(server.bodies) == 1
    assert "".join(shown) == shown_before + EXPECTED  # no JSON, no fence, no trailer
    assert list(_memory(tmp_path).values()) == ["json_schema"]


def test_a_server_that_ignores_the_format_is_read_as_plain_text(workspace, tmp_path):
    reply = f"{S1} [1]. {S2} [2]."
    with serve([reply]) as server:
        shown: list[str] = []
        answer = answer_question(FP8, workspace.retriever, llm=_llm(tmp_path, server.url), on_token=shown.append)
    assert answer.text == reply and "".join(shown) == reply and len(server.bodies) == 1
    assert list(_memory(tmp_path).values()) == ["text"]


def test_the_command_asks_for_json_through_the_forked_client(bundled_dir):
    with serve([JSON_REPLY]) as server:
        out = rag_json("ask", FP8, "--json", env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url})
    assert server.bodies[0]["response_format"]["type"] == "json_schema"
    assert out["answer"] == EXPECTED and out["removed"] == []


def test_through_the_forked_client_a_reply_of_another_shape_is_followed_by_the_plain_one(bundled_dir):
    """The forked client's helper was still sending the abandoned JSON reply when the plain-text
    request went out, so the answer read its leftovers: blank, exit 0."""
    text = f"{S1} [1]. {S2} [2]."
    env = {"RAG_DATA_DIR": str(bundled_dir), "RAG_GROUNDING": "mark"}
    with serve(['{"sentences": "not a list", "padding": "' + "x" * 400 + '"}', text]) as server:
        out = rag_json("ask", FP8, "--json", env={**env, "OPENAI_BASE_URL": server.url})
    assert ["response_format" in body for body in server.bodies] == [True, False]
    assert out["answer"] == text


def test_a_structured_reply_with_no_sentence_is_an_empty_reply(bundled_dir):
    with serve(['{"sentences": []}']) as server:
        proc = run_rag(
            "ask", FP8, env={"RAG_DATA_DIR": str(bundled_dir), "RAG_GROUNDING": "mark", "OPENAI_BASE_URL": server.url}
        )
    assert proc.returncode == 1 and len(server.bodies) == 1
    assert (
        proc.stderr.strip()
        == f"rag: error: the LLM endpoint {server.url} replied with no sentence; check the model (gpt-4o-mini)"
    )


def test_live_model_answers_in_json_and_strict_shows_only_supported_sentences(bundled_dir, llm_url, tmp_path):
    env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": llm_url, "RAG_LLM_MODEL": "smollm2"}
    out = rag_json("ask", "How many queries does the LitSearch benchmark contain?", "-k", "3", "--json", env=env)
    assert out["mode"] == "llm" and not out["abstained"]
    assert all(s["supported"] or s["verdict"] == "no_claim" for s in out["sentences"])
    memory = json.loads((bundled_dir / MEMORY_FILE).read_text())
    assert memory[f"{llm_url}|smollm2"] == "json_object"  # llama-cpp-python takes the schema in this form
