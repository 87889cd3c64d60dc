"""`rag chat`: a Textual chat over the same core as `rag ask` (retrieve, answer, check).

With `server_url` set the chat opens no store, embedder or LLM of its own: each question is one
POST /ask to that `rag serve` (with the chat's k, retriever, agent toggle and the conversation,
which the server uses to rewrite a follow-up), and the answer arrives whole. The answering code
(rag.answer, rag.workspace) is imported only on the local path."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Markdown

from rag.config import Settings, mask_url
from rag.errors import RagError
from rag.retrievers import MODES
from rag.sanitise import normalise_question, too_long
from rag.tui.history import History, Turn
from rag.tui.widgets import (
    Conversation,
    QuestionInput,
    SourcesPane,
    StatusLine,
    TurnView,
)

if TYPE_CHECKING:
    from rag.answer import Answer as LocalAnswer
    from rag.llm import LLM
    from rag.retrieval import Retriever
    from rag.serve.client import Answered
    from rag.workspace import Workspace

    Answer = LocalAnswer | Answered

SERVED_SETTINGS = ("retriever", "top_k", "llm")  # what travels with each request to `rag serve`
SERVED_HISTORY = 5  # turns sent with a question to `rag serve`; the rewrite reads the latest ones


class Cancelled(Exception):
    """Raised inside the token callback to stop a streaming answer."""


class SettingsCommands(Provider):
    """The command palette's settings: retriever, k, LLM on/off and model."""

    @property
    def chat(self) -> ChatApp:
        return cast(ChatApp, self.app)

    def _choices(self) -> list[tuple[str, dict[str, Any]]]:
        app = self.chat
        s = app.settings
        choices: list[tuple[str, dict[str, Any]]] = [
            (f"Retriever: {r}", {"retriever": r}) for r in MODES if r != s.retriever
        ]
        choices += [(f"Sources per answer (k): {k}", {"top_k": k}) for k in (3, 5, 8, 10) if k != s.top_k]
        if s.llm == "auto":
            choices.append(("LLM: off (extractive answers)", {"llm": "off"}))
        else:
            choices.append(("LLM: on (when an endpoint is configured)", {"llm": "auto"}))
        for model in dict.fromkeys([app.configured_model, "gpt-4o-mini", "gpt-4o", "llama3.1", "qwen2.5"]):
            if model != s.llm_model:
                choices.append((f"LLM model: {model}", {"llm_model": model}))
        return choices

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, change in self._choices():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(self.chat.apply_settings, change), help="setting")

    async def discover(self) -> Hits:
        for label, change in self._choices():
            yield Hit(1.0, label, partial(self.chat.apply_settings, change), help="setting")


class AgentCommand(Provider):
    """The command palette's "Agent mode" toggle: the model searches and reads papers itself."""

    @property
    def label(self) -> str:
        return f"Agent mode: {'off' if cast(ChatApp, self.app).agent_mode else 'on'}"

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        if (score := matcher.match(self.label)) > 0:
            yield Hit(score, matcher.highlight(self.label), cast(ChatApp, self.app).toggle_agent, help="setting")

    async def discover(self) -> Hits:
        yield Hit(1.0, self.label, cast(ChatApp, self.app).toggle_agent, help="setting")


class ChatApp(App):
    TITLE = "rag chat"
    COMMANDS = App.COMMANDS | {SettingsCommands, AgentCommand}
    CSS = """
    #main { height: 1fr; }
    #left { width: 1fr; }
    #question { dock: bottom; }
    """
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),  # Textual's own, shown: a first-time user looks for it
        Binding("escape", "cancel", "Cancel answer"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+y", "copy_answer", "Copy answer"),
        Binding("ctrl+e", "export", "Export", priority=True),
        Binding("ctrl+o", "focus_sources", "Sources"),
        *[Binding(f"alt+{n}", f"open_source({n})", f"Source {n}", show=False) for n in range(1, 10)],
    ]

    def __init__(
        self, settings: Settings, resume: bool = False, history_path: Path | None = None, llm: LLM | None = None
    ) -> None:
        super().__init__()
        self._given_llm = llm
        self.settings = settings
        self.server = settings.server_url  # a running `rag serve` answers instead of a workspace here
        self.served_llm: str | None = None  # the server's LLM model, as its /health says
        self.workspace = self._workspace()  # built in the `load` worker, closed on exit
        self._retired: list[Workspace] = []  # replaced by a settings change, closed when no answer uses them
        self.configured_model = settings.llm_model
        self.history = History(history_path or Path(settings.data_dir) / "chat.sqlite3")
        self.resume = resume
        self.conversation_id = self.history.last_conversation() if resume else None
        self.retriever: Retriever | None = None
        self.llm: LLM | None = None
        self._store_ready = threading.Event()
        self._cancel = threading.Event()
        self._busy = False
        self._turns: list[tuple[str, str]] = []  # (standalone question, answer) of this conversation
        self._saved_sources: list[dict] = []  # sources of the last resumed answer
        self._pending: tuple[str, TurnView, int] | None = None  # the turn being answered: saved on quit
        self._closing = False
        self.agent_mode = False  # the next answers use the agent (rag/agent.py)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Conversation(id="conversation")
                yield QuestionInput(self.history.questions())
            yield SourcesPane()
        starting = (
            f"asking rag serve at {mask_url(self.server)}…" if self.server else "loading the store and the embedder…"
        )
        yield StatusLine(starting, id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QuestionInput).focus()
        if self.conversation_id is not None:
            self._show_saved(self.history.turns(self.conversation_id))
        self.load()

    # -- loading -------------------------------------------------------------------------

    def _workspace(self) -> Workspace | None:
        if self.server:
            return None
        from rag.workspace import Workspace

        return Workspace(self.settings, llm=self._given_llm)

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        """Heavy start-up work, off the UI thread, so the first frame is immediate. A verifier
        the settings cannot make is reported here, and again by each question. Over `rag serve`
        it is one GET /health: is the server there, and which LLM does it use."""
        try:
            if self.server:
                from rag.serve import client

                self.served_llm = client.health(self.server).get("llm")
            else:
                assert self.workspace is not None
                ws = self.workspace
                self.retriever = ws.retriever
                self.llm = ws.llm
                _ = ws.verifier  # a `verifier` setting that cannot be met is a notice now, not at the first question
            if self._saved_sources:
                found = self._abstracts([s["paper_id"] for s in self._saved_sources])
                self.call_from_thread(lambda: self.query_one(SourcesPane).show_saved(self._saved_sources, found))
            self.call_from_thread(self._status, self._mode_text() + " · ready")
            self._store_ready.set()
            self.call_from_thread(self._close_retired)
        except Exception as exc:  # any failure is a notice; the app keeps running
            message = _describe(exc)
            self.call_from_thread(self.notify, message, title="rag", severity="error", timeout=15)
            self.call_from_thread(self._status, f"not ready: {message}")
        finally:
            self._store_ready.set()

    def _abstracts(self, paper_ids: list[str]) -> dict[str, tuple[str, str]]:
        """paper id -> (title, abstract), from the store or from the server's /papers."""
        if self.server:
            from rag.serve import client

            return client.papers(self.server, paper_ids)
        assert self.retriever is not None
        return self.retriever.store.abstracts(paper_ids)

    def _close_retired(self) -> None:
        """Close workspaces a settings change replaced, once no answer is using one and the current
        one is open (a local Chroma store is shared between them, and stays open)."""
        if self._busy or not self._store_ready.is_set():
            return
        while self._retired:
            self._retired.pop().close()

    def on_unmount(self) -> None:
        """On exit: the turn still being answered is saved as incomplete (as Esc saves it), then
        every workspace this app opened and the history's database are closed."""
        self._closing = True  # a worker finishing now saves nothing more
        self._cancel.set()
        if self._pending is not None:
            question, turn, conversation = self._pending
            self.history.add(conversation, Turn(question, question, turn.text, [], False))
            self._pending = None
        for ws in (*self._retired, self.workspace):
            if ws is not None:
                ws.close()
        self._retired = []
        self.history.close()

    def _mode_text(self) -> str:
        if self.server:
            llm = self.served_llm if self.settings.llm != "off" else None
            mode = f"via rag serve at {mask_url(self.server)} · " + (f"LLM {llm}" if llm else "extractive")
        else:
            mode = f"LLM {self.settings.llm_model}" if self.llm else "extractive"
        mode += " · agent" if self.agent_mode else ""
        return f"{mode} · {self.settings.retriever} · k={self.settings.top_k}"

    def _status(self, text: str) -> None:
        self.query_one(StatusLine).update(text)

    def apply_settings(self, change: dict) -> None:
        if self.server and (fixed := [k for k in change if k not in SERVED_SETTINGS]):
            self.notify(
                f"{', '.join(fixed)}: the settings of rag serve at {mask_url(self.server)} decide this; "
                "restart it with the setting changed, or unset RAG_SERVER_URL",
                title="settings",
                severity="warning",
            )
            return
        self.settings = self.settings.model_copy(update=change)
        if self.workspace is not None:
            self._retired.append(self.workspace)
        self.workspace = self._workspace()
        self._store_ready.clear()
        self._status("applying settings…")
        self.load()
        self.notify(", ".join(f"{k} = {v}" for k, v in change.items()), title="settings")

    def toggle_agent(self) -> None:
        self.agent_mode = not self.agent_mode
        self._status(self._mode_text())
        self.notify(f"agent mode {'on' if self.agent_mode else 'off'}", title="settings")

    # -- asking --------------------------------------------------------------------------

    def on_input_submitted(self, event: QuestionInput.Submitted) -> None:
        question = normalise_question(event.value)
        if not question:
            return
        if problem := too_long(question):
            self.notify(f"The question is too long: {problem}.", severity="warning")
            return
        if self._busy:
            self.notify("An answer is still coming; press Esc to cancel it.", severity="warning")
            return
        box = self.query_one(QuestionInput)
        box.remember(question)
        box.value = ""
        if self.conversation_id is None:
            self.conversation_id = self.history.new_conversation()
        turn = TurnView(question)
        self.query_one(Conversation).mount(turn)
        turn.scroll_visible()
        self._busy = True
        self._cancel.clear()
        self._pending = (question, turn, self.conversation_id)
        self._status(self._mode_text() + " · answering…")
        self.ask(question, turn, self.conversation_id)

    @work(thread=True, exclusive=True, group="ask")
    def ask(self, question: str, turn: TurnView, conversation: int) -> None:
        """Answer in a worker thread. The turn's conversation is fixed here: a new chat started
        meanwhile (ctrl+n) removes the turn from the screen, but it is still saved where it began."""
        self._store_ready.wait()
        standalone = question
        try:
            if self.server:
                answer: Answer = self._ask_server(question, turn)
                standalone = answer.question or question
            else:
                from rag.answer import answer_question
                from rag.followup import standalone_question

                if self.retriever is None or self.workspace is None:
                    raise RagError("the store is not available; see the notice above")
                verifier = self.workspace.verifier  # the `verifier` setting; a bad one fails the turn in one line
                standalone = standalone_question(question, self._turns, self.llm)

                def on_token(token: str) -> None:
                    if self._cancel.is_set():
                        raise Cancelled
                    self.call_from_thread(turn.append, token)

                if self.agent_mode:
                    from rag.agent import answer_with_agent

                    def notify(line: str) -> None:
                        self.call_from_thread(self.notify, line, title="agent", severity="warning")

                    answer = answer_with_agent(
                        standalone, self.settings, self.retriever, self.llm, verifier, notify, on_token
                    )
                else:
                    answer = answer_question(
                        standalone,
                        self.retriever,
                        k=self.settings.top_k,
                        mode=self.settings.retriever,
                        llm=self.llm,
                        on_token=on_token,
                        verifier=verifier,
                        grounding=self.settings.grounding,
                    )
        except Cancelled:
            self.call_from_thread(self._cancelled, question, standalone, turn, conversation)
            return
        except Exception as exc:  # a failed turn is a notice and a saved failure, never the end of the app
            self.call_from_thread(self._failed, question, standalone, turn, conversation, _describe(exc))
            return
        self.call_from_thread(self._answered, question, standalone, turn, conversation, answer)

    def _ask_server(self, question: str, turn: TurnView) -> Answered:
        """One POST /ask, then the sources' abstracts (POST /papers), in a helper thread this worker
        waits on: Esc stops the waiting at once. The server may still finish; its reply is dropped."""
        from rag.serve import client

        assert self.server is not None
        url = self.server
        self.call_from_thread(turn.show, f"*Waiting for the answer from rag serve at {mask_url(url)}…*")
        payload = {
            "question": question,
            "k": self.settings.top_k,
            "retriever": self.settings.retriever,
            "no_llm": self.settings.llm == "off",
            "agent": self.agent_mode,
            "history": [list(t) for t in self._turns[-SERVED_HISTORY:]],
        }
        timeout = 3 * self.settings.llm_deadline + 60  # the rewrite, the answer and its check may each call the LLM
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                reply = client.request(url, "/ask", payload, timeout=timeout)
                answer = client.answered(reply.body, url)
                abstracts = client.papers(url, [s.paper_id for s in answer.sources])
                for source in answer.sources:
                    source.abstract = abstracts.get(source.paper_id, ("", ""))[1]
                outcome["reply"] = answer, reply.notices
            except Exception as exc:  # passed to the worker, which fails the turn with it
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name="rag-serve-ask", daemon=True).start()
        while not done.wait(0.05):
            if self._cancel.is_set():
                raise Cancelled
        if "error" in outcome:
            raise outcome["error"]
        answer, notices = outcome["reply"]
        for line in notices:  # a reply cut at the token cap, why agent mode fell back
            self.call_from_thread(self.notify, line, title="rag serve", severity="warning")
        return answer

    def _answered(self, question: str, standalone: str, turn: TurnView, conversation: int, answer: Answer) -> None:
        if self._closing:
            return
        self._pending = None
        self._busy = False
        self._close_retired()
        cited = answer.cited
        sources = [s.as_json(cited=s.n in cited) for s in answer.sources]
        self.history.add(conversation, Turn(question, standalone, answer.text, sources, True))
        if not turn.is_attached:  # the chat was cleared while this answer was coming
            return
        turn.finish(answer)
        self.query_one(SourcesPane).show_answer(answer)
        self._turns.append((standalone, answer.text))
        t = answer.timings_ms
        tokens = answer.usage["prompt_tokens"] + answer.usage["completion_tokens"]
        self._status(
            f"{self._mode_text()} · retrieval {t.get('retrieval', 0):.0f} ms · generation {t.get('generation', 0):.0f} ms"
            f" · {tokens} tokens · precision {answer.grounding.citation_precision:.2f}"
            f" recall {answer.grounding.citation_recall:.2f}"
        )
        turn.scroll_visible()
        if notice := getattr(self.llm, "notice", ""):  # the reply was cut at the token cap
            self.notify(notice, title="rag", severity="warning")

    def _cancelled(self, question: str, standalone: str, turn: TurnView, conversation: int) -> None:
        if self._closing:
            return
        self._pending = None
        self._busy = False
        self._close_retired()
        self.history.add(conversation, Turn(question, standalone, turn.text, [], False))
        self._status(self._mode_text() + " · cancelled")
        if turn.is_attached:
            turn.show((turn.text + "\n\n*(cancelled)*").strip())

    def _failed(self, question: str, standalone: str, turn: TurnView, conversation: int, message: str) -> None:
        if self._closing:
            return
        self._pending = None
        self._busy = False
        self._close_retired()
        self.history.add(conversation, Turn(question, standalone, f"(failed: {message})", [], False))
        self.notify(message, title="rag", severity="error", timeout=10)
        self._status(self._mode_text() + " · failed")
        if turn.is_attached:
            turn.show(f"*No answer: {message}*")

    # -- actions -------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self._busy:
            self._cancel.set()

    def action_new_chat(self) -> None:
        self.action_cancel()
        self.query_one(Conversation).remove_children()
        self.conversation_id = None
        self._turns = []
        self._status(self._mode_text())
        self.notify("New chat")

    def action_focus_sources(self) -> None:
        """Toggle between the question box and the source list."""
        sources = self.query_one("#source-list")
        if sources.has_focus:
            self.query_one(QuestionInput).focus()
        else:
            sources.focus()

    def action_open_source(self, n: int) -> None:
        if not self.query_one(SourcesPane).open(n):
            self.notify(f"No source [{n}] in the current answer.", severity="warning")

    def on_sources_pane_opened(self, message: SourcesPane.Opened) -> None:
        self.action_open_source(message.n)

    def on_markdown_link_clicked(self, message: Markdown.LinkClicked) -> None:
        if message.href.startswith("source:"):
            self.action_open_source(int(message.href.split(":", 1)[1]))

    def _last_answer(self) -> Answer | None:
        turns = list(self.query(TurnView))
        return turns[-1].answer if turns else None

    def action_copy_answer(self) -> None:
        answer = self._last_answer()
        if answer is None:
            self.notify("No answer to copy yet.", severity="warning")
            return
        sources = "\n".join(f"[{s.n}] {s.title} ({s.paper_id})" for s in answer.sources)
        self.copy_to_clipboard(f"{answer.text}\n\n{sources}")
        self.notify("Answer copied.")

    def action_export(self) -> None:
        if self.conversation_id is None:
            self.notify("Nothing to export yet.", severity="warning")
            return
        folder = Path(self.settings.data_dir) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"conversation-{self.conversation_id}.md"
        path.write_text(self.history.to_markdown(self.conversation_id), encoding="utf-8")
        self.notify(f"Exported to {path}")

    def _show_saved(self, turns: list[Turn]) -> None:
        conversation = self.query_one(Conversation)
        for saved in turns:
            view = TurnView(saved.question)
            conversation.mount(view)
            view.call_after_refresh(view.show, saved.answer + ("" if saved.complete else "\n\n*(cancelled)*"))
            if saved.complete:
                self._turns.append((saved.standalone, saved.answer))
        if turns and turns[-1].sources:
            self._saved_sources = turns[-1].sources


def _describe(exc: Exception) -> str:
    """A failure as one line: a RagError says what to do; anything else is an internal error."""
    if isinstance(exc, RagError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def create_app(
    settings: Settings, resume: bool = False, history_path: Path | None = None, llm: LLM | None = None
) -> ChatApp:
    """The app factory shared by `rag chat` and the tests (which may pass their own LLM)."""
    return ChatApp(settings, resume=resume, history_path=history_path, llm=llm)
