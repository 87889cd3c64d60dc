"""`rag mcp`: the core as an MCP server over stdio (the official `mcp` SDK), for editors and
assistants. Three tools, over the same store, retriever, answerer and verifier as the CLI:

- `search(query, k)`: ranked papers with their best passage (as `rag search --json`);
- `ask(question, k)`: the cited, checked answer: sentences with verdicts, and the sources;
- `check(text, papers)`: a passage whose `[n]` citations name `papers[n-1]` (paper ids, as
  `search` returns them), each sentence judged like `rag check` judges a draft.

stdout carries the protocol, so nothing else may print there; notices go to stderr. With
`server_url` set, `search` and `ask` go to that `rag serve` (the store opens here only for `check`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from rag import __version__

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from rag.workspace import Workspace

INSTRUCTIONS = (
    "Answers questions about research papers from their abstracts. Use `search` to find papers, "
    "`ask` for a short answer whose every sentence cites a source and carries a verdict from the "
    "grounding check, and `check` to test whether the papers a passage cites support it."
)


def check_passage(text: str, papers: list[str], checker: Any) -> dict[str, Any]:
    """Each sentence of `text`: its [n] citations resolved to `papers`, and its verdict."""
    from rag.draft import BAD_CITATION_LABEL, CitedPaper, clean_sentence
    from rag.sentences import citations_of, normalise_citations, split_sentences, strip_citations

    sentences = []
    counts: dict[str, int] = {}
    text = normalise_citations(text)  # "[1-2]" cites 1 and 2, "[-1]" no source: as for an LLM's answer
    for number, sentence in enumerate(split_sentences(text), start=1):
        cites = citations_of(sentence)
        claim = clean_sentence(strip_citations(sentence))
        if any(not 0 < n <= len(papers) for n in cites):
            result: dict[str, Any] = {
                "text": claim,
                "citations": cites,
                "verdict": "bad_citation",
                "label": BAD_CITATION_LABEL,
            }
        elif not cites:
            result = {"text": claim, "citations": [], "verdict": "uncited", "label": "uncited"}
        else:
            cited = []
            for n in cites:
                meta = checker.index.papers.get(papers[n - 1])
                cited.append(CitedPaper(str(n), meta.paper_id if meta else None, meta.title if meta else ""))
            verdict = checker.claim(number, claim, cited)
            result = {"text": claim, "citations": cites, **verdict.as_json(), "label": verdict.label}
            result.pop("line", None)
            result.pop("sentence", None)
            result.pop("keys", None)
        counts[result["verdict"]] = counts.get(result["verdict"], 0) + 1
        sentences.append(result)
    return {"sentences": sentences, "summary": counts}


def _one_line(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A tool whose failures the client reads: the SDK shows a ToolError's message (and logs it
    without a traceback), while any other exception reaches the client as only "Error executing
    tool"; rag's own errors and refused arguments are ToolErrors, in the line the CLI prints."""
    from mcp.server.mcpserver.exceptions import ToolError

    from rag.errors import RagError

    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RagError, BadArgument) as exc:
            raise ToolError(str(exc)) from None

    tool.__doc__ = " ".join((fn.__doc__ or "").split())  # the description, without the source's indentation
    return tool


class BadArgument(ValueError):
    """A tool argument the CLI would refuse too."""


# A passage `check` takes in one call: a long section of a paper (about 15,000 words, checked in
# well under a minute). The server answers one call at a time, so a whole book would hold it.
MAX_CHECK_CHARS = 100_000
MAX_CHECK_PAPERS = 1_000


def _k(k: int, most: int) -> int:
    if not 1 <= k <= most:
        raise BadArgument(f"k must be a whole number from 1 to {most}, not {k}")
    return k


def build_server(ws: Workspace) -> MCPServer:
    """The server's tools over `ws`, whose parts are built on the first call that needs them."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    class Server(MCPServer):
        """Arguments the tool's schema refuses, or that it does not take, are one line that says
        what the tool takes (the SDK's text is a multi-line pydantic report with a web address)."""

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            schema = next((t.input_schema for t in await self.list_tools() if t.name == name), None)
            takes = list((schema or {}).get("properties", {}))
            unknown = [a for a in arguments if schema is not None and a not in takes]
            if unknown:
                raise ToolError(f"{name} takes no argument {unknown[0]!r}; it takes {', '.join(takes)}")
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                if not isinstance(exc.__cause__, ValidationError):
                    raise
                problems = [
                    f"{'.'.join(map(str, e['loc'])) or 'the arguments'} "
                    + ("is missing" if e["type"] == "missing" else f"is wrong: {e['msg'].lower()}")
                    for e in exc.__cause__.errors()
                ]
                raise ToolError(f"{name}: {'; '.join(problems)} (it takes {', '.join(takes)})") from None

    settings = ws.settings
    server = Server("rag", instructions=INSTRUCTIONS, version=__version__)
    state: dict[str, Any] = {}

    def checker() -> Any:
        if "checker" not in state:
            from rag.draft import Checker, CorpusIndex

            state["checker"] = Checker(CorpusIndex.from_store(ws.store), ws.retriever, ws.verifier)
        return state["checker"]

    @server.tool()
    @_one_line
    def search(
        query: str, k: Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": 100})] = 10
    ) -> dict[str, Any]:
        """Rank the corpus's papers for a query; each with its id, title, score and best passage."""
        from rag.sanitise import normalise_question, too_long

        query = normalise_question(query)
        if not query:
            raise BadArgument("the query is empty; give some words to search for")
        if problem := too_long(query):
            raise BadArgument(f"the query is too long: {problem}")
        k = _k(k, 100)
        if settings.server_url:
            from rag.serve.client import request

            return request(settings.server_url, "/search", {"query": query, "k": k}).body
        return ws.retriever.search(query, k=k, mode=settings.retriever).as_json()

    @server.tool()
    @_one_line
    def ask(
        question: str, k: Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": 50})] = 5
    ) -> dict[str, Any]:
        """Answer a question from the papers: each sentence cites sources [n] and carries a verdict
        (supported, unsupported, uncited, bad_citation, no_claim); abstains when the corpus does not
        answer."""
        from rag.answer import answer_question
        from rag.sanitise import normalise_question, too_long

        question = normalise_question(question)
        if not question:
            raise BadArgument("the question is empty; ask something")
        if problem := too_long(question):
            raise BadArgument(f"the question is too long: {problem}")
        k = _k(k, 50)
        if settings.server_url:
            from rag.serve.client import request

            full = request(settings.server_url, "/ask", {"question": question, "k": k}).body
        else:
            full = answer_question(
                question,
                ws.retriever,
                k=k,
                mode=settings.retriever,
                llm=ws.llm,
                verifier=ws.verifier,
            ).as_json()
        return {
            key: full[key]
            for key in ("question", "answer", "abstained", "mode", "model", "sentences", "citations", "grounding")
        }

    @server.tool()
    @_one_line
    def check(text: str, papers: list[str]) -> dict[str, Any]:
        """Check a passage's citations: `[n]` in `text` cites `papers[n-1]` (paper ids from `search`).
        Each sentence gets supported, unsupported (with the closest sentence of the cited abstract
        and, when one exists, another corpus paper that supports it), missing (paper not in the
        corpus), uncited, bad_citation or no_claim."""
        from rag.sanitise import clean

        text = clean(text)
        if not text.strip():
            raise BadArgument("the text is empty; give a passage whose sentences cite papers as [n]")
        if len(text) > MAX_CHECK_CHARS:
            raise BadArgument(
                f"the text is {len(text):,} characters long; check at most {MAX_CHECK_CHARS:,} at a time "
                "(split it, or run rag check on the file)"
            )
        if len(papers) > MAX_CHECK_PAPERS:
            raise BadArgument(f"{len(papers):,} papers given; a passage may cite at most {MAX_CHECK_PAPERS:,}")
        return check_passage(text, [clean(p) for p in papers], checker())

    return server


def serve(ws: Workspace) -> None:
    """Run the server on stdin/stdout until the client closes it."""
    build_server(ws).run("stdio")
