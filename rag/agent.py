"""Agent mode (`rag ask --agent`, the chat's "Agent mode"): the model searches and reads papers
itself, then answers; the answer goes through the same grounding check and repair as any LLM
answer (`rag.answer.ground_llm_answer`).

The model gets two tools over the same core as every other command: `search(query, k)` (the
configured retriever) and `read(paper_id)` (the stored abstract). The protocol is OpenAI's tool
calling, through LlamaIndex's function-calling chat (`stream_chat_with_tools` of the same OpenAILike
client that writes normal answers, rag.llm.openai_like): LlamaIndex describes the tools from their
argument models and gathers the streamed calls, so this module never reads tool calls out of free
text. The loop stays here, because the step bound, the turn that must answer, the sentence-wise
streaming of the answer and the tool errors told to the model are this module's rules. Each paper
a tool shows gets a number the first time it is shown, which the model cites; the answer's sources
are the papers it read and those it cited, renumbered 1.. in that order, and the answer's
citations with them.

Every turn is streamed; the text of the last one (the turn that calls no tool) reaches the caller
a sentence at a time, as a normal answer does. Before any of it, the question goes through the
same answerability check as a normal LLM answer (rag.answer.check_question): a clear miss
abstains without asking the model; so does an answer of which the strict check keeps nothing.
An answer citing nothing it was shown is checked against every paper shown (strict attribution);
when none of it holds, the normal way answers instead.

The first turn must search (`FIRST`); calls are bounded by `agent_steps` (then the model must
answer from what it has) and the whole run by `llm_deadline`. An endpoint that rejects `tools`, or
a model that never calls one, is said in one line, and the question is answered the normal way
(rag.answer.answer_question).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Generator, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from rag import extractive
from rag.abstain import Assessment, focus_words
from rag.answer import (
    NO_ANSWER,
    Answer,
    Source,
    answer_question,
    check_question,
    fallback_gate,
    ground_llm_answer,
    model_abstained,
)
from rag.config import Settings, mask_url
from rag.grounding import Grounding, Verifier
from rag.llm import LLM, DeadlineReached, LLMError, TokenCap, explain_failure, openai_like, within
from rag.prompts import escape_tags, render
from rag.sanitise import ReplyCleaner, clean, too_long
from rag.sentences import CITATION, citations_of, own_references_marked, split_sentences
from rag.tokens import count_tokens

if TYPE_CHECKING:
    from llama_index.core.base.llms.types import ChatResponse
    from llama_index.core.tools import FunctionTool

    from rag.retrieval import PaperHit, Retriever

MAX_K = 10  # most papers one search shows the model


class SearchArgs(BaseModel):
    """Find the papers that best match a query. Returns each paper's number n, id, title and its
    best matching passage."""

    query: str = Field(description="What to look for, in words.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many papers.")


class ReadArgs(BaseModel):
    """Read one paper's title and whole abstract."""

    paper_id: str = Field(description="The id a search returned.")


TOOL_ARGS: dict[str, type[BaseModel]] = {"search": SearchArgs, "read": ReadArgs}

UNCITED = "the agent's answer cites no paper the tools showed"

# The first turn must search: the model chooses the query, and a model that would answer from
# memory instead (small local ones do, when free to) reads the corpus first. OpenAI, vLLM and
# llama.cpp's function-calling formats honour a named tool choice.
FIRST: dict[str, Any] = {"type": "function", "function": {"name": "search"}}


ARGUMENT_CHARS = 200  # a tool argument shown back (in an error, in --json) is cut here: a model may send megabytes


def _cut(text: str, limit: int = ARGUMENT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Step:
    """One tool call: what the model asked for and which papers it got (none on an error)."""

    tool: str
    arguments: dict[str, Any] | str  # the string the model sent, when it was not a JSON object
    papers: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict:
        """The step as `--json` shows it; texts the model sent are cut at ARGUMENT_CHARS, as `calls` are."""
        arguments = (
            {k: _cut(v) if isinstance(v, str) else v for k, v in self.arguments.items()}
            if isinstance(self.arguments, dict)
            else _cut(self.arguments)
        )
        out: dict[str, Any] = {"tool": self.tool, "arguments": arguments, "papers": self.papers}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class AgentAnswer(Answer):
    """An answer asked for in agent mode: the steps the model took, and, when the normal path
    answered instead, why."""

    steps: list[Step] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # every tool call the model made, as `call_text` writes it
    fallback: str | None = None

    @classmethod
    def of(cls, answer: Answer, steps: list[Step], calls: list[str], fallback: str | None) -> AgentAnswer:
        return cls(
            **{f.name: getattr(answer, f.name) for f in fields(Answer)}, steps=steps, calls=calls, fallback=fallback
        )

    def as_json(self) -> dict:
        out = super().as_json()
        steps = [s.as_json() for s in self.steps]
        out["agent"] = {"steps": steps, "calls": self.calls, "fallback": self.fallback}
        return out


def call_text(name: str, arguments: str, limit: int = ARGUMENT_CHARS) -> str:
    """One tool call as a line a person reads, `search({"query": "FP8 vs INT8", "k": 3})`, cut at
    `limit` characters: a model may send anything as arguments, including calls past the limit."""
    return _cut(f"{name}({' '.join(arguments.split())})", limit)


class NoTools(Exception):
    """The endpoint or the model does not do tool calling; the message says how that showed."""


class Library:
    """The tools, and the papers they have shown the model, numbered as first shown."""

    def __init__(self, retriever: Retriever, settings: Settings, exclude: Collection[str] = ()) -> None:
        self.retriever = retriever
        self.settings = settings
        self.exclude = frozenset(exclude)  # papers the tools never show (the evaluation's counterfactual)
        self.numbers: dict[str, int] = {}  # paper id -> the number the model cites it by
        self.hits: dict[str, PaperHit] = {}  # every paper a search returned, first hit kept
        self.read: list[str] = []  # paper ids read, in order
        self.papers: dict[str, tuple[str, str]] = {}  # paper id -> (title, abstract), as read
        self.calls: list[str] = []  # every call the model made (call_text), refused ones too

    def number(self, paper_id: str) -> int:
        return self.numbers.setdefault(paper_id, len(self.numbers) + 1)

    def tools(self) -> list[FunctionTool]:
        """The tools as LlamaIndex offers them to the model, described by their argument models.
        `run_tools` runs a call with `call`, from the arguments text the model sent, which need not
        be JSON; these run the same code from parsed arguments."""
        from llama_index.core.tools import FunctionTool

        def runner(name: str) -> Callable[..., str]:
            return lambda **kwargs: self.call(name, json.dumps(kwargs))[0]

        return [
            FunctionTool.from_defaults(
                fn=runner(name), name=name, description=" ".join((args.__doc__ or "").split()), fn_schema=args
            )
            for name, args in TOOL_ARGS.items()
        ]

    def call(self, name: str, raw: str) -> tuple[str, Step]:
        """Run tool `name` on the model's arguments text: (what the model is told, the step)."""
        try:
            args = json.loads(raw or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            step = Step(name, raw, error="the arguments are not a JSON object")
            return f"error: {step.error}", step
        step = Step(name, args)
        if name == "search":
            text = self._search(args, step)
        elif name == "read":
            text = self._read(args, step)
        else:
            step.error = f"there is no tool {name!r}; the tools are search and read"
        return (f"error: {step.error}" if step.error else text), step

    def _search(self, args: dict[str, Any], step: Step) -> str:
        query = " ".join(clean(str(args.get("query") or "")).split())
        if not query:
            step.error = "search needs a query"
            return ""
        if problem := too_long(query):  # the limit every other way in keeps
            step.error = f"the query is too long: {problem}"
            return ""
        try:
            k = min(max(int(args.get("k") or self.settings.top_k), 1), MAX_K)
        except (TypeError, ValueError):
            k = self.settings.top_k
        hits = self.retriever.search(query, k=k, mode=self.settings.retriever, exclude=self.exclude).results
        if not hits:
            return "No papers match."
        for hit in hits:
            self.hits.setdefault(hit.paper_id, hit)
            step.papers.append(hit.paper_id)
        return "\n".join(self._show(h.paper_id, h.title, "Passage", h.evidence) for h in hits)

    def _read(self, args: dict[str, Any], step: Step) -> str:
        given = str(args.get("paper_id") or "").strip()
        paper_id = given
        shown = {str(n): pid for pid, n in self.numbers.items()}
        found = self.retriever.store.abstracts([given]) if given else {}
        if not found and given.strip("[]") in shown:  # a small model may pass the number it was shown
            paper_id = shown[given.strip("[]")]
            found = self.retriever.store.abstracts([paper_id])
        if paper_id not in found or paper_id in self.exclude:
            step.error = f"no paper has the id {_cut(given, 80)!r}; use an id from the search results"
            return ""
        title, abstract = found[paper_id]
        self.papers[paper_id] = (title, abstract)
        if paper_id not in self.read:
            self.read.append(paper_id)
        step.papers.append(paper_id)
        return self._show(paper_id, title, "Abstract", abstract)

    def _show(self, paper_id: str, title: str, label: str, text: str) -> str:
        n = self.number(paper_id)
        return render(
            "agent_paper",
            n=n,
            paper_id=escape_tags(paper_id),
            title=escape_tags(title),
            label=label,
            text=escape_tags(own_references_marked(text)),  # its "[3]" is no citation of source 3
        )


@dataclass
class Run:
    """What the model did: its final text (empty: no answer), tokens, whether it ran out of steps,
    and the text `on_token` was given (possibly by a turn that then called a tool)."""

    text: str
    usage: dict[str, int]
    out_of_steps: bool
    llm_ms: float
    streamed: str = ""


class Shown:
    """Streams a turn's text to `on_token` a sentence at a time, each once the next one has begun,
    so a turn that writes a line and then calls a tool never shows it. The citations are
    renumbered as the answer's sources will be (the papers read, and those cited so far), and a
    sentence waits while no paper is read or cited: without one the agent's answer is not used."""

    def __init__(self, library: Library, on_token: Callable[[str], None] | None) -> None:
        self.library = library
        self.on_token = on_token
        self.buffer = ""
        self.emitted = 0
        self.text = ""  # what was handed to on_token

    def _order(self) -> list[int]:
        cited = set(citations_of(self.buffer))
        numbers = self.library.numbers
        return [n for pid, n in numbers.items() if pid in self.library.read or n in cited]

    def _emit(self, upto: int) -> None:
        order = self._order()
        if self.on_token is None or upto <= self.emitted or not order:
            return
        part = _renumbered(self.buffer[self.emitted : upto], order)
        self.emitted = upto
        self.text += part
        self.on_token(part)

    def feed(self, delta: str) -> None:
        self.buffer += delta
        if self.on_token is not None and any(c.isspace() for c in delta):
            sentences = split_sentences(self.buffer)
            if len(sentences) > 1:
                self._emit(self.buffer.rfind(sentences[-1]))

    def finish(self) -> None:
        self._emit(len(self.buffer.rstrip()))


def _readable(chunks: Iterator[Any], endpoint: str) -> Generator[Any, None, None]:
    """The client library's chunks; one it cannot read (JSON of another shape than a chat
    completion chunk breaks it with a TypeError or the like) is the endpoint's fault, said so."""
    try:
        yield from chunks
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        raise LLMError(
            f"the LLM endpoint {endpoint} sent a reply that is not a chat completion ({type(exc).__name__}); "
            "check that it is an OpenAI-compatible endpoint"
        ) from None


def run_tools(
    question: str,
    settings: Settings,
    library: Library,
    steps: list[Step],
    on_token: Callable[[str], None] | None = None,
) -> Run:
    """Let the model call the tools, at most `agent_steps` times, then take its answer. Every turn
    is streamed (a turn is the answer only once it ends without calling a tool); the text of a
    turn after the first tool call goes to `on_token` as it arrives (see `Shown`)."""
    import httpx
    import openai
    from llama_index.core.llms import ChatMessage

    endpoint = mask_url(settings.endpoint)
    start = time.monotonic()
    deadline = start + settings.llm_deadline
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    messages = [ChatMessage(role="system", content=render("agent")), ChatMessage(role="user", content=question)]
    tools = library.tools()
    llm_seconds = 0.0
    out_of_steps = False
    streamed = ""

    with httpx.Client() as http:
        llm = openai_like(settings, http)

        def ask(tool_choice: str | dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
            """One turn: (its text, its tool calls as the assistant message lists them)."""
            nonlocal llm_seconds, streamed
            t = time.monotonic()
            text: list[str] = []
            calls: list[Any] = []  # the turn's tool calls so far, as LlamaIndex gathers them
            reported: dict[str, int] = {}
            cleaner, cap = ReplyCleaner(), TokenCap(settings.llm_max_tokens)
            turn = Shown(library, on_token if steps else None)  # a first turn without a tool call is no answer

            def make() -> Iterator[ChatResponse]:
                return iter(
                    llm.stream_chat_with_tools(
                        tools,
                        chat_history=list(messages),
                        allow_parallel_tool_calls=True,
                        tool_choice=tool_choice,
                        stream_options={"include_usage": True},
                    )
                )

            chunks = _readable(within(make, deadline), endpoint)
            received = False
            try:
                for chunk in chunks:
                    received = True
                    if chunk.raw is not None and getattr(chunk.raw, "usage", None):
                        reported = {
                            "prompt_tokens": chunk.raw.usage.prompt_tokens,
                            "completion_tokens": chunk.raw.usage.completion_tokens,
                        }
                    calls = chunk.message.additional_kwargs.get("tool_calls") or calls
                    piece = cap.take(cleaner.feed(chunk.delta or ""))
                    text.append(piece)
                    if not calls:
                        turn.feed(piece)
                    if cap.hit:  # a rambling turn ends at llm_max_tokens, as a normal answer does
                        break
            except DeadlineReached:
                raise LLMError(
                    f"the LLM endpoint {endpoint} did not finish the agent's work within the "
                    f"{settings.llm_deadline:g} s deadline ({time.monotonic() - start:.1f} s elapsed); "
                    "raise RAG_LLM_DEADLINE or check the server"
                ) from None
            except openai.APIStatusError as exc:
                first = len(messages) == 2
                if first and (exc.status_code in (400, 422) or "tool" in f"{exc.message} {exc.body}".lower()):
                    raise NoTools(f"the LLM endpoint {endpoint} does not take tools (HTTP {exc.status_code})") from None
                raise LLMError(
                    explain_failure(exc, endpoint, settings.llm_timeout, 1, time.monotonic() - start)
                ) from None
            except (openai.OpenAIError, httpx.HTTPError, ValueError) as exc:  # ValueError: a body that is not JSON
                raise LLMError(
                    explain_failure(exc, endpoint, settings.llm_timeout, 1, time.monotonic() - start)
                ) from None
            finally:
                chunks.close()
                llm_seconds += time.monotonic() - t
            # no event at all: on the first turn the endpoint is not OpenAI-compatible; on a later
            # one (llama.cpp's function-calling format cannot stream an unforced call) it is a turn
            # that said nothing, and the next must answer
            if not received and not steps:
                raise LLMError(
                    f"the LLM endpoint {endpoint} sent a malformed reply (no chat completion events in the "
                    "stream); check that it is an OpenAI-compatible endpoint"
                )
            text.append(cap.take(cleaner.flush()))
            said = "".join(text)
            if not calls:
                turn.finish()
            streamed += turn.text
            made = [
                {
                    "id": _once(call.id or "") or f"call_{i}",
                    "type": "function",
                    "function": {"name": _once(call.function.name or ""), "arguments": call.function.arguments or ""},
                }
                for i, call in enumerate(calls)
                if call.function
            ]
            reported = reported or {
                "prompt_tokens": count_tokens(json.dumps([m.model_dump(mode="json") for m in messages])),
                "completion_tokens": count_tokens(said + json.dumps(made)),
            }
            for key in usage:
                usage[key] += reported[key]
            return said, made

        choice: str | dict[str, Any] = FIRST
        while True:
            said, calls = ask(choice)
            if choice == "none":
                break
            if not calls:
                if said.strip() or not steps:
                    break
                # a turn after tool calls that neither calls one nor says anything (llama.cpp's
                # function-calling format ends an unforced reply at once): the next must answer
                choice = "none"
                continue
            # LlamaIndex sends an empty text beside tool calls as null, which llama.cpp's server
            # refuses (it takes a string or nothing): a turn that only called tools says " ".
            messages.append(ChatMessage(role="assistant", content=said or " ", additional_kwargs={"tool_calls": calls}))
            for call in calls:
                library.calls.append(call_text(call["function"]["name"], call["function"]["arguments"]))
                if len(steps) < settings.agent_steps:
                    result, step = library.call(call["function"]["name"], call["function"]["arguments"])
                    steps.append(step)
                else:
                    result = "error: no tool calls are left; answer from the papers shown so far"
                messages.append(
                    ChatMessage(role="tool", content=result, additional_kwargs={"tool_call_id": call["id"]})
                )
            choice = "auto"
            if len(steps) >= settings.agent_steps:
                out_of_steps, choice = True, "none"
                messages.append(
                    ChatMessage(
                        role="user", content=render("agent_limit", steps=settings.agent_steps, question=question)
                    )
                )
    if not steps:  # an empty first reply is the endpoint's doing, not a choice of the model's
        raise NoTools(
            "the model did not call the search or read tools" if said.strip() else "the model's first reply was empty"
        )
    return Run(said.strip(), usage, out_of_steps, llm_seconds * 1000, streamed)


def _once(text: str) -> str:
    """`text` once where a server repeated it in every streamed delta of a tool call ("searchsearch"
    -> "search"): llama.cpp's function-calling format resends a call's id and name each time, and
    LlamaIndex joins the deltas as OpenAI streams them (sent once, then only arguments)."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return text


def _renumbered(text: str, order: list[int]) -> str:
    """`text` with each citation of a shown number `order[i]` made `i + 1`. Other numbers stay bad
    citations: kept when past the sources (what the model wrote), else moved past every number."""
    new = {old: i for i, old in enumerate(order, start=1)}
    cited = citations_of(text)
    spare = max([len(order), *cited]) + 1
    for old in cited:
        if old not in new:
            new[old] = old if old > len(order) else spare
            spare += old <= len(order)
    return CITATION.sub(lambda m: re.sub(r"\d+", lambda d: str(new[int(d.group())]), m.group()), text)


def answer_with_agent(
    question: str,
    settings: Settings,
    retriever: Retriever,
    llm: LLM | None,
    verifier: Verifier | None,
    notify: Callable[[str], None],
    on_token: Callable[[str], None] | None = None,
    exclude: Collection[str] = (),
) -> AgentAnswer:
    """Answer `question` in agent mode; `notify` receives the one line that says why the normal
    path answered instead (`llm` then answers, streaming to `on_token`), or that the steps ran out.
    Papers in `exclude` are out of every search and read (the evaluation's counterfactual)."""
    steps: list[Step] = []
    library = Library(retriever, settings, exclude)

    def normal(reason: str) -> AgentAnswer:
        notify(f"{reason}; answering without the agent")
        answer = answer_question(
            question,
            retriever,
            k=settings.top_k,
            mode=settings.retriever,
            llm=llm,
            on_token=on_token,
            verifier=verifier,
            grounding=settings.grounding,
            exclude=exclude,
        )
        return AgentAnswer.of(answer, steps, library.calls, reason)

    if llm is None or not settings.llm_enabled:
        return normal("agent mode needs an LLM endpoint (OPENAI_BASE_URL or OPENAI_API_KEY)")
    t0 = time.perf_counter()
    # The same answerability check as a normal LLM answer, on a search of the question itself: a
    # clear miss abstains before the model is asked anything.
    pre = check_question(question, retriever, settings.top_k, settings.retriever, with_llm=True, exclude=exclude)
    if not pre.assessment.answerable:
        return AgentAnswer.of(pre.abstention(llm, t0), steps, library.calls, None)
    t1 = time.perf_counter()
    try:
        run = run_tools(question, settings, library, steps, on_token)
    except NoTools as exc:
        return normal(str(exc))
    if not run.text:
        return normal(f"the model gave no answer after {len(steps)} tool calls")
    if run.out_of_steps:
        notify(
            f"the agent used all {settings.agent_steps} tool calls (RAG_AGENT_STEPS); it answered from what it found"
        )
    timings = {**pre.timings, "generation": run.llm_ms}
    timings["retrieval"] += (time.perf_counter() - t1) * 1000 - run.llm_ms  # the pre-check's search and the tools'

    def agent_answer(
        text: str, abstained: bool, sources: list[Source], grounding: Grounding, assessment: Assessment | None = None
    ) -> AgentAnswer:
        timings["total"] = (time.perf_counter() - t0) * 1000
        hits = list(library.hits.values())
        answer = AgentAnswer(
            question, text, abstained, "llm", settings.llm_model, sources, grounding, hits,
            assessment or pre.assessment, timings,
        )  # fmt: skip
        answer.usage, answer.steps, answer.calls = run.usage, steps, library.calls
        return answer

    if model_abstained(run.text):
        answer = agent_answer(NO_ANSWER, True, [], Grounding([]))
        answer.changed = bool(run.streamed)
        return answer

    cited = set(citations_of(run.text))
    chosen = [pid for pid, n in library.numbers.items() if pid in library.read or n in cited]
    uncited = not chosen
    if uncited and settings.grounding == "strict":
        # an answer citing nothing it was shown: every paper shown is a source, and the strict
        # check attributes each sentence one of them supports, or removes it
        chosen = list(library.numbers)
    if not chosen:
        return normal(UNCITED)
    missing = [pid for pid in chosen if pid not in library.papers]
    library.papers.update(retriever.store.abstracts(missing))
    chosen = [pid for pid in chosen if pid in library.papers]
    sources = [Source(n, pid, *library.papers[pid]) for n, pid in enumerate(chosen, start=1)]
    text = _renumbered(run.text, [library.numbers[pid] for pid in chosen])

    t = time.perf_counter()
    pairs = [(s.title, s.abstract) for s in sources]
    fixed, nothing_held = ground_llm_answer(
        text,
        sources,
        verifier,
        settings.grounding,
        fallback=lambda: extractive.compose(pre.asked, pairs, retriever.embedder, retriever.lexical),
        question=question,
        focus=focus_words(pre.asked, retriever.lexical),
    )
    timings["verification"] = (time.perf_counter() - t) * 1000
    if nothing_held and uncited:
        return normal(UNCITED)
    if nothing_held:  # nothing it read supports anything it said: abstain, as a clear miss does
        answer = agent_answer(NO_ANSWER, True, sources, Grounding([]))
    elif fixed.fell_back and (gated := fallback_gate(pre.assessment)):  # as a normal answer's fallback
        answer = agent_answer(NO_ANSWER, True, sources, Grounding([]), gated)
    else:
        answer = agent_answer(fixed.text, False, sources, fixed.grounding)
    answer.removed, answer.fell_back = fixed.removed, fixed.fell_back and not nothing_held
    # what streamed was the model's draft: say so when the answer shown differs from it
    answer.changed = fixed.changed or (bool(run.streamed) and run.streamed.strip() != text)
    return answer
