"""Agent mode (rag/agent.py): the tool-calling protocol against the scripted OpenAI-compatible
server (tests/fakes.py), over the real store; and a smoke run against the local SmolLM2 server."""

from __future__ import annotations

import json

import pytest

from rag.agent import MAX_K, UNCITED, AgentAnswer, Library, answer_with_agent
from rag.answer import NO_ANSWER, answer_question
from rag.llm import LLMError, OpenAICompatible
from rag.repair import FELL_BACK
from tests.conftest import make_settings, rag_json, run_rag
from tests.fakes import SILENT, Calls, ScriptedLLM, serve
from tests.test_repair import FP8, INVENTED, S1, S2, S3

FP8_ID = "efficient-post-training-quantization-0bfbae"  # source of S1 and S3
ZQ_ID = "zeroquant-fp-a-leap-forward-in-llms-post-cb6b92"  # source of S2
SEARCH = Calls(("search", {"query": "compare FP8 vs INT8", "k": 3}))


def ask(
    workspace, tmp_path, replies, question: str = FP8, on_token=None, **overrides
) -> tuple[AgentAnswer, list[str], list[dict]]:
    """Ask `question` in agent mode against a server scripted with `replies`: (answer, notices, requests)."""
    tools = overrides.pop("tools", True)
    with serve(replies, tools=tools) as server:
        settings = make_settings(workspace.settings.data_dir, llm="auto", openai_base_url=server.url, **overrides)
        llm = OpenAICompatible(settings)
        notices: list[str] = []
        try:
            answer = answer_with_agent(
                question, settings, workspace.retriever, llm, workspace.verifier, notices.append, on_token
            )
        finally:
            llm.close()
    return answer, notices, server.bodies


def tool_results(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def test_search_read_answer_numbers_the_sources_from_what_was_read(workspace, tmp_path):
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S2} [2]."]
    answer, notices, bodies = ask(workspace, tmp_path, replies)
    assert notices == [] and answer.fallback is None
    shown = tool_results(bodies[1])[0]
    assert f'<source n="2" id="{ZQ_ID}">' in shown and f'<source n="1" id="{FP8_ID}">' in shown
    assert bodies[0]["tools"][0]["function"]["name"] == "search"
    # the first turn must search; later ones may answer
    assert bodies[0]["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert bodies[1]["tool_choice"] == "auto" and bodies[2]["tool_choice"] == "auto"
    # only the paper read is a source, numbered 1, and the answer's [2] is renumbered with it
    assert [(s.n, s.paper_id) for s in answer.sources] == [(1, ZQ_ID)]
    assert answer.text == f"{S2} [1]." and answer.mode == "llm"
    assert [s.verdict for s in answer.grounding.sentences] == ["supported"]
    assert FP8_ID in [h.paper_id for h in answer.retrieval]  # searched, shown as retrieved, not a source
    steps = answer.as_json()["agent"]["steps"]
    assert [s["tool"] for s in steps] == ["search", "read"] and steps[1]["papers"] == [ZQ_ID]
    assert steps[0]["arguments"] == {"query": "compare FP8 vs INT8", "k": 3} and len(steps[0]["papers"]) == 3
    assert answer.usage == {"prompt_tokens": 150, "completion_tokens": 30}


def test_a_reasoning_models_think_block_is_not_part_of_the_answer(workspace, tmp_path):
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"<think>I recall 1000 queries [2].</think>{S2} [2]."]
    answer, notices, _ = ask(workspace, tmp_path, replies)
    assert notices == [] and answer.text == f"{S2} [1]."


def test_the_tools_offered_are_described_by_their_argument_models_and_run_the_same_code(workspace, tmp_path):
    _, _, bodies = ask(workspace, tmp_path, [SEARCH, f"{S1} [1]."])
    offered = {t["function"]["name"]: t["function"] for t in bodies[0]["tools"]}
    assert set(offered) == {"search", "read"} and offered["read"]["parameters"]["required"] == ["paper_id"]
    k = offered["search"]["parameters"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, MAX_K) and "query" in offered["search"]["parameters"]["required"]
    assert "abstract" in offered["read"]["description"]
    library = Library(workspace.retriever, workspace.settings)
    search, read = library.tools()
    shown = search.call(query="compare FP8 vs INT8", k=2).content
    assert shown.count("<source ") == 2 and len(library.numbers) == 2
    assert f'id="{ZQ_ID}"' in read.call(paper_id=ZQ_ID).content and library.read == [ZQ_ID]


def test_calls_streamed_as_llama_cpp_streams_them_are_read_once(workspace, tmp_path):
    """llama.cpp's server resends a call's id and name in every delta, and takes no null content."""
    replies = [Calls(("search", {"query": "FP8 vs INT8", "k": 2}), repeat=True), f"{S1} [1]."]
    answer, notices, bodies = ask(workspace, tmp_path, replies)
    assert notices == [] and [s.tool for s in answer.steps] == ["search"] and answer.steps[0].error is None
    sent = bodies[1]["messages"][2]
    assert sent["tool_calls"][0]["id"] == "call-1-0" and sent["tool_calls"][0]["function"]["name"] == "search"
    assert isinstance(sent["content"], str) and bodies[1]["messages"][3]["tool_call_id"] == "call-1-0"


def test_a_turn_after_a_search_that_says_nothing_gets_one_that_must_answer(workspace, tmp_path):
    answer, notices, bodies = ask(workspace, tmp_path, [SEARCH, "", f"{S1} [1]."])
    assert notices == [] and bodies[2]["tool_choice"] == "none"
    assert answer.text == f"{S1} [1]." and [s.verdict for s in answer.grounding.sentences] == ["supported"]


def test_a_later_turn_whose_stream_holds_no_event_is_a_turn_that_said_nothing(workspace, tmp_path):
    answer, notices, bodies = ask(workspace, tmp_path, [SEARCH, SILENT, f"{S1} [1]."])
    assert notices == [] and bodies[2]["tool_choice"] == "none" and answer.text == f"{S1} [1]."


def test_a_first_turn_whose_stream_holds_no_event_is_a_malformed_reply(workspace, tmp_path):
    with pytest.raises(LLMError, match="sent a malformed reply"):
        ask(workspace, tmp_path, [SILENT])


def test_a_cited_search_result_is_a_source_too(workspace, tmp_path):
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S1} [1]. {S2} [2]."]
    answer, _, _ = ask(workspace, tmp_path, replies)
    assert [(s.n, s.paper_id) for s in answer.sources] == [(1, FP8_ID), (2, ZQ_ID)]
    assert all(s.verdict == "supported" for s in answer.grounding.sentences)


def test_bad_tool_calls_are_errors_told_to_the_model(workspace, tmp_path):
    replies = [
        Calls(("read", {"paper_id": "no-such-paper"}), ("read", "{not json"), ("browse", {"url": "x"})),
        SEARCH,
        Calls(("read", {"paper_id": "[2]"})),  # the number it was shown stands for the id
        f"{S2} [2].",
    ]
    answer, notices, bodies = ask(workspace, tmp_path, replies)
    errors = tool_results(bodies[1])
    assert errors == [
        "error: no paper has the id 'no-such-paper'; use an id from the search results",
        "error: the arguments are not a JSON object",
        "error: there is no tool 'browse'; the tools are search and read",
    ]
    assert [s.error is not None for s in answer.steps] == [True, True, True, False, False]
    assert answer.steps[1].arguments == "{not json"
    assert notices == [] and [s.paper_id for s in answer.sources] == [ZQ_ID] and answer.text == f"{S2} [1]."


def test_giant_tool_arguments_are_refused_and_never_echoed_whole(workspace, tmp_path):
    """A query over the 4,000 characters every other way in refuses is a tool error; an unknown id
    of a megabyte is not sent back to the model whole, nor kept whole in --json."""
    giant_query, giant_id = "LitSearch " * 1000, "x" * 100_000
    replies = [Calls(("search", {"query": giant_query}), ("read", {"paper_id": giant_id})), SEARCH, f"{S2} [2]."]
    answer, _, bodies = ask(workspace, tmp_path, replies)
    errors = tool_results(bodies[1])
    assert errors[0].startswith("error: the query is too long: it is 9,999 characters long")
    assert errors[1].startswith("error: no paper has the id 'xxx") and len(errors[1]) < 200
    steps = answer.as_json()["agent"]["steps"]
    assert steps[0]["papers"] == [] and len(steps[0]["arguments"]["query"]) == 200
    assert len(steps[1]["arguments"]["paper_id"]) == 200 and len(json.dumps(answer.as_json())) < 50_000


def test_more_calls_than_allowed_stop_and_the_model_answers_with_what_it_has(workspace, tmp_path):
    replies = [
        Calls(("search", {"query": "FP8 INT8"}), ("read", {"paper_id": ZQ_ID}), ("read", {"paper_id": FP8_ID})),
        f"{S2} [2].",
    ]
    answer, notices, bodies = ask(workspace, tmp_path, replies, agent_steps=2)
    assert notices == ["the agent used all 2 tool calls (RAG_AGENT_STEPS); it answered from what it found"]
    assert tool_results(bodies[1])[2] == "error: no tool calls are left; answer from the papers shown so far"
    assert (
        bodies[1]["tool_choice"] == "none" and "You have used all 2 tool calls" in bodies[1]["messages"][-1]["content"]
    )
    assert len(answer.steps) == 2 and [s.paper_id for s in answer.sources] == [ZQ_ID]
    assert answer.grounding.sentences[0].verdict == "supported"


def test_a_model_that_keeps_calling_tools_falls_back_with_one_line(workspace, tmp_path):
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), Calls(("read", {"paper_id": FP8_ID})), f"{S1} [1]."]
    answer, notices, bodies = ask(workspace, tmp_path, replies, agent_steps=2)
    assert notices == ["the model gave no answer after 2 tool calls; answering without the agent"]
    assert answer.fallback and len(answer.steps) == 2
    assert bodies[-1]["stream"] is True and "tools" not in bodies[-1]  # the normal path answered
    assert answer.text == f"{S1} [1]." and answer.grounding.sentences[0].verdict == "supported"


def test_a_model_that_never_calls_a_tool_falls_back(workspace, tmp_path):
    answer, notices, _ = ask(workspace, tmp_path, [f"{S1} [1]."])
    assert notices == ["the model did not call the search or read tools; answering without the agent"]
    assert answer.steps == [] and answer.text == f"{S1} [1]."
    # an empty first reply is not the model choosing to answer without tools
    answer, notices, _ = ask(workspace, tmp_path, ["", f"{S1} [1]."])
    assert notices == ["the model's first reply was empty; answering without the agent"]


@pytest.mark.parametrize("citation", ["[7]", "[3]"], ids=["never-shown", "searched-not-read"])
def test_a_citation_of_a_source_never_read_is_removed(workspace, tmp_path, citation):
    replies = [
        SEARCH,
        Calls(("read", {"paper_id": FP8_ID}), ("read", {"paper_id": ZQ_ID})),
        f"{S1} [1]. {S3} [1]. {S2} [2]. {INVENTED} {citation}.",
    ]
    answer, notices, _ = ask(workspace, tmp_path, replies)
    assert notices == [] and not answer.fell_back
    assert [s.text for s in answer.removed] == [f"{INVENTED} {citation}."]
    assert INVENTED not in answer.text and all(s.supported for s in answer.grounding.sentences)
    assert answer.cited == {1, 2}


def test_every_turn_is_streamed_and_the_answer_reaches_on_token_a_sentence_at_a_time(workspace, tmp_path):
    shown: list[str] = []
    reads = Calls(("read", {"paper_id": ZQ_ID}), ("read", {"paper_id": FP8_ID}))
    replies = [SEARCH, reads, [f"{S2} [2].", f" {S3[:20]}", f"{S3[20:]} [1]."]]
    answer, notices, bodies = ask(workspace, tmp_path, replies, on_token=shown.append)
    assert all(b["stream"] is True and b["stream_options"] == {"include_usage": True} for b in bodies)
    assert notices == [] and len(shown) == 2  # one piece per sentence, each once the next began
    assert shown[0] == f"{S2} [2]. " and "".join(shown) == answer.text == f"{S2} [2]. {S3} [1]."
    assert [(s.n, s.paper_id) for s in answer.sources] == [(1, FP8_ID), (2, ZQ_ID)]
    assert not answer.changed and answer.usage == {"prompt_tokens": 150, "completion_tokens": 30}


def test_streamed_citations_are_numbered_as_the_sources_so_far(workspace, tmp_path):
    """A later citation of a paper searched but not read can renumber what already streamed: then
    the answer is marked changed, and `rag ask` shows it again, checked."""
    shown: list[str] = []
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S2} [2]. {S3} [1]."]
    answer, _, _ = ask(workspace, tmp_path, replies, on_token=shown.append)
    assert shown[0] == f"{S2} [1]. " and answer.text == f"{S2} [2]. {S3} [1]." and answer.changed


def test_a_turn_that_writes_then_calls_a_tool_shows_nothing_of_it(workspace, tmp_path):
    shown: list[str] = []
    with_text = Calls(("read", {"paper_id": ZQ_ID}), content="Let me read the second paper first.")
    replies = [SEARCH, with_text, f"{S2} [2]."]
    answer, _, bodies = ask(workspace, tmp_path, replies, on_token=shown.append)
    assert bodies[2]["messages"][4]["content"] == "Let me read the second paper first."
    assert "".join(shown) == answer.text == f"{S2} [1]." and not answer.changed


def test_a_streamed_draft_that_the_check_changes_is_marked_changed(workspace, tmp_path):
    shown: list[str] = []
    replies = [SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S2} [2]. {S1} [1]. {INVENTED} [2]."]
    answer, _, _ = ask(workspace, tmp_path, replies, on_token=shown.append)
    assert INVENTED in "".join(shown) and INVENTED not in answer.text and answer.changed


def test_a_clear_miss_abstains_before_the_model_is_asked(workspace, tmp_path):
    question = "What speedup does FlashAttention-3 give on H100 GPUs?"
    answer, notices, bodies = ask(workspace, tmp_path, [SEARCH], question=question, on_token=pytest.fail)
    assert bodies == [] and notices == []
    assert answer.abstained and answer.text == NO_ANSWER and answer.steps == [] and answer.fallback is None
    plain = answer_question(question, workspace.retriever, llm=ScriptedLLM("unused"))
    assert answer.assessment == plain.assessment and answer.retrieval == plain.retrieval
    assert answer.sources == plain.sources and answer.mode == "llm"


def test_an_answer_that_nothing_read_supports_abstains(workspace, tmp_path):
    replies = [
        SEARCH,
        Calls(("read", {"paper_id": ZQ_ID})),
        f"{INVENTED} [2]. GPUs will be free for everyone by 2030 [2].",
    ]
    answer, notices, _ = ask(workspace, tmp_path, replies)
    assert notices == [] and answer.abstained and answer.text == NO_ANSWER and not answer.fell_back
    assert [s.text for s in answer.removed] == [f"{INVENTED} [1].", "GPUs will be free for everyone by 2030 [1]."]
    out = answer.as_json()
    assert out["abstained"] is True and out["sentences"] == [] and out["abstention"]["answerable"] is True


def test_an_uncited_answer_is_attributed_to_the_papers_shown(workspace, tmp_path):
    answer, notices, _ = ask(workspace, tmp_path, [SEARCH, f"{S1}."])
    assert notices == [] and answer.fallback is None and not answer.abstained
    assert [s.verdict for s in answer.grounding.sentences] == ["attributed"]
    assert FP8_ID in [answer.sources[n - 1].paper_id for n in answer.cited]


def test_an_uncited_answer_nothing_shown_supports_goes_the_normal_way(workspace, tmp_path):
    replies = [SEARCH, "GPUs will be free for everyone by 2030.", f"{S1} [1]."]
    answer, notices, bodies = ask(workspace, tmp_path, replies)
    assert notices == [f"{UNCITED}; answering without the agent"] and answer.fallback == UNCITED
    assert "tools" not in bodies[-1] and answer.text == f"{S1} [1]."


def test_an_abstaining_model_abstains(workspace, tmp_path):
    answer, _, _ = ask(workspace, tmp_path, [SEARCH, "The sources do not answer this question."])
    assert answer.abstained and answer.sources == [] and len(answer.steps) == 1


def test_no_endpoint_means_no_agent(workspace):
    notices: list[str] = []
    settings = make_settings(workspace.settings.data_dir)
    answer = answer_with_agent(FP8, settings, workspace.retriever, None, workspace.verifier, notices.append)
    assert notices == [
        "agent mode needs an LLM endpoint (OPENAI_BASE_URL or OPENAI_API_KEY); answering without the agent"
    ]
    assert answer.mode == "extractive" and answer.as_json()["agent"]["steps"] == []


def test_ask_agent_json(bundled_dir):
    """`rag ask --agent --json`: the answer's usual shape plus the agent's steps; no message."""
    with serve([SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S2} [2]."]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url}
        proc = run_rag("ask", FP8, "--agent", "--json", env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    plain = rag_json("ask", FP8, "--json", "--no-llm", env={"RAG_DATA_DIR": str(bundled_dir)})
    assert set(out) == set(plain) | {"agent"}
    assert out["answer"] == f"{S2} [1]." and out["citations"] == [
        {"n": 1, "paper_id": ZQ_ID, "title": out["citations"][0]["title"], "cited": True}
    ]
    assert out["agent"] == {
        "steps": [
            {
                "tool": "search",
                "arguments": {"query": "compare FP8 vs INT8", "k": 3},
                "papers": out["agent"]["steps"][0]["papers"],
            },
            {"tool": "read", "arguments": {"paper_id": ZQ_ID}, "papers": [ZQ_ID]},
        ],
        "calls": ['search({"query": "compare FP8 vs INT8", "k": 3})', f'read({{"paper_id": "{ZQ_ID}"}})'],
        "fallback": None,
    }


def test_ask_agent_json_of_a_clear_miss_is_the_plain_abstention(bundled_dir):
    question = "What speedup does FlashAttention-3 give on H100 GPUs?"
    with serve([SEARCH]) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url}
        out = rag_json("ask", question, "--agent", "--json", env=env)
        assert server.bodies == []
    plain = rag_json(
        "ask", question, "--json", env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    assert out.pop("agent") == {"steps": [], "calls": [], "fallback": None}
    assert out.pop("timings_ms").keys() == plain.pop("timings_ms").keys() and out == plain


def test_ask_agent_where_tools_are_rejected_is_one_line_and_a_normal_answer(bundled_dir):
    with serve([f"{S1} [1]. {S2} [2]."], tools=False) as server:
        env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": server.url}
        proc = run_rag("ask", FP8, "--agent", env=env)
        assert server.bodies[0]["tools"] and "tools" not in server.bodies[1]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"rag: the LLM endpoint {server.url} does not take tools (HTTP 400); answering without the agent"
    ]
    assert S1 in proc.stdout and "Grounding: 2/2 sentences supported" in proc.stdout


def test_ask_agent_against_the_local_llm(bundled_dir, llm_url):
    """SmolLM2 may never call a tool: then one line says so and the normal answer is checked."""
    env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": llm_url, "RAG_LLM_MODEL": "smollm2"}
    proc = run_rag("ask", FP8, "-k", "3", "--agent", "--json", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    lines = [line for line in proc.stderr.splitlines() if line != FELL_BACK]
    if out["agent"]["fallback"]:
        assert len(lines) == 1 and lines[0].endswith("answering without the agent"), proc.stderr
    else:
        assert out["agent"]["steps"] and len(lines) <= 1, proc.stderr
    assert out["mode"] == "llm" and out["model"] == "smollm2"
    assert all(s["supported"] or s["verdict"] == "no_claim" for s in out["sentences"])


def test_ask_agent_against_the_local_llm_calling_tools(bundled_dir, llm_tools_url):
    """SmolLM2 behind llama.cpp's function-calling chat format: its first turn must search, with a
    query it writes; then it answers, and whatever it writes is checked like any LLM answer."""
    env = {"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": llm_tools_url, "RAG_LLM_MODEL": "smollm2"}
    proc = run_rag("ask", FP8, "--agent", "--json", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    first = out["agent"]["steps"][0]
    assert first["tool"] == "search" and first["papers"] and "error" not in first, out["agent"]
    assert len([line for line in proc.stderr.splitlines() if line != FELL_BACK]) <= 1, proc.stderr
    assert all(s["supported"] or s["verdict"] == "no_claim" for s in out["sentences"])
