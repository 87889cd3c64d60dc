"""Structured citations: ask the model for JSON whose citations can only name the sources given.

The answer is requested as `{"sentences": [{"text": ..., "citations": [n, ...]}]}` with every
citation restricted to the sources given (1..k) by the schema, so a model cannot cite a source that does not exist or
forget the form of a citation. Endpoints differ in how they take a schema: OpenAI and Ollama take
`{"type": "json_schema", ...}`, llama.cpp's servers take `{"type": "json_object", "schema": ...}`.
Each is tried once per endpoint and model; a refusal (HTTP 400/422) moves on to the next, and
plain text with `[n]` parsing is the last resort. What worked is remembered in a small JSON file
in the data directory. JSON inside a ```json fence or after a line such as "Here is the answer in
JSON:", or after prose, is read as JSON. A server that accepts the format but writes prose anyway is
caught in its first line and its reply used as plain text (shown as it comes all the while); a
stray reply (prose, JSON of another shape) from an endpoint whose format has worked before is
answered in plain text once, not remembered.

While the JSON streams in, each sentence is passed on as soon as the next one begins, parsed by
pydantic's partial JSON mode; the result is the same `text [n]` form a plain-text model writes,
so the grounding check and the repair step do not care which way it came.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from rag.llm import EmptyReply, FormatRefused
from rag.sentences import CITATION, citations_of

FORMATS = ("json_schema", "json_object")  # tried in this order; then "text"
MEMORY_FILE = "llm_formats.json"


class FormatMemory:
    """Which response format an endpoint and model took: {"endpoint|model": "json_schema" | ...}."""

    def __init__(self, path: Path, endpoint: str, model: str) -> None:
        self.path = path
        self.key = f"{endpoint}|{model}"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self) -> str | None:
        value = self._read().get(self.key)
        return value if value in (*FORMATS, "text") else None

    def set(self, value: str) -> None:
        data = self._read()
        if data.get(self.key) == value:
            return
        data[self.key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only data folder: detected again next time, nothing lost


class StructuredLLM(Protocol):
    """An LLM that can be asked for a response format (OpenAICompatible, ForkedLLM)."""

    formats: FormatMemory
    usage: dict[str, int]

    def stream(self, system: str, user: str, response_format: dict | None = None) -> Iterator[str]: ...


def schema(citable: list[int], at_least_one: bool = False) -> dict:
    """A JSON schema of cited sentences; citations are the given source numbers only. `at_least_one`
    forbids an empty list, which small models under a grammar otherwise tend to produce."""
    out: dict = {
        "type": "object",
        "properties": {
            "sentences": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "citations": {"type": "array", "items": {"type": "integer", "enum": citable}},
                    },
                    "required": ["text", "citations"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["sentences"],
        "additionalProperties": False,
    }
    if at_least_one:
        out["properties"]["sentences"]["minItems"] = 1
    return out


def response_format(kind: str, citable: list[int]) -> dict:
    if kind == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "cited_answer", "strict": True, "schema": schema(citable)},
        }
    return {"type": "json_object", "schema": schema(citable, at_least_one=True)}  # llama.cpp: a grammar


def sentence_text(item: Any) -> str:
    """One sentence object as `text [n][m]`; citations written inside the text count too."""
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return ""
    raw = item["text"]
    # a source number is a positive integer: "x", true or -1 names no source and is dropped
    cites = [c for c in item.get("citations") or [] if isinstance(c, int) and not isinstance(c, bool) and c > 0]
    cites = list(dict.fromkeys([*cites, *citations_of(raw)]))
    body = re.sub(r"\s+([.,;:!?])", r"\1", CITATION.sub("", raw))
    body = " ".join(body.split())
    if not body:
        return ""
    return f"{body} {''.join(f'[{n}]' for n in cites)}".strip()


class NotStructured(Exception):
    """The reply is not the JSON that was asked for."""


class SentenceStream:
    """Sentences of a streaming JSON answer, each handed out once the next one has begun."""

    def __init__(self) -> None:
        self.buffer = ""
        self.emitted = 0
        self.fenced = False  # the JSON came inside a ```json fence: its closing ``` is not JSON

    def _sentences(self, final: bool) -> list[Any]:
        from pydantic_core import from_json

        text = self.buffer.split("```")[0] if self.fenced else self.buffer
        try:
            data = from_json(text, allow_partial=not final)
        except ValueError:
            if final:
                raise NotStructured from None
            return []
        if not isinstance(data, dict):
            raise NotStructured
        items = data.get("sentences", [])
        if not isinstance(items, list) or (final and "sentences" not in data):
            raise NotStructured
        return items

    def feed(self, delta: str) -> list[str]:
        self.buffer += delta
        items = self._sentences(final=False)
        done = items[self.emitted : max(self.emitted, len(items) - 1)]
        self.emitted += len(done)
        return [t for t in map(sentence_text, done) if t]

    def finish(self) -> list[str]:
        try:
            items = self._sentences(final=True)
        except NotStructured:  # cut off (the token cap): keep the sentences that were complete
            items = self._sentences(final=False)
            if not items and not self.emitted:
                raise
        done = items[self.emitted :]
        self.emitted = len(items)
        return [t for t in map(sentence_text, done) if t]


_FENCE = re.compile(r"```[\w-]*[ \t]*\n")
HELD_CHARS = 80  # a first line longer than this is no preamble ("Here is the answer in JSON:")


def _opening(head: str, final: bool = False) -> tuple[str, str]:
    """What a reply's start `head` is: ("json" | "fenced", the text from its "{"), ("prose", head),
    or ("undecided", what is still open: `head` after any preamble line) while too little has come.
    Servers and models wrap the JSON asked for in a ```json fence, or write a line such as "Here is
    the answer in JSON:" before it."""
    text = head.lstrip()
    if text.startswith("{"):
        return "json", text
    if fence := _FENCE.match(text):
        inner = text[fence.end() :].lstrip()
        if inner.startswith("{"):
            return "fenced", inner
        return ("prose", head) if inner or final else ("undecided", text)
    first, newline, after = text.partition("\n")
    if newline and first.rstrip().endswith(":") and len(first) <= HELD_CHARS:
        kind, rest = _opening(after, final)
        return ("prose", head) if kind == "prose" else (kind, rest)
    if newline or len(text) >= HELD_CHARS or final:
        return ("prose", head) if text else ("undecided", text)
    return "undecided", text


_JSON_LINE = re.compile(r"\n[ \t]*(?=\{|```)")  # a line of prose that may open the JSON asked for


def _embedded(text: str) -> list[str] | None:
    """The sentences of the JSON object `text` opens (in a ``` fence or not, anything after it
    ignored: "Hope this helps!"), or None when it holds no such object."""
    body = text.lstrip()
    if fence := _FENCE.match(body):
        body = body[fence.end() :].lstrip()
    try:
        data, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return None
    items = data.get("sentences") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [t for t in map(sentence_text, items) if t]


def _structured(
    llm: StructuredLLM, system: str, user: str, rf: dict, on_text: Callable[[str], None]
) -> tuple[list[str], str]:
    """(sentences, "") from a JSON reply, or ([], prose) when the server wrote prose instead. While
    the start is undecided it is shown as it comes (a preamble line stays on the screen, above the
    sentences), except a start that may open a ``` fence, held until its first line is complete.
    Prose is shown as it comes too, up to a line that opens a JSON object or a fence: that is held,
    and read as the answer when it is the JSON asked for (prose, the JSON, then "Hope this helps!")."""
    stream = SentenceStream()
    sentences: list[str] = []
    head, kind, shown = "", "undecided", 0
    held: int | None = None  # where, in head, a line that may open JSON starts (prose only)

    def take(delta: str) -> None:
        for s in stream.feed(delta):
            on_text((" " if sentences else "") + s)
            sentences.append(s)

    def show_prose() -> None:
        nonlocal held, shown
        if held is None and (m := _JSON_LINE.search(head, max(0, shown - 1))):
            held = m.start()
        upto = len(head) if held is None else held
        if upto > shown:
            on_text(head[shown:upto])
            shown = upto

    def decided(final: bool) -> None:
        nonlocal kind, shown
        kind, rest = _opening(head, final)
        if kind == "prose":
            show_prose()
        elif kind == "undecided":  # shown now, but a ``` that may open a fence is held
            upto = len(head) - len(rest) if rest.startswith("`") else len(head)
            on_text(head[shown:upto])
            shown = max(shown, upto)
        else:
            stream.fenced = kind == "fenced"
            if head[:shown].strip() and not head[:shown].endswith("\n"):  # below a preamble line shown
                on_text("\n")
            take(rest)

    for delta in llm.stream(system, user, response_format=rf):
        if kind in ("undecided", "prose"):
            head += delta
            if kind == "undecided":
                decided(final=False)
            else:
                show_prose()
        else:
            take(delta)
    if kind == "undecided" and head.strip():
        decided(final=True)
    if kind == "prose":
        found = _embedded(head[held:]) if held is not None else None
        if found:  # the JSON asked for, after prose: its sentences are the answer
            on_text(("" if head[:shown].endswith("\n") else "\n") + " ".join(found))
            return found, ""
        on_text(head[shown:])
        return [], head
    for s in stream.finish():
        on_text((" " if sentences else "") + s)
        sentences.append(s)
    return sentences, ""


def generate(llm: Any, system: str, user: str, citable: list[int], on_text: Callable[[str], None]) -> str:
    """The model's answer as `sentence [n]` text, asked as structured output when the endpoint
    takes it (see the module docstring); `on_text` receives what to show as it arrives."""
    memory: FormatMemory | None = getattr(llm, "formats", None)
    known = memory.get() if memory else "text"
    if memory is None or not citable or known == "text":
        return "".join(_passing(llm.stream(system, user), on_text))
    refused = False
    for kind in [known] if known else list(FORMATS):
        try:
            sentences, prose = _structured(llm, system, user, response_format(kind, citable), on_text)
        except FormatRefused:
            refused = True
            continue
        except NotStructured:  # valid JSON of another shape, or JSON cut before a sentence: plain text
            break
        if prose:  # the server took the format but ignored it
            if not known:  # one stray reply does not undo a format that has worked
                memory.set("text")
            return prose
        memory.set(kind)
        if not sentences:  # '{"sentences": []}': as empty as no reply at all
            raise EmptyReply(f"the LLM endpoint {llm.endpoint} replied with no sentence; check the model ({llm.model})")
        return " ".join(sentences)
    text = "".join(_passing(llm.stream(system, user), on_text))
    if refused or not known:  # only once plain text has worked: a server that is down is not "text only"
        memory.set("text")
    return text


def _passing(deltas: Iterator[str], on_text: Callable[[str], None]) -> Iterator[str]:
    for delta in deltas:
        on_text(delta)
        yield delta
