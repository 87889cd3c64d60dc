"""Answers streamed through `rag serve`: a real server process over a temporary store (real Chroma,
real embedder) whose LLM is the scripted OpenAI-compatible server of tests/fakes.py, which streams
an exact reply in pieces. What `rag ask` shows through the server is what it shows locally."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from rag.serve.client import ServerError, request
from tests.conftest import run_on_terminal
from tests.fakes import serve
from tests.serve.conftest import Served, start_served

QUESTION = "which papers compare FP8 vs INT8?"
FIRST = "FP8 formats outperform INT8 in workload coverage, model accuracy and suitability."
SECOND = "For LLMs, FP8 activation consistently outshines its integer (INT8) equivalent."
REPLY = json.dumps({"sentences": [{"text": FIRST, "citations": [1]}, {"text": SECOND, "citations": [2]}]})
PIECES = [REPLY[i : i + 9] for i in range(0, len(REPLY), 9)]  # streamed as exactly these chunks


@pytest.fixture(scope="module")
def llm_served(tmp_path_factory) -> Iterator[Served]:
    with serve([PIECES]) as script:
        llm = {"RAG_LLM": "auto", "OPENAI_BASE_URL": script.url, "OPENAI_API_KEY": "x", "RAG_LLM_MODEL": "m"}
        with start_served(tmp_path_factory.mktemp("llm-served"), **llm) as server:
            yield server


def on_terminal(served: Served, *args: str, via_server: bool) -> str:
    """What `rag` prints on a pseudo-terminal (so it streams), without timings."""
    env = {**served.env, "COLUMNS": "400", **({"RAG_SERVER_URL": served.url} if via_server else {})}
    code, text = run_on_terminal(*args, env=env)
    assert code == 0
    return re.sub(r"\d+ ms\.", "N ms.", text)


def test_the_models_answer_streams_through_the_server_and_ends_as_the_local_answer(llm_served: Served) -> None:
    tokens: list[str] = []
    reply = request(llm_served.url, "/ask", {"question": QUESTION}, timeout=120, on_token=tokens.append)
    assert reply.streamed and tokens == [f"{FIRST} [1]", f" {SECOND} [2]"]  # a sentence as each completes
    local = llm_served.rag("ask", QUESTION, "--json", served=False)
    assert local.returncode == 0, local.stderr
    got, want = dict(reply.body), json.loads(local.stdout)
    got.pop("timings_ms"), want.pop("timings_ms")
    assert got == want and got["mode"] == "llm"
    assert [s["text"] for s in got["sentences"]] == [f"{FIRST} [1]", f"{SECOND} [2]"]

    plain = request(llm_served.url, "/ask", {"question": QUESTION}, timeout=120)  # no on_token: one JSON reply
    assert not plain.streamed and plain.body["answer"] == reply.body["answer"]


def test_rag_ask_on_a_terminal_shows_through_the_server_what_it_shows_locally(llm_served: Served) -> None:
    remote = on_terminal(llm_served, "ask", QUESTION, via_server=True)
    local = on_terminal(llm_served, "ask", QUESTION, via_server=False)
    assert remote == local
    assert remote.index(FIRST) < remote.index(SECOND) < remote.index("Sources:")
    assert remote.count(FIRST) == 1  # streamed once, not printed again after


def test_what_has_nothing_to_stream_is_a_plain_reply_and_a_bad_flag_is_refused(llm_served: Served) -> None:
    tokens: list[str] = []
    reply = request(llm_served.url, "/ask", {"question": QUESTION, "no_llm": True}, timeout=120, on_token=tokens.append)
    assert not reply.streamed and tokens == [] and reply.body["mode"] == "extractive"
    with pytest.raises(ServerError, match="'stream' must be true or false"):
        request(llm_served.url, "/ask", {"question": QUESTION, "stream": "yes"}, timeout=120)


@pytest.fixture(scope="module")
def slow_served(tmp_path_factory) -> Iterator[Served]:
    """A server whose model writes one token a second (the scripted server's "drip")."""
    with serve() as script:
        llm = {
            "RAG_LLM": "auto", "OPENAI_BASE_URL": f"{script.base}/drip/v1", "OPENAI_API_KEY": "x",
            "RAG_LLM_MODEL": "m", "RAG_LLM_DEADLINE": "15", "RAG_LLM_TIMEOUT": "5",
        }  # fmt: skip
        with start_served(tmp_path_factory.mktemp("slow-served"), **llm) as server:
            yield server


def test_a_search_is_answered_while_a_model_writes_an_answer(slow_served: Served) -> None:
    """An answer holds the store only while it retrieves: /search and /papers do not wait for the
    model (they once queued behind every answer in progress)."""
    import threading

    asked: dict = {}
    writing = threading.Event()

    def ask() -> None:
        try:
            asked["reply"] = request(
                slow_served.url, "/ask", {"question": QUESTION}, timeout=120, on_token=lambda _: writing.set()
            )
        except ServerError as exc:  # the drip outlasts the deadline: a one-line error, later
            asked["error"] = str(exc)

    answering = threading.Thread(target=ask)
    answering.start()
    try:
        assert writing.wait(60), "the model never started writing"
        found = request(slow_served.url, "/search", {"query": QUESTION, "k": 3}, timeout=120).body
        papers = request(slow_served.url, "/papers", {"ids": [found["results"][0]["paper_id"]]}, timeout=120)
        assert answering.is_alive(), "the search waited for the answer"
        assert len(found["results"]) == 3 and papers.body["papers"]
    finally:
        answering.join(120)
    assert "deadline" in asked.get("error", ""), asked
