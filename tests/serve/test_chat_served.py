"""`rag chat` over a running `rag serve` (the `served` fixture: a real server process, real Chroma and
embedder): the chat gives what the local chat gives, sends its settings and the conversation with
each question, can stop waiting, says in one line when no server is there, and loads no store or
model itself."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from textual.widgets import ListItem, Static

from rag.serve.client import request
from rag.tui.app import ChatApp, create_app
from rag.tui.history import History, Turn
from rag.tui.widgets import SourcesPane, TurnView
from tests.conftest import REPO, make_settings
from tests.serve.conftest import Served
from tests.serve.test_client import _free_port
from tests.tui.test_chat import SIZE, ask, run_command, wait_for

FIRST = "which papers compare FP8 vs INT8?"
FOLLOW_UP = "which of them proposes a format for NLP models?"
LITSEARCH = "How many queries does the LitSearch benchmark contain?"
HEAVY = ("chromadb", "onnxruntime", "llama_index", "openai", "numpy")


class Relay:
    """A delay line in front of the real server: it records each request body, holds POSTs for
    `delay` seconds, then passes them on and sends the server's reply back unchanged."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.delay = 0.0
        self.bodies: list[dict] = []
        self.relayed = threading.Event()  # set after each reply is sent on
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
                if raw is not None:
                    relay.bodies.append({"path": self.path, **json.loads(raw)})
                    time.sleep(relay.delay)
                try:
                    conn = http.client.HTTPConnection(relay.target.hostname, relay.target.port, timeout=60)
                    headers = {"Content-Type": "application/json"} if raw is not None else {}
                    conn.request(method, self.path, body=raw, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                    conn.close()
                    self.send_response(reply.status)
                    for name in ("Content-Type", "X-Rag-Notices"):
                        if reply.getheader(name):
                            self.send_header(name, reply.getheader(name))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the chat stopped waiting, or (a dropped reply's /papers) the server has stopped
                    pass
                relay.relayed.set()

            def do_GET(self) -> None:
                self._relay("GET")

            def do_POST(self) -> None:
                self._relay("POST")

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def asked(self) -> list[dict]:
        return [b for b in self.bodies if b["path"] == "/ask"]


@pytest.fixture(scope="module")
def relay(served: Served) -> Iterator[Relay]:
    relay = Relay(served.url)
    yield relay
    relay.httpd.shutdown()
    relay.httpd.server_close()


def chat(url: str | None, data_dir: Path, history: Path) -> ChatApp:
    return create_app(make_settings(data_dir, server_url=url), history_path=history)


def status(app: ChatApp) -> str:
    return str(app.query_one("#status").render())


async def conversation(app: ChatApp, questions: tuple[str, ...]) -> list[dict]:
    """Ask each question in turn; what the chat showed for each: the answer as rendered, the
    sources pane's list, source [1] opened, the status line without its timings."""
    seen = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "ready" in status(app))
        for question in questions:
            turn = await ask(pilot, question)
            assert turn.answer is not None, turn.markdown.source
            pane = app.query_one(SourcesPane)
            await pilot.press("ctrl+o", "1")
            await wait_for(pilot, lambda: str(app.query_one("#abstract-text").render()).startswith("[1] "), timeout=10)
            seen.append(
                {
                    "answer": turn.answer,
                    "markdown": turn.markdown.source,
                    "sources": [str(item.query_one(Static).render()) for item in pane.query(ListItem)],
                    "abstract": str(app.query_one("#abstract-text").render()),
                    "status": re.sub(r"\d+ ms", "N ms", status(app)),
                }
            )
    return seen


def saved(path: Path) -> list[tuple]:
    history = History(path)
    try:
        return [(t.question, t.standalone, t.answer, t.sources, t.complete) for t in history.turns(1)]
    finally:
        history.close()


async def test_the_chat_through_the_server_shows_what_the_local_chat_shows(served: Served, tmp_path: Path) -> None:
    store = Path(served.env["RAG_DATA_DIR"])
    local = await conversation(chat(None, store, tmp_path / "local.sqlite3"), (FIRST, FOLLOW_UP))
    remote_app = chat(served.url, tmp_path / "client", tmp_path / "served.sqlite3")
    remote = await conversation(remote_app, (FIRST, FOLLOW_UP))

    for got, want in zip(remote, local, strict=True):
        assert got["markdown"] == want["markdown"] and got["sources"] == want["sources"]
        assert got["abstract"] == want["abstract"]
        assert got["status"] == f"via rag serve at {served.url} · {want['status']}"
    assert "✓" in remote[0]["markdown"] and "(source:1)" in remote[0]["markdown"]
    assert "precision 1.00" in remote[0]["status"]
    # the follow-up was rewritten by the server as the local chat rewrites it, and saved alike
    assert saved(tmp_path / "served.sqlite3") == saved(tmp_path / "local.sqlite3")
    assert saved(tmp_path / "served.sqlite3")[1][1] == f"{FOLLOW_UP} ({FIRST})"
    assert not (tmp_path / "client" / "chroma").exists()  # no store opened by the chat

    cli = served.rag("ask", FIRST, "--no-llm", "--json", served=False)
    assert cli.returncode == 0, cli.stderr
    want_json = json.loads(cli.stdout)
    answer = remote[0]["answer"]
    assert answer.text == want_json["answer"]
    shown = [{"n": s.n, "paper_id": s.paper_id, "title": s.title} for s in answer.sources_in_order()]
    assert shown == [{k: c[k] for k in ("n", "paper_id", "title")} for c in want_json["citations"]]


async def test_settings_and_the_conversation_travel_with_each_question(
    served: Served, relay: Relay, tmp_path: Path
) -> None:
    app = chat(relay.url, tmp_path / "client", tmp_path / "h.sqlite3")
    relay.bodies.clear()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: status(app).endswith("hybrid · k=5 · ready"))
        await run_command(pilot, app, "Retriever: bm25")
        await wait_for(pilot, lambda: status(app) == f"via rag serve at {relay.url} · extractive · bm25 · k=5 · ready")
        await run_command(pilot, app, "Sources per answer (k): 3")
        await wait_for(pilot, lambda: app.settings.top_k == 3 and status(app).endswith("k=3 · ready"))
        await run_command(pilot, app, "LLM model: qwen2.5")
        await wait_for(pilot, lambda: any("rag serve" in n.message for n in app._notifications), timeout=10)
        (notice,) = [n.message for n in app._notifications if "decide" in n.message]
        assert notice.startswith("llm_model: the settings of rag serve at") and "\n" not in notice
        assert app.settings.llm_model != "qwen2.5"
        first = await ask(pilot, FIRST)
        await run_command(pilot, app, "Agent mode")
        await wait_for(pilot, lambda: app.agent_mode, timeout=10)
        await ask(pilot, FOLLOW_UP)
        # the server has no LLM: its line saying so is passed on as a notice
        assert any("agent mode needs an LLM" in n.message for n in app._notifications)
    one, two = relay.asked()
    assert {k: one[k] for k in ("question", "k", "retriever", "agent", "no_llm", "history")} == {
        "question": FIRST,
        "k": 3,
        "retriever": "bm25",
        "agent": False,
        "no_llm": True,
        "history": [],
    }
    assert first.answer is not None
    assert two["agent"] is True and two["history"] == [[FIRST, first.answer.text]]
    papers = [b for b in relay.bodies if b["path"] == "/papers"]
    assert papers[0]["ids"] == [s.paper_id for s in first.answer.sources]


async def test_esc_stops_waiting_and_the_late_reply_is_dropped(served: Served, relay: Relay, tmp_path: Path) -> None:
    app = chat(relay.url, tmp_path / "client", tmp_path / "h.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "ready" in status(app))
        relay.delay, relay.bodies[:] = 3.0, []
        relay.relayed.clear()
        app.query_one("#question").value = LITSEARCH
        await pilot.click("#question")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: app.query(TurnView) and "Waiting for the answer" in app.query(TurnView).last().markdown.source,
        )
        turn = app.query(TurnView).last()
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app._busy, timeout=2)  # well before the server's reply
        assert status(app).endswith(" · cancelled") and "(cancelled)" in turn.markdown.source
        await wait_for(pilot, relay.relayed.is_set, timeout=30)
        await pilot.pause(0.5)
        assert turn.answer is None and "597" not in turn.markdown.source
        assert not app.query_one(SourcesPane).query(ListItem)
        relay.delay = 0.0
        again = await ask(pilot, LITSEARCH)
        assert again.answer is not None and "597" in again.answer.text
    turns = saved(tmp_path / "h.sqlite3")
    assert [t[4] for t in turns] == [False, True]


async def test_resume_over_the_server_opens_the_saved_sources(served: Served, tmp_path: Path) -> None:
    """A resumed conversation's sources come from the server's /papers, as locally from the store."""
    asked = request(served.url, "/ask", {"question": LITSEARCH}).body
    sources = [{k: c[k] for k in ("n", "paper_id", "title")} for c in asked["citations"]]
    history = History(tmp_path / "h.sqlite3")
    history.add(history.new_conversation(), Turn(LITSEARCH, LITSEARCH, asked["answer"], sources))
    history.close()
    app = create_app(
        make_settings(tmp_path / "client", server_url=served.url), resume=True, history_path=tmp_path / "h.sqlite3"
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "ready" in status(app))
        await wait_for(pilot, lambda: len(app.query_one(SourcesPane).query(ListItem)) == len(sources), timeout=10)
        await pilot.press("ctrl+o", "1")
        await wait_for(pilot, lambda: "597" in str(app.query_one("#abstract-text").render()), timeout=10)
        assert str(app.query_one("#abstract-text").render()).startswith(f"[1] {sources[0]['title']}")


async def test_no_server_is_one_line_and_the_chat_keeps_running(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    app = chat(url, tmp_path / "client", tmp_path / "h.sqlite3")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: status(app).startswith("not ready:"), timeout=30)
        line = status(app).removeprefix("not ready: ")
        assert line.startswith(f"no rag server answers at {url} (RAG_SERVER_URL)") and "\n" not in line
        assert [n.message for n in app._notifications] == [line]
        turn = await ask(pilot, LITSEARCH)
        assert turn.markdown.source == f"*No answer: {line}*"
        assert app.is_running and "Traceback" not in turn.markdown.source
    assert saved(tmp_path / "h.sqlite3") == [(LITSEARCH, LITSEARCH, f"(failed: {line})", [], False)]
    assert not (tmp_path / "client" / "chroma").exists()


CHAT_IMPORTS = """
import asyncio, sys, time
from pathlib import Path
from rag.config import Settings
from rag.tui.app import create_app

async def main() -> str:
    app = create_app(Settings(server_url=sys.argv[1], data_dir=Path(sys.argv[2])), history_path=Path(sys.argv[2]) / "h.db")
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#question").value = {question!r}
        await pilot.click("#question")
        await pilot.press("enter")
        deadline = time.monotonic() + 60
        while not (app.query("TurnView") and app.query("TurnView").last().answer) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        return app.query("TurnView").last().answer.text

print(asyncio.run(main()))
print("imported:", [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


def test_the_served_chat_never_imports_the_store_or_the_models(served: Served, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHAT_IMPORTS.format(question=LITSEARCH, heavy=HEAVY), served.url, str(tmp_path)],
        capture_output=True,
        text=True,
        env=served.env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "597" in proc.stdout
    assert "imported: []" in proc.stderr.splitlines(), proc.stderr
