"""The workspace, the one place that builds the store, retriever, LLM and verifier: each part is
built once and only when asked for, `close()` closes what it opened, and the `verifier` setting
reaches every command and the chat."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from rag.answer import answer_question
from rag.config import SettingsError
from rag.forked_llm import ForkedLLM
from rag.grounding import LLMVerifier, OverlapVerifier
from rag.llm import OpenAICompatible
from rag.store import StoreError
from rag.tui.app import create_app
from rag.workspace import Workspace
from tests.conftest import make_settings, run_rag
from tests.fakes import ScriptedLLM, serve
from tests.tui.test_chat import SIZE, ask, wait_for

FP8 = "which papers compare FP8 vs INT8?"
TWO_CLAIMS = "FP8 formats outperform INT8 in workload coverage [1]. E4M3 suits NLP models [1]."


def test_parts_are_built_on_first_use_and_once(bundled_dir):
    ws = Workspace(make_settings(bundled_dir))
    assert not {"store", "embedder", "retriever", "llm", "verifier"} & set(vars(ws))
    assert ws.retriever is ws.retriever and ws.store is ws.retriever.store and ws.embedder is ws.retriever.embedder
    assert ws.lexical is ws.retriever.lexical
    assert isinstance(ws.verifier, OverlapVerifier) and ws.verifier is ws.verifier
    assert "llm" not in vars(ws)  # the overlap verifier needs no LLM, so none was built for it
    assert ws.llm is None  # llm = off
    ws.close()


def test_close_closes_the_store_and_the_workspace_reopens_it(tmp_path):
    with Workspace(make_settings(tmp_path / "data")) as ws:
        store = ws.store
        assert store.count() == 0
    with pytest.raises(StoreError):  # the Chroma client is closed: the old store refuses, in one line
        store.count()
    reopened = ws.store
    assert reopened is not store and reopened.count() == 0
    ws.close()
    ws.close()  # twice is harmless


def test_the_llm_follows_the_settings_and_a_given_one_stands_in(tmp_path):
    scripted = ScriptedLLM("hello")
    assert Workspace(make_settings(tmp_path)).llm is None  # llm = off
    assert Workspace(make_settings(tmp_path, llm="auto")).llm is None  # no endpoint configured
    assert Workspace(make_settings(tmp_path, llm="auto"), llm=scripted).llm is scripted
    assert Workspace(make_settings(tmp_path, llm="off"), llm=scripted).llm is None
    with Workspace(make_settings(tmp_path, llm="auto", openai_base_url="http://127.0.0.1:9/v1")) as ws:
        llm = ws.llm
        assert isinstance(llm, OpenAICompatible) and ws.llm is llm
    assert llm._http.is_closed


def test_close_ends_the_forked_llm_helper(tmp_path):
    with serve(["A forked reply."]) as server:
        settings = make_settings(tmp_path, llm="auto", openai_base_url=server.url)
        with Workspace(settings, forked_llm=True) as ws:
            llm = ws.llm
            assert isinstance(llm, ForkedLLM)
            assert "".join(llm.stream("system", "user")) == "A forked reply."
        started = time.monotonic()
        llm._process.join(5)
        assert not llm._process.is_alive() and time.monotonic() - started < 5
        assert llm._process.exitcode == 0  # it returned when its pipe closed; it was not killed


def test_the_llm_verifier_judges_with_the_workspace_llm(workspace):
    settings = make_settings(workspace.settings.data_dir, llm="auto", verifier="llm")
    judge = ScriptedLLM("no", "yes", "yes")  # joint check of each sentence, then the "alone" check of the second
    verifier = Workspace(settings, llm=judge).verifier
    assert isinstance(verifier, LLMVerifier)
    answer = answer_question(FP8, workspace.retriever, llm=ScriptedLLM(TWO_CLAIMS), verifier=verifier, grounding="mark")
    assert [s.verdict for s in answer.grounding.sentences] == ["unsupported", "supported"]
    assert "Claim: FP8 formats outperform INT8 in workload coverage" in judge.prompts[0][1]


def test_verifier_llm_without_an_llm_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="verifier = llm needs an LLM"):
        _ = Workspace(make_settings(tmp_path, verifier="llm")).verifier


def test_search_does_not_load_the_llm_client_or_the_chat(bundled_dir):
    heavy = ("openai", "llama_index", "textual", "mcp")
    code = (
        "import sys\n"
        "from rag.cli import main\n"
        "sys.argv = ['rag', 'search', 'FP8 vs INT8', '-k', '2']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAG_DATA_DIR": str(bundled_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_ask_reports_a_verifier_the_settings_cannot_make(bundled_dir):
    proc = run_rag("ask", FP8, env={"RAG_DATA_DIR": str(bundled_dir), "RAG_VERIFIER": "llm"})
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("rag: error: verifier = llm needs an LLM"), line


async def test_the_chat_reports_a_verifier_the_settings_cannot_make(bundled_dir, tmp_path):
    app = create_app(make_settings(bundled_dir, verifier="llm"), history_path=tmp_path / "chat.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, app._store_ready.is_set)
        assert any("verifier = llm needs an LLM" in n.message for n in app._notifications)
        turn = await ask(pilot, FP8)
        assert turn.answer is None and "verifier = llm needs an LLM" in turn.markdown.source


async def test_the_chat_checks_answers_with_the_configured_verifier(bundled_dir, tmp_path):
    llm = ScriptedLLM(TWO_CLAIMS, "no", "yes", "yes")  # the answer, then the judge's verdicts
    settings = make_settings(bundled_dir, llm="auto", verifier="llm", grounding="mark")
    app = create_app(settings, history_path=tmp_path / "chat.sqlite3", llm=llm)
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, FP8)
        assert [s.verdict for s in turn.answer.grounding.sentences] == ["unsupported", "supported"]
        assert "Claim: FP8 formats outperform INT8" in llm.prompts[1][1]


async def test_the_chat_closes_its_workspace_and_history_on_exit(bundled_dir, tmp_path):
    app = create_app(make_settings(bundled_dir), history_path=tmp_path / "chat.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, FP8)
        app.apply_settings({"top_k": 3})  # replaces the workspace; the old one is closed when unused
        await wait_for(pilot, lambda: app._store_ready.is_set() and not app._retired)
        await ask(pilot, FP8)
        workspace = app.workspace
        assert "store" in vars(workspace)
    assert "store" not in vars(workspace)
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        app.history.db.execute("SELECT 1")
