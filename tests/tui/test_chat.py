"""The chat app driven with Textual's Pilot, over the real store and embedder."""

import time

import pytest
from textual.widgets import Static

from rag.tui.app import create_app
from rag.tui.history import History
from rag.tui.widgets import SourcesPane, TurnView
from tests.conftest import make_settings
from tests.fakes import FailingLLM, ScriptedLLM

SIZE = (140, 40)


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def ask(pilot, question: str) -> TurnView:
    app = pilot.app
    await wait_for(pilot, app._store_ready.is_set)
    await pilot.click("#question")
    app.query_one("#question").value = question
    await pilot.press("enter")
    await wait_for(pilot, lambda: len(app.query(TurnView)) and not app._busy)
    return app.query(TurnView).last()


async def run_command(pilot, app, command: str) -> None:
    """Open the command palette, type `command` and run the first match."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: app.screen.query("Input"), timeout=10)
    for ch in command:
        await pilot.press(ch if ch != " " else "space")
    await wait_for(
        pilot,
        lambda: app.screen.query("OptionList") and app.screen.query_one("OptionList").option_count,
        timeout=10,
    )
    await pilot.press("enter")


def slow_llm() -> ScriptedLLM:
    return ScriptedLLM("FP8 formats outperform INT8 in workload coverage [1]. " * 20, delay=0.05)


async def start_streaming(pilot, question: str) -> None:
    """Send a question and return as soon as the answer starts streaming."""
    app = pilot.app
    await wait_for(pilot, app._store_ready.is_set)
    app.query_one("#question").value = question
    await pilot.click("#question")
    await pilot.press("enter")


@pytest.fixture
def app_factory(bundled_dir, tmp_path):
    def make(llm=None, resume=False, **overrides):
        settings = make_settings(bundled_dir, llm="auto" if llm else "off", **overrides)
        return create_app(settings, resume=resume, history_path=tmp_path / "chat.sqlite3", llm=llm)

    return make


async def test_question_gets_a_cited_answer_and_sources_open(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, "How many queries does the LitSearch benchmark contain?")
        assert "597" in turn.answer.text and all(s.supported for s in turn.answer.grounding.sentences)
        rendered = turn.markdown.source
        assert "✓" in rendered and "(source:1)" in rendered
        pane = app.query_one(SourcesPane)
        assert len(pane.query("ListItem")) == 5
        await pilot.press("ctrl+o", "1")
        shown = str(app.query_one("#abstract-text").render())
        assert shown.startswith("[1] LitSearch") and "597 realistic literature search queries" in shown
        status = str(app.query_one("#status").render())
        assert "extractive" in status and "retrieval" in status and "precision 1.00" in status


async def test_clicking_a_citation_opens_the_source(app_factory):
    from textual.widgets import Markdown

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, "which papers compare FP8 vs INT8?")
        turn.markdown.post_message(Markdown.LinkClicked(turn.markdown, "source:2"))
        await wait_for(pilot, lambda: str(app.query_one("#abstract-text").render()).startswith("[2] "), timeout=10)


async def test_streaming_llm_answer_can_be_cancelled_and_is_saved_incomplete(app_factory, tmp_path):
    app = app_factory(llm=slow_llm())
    async with app.run_test(size=SIZE) as pilot:
        await start_streaming(pilot, "which papers compare FP8 vs INT8?")
        turn = None
        await wait_for(pilot, lambda: app.query(TurnView) and "FP8" in app.query(TurnView).last().text)
        turn = app.query(TurnView).last()
        assert str(app.query_one("#status").render()).endswith("· answering…")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app._busy)
        assert str(app.query_one("#status").render()).endswith("· cancelled")
        assert turn.answer is None and "(cancelled)" in turn.markdown.source
        assert len(turn.text.split()) < 200
    saved = History(tmp_path / "chat.sqlite3")
    (only,) = saved.turns(saved.last_conversation())
    assert only.complete is False


async def test_quitting_while_an_answer_streams_saves_it_incomplete(app_factory, tmp_path):
    app = app_factory(llm=slow_llm())
    async with app.run_test(size=SIZE) as pilot:
        await start_streaming(pilot, "which papers compare FP8 vs INT8?")
        await wait_for(pilot, lambda: app.query(TurnView) and "FP8" in app.query(TurnView).last().text)
        await pilot.press("ctrl+q")
    saved = History(tmp_path / "chat.sqlite3")
    (only,) = saved.turns(saved.last_conversation())
    assert only.complete is False and only.question == "which papers compare FP8 vs INT8?" and "FP8" in only.answer


async def test_follow_up_is_condensed_with_the_conversation(app_factory, tmp_path):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, "which papers compare FP8 vs INT8?")
        turn = await ask(pilot, "which of them proposes a format for NLP models?")
        assert not turn.answer.abstained
        cited = {turn.answer.sources[n - 1].title for s in turn.answer.grounding.sentences for n in s.citations}
        assert "Efficient Post-training Quantization with FP8 Formats" in cited  # "them" resolved to FP8 papers
    saved = History(tmp_path / "chat.sqlite3").turns(1)
    assert saved[1].standalone != saved[1].question and "FP8 vs INT8" in saved[1].standalone


async def test_resume_reopens_the_last_conversation_and_up_recalls(app_factory):
    first = app_factory()
    async with first.run_test(size=SIZE) as pilot:
        await ask(pilot, "How often does the capacity density of LLMs double?")
    again = app_factory(resume=True)
    async with again.run_test(size=SIZE) as pilot:
        await wait_for(pilot, again._store_ready.is_set)
        turns = again.query(TurnView)
        assert len(turns) == 1 and turns.first().question == "How often does the capacity density of LLMs double?"
        await wait_for(pilot, lambda: "three months" in turns.first().markdown.source, timeout=10)
        await pilot.click("#question")
        await pilot.press("up")
        assert again.query_one("#question").value == "How often does the capacity density of LLMs double?"
        # the sources are listed as when the answer was given: cited first, the rest apart
        await wait_for(pilot, lambda: len(again.query("#source-list ListItem")) > 1, timeout=10)
        labels = [str(item.query_one(Static).render()) for item in again.query("#source-list ListItem")]
        assert labels[0].startswith("[1] Densing Law of LLMs") and "not cited" not in labels[0]
        assert all(label.endswith("(also retrieved, not cited)") for label in labels[1:]), labels
        await pilot.press("ctrl+o", "1")
        await wait_for(
            pilot,
            lambda: str(again.query_one("#abstract-text").render()).startswith("[1] Densing Law of LLMs"),
            timeout=10,
        )


async def test_new_chat_export_and_copy(app_factory, bundled_dir):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, "How many queries does the LitSearch benchmark contain?")
        await pilot.press("ctrl+y")
        assert "597" in app.clipboard and "[1] LitSearch" in app.clipboard
        await pilot.press("ctrl+e")
        exported = (bundled_dir / "exports" / f"conversation-{app.conversation_id}.md").read_text()
        assert "## How many queries does the LitSearch benchmark contain?" in exported and "`litsearch-" in exported
        cited, others = exported.split("Also retrieved, not cited:")
        assert "1. LitSearch" in cited and "LitSearch" not in others
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: len(app.query(TurnView)) == 0, timeout=10)
        assert app.conversation_id is None


async def test_missing_store_is_a_notice_and_the_app_keeps_running(tmp_path):
    settings = make_settings(tmp_path / "data", embed_model_dir=tmp_path / "no-model")
    app = create_app(settings, history_path=tmp_path / "h.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("RAG_EMBED_MODEL_DIR" in n.message for n in app._notifications), timeout=30)
        app.query_one("#question").value = "anything?"
        await pilot.click("#question")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app._busy)
        assert "No answer" in app.query(TurnView).last().markdown.source
        assert app.is_running


async def test_command_palette_changes_settings(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, app._store_ready.is_set)
        await run_command(pilot, app, "Retriever: bm25")
        await wait_for(pilot, lambda: app.settings.retriever == "bm25" and app._store_ready.is_set())
        await wait_for(pilot, lambda: "bm25 · k=5 · ready" in str(app.query_one("#status").render()), timeout=10)


async def test_chat_against_the_local_llm_server(bundled_dir, tmp_path, llm_url):
    settings = make_settings(bundled_dir, llm="auto", openai_base_url=llm_url, llm_model="smollm2", top_k=3)
    app = create_app(settings, history_path=tmp_path / "chat.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, app._store_ready.is_set, timeout=120)
        app.query_one("#question").value = "How often does the capacity density of LLMs double?"
        await pilot.click("#question")
        await pilot.press("enter")

        await wait_for(pilot, lambda: app.query(TurnView) and not app._busy, timeout=180)
        turn = app.query(TurnView).last()
        assert turn.answer is not None and turn.answer.mode == "llm"
        assert turn.streamed_chunks >= 1  # the reply reached the view as it came, a sentence at a time
        if not turn.answer.abstained:
            assert any(mark in turn.markdown.source for mark in ("✓", "⚠", "✗"))
        assert "LLM smollm2" in str(app.query_one("#status").render())


async def test_new_chat_while_an_answer_streams_keeps_the_app_and_history_sound(app_factory, tmp_path):
    app = app_factory(llm=slow_llm())
    async with app.run_test(size=SIZE) as pilot:
        await start_streaming(pilot, "which papers compare FP8 vs INT8?")
        await wait_for(pilot, lambda: app.query(TurnView) and "FP8" in app.query(TurnView).last().text)
        first_conversation = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: not app._busy)
        assert app.is_running and len(app.query(TurnView)) == 0
        turn = await ask(pilot, "How many queries does the LitSearch benchmark contain?")
        assert turn.answer is not None
    history = History(tmp_path / "chat.sqlite3")
    nulls = history.db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id IS NULL").fetchone()[0]
    assert nulls == 0
    (stopped,) = history.turns(first_conversation)
    assert stopped.complete is False and stopped.question == "which papers compare FP8 vs INT8?"


async def test_an_unexpected_failure_in_a_worker_is_a_notice_and_a_saved_failed_turn(app_factory, tmp_path):
    app = app_factory(llm=FailingLLM())
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, "How many queries does the LitSearch benchmark contain?")
        assert "internal error: ValueError" in turn.markdown.source
        assert any("unexpected payload" in n.message for n in app._notifications)
        assert app.is_running
        # the app still answers afterwards
        app.llm = None
        again = await ask(pilot, "How many queries does the LitSearch benchmark contain?")
        assert again.answer is not None and "597" in again.answer.text
    saved = History(tmp_path / "chat.sqlite3").turns(1)
    assert saved[0].complete is False and "ValueError" in saved[0].answer


async def test_follow_up_with_the_local_llm_server_is_condensed_by_the_model(bundled_dir, tmp_path, llm_url):
    settings = make_settings(bundled_dir, llm="auto", openai_base_url=llm_url, llm_model="smollm2", top_k=3)
    app = create_app(settings, history_path=tmp_path / "chat.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, app._store_ready.is_set, timeout=120)
        for question in ("which papers compare FP8 vs INT8?", "which of them has the larger accuracy loss?"):
            app.query_one("#question").value = question
            await pilot.click("#question")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.query(TurnView) and not app._busy, timeout=240)
        assert app.is_running
        assert not any("internal error" in n.message for n in app._notifications)
    saved = History(tmp_path / "chat.sqlite3").turns(1)
    assert len(saved) == 2
    # the model rewrote the follow-up (it did not crash); whatever it wrote is a question of its own
    assert saved[1].question == "which of them has the larger accuracy loss?" and saved[1].standalone


async def test_chat_shows_what_strict_grounding_removed_and_corrected(app_factory):
    from rag.repair import REMOVED_HEADING
    from tests.test_repair import FP8, INVENTED, S1, S2, S3

    llm = ScriptedLLM(f"{S1} [2]. {INVENTED} [1]. {S2} [2]. {S3} [1].")
    app = app_factory(llm=llm)
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, FP8)
        rendered = turn.markdown.source
        answer_part, removed_part = rendered.split(f"**{REMOVED_HEADING}:**")
        assert INVENTED not in answer_part, rendered
        assert f"~~{INVENTED}.~~" in removed_part
        assert "✓ *(citation corrected)*" in answer_part and "(source:1)" in answer_part
        assert turn.answer.grounding.supported_ratio == 1.0


async def test_chat_in_mark_mode_keeps_the_sentence_marked(app_factory):
    from tests.test_repair import FP8, INVENTED, S1

    app = app_factory(llm=ScriptedLLM(f"{S1} [1]. {INVENTED} [1]."), grounding="mark")
    async with app.run_test(size=SIZE) as pilot:
        turn = await ask(pilot, FP8)
        assert f"{INVENTED} [\\[1\\]](source:1). ⚠ *(unsupported)*" in turn.markdown.source


async def test_agent_mode_from_the_palette(bundled_dir, tmp_path):
    """The palette's "Agent mode" toggle: the next answer searches and reads through tools."""
    from rag.agent import AgentAnswer
    from tests.fakes import Calls, serve
    from tests.test_agent import FP8, S2, SEARCH, ZQ_ID

    with serve([SEARCH, Calls(("read", {"paper_id": ZQ_ID})), f"{S2} [2]."]) as server:
        settings = make_settings(bundled_dir, llm="auto", openai_base_url=server.url)
        app = create_app(settings, history_path=tmp_path / "chat.sqlite3")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, app._store_ready.is_set)
            await run_command(pilot, app, "Agent mode")
            await wait_for(pilot, lambda: app.agent_mode, timeout=10)
            turn = await ask(pilot, FP8)
            assert isinstance(turn.answer, AgentAnswer) and [s.tool for s in turn.answer.steps] == ["search", "read"]
            assert turn.answer.text == f"{S2} [1]." and [s.paper_id for s in turn.answer.sources] == [ZQ_ID]
            assert "agent" in str(app.query_one("#status").render())


def test_a_damaged_history_file_is_one_line_naming_it_and_is_left_as_it_was(tmp_path):
    from tests.conftest import run_rag

    data = tmp_path / "data"
    data.mkdir()
    (data / "chat.sqlite3").write_bytes(b"garbage, not a database\n")
    proc = run_rag("chat", "--resume", env={"RAG_DATA_DIR": str(data)}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"rag: error: the chat history {data / 'chat.sqlite3'} cannot be read (file is not a database); "
        "move it away and rag chat starts a new one"
    ]
    assert (data / "chat.sqlite3").read_bytes() == b"garbage, not a database\n"


def test_without_a_terminal_it_says_so_instead_of_waiting(tmp_path):
    """`rag chat < /dev/null > file` waited for keys forever, writing escape codes to the file."""
    from tests.conftest import run_rag

    proc = run_rag("chat", env={"RAG_DATA_DIR": str(tmp_path / "data")}, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "rag: error: rag chat needs a terminal (stdin and stdout); in scripts use rag ask or rag serve"
    ]
