"""The configured LLM in a forked helper process, so one-shot commands overlap its imports with
opening the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from rag.config import Settings, mask_url
from rag.context import model_window
from rag.errors import RagError
from rag.llm import EmptyReply, FormatRefused, LLMError, OpenAICompatible


class ForkedLLM:
    """The configured LLM, run in a forked helper process for one-shot commands.

    Importing LlamaIndex and the openai client costs about a second, as much as opening the store
    and retrieving. Threads cannot overlap the two (imports hold the GIL); a process forked before
    the store is opened can, so the request leaves about a second sooner. The helper receives
    (system, user) prompts over a pipe and sends back text deltas, then usage or an error line.

    The helper enforces the deadline, the token cap and the text cleaning itself (it runs
    OpenAICompatible); the parent also stops waiting a little after the deadline, in case the
    helper itself is stuck, and then ends it."""

    GRACE = 10.0  # seconds beyond llm_deadline before the parent gives up on the helper

    def __init__(self, settings: Settings) -> None:
        import multiprocessing

        self.model = settings.llm_model
        self.endpoint = mask_url(settings.endpoint)
        self.deadline = settings.llm_deadline
        self.max_tokens = settings.llm_max_tokens
        self.context_window = model_window(settings.llm_model, settings.llm_context_tokens)
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        self.notice = ""
        self._unfinished = False  # a request was sent whose reply has not been read to its end
        from rag.structured import MEMORY_FILE, FormatMemory

        self.formats = FormatMemory(settings.data_dir / MEMORY_FILE, self.endpoint, self.model)
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(settings, child, self._conn), daemon=True)
        self._process.start()
        child.close()

    def _receive(self, give_up: float) -> tuple[str, Any]:
        try:
            if not self._conn.poll(max(0.0, give_up - time.monotonic())):
                self._process.kill()
                raise LLMError(
                    f"the LLM client for {self.endpoint} did not finish within the {self.deadline:g} s "
                    "deadline and was stopped; raise RAG_LLM_DEADLINE or check the server"
                )
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise LLMError(f"the LLM client for {self.endpoint} stopped unexpectedly; try again") from None
        if kind != "delta":
            self._unfinished = False
        return kind, value

    def stream(self, system: str, user: str, response_format: dict | None = None) -> Iterator[str]:
        self.notice = ""
        # a reply the caller stopped reading (JSON of another shape ends a structured answer early)
        # is still arriving: read it to its end, or the next request would receive its rest
        while self._unfinished:
            self._receive(time.monotonic() + self.deadline + self.GRACE)
        give_up = time.monotonic() + self.deadline + self.GRACE
        try:
            self._conn.send((system, user, response_format))
        except (BrokenPipeError, OSError):
            raise LLMError(f"the LLM client for {self.endpoint} stopped unexpectedly; try again") from None
        self._unfinished = True
        while True:
            kind, value = self._receive(give_up)
            if kind == "delta":
                yield value
            elif kind == "done":
                self.usage, self.notice = value
                return
            elif kind == "refused":
                raise FormatRefused(value)
            elif kind == "empty":
                raise EmptyReply(value)
            else:
                raise LLMError(value)

    def close(self) -> None:
        """End the helper: it returns when its end of the pipe closes; one that does not is killed."""
        self._conn.close()
        self._process.join(2.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _serve(settings: Settings, conn, parent_end) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends this helper by closing the pipe
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, which stops a command cleanly
    parent_end.close()  # the forked copy of the parent's end; closed, the parent's close() reaches here as EOF
    try:
        llm: OpenAICompatible | None = OpenAICompatible(settings)
        error = ""
    except Exception as exc:  # reported with the first request
        llm, error = None, mask_url(f"the LLM client could not start ({exc})")
    while True:
        try:
            request = conn.recv()
            _reply(conn, llm, error, request)
        except (EOFError, OSError):  # the parent closed its end, or left mid-reply: nobody to tell
            return


def _reply(conn, llm: OpenAICompatible | None, error: str, request: tuple) -> None:
    """Send the deltas of one request's reply, then "done" with the usage, or what went wrong."""
    if llm is None:
        conn.send(("error", error))
        return
    try:
        system, user, response_format = request
        for delta in llm.stream(system, user, response_format=response_format):
            conn.send(("delta", delta))
        conn.send(("done", (llm.usage, llm.notice)))
    except ConnectionError:
        raise
    except FormatRefused as exc:
        conn.send(("refused", str(exc)))
    except EmptyReply as exc:
        conn.send(("empty", str(exc)))
    except RagError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:
        conn.send(("error", mask_url(f"the LLM client failed ({type(exc).__name__}: {exc})")))
