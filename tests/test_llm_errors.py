"""A misbehaving OpenAI-compatible endpoint: every failure is one clear line and exit code 1.

The endpoint is the scripted server of tests/fakes.py; the first part of the URL path picks the
misbehaviour. The real server is tested in test_llm_live."""

import json
import os
import re
import socket
import time

import pytest

from rag.forked_llm import ForkedLLM
from rag.llm import LLMError, OpenAICompatible
from tests.conftest import make_settings, run_on_terminal, run_rag
from tests.fakes import Reasoning, Scripted, serve


@pytest.fixture(scope="module")
def server():
    with serve() as script:
        yield script


@pytest.fixture(scope="module")
def endpoint(server: Scripted) -> str:
    return server.base


def ask(bundled_dir, base_url: str, **env: str):
    return run_rag(
        "ask",
        "which papers compare FP8 vs INT8?",
        env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": base_url, "RAG_LLM_TIMEOUT": "1", **env},
    )


@pytest.mark.parametrize(
    "mode, message, tries",
    [
        ("e401", "rejected the API key (401); check OPENAI_API_KEY", 1),
        ("e429", "rate limiting requests (429)", 3),
        ("e500", "failed (HTTP 500: nope); try again later", 3),
        (
            "e400ctx",
            "(HTTP 400: This model's maximum context length is 512 tokens, but you requested 2100 tokens.); "
            "the model's window is smaller than rag assumed: lower RAG_LLM_CONTEXT_TOKENS",
            1,  # not taken for a refused response format: not retried without it
        ),
        (
            "redirect",
            "redirected the request (HTTP 307 to https://llm.example/v1/chat/completions); set OPENAI_BASE_URL",
            1,
        ),
        ("noreply", "closed the connection without replying; check the server's log", 3),
        ("sseerror", "reported an error in its reply (the model is overloaded)", 1),
        ("malformed", "sent a malformed reply (not valid JSON in the event stream)", 1),
        ("nosse", "sent a malformed reply (no chat completion events", 1),
        ("cut", "cut off its reply (the connection closed mid-stream)", 1),
        ("cutclean", "cut off its reply (the stream ended without a finish reason or [DONE])", 1),
        ("slow", "did not answer within 1 s (3 attempts, ", 3),
    ],
)
def test_endpoint_failures_are_one_line_with_exit_1(bundled_dir, server, endpoint, mode, message, tries):
    proc = ask(bundled_dir, f"{endpoint}/{mode}/v1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), proc.stderr
    assert f"{endpoint}/{mode}/v1" in lines[0] and message in lines[0], lines[0]
    # retried with backoff only before any text arrived (429, 5xx, time-outs), never a cut stream
    assert server.requests[mode] == tries


def test_an_empty_reply_falls_back_in_strict_mode_and_is_an_error_in_mark_mode(bundled_dir, endpoint):
    strict = ask(bundled_dir, f"{endpoint}/empty/v1")
    assert strict.returncode == 0, strict.stderr
    assert "did not hold up against the sources" in strict.stdout + strict.stderr
    assert "[1]" in strict.stdout.split("\nSources:")[0]  # the extractive answer, cited
    mark = ask(bundled_dir, f"{endpoint}/empty/v1", RAG_GROUNDING="mark")
    assert mark.returncode == 1
    (line,) = mark.stderr.strip().splitlines()
    assert "returned an empty reply" in line


def test_a_reply_stopped_for_length_before_a_word_says_the_window_is_full(bundled_dir, endpoint):
    mark = ask(bundled_dir, f"{endpoint}/fullwindow/v1", RAG_GROUNDING="mark")
    assert mark.returncode == 1
    (line,) = mark.stderr.strip().splitlines()
    assert "stopped the reply for length before writing anything" in line and "RAG_LLM_CONTEXT_TOKENS" in line


def test_a_hang_reports_the_time_it_really_took(bundled_dir, endpoint):
    """Three attempts of 1 s each and the backoff between them: the line says so, not "1 s"."""
    proc = ask(bundled_dir, f"{endpoint}/slow/v1")
    seconds = float(re.search(r"attempts, ([\d.]+) s in all", proc.stderr).group(1))
    assert seconds >= 3.0, proc.stderr


def test_a_dripping_endpoint_stops_at_the_deadline(bundled_dir, endpoint):
    """One token a second never trips the 3 s read time-out; the 3 s deadline ends it."""
    started = time.monotonic()
    proc = ask(bundled_dir, f"{endpoint}/drip/v1", RAG_LLM_TIMEOUT="3", RAG_LLM_DEADLINE="3")
    assert time.monotonic() - started < 20
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "did not finish its reply within the 3 s deadline" in line and "RAG_LLM_DEADLINE" in line, line


@pytest.mark.parametrize("mode", ["big", "bigone"])
def test_a_huge_reply_is_cut_at_the_token_cap_with_a_notice(bundled_dir, server, endpoint, mode):
    proc = ask(bundled_dir, f"{endpoint}/{mode}/v1", RAG_LLM_MAX_TOKENS="40")
    assert proc.returncode == 0, proc.stderr
    assert server.last_body[mode]["max_tokens"] == 40  # asked of the server, and enforced on what arrived
    answer = proc.stdout.split("\nSources:")[0]
    assert "FP8 formats outperform INT8 [1]" in answer and len(answer) < 1000
    assert proc.stderr.strip() == (
        "rag: warning: the reply was cut at 40 tokens (RAG_LLM_MAX_TOKENS); raise it for longer answers"
    )


def test_a_reply_the_server_stopped_at_max_tokens_gets_the_same_notice(bundled_dir, server, endpoint):
    proc = ask(bundled_dir, f"{endpoint}/length/v1")
    assert proc.returncode == 0, proc.stderr
    assert "rag: warning: the reply was cut at 400 tokens" in proc.stderr
    assert server.last_body["length"]["max_tokens"] == 400


def test_a_reply_cut_short_by_the_servers_window_says_so_and_its_unfinished_end_is_not_shown(
    bundled_dir, server, endpoint
):
    proc = ask(bundled_dir, f"{endpoint}/window/v1")
    assert proc.returncode == 0, proc.stderr
    assert "rag: warning: the endpoint cut the reply at 20 tokens, below RAG_LLM_MAX_TOKENS (400)" in proc.stderr
    # strict mode: "FP8 formats" (cut mid-sentence) is not part of the answer shown
    answer = proc.stdout.split("\nSources:")[0].strip()
    assert answer == "FP8 formats outperform INT8 [1].", proc.stdout


def test_a_reply_stopped_by_a_content_filter_says_so(bundled_dir, endpoint):
    proc = ask(bundled_dir, f"{endpoint}/filtered/v1")
    assert proc.returncode == 0, proc.stderr
    assert "rag: warning: the endpoint's content filter stopped the reply" in proc.stderr


def test_a_finish_reason_without_done_is_a_complete_reply(bundled_dir, endpoint):
    proc = ask(bundled_dir, f"{endpoint}/finish/v1")
    assert proc.returncode == 0, proc.stderr
    assert "FP8 formats outperform INT8 [1]." in proc.stdout and proc.stderr == ""


def test_credentials_in_the_endpoint_are_masked_in_errors(bundled_dir, endpoint):
    url = endpoint.replace("http://", "http://user:s3cret@") + "/e401/v1"
    proc = ask(bundled_dir, url)
    assert proc.returncode == 1
    assert "s3cret" not in proc.stderr and "user" not in proc.stderr
    assert endpoint.replace("http://", "http://***@") + "/e401/v1" in proc.stderr


def test_the_forked_helper_is_stopped_when_it_overruns_the_deadline(endpoint, tmp_path, monkeypatch):
    """The helper enforces the deadline itself; should it hang anyway, the parent gives up."""
    settings = make_settings(tmp_path, llm="auto", openai_base_url=f"{endpoint}/drip/v1", llm_deadline=30)
    monkeypatch.setattr(ForkedLLM, "GRACE", -29.0)  # the parent waits 1 s, the helper 30 s
    llm = ForkedLLM(settings)
    started = time.monotonic()
    with pytest.raises(LLMError, match="did not finish within the 30 s deadline and was stopped"):
        "".join(llm.stream("system", "user"))
    assert time.monotonic() - started < 10
    llm._process.join(5)
    assert not llm._process.is_alive()


def test_the_deadline_holds_in_process_too(endpoint, tmp_path):
    settings = make_settings(tmp_path, llm="auto", openai_base_url=f"{endpoint}/drip/v1", llm_deadline=2, llm_timeout=5)
    llm = OpenAICompatible(settings)
    got: list[str] = []
    started = time.monotonic()
    with pytest.raises(LLMError, match="within the 2 s deadline"):
        for delta in llm.stream("system", "user"):
            got.append(delta)
    assert 1.5 < time.monotonic() - started < 6
    assert got and set("".join(got).split()) == {"FP8"}  # what arrived in time was passed on


def test_unreachable_endpoint(bundled_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ask(bundled_dir, f"http://127.0.0.1:{port}/v1")
    assert proc.returncode == 1
    assert "cannot reach the LLM endpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_a_working_endpoint_answers_through_the_same_path(bundled_dir, endpoint):
    proc = ask(bundled_dir, f"{endpoint}/nofinish/v1")  # [DONE] alone ends a reply
    assert proc.returncode == 0, proc.stderr
    assert "FP8 formats outperform INT8 [1]." in proc.stdout


@pytest.mark.parametrize(
    "mode, env, message",
    [
        ("nosse", {}, "sent a malformed reply (no chat completion events"),
        ("malformed", {}, "sent a malformed reply (not valid JSON in the event stream)"),
        ("wrongshape", {}, "sent a reply that is not a chat completion (TypeError)"),
        ("drip", {"RAG_LLM_TIMEOUT": "0.5"}, "stopped sending for 0.5 s in the middle of its reply"),
        ("e401", {}, "rejected the API key (401)"),
    ],
)
def test_agent_mode_endpoint_failures_are_one_line_with_exit_1(bundled_dir, endpoint, mode, env, message):
    """Agent mode meets the same endpoints: one line that names the failure, not a model decision."""
    proc = run_rag(
        "ask",
        "which papers compare FP8 vs INT8?",
        "--agent",
        env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": f"{endpoint}/{mode}/v1", **env},
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("rag: error: ") and message in line and "internal error" not in line, line


def test_agent_mode_cuts_a_huge_turn_at_the_token_cap(bundled_dir, endpoint):
    started = time.monotonic()
    proc = run_rag(
        "ask",
        "which papers compare FP8 vs INT8?",
        "--agent",
        env={"RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": f"{endpoint}/big/v1", "RAG_LLM_MAX_TOKENS": "40"},
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    # the cut turn called no tool: the normal path answers, and is cut at the cap too
    assert "rag: warning: the reply was cut at 40 tokens" in proc.stderr
    assert "FP8 formats outperform INT8 [1]" in proc.stdout


def test_a_reply_cut_off_mid_stream_on_a_terminal_leaves_the_error_on_a_line_of_its_own(bundled_dir, endpoint):
    """On a terminal the reply streams; the deadline's error must not be glued to its last word, and
    the text shown is said to be unchecked."""
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(bundled_dir),
        "OPENAI_BASE_URL": f"{endpoint}/drip/v1",
        "RAG_LLM_TIMEOUT": "3",
        "RAG_LLM_DEADLINE": "4",
        "COLUMNS": "400",
    }
    code, text = run_on_terminal("ask", "which papers compare FP8 vs INT8?", env=env, with_stderr=True, timeout=60)
    assert code == 1
    (error,) = [line for line in text.splitlines() if "rag: error:" in line]
    assert error.startswith("rag: error: ") and "deadline" in error, text
    # what streamed was never checked: the user is told so, not left with it as if it were an answer
    lines = text.rstrip().splitlines()
    assert lines[-2] == "rag: the reply shown above was cut off before it was checked against the sources", text


def test_ctrl_c_while_a_reply_streams_ends_its_line_and_says_so_in_one_line(bundled_dir, endpoint):
    """Ctrl-C reaches the whole process group, the forked LLM helper too: it once printed two
    tracebacks (its pipe broke mid-send), and the interrupt was exit code 130 without a word."""
    env = {**os.environ, "RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": f"{endpoint}/drip/v1", "COLUMNS": "400"}
    question = "which papers compare FP8 vs INT8?"
    code, text = run_on_terminal("ask", question, env=env, with_stderr=True, timeout=60, interrupt_at="FP8 FP8 ")
    assert code == 130
    assert "Traceback" not in text and "Error" not in text, text
    assert text.rstrip().endswith("rag: interrupted") and "\nrag: interrupted" in text, text
    assert "rag: the reply shown above was cut off before it was checked" in text, text


def test_ctrl_c_with_json_leaves_an_error_object_on_stdout(bundled_dir, endpoint):
    import signal
    import subprocess
    import sys

    env = {**os.environ, "RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": f"{endpoint}/drip/v1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "ask", "which papers compare FP8 vs INT8?", "--json"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)  # answering: the endpoint drips a token a second for a minute
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and json.loads(out) == {"error": "interrupted"}
    assert err.strip().splitlines()[-1] == "rag: interrupted" and "Traceback" not in err


def test_a_reply_abandoned_midway_releases_its_connection_at_once(tmp_path, endpoint):
    """A reply the caller stops reading (the token cap, the deadline) is closed by the thread that
    read it. Left to the garbage collector, it was closed inside a later request's hold of the
    connection pool's lock, and every request after that waited on the lock until its deadline."""
    import gc

    settings = make_settings(tmp_path, openai_base_url=f"{endpoint}/drip/v1", llm_timeout=5, llm_deadline=60)
    llm = OpenAICompatible(settings)
    pool = llm._http._transport._pool
    gc.disable()  # the collector must not be what releases it
    try:
        reply = llm.stream("system", "user")
        assert next(reply).startswith("FP8")
        reply.close()
        give_up = time.monotonic() + 10
        while pool._requests and time.monotonic() < give_up:
            time.sleep(0.05)
        assert not pool._requests, "the abandoned reply still holds its connection"
    finally:
        gc.enable()
        llm.close()


def test_a_reasoning_models_think_block_is_not_the_answer(tmp_path):
    """DeepSeek-R1, Qwen3 and QwQ write <think>...</think> into the reply: it is dropped before the
    answer is shown or checked, and a reply of reasoning alone is an empty reply that says so."""
    from rag.llm import EmptyReply

    thought = ["<thi", "nk>The user asks. I recall 1000 queries [1].</th", "ink>FP8 formats outperform INT8 [1]."]
    with serve([thought, ["<think>Let me think about FP8 and INT8 at length"]]) as script:
        llm = OpenAICompatible(make_settings(tmp_path, openai_base_url=f"{script.base}/ok/v1", llm_timeout=10))
        assert "".join(llm.stream("system", "user")) == "FP8 formats outperform INT8 [1]."
        with pytest.raises(EmptyReply, match=r"sent only its reasoning and no answer"):
            "".join(llm.stream("system", "user"))


def test_a_reply_of_reasoning_content_alone_says_so(bundled_dir):
    """Servers that send a reasoning model's thoughts as `reasoning_content`: in strict mode a reply
    with nothing else falls back to the extractive answer with a warning that the model only
    reasoned; in mark mode it is the one-line error."""
    with serve([Reasoning("FP8 and INT8... let me recall the papers first.")]) as script:
        strict, mark = ask(bundled_dir, script.url), ask(bundled_dir, script.url, RAG_GROUNDING="mark")
    assert strict.returncode == 0, strict.stderr
    assert "sent only its reasoning and no answer" in strict.stderr and "did not hold up" in strict.stderr
    assert "[1]" in strict.stdout.split("\nSources:")[0]
    assert mark.returncode == 1
    (line,) = mark.stderr.strip().splitlines()
    assert "sent only its reasoning and no answer" in line


def test_sigterm_while_a_reply_streams_stops_like_ctrl_c(bundled_dir, endpoint):
    """`timeout` and `kill` send SIGTERM: the text shown is said to be unchecked, in one line, as for Ctrl-C."""
    env = {**os.environ, "RAG_DATA_DIR": str(bundled_dir), "OPENAI_BASE_URL": f"{endpoint}/drip/v1", "COLUMNS": "400"}
    question = "which papers compare FP8 vs INT8?"
    code, text = run_on_terminal(
        "ask", question, env=env, with_stderr=True, timeout=60, interrupt_at="FP8 FP8 ", terminate=True
    )
    assert code == 130 and "Traceback" not in text, text
    assert text.rstrip().endswith("rag: interrupted"), text
    assert "rag: the reply shown above was cut off before it was checked" in text, text
