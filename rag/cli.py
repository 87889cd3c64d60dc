"""The `rag` command: a thin layer over the core. Heavy modules are imported inside commands,
so `rag --help` stays fast."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from rag.errors import RagError, quoted
from rag.retrievers import Mode
from rag.serve import DEFAULT_PORT

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress

    from rag.config import Settings
    from rag.retrieval import SearchResult
    from rag.workspace import Workspace

app = typer.Typer(
    name="rag",
    help="Answer questions about research papers from their abstracts, with every claim cited and checked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

RetrieverOpt = Annotated[Mode | None, typer.Option("--retriever", help="Which retriever.")]


def _end_stream() -> None:
    """A reply that failed mid-stream left its line open: the error goes on the next one, after a
    line saying that what was shown was never checked (a streamed answer is checked when it ends)."""
    if (render := sys.modules.get("rag.render")) and render.end_stream():  # loaded only if something was shown
        typer.echo("rag: the reply shown above was cut off before it was checked against the sources", err=True)


_interrupt = {"said": False}  # a command that said how far it got when interrupted
_json_errors = {"on": False}  # a command given --json: an error is also {"error": ...} on stdout


def _say_error(message: str) -> None:
    from rag.sanitise import clean

    message = " ".join(clean(message).split())  # one line, whatever a file name holds (escapes, newlines)
    typer.echo(f"rag: error: {message}", err=True)
    if _json_errors["on"]:  # a script reading stdout gets an object, not nothing
        try:
            typer.echo(json.dumps({"error": message}, ensure_ascii=False))
        except OSError:  # stdout itself failed (a full disk, a closed pipe): stderr has said it
            pass


def _fail(message: str, code: int = 1) -> None:
    _say_error(message)
    raise typer.Exit(code)


def _settings(**flags) -> Settings:
    from rag.config import load_settings

    return load_settings(**flags)


def _workspace(forked_llm: bool = False, **flags) -> Workspace:
    """The command's parts, built on first use from the settings and `flags`; close it when done."""
    from rag.workspace import Workspace

    return Workspace(_settings(**flags), forked_llm=forked_llm)


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Corpus files (.txt, .jsonl, .json, .csv, .bib); default: the bundled abstracts."),
    ] = None,
    prune: Annotated[bool, typer.Option(help="Delete stored papers that are not in the given files.")] = False,
    category: Annotated[
        str | None, typer.Option(help="Only papers in any of these arXiv categories, e.g. cs.CL,cs.LG.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only papers updated on or after YYYY-MM-DD.")] = None,
) -> None:
    """Add papers to the store; unchanged papers are skipped, changed ones replaced."""
    from rag.corpus import parse_selection
    from rag.ingest import IngestInterrupted, terminal_progress
    from rag.ingest import ingest as run_ingest

    try:
        select = parse_selection(category, since)
    except ValueError as exc:
        _fail(str(exc), 2)
    if prune and not paths:  # it would delete every paper not in the bundled corpus: the user's own
        from rag.corpus import bundled_corpus_path

        _fail(
            "--prune deletes every stored paper that is not in the given files; name the files to keep "
            f"(the bundled corpus is {bundled_corpus_path()})",
            2,
        )
    for path in paths or []:
        if path.suffix.lower() == ".bib":
            from rag.readers import bib_without_abstract

            if skipped := bib_without_abstract(path):
                typer.echo(
                    f"rag: {path}: "
                    + (
                        "1 entry has no abstract field and is"
                        if len(skipped) == 1
                        else f"{len(skipped)} entries have no abstract field and are"
                    )
                    + " not ingested: "
                    + ", ".join(skipped),
                    err=True,
                )
    with _workspace() as ws:
        embedder = ws.embedder  # before the bar: a first use may show its own download bar
        had_bundled = ws.store.ingest_state().source == "bundled" and bool(paths) and not prune
        try:
            with terminal_progress("embedding") as progress:
                report = run_ingest(ws.store, embedder, paths or None, prune=prune, progress=progress, select=select)
        except IngestInterrupted as exc:
            typer.echo(f"rag: interrupted; {exc}", err=True)
            _interrupt["said"] = True
            raise typer.Exit(130) from None
    typer.echo(
        f"{report.papers} {'paper' if report.papers == 1 else 'papers'}: {report.added} added, {report.replaced} replaced, "
        f"{report.unchanged} unchanged, {report.pruned} pruned; "
        f"{report.chunks_written} chunks embedded in {report.seconds:.1f} s",
        err=True,
    )
    if had_bundled and report.added:  # a first search filled the store before the user's own files went in
        typer.echo(
            "rag: the store also holds the bundled corpus (added by an earlier command); "
            "`rag ingest --prune YOUR FILES` keeps only your papers",
            err=True,
        )
    if report.undated:
        typer.echo(
            f"rag: {report.undated} {'record' if report.undated == 1 else 'records'} without a date (update_date "
            f"or year) {'was' if report.undated == 1 else 'were'} left out by --since",
            err=True,
        )
    if report.retitled:
        pid, old, new = report.retitled[0]
        more = f" (and {len(report.retitled) - 1} more)" if len(report.retitled) > 1 else ""
        typer.echo(
            f"rag: warning: a stored paper was replaced by a record of the same id with another title: id "
            f"{quoted(pid)}, {quoted(old)} is now {quoted(new)}{more}; if the ids only number rows, "
            "leave the id column out (ids then come from titles) or make them unique across files",
            err=True,
        )


def _from_stdin(text: str, what: str) -> str:
    """`text`, or what standard input holds when `text` is "-"."""
    if text != "-":
        return text
    from rag.sanitise import MAX_QUESTION_CHARS

    limit = 2 * MAX_QUESTION_CHARS  # read no further: stdin may be endless (`yes | rag ask -`)
    text = sys.stdin.read(limit + 1)
    if len(text) > limit:
        _fail(
            f"the {what} on stdin is too long: over {limit:,} characters; keep it under "
            f"{MAX_QUESTION_CHARS:,} (to check a draft against the papers, use rag check)",
            2,
        )
    if "\x00" in text:
        _fail(f"stdin holds binary data (NUL bytes), not a {what}", 2)
    return text


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for; '-' reads it from standard input.", metavar="QUERY")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many papers.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see README).")] = False,
    retriever: RetrieverOpt = None,
) -> None:
    """Rank papers for a query (hybrid dense + BM25 by default)."""
    _json_errors["on"] = as_json
    from rag.sanitise import normalise_question, too_long

    query = normalise_question(_from_stdin(query, "query"))
    if not query:
        _fail("the query is empty; give some words to search for", 2)
    if problem := too_long(query):
        _fail(f"the query is too long: {problem}", 2)
    if server := _settings().server_url:
        _search_served(server, query, k, as_json, retriever)
        return
    with _workspace(retriever=retriever) as ws:
        result = ws.retriever.search(query, k=k, mode=ws.settings.retriever)
        from rag.abstain import weak_match

        weak = weak_match(result, ws.lexical, ws.settings.retriever)
    if weak:
        typer.echo(f"rag: {weak}", err=True)
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    from rag.render import print_search

    print_search(result)


@app.command()
def ask(
    question: Annotated[
        str, typer.Argument(help="The question; '-' reads it from standard input.", metavar="QUESTION")
    ],
    k: Annotated[int | None, typer.Option("-k", min=1, max=50, help="How many papers to draw on.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object at the end (see README).")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the answer only when complete.")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Answer extractively even if an LLM is configured.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="LLM model name (RAG_LLM_MODEL).")] = None,
    retriever: RetrieverOpt = None,
    bib: Annotated[Path | None, typer.Option("--bib", help="Add the answer's cited sources to this .bib file.")] = None,
    agent: Annotated[
        bool, typer.Option("--agent", help="Let the model search and read papers itself (tool calling).")
    ] = False,
) -> None:
    """Answer a question from the papers, citing each sentence and checking the citations."""
    _json_errors["on"] = as_json
    from rag.sanitise import normalise_question, too_long

    question = _from_stdin(question, "question")
    question = normalise_question(question)
    if not question:
        _fail('the question is empty; ask something, e.g. rag ask "which papers compare FP8 vs INT8?"', 2)
    if problem := too_long(question):
        _fail(f"the question is too long: {problem}", 2)
    if agent and no_llm:
        _fail("--agent needs the LLM that --no-llm turns off; drop one of them", 2)
    if model is not None and not model.strip():
        _fail("--model is empty; give a model name, or leave --model out for RAG_LLM_MODEL", 2)
    if server := _settings().server_url:
        if bib is not None:
            _fail("--bib needs the store, which `rag serve` does not lend out yet; unset RAG_SERVER_URL for it", 2)
        request = {"question": question, "k": k, "retriever": retriever, "model": model, "no_llm": no_llm}
        _ask_served(server, {**request, "agent": agent}, as_json, stream=not no_stream and sys.stdout.isatty())
        return
    if bib is not None:
        from rag.bibtex import check_bib_target

        check_bib_target(bib)  # before the answer: a model's answer is not paid for to be lost
    with _workspace(
        forked_llm=True, top_k=k, retriever=retriever, llm_model=model, llm="off" if no_llm else None
    ) as ws:
        settings = ws.settings
        llm = ws.llm  # first: its client loads in the forked helper while the store opens
        from rag.answer import Answer, answer_question

        stream = llm is not None and not as_json and not no_stream and sys.stdout.isatty()
        from rag import render

        if agent:
            from rag.agent import answer_with_agent

            agent_answer = answer_with_agent(
                question,
                settings,
                ws.retriever,
                llm,
                ws.verifier,
                notify=lambda line: typer.echo(f"rag: {line}", err=True),
                on_token=render.stream_token if stream else None,
            )
            answer: Answer = agent_answer
        else:
            answer = answer_question(
                question,
                ws.retriever,
                k=settings.top_k,
                mode=settings.retriever,
                llm=llm,
                on_token=render.stream_token if stream else None,
                verifier=ws.verifier,
                grounding=settings.grounding,
            )
        if as_json:
            typer.echo(json.dumps(answer.as_json(), ensure_ascii=False))
        else:
            render.print_answer(answer, streamed=stream, llm_off=no_llm)
        if notice := getattr(llm, "notice", ""):  # the reply was cut at the token cap
            typer.echo(f"rag: warning: {notice}", err=True)
        if bib is not None:
            _write_bib(bib, ws, [s.paper_id for s in answer.sources_in_order() if s.n in answer.cited])


def _search_served(server: str, query: str, k: int, as_json: bool, retriever: str | None) -> None:
    """`rag search` through a running `rag serve`: the same JSON and the same rendering."""
    from rag.serve import client

    reply = client.request(server, "/search", {"query": query, "k": k, "retriever": retriever})
    found = client.found(reply.body, server)
    for line in reply.notices:
        typer.echo(f"rag: {line}", err=True)
    if as_json:
        typer.echo(json.dumps(reply.body, ensure_ascii=False))
        return
    from rag.render import print_search

    print_search(cast("SearchResult", found))  # reads only what `found` holds


def _ask_served(server: str, request: dict, as_json: bool, stream: bool) -> None:
    """`rag ask` through a running `rag serve`; an answer the server's LLM writes streams to the
    terminal as on the local path (not with --json or --no-stream, or when not on a terminal)."""
    from rag.serve import client

    if TYPE_CHECKING:
        from rag.answer import Answer

    deadline = _settings().llm_deadline
    on_token = None
    if stream and not as_json:
        from rag.render import stream_token

        on_token = stream_token
    reply = client.request(server, "/ask", request, timeout=2 * deadline + 60, on_token=on_token)
    answer = client.answered(reply.body, server)
    answer.changed = reply.changed
    if as_json:
        typer.echo(json.dumps(reply.body, ensure_ascii=False))
    else:
        from rag.render import print_answer

        print_answer(cast("Answer", answer), streamed=reply.streamed, llm_off=request["no_llm"])  # reads only `answer`
    for line in reply.notices:
        typer.echo(f"rag: {line}", err=True)


def _write_bib(path: Path, ws: Workspace, paper_ids: list[str]) -> None:
    if not paper_ids:
        typer.echo(f"rag: the answer cites no source; nothing written to {path}", err=True)
        return
    from rag.bibtex import write_bib
    from rag.draft import paper_metas

    keys, added = write_bib(path, paper_metas(ws.store, paper_ids))
    already = f", {len(keys) - added} already there" if added < len(keys) else ""
    typer.echo(
        f"rag: {path}: {added} of {len(keys)} cited sources added as BibTeX ({', '.join(keys)}){already}", err=True
    )


@app.command("check")
def check_draft(
    draft: Annotated[Path, typer.Argument(help="A LaTeX (.tex) or Markdown (.md) draft.", metavar="DRAFT")],
    bib: Annotated[
        Path | None, typer.Option("--bib", help="The .bib file (default: the one \\bibliography{} names).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see README).")] = False,
    suggest: Annotated[
        bool, typer.Option("--suggest", help="Also propose citations for uncited sentences that make a claim.")
    ] = False,
    fail_on: Annotated[
        Literal["unsupported", "missing", "never"],
        typer.Option("--fail-on", help="Exit 1 when a claim is unsupported (or also when its paper is missing)."),
    ] = "unsupported",
) -> None:
    """Check a draft's citations: is each citing sentence supported by the abstract it cites?"""
    _json_errors["on"] = as_json
    from rag.draft import Checker, CorpusIndex, bib_for, load_entries, read_draft
    from rag.draft import check_draft as run_check

    parsed = read_draft(draft)
    for name in parsed.unread:
        typer.echo(f"rag: {draft}: the file it includes, {name}, is not read; check that file on its own", err=True)
    bib_paths = bib_for(parsed, bib)
    entries = load_entries(bib_paths)
    with _workspace() as ws:
        retriever = ws.retriever
        checker = Checker(CorpusIndex.from_store(ws.store), retriever, ws.verifier)
        report = run_check(parsed, entries, checker, bib_paths, suggest_uncited=suggest)
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        from rag.render import print_check

        print_check(report)
    if report.failed(fail_on):
        raise typer.Exit(1)


@app.command("eval")
def run_eval(
    suites: Annotated[
        list[Path] | None, typer.Argument(help="Suite files (JSON Lines); default: the bundled suites.")
    ] = None,
    retrievers: Annotated[
        str, typer.Option(help="Comma-separated: bm25,dense,hybrid (empty for none).")
    ] = "bm25,dense,hybrid",
    answerers: Annotated[
        str, typer.Option(help="Comma-separated: extractive,llm,agent (empty for none).")
    ] = "extractive",
    out: Annotated[Path, typer.Option(help="Folder for report.json, report.md and charts.")] = Path("eval-out"),
    compare: Annotated[
        tuple[Path, Path] | None, typer.Option(help="BASELINE.json NEW.json: print deltas, exit 1 on a drop.")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="Largest drop --compare accepts.")] = 0.02,
    beir: Annotated[
        Path | None, typer.Option(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/test.tsv).")
    ] = None,
    judge: Annotated[
        bool, typer.Option(help="Also ask the configured LLM to judge correctness and faithfulness.")
    ] = False,
    counterfactual: Annotated[
        bool, typer.Option(help="Also ask each answerable question with its gold papers removed: it should abstain.")
    ] = False,
) -> None:
    """Benchmark retrieval, grounding and abstention on question suites, or gate on a baseline."""
    from rag.evaluation import EvalOptions, EvalUsageError, compare_files, run_beir, run_suites

    if not 0 <= tolerance < 1:  # also refuses nan, which would pass every gate
        _fail(f"--tolerance must be a drop from 0 to 1, such as 0.02; got {tolerance}", 2)
    if compare:
        if suites:
            _fail(f"--compare takes two reports, BASELINE.json NEW.json; {suites[0]} is one too many", 2)
        lines, failed = compare_files(*compare, tolerance)
        for line in lines:
            typer.echo(line)
        if failed:
            _fail(f"a figure dropped by more than {tolerance}, or is missing, against {compare[0]}")
        typer.echo(f"no figure dropped by more than {tolerance}")
        return
    if out.exists() and not out.is_dir():  # found now, not after the whole run
        _fail(f"--out {out} is a file; give a folder for the reports (it is created if missing)", 2)
    try:
        options = EvalOptions.parse(retrievers, answerers, judge=judge, counterfactual=counterfactual)
        ws = _workspace()
        options.check(ws.settings)
    except EvalUsageError as exc:
        _fail(str(exc), 2)
    if beir:
        report = run_beir(ws, beir, options, out)
        for name, figures in report["retrieval"].items():
            typer.echo(f"{name:<7} nDCG@10 {figures['nDCG@10']:.4f}  Recall@100 {figures['R@100']:.4f}")
        return
    problems = []
    for outcome in run_suites(ws, suites, options, out, progress=_progress):
        typer.echo((outcome.folder / "report.md").read_text())
        typer.echo("wrote " + ", ".join(str(p) for p in outcome.written), err=True)
        if not any(p.suffix == ".png" for p in outcome.written) and _charts_missing():
            typer.echo("rag: no charts written: matplotlib is not installed (pip install 'rag[charts]')", err=True)
        if outcome.problem:
            problems.append(f"{outcome.name}: {outcome.problem}")
    if problems:
        _fail("; ".join(problems))


def _charts_missing() -> bool:
    """Is matplotlib (the `charts` extra) missing? A run with nothing to chart writes none either."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


class _progress:
    """A progress bar on stderr when it is a terminal; otherwise nothing."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(transient=True, console=Console(stderr=True))
        task = bar.add_task(self.label, total=None)
        bar.start()
        return lambda done, total: bar.update(task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()


@app.command()
def mcp() -> None:
    """Serve search, ask and check to an MCP client over stdio (for editors and assistants)."""
    from rag.mcp_server import serve

    with _workspace() as ws:
        serve(ws)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback is open to others.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = DEFAULT_PORT,
) -> None:
    """Keep the store, index, embedder and LLM client loaded and answer search and ask over HTTP
    (set RAG_SERVER_URL for `rag search` and `rag ask` to use it)."""
    from rag.serve.server import run

    with _workspace() as ws:
        run(ws, host, port)


@app.command()
def chat(
    resume: Annotated[bool, typer.Option("--resume", help="Reopen the last conversation.")] = False,
) -> None:
    """A terminal chat over the papers: streamed answers, sources and grounding marks (through `rag serve` when RAG_SERVER_URL is set)."""
    from rag.tui.app import create_app

    chat_app = create_app(_settings(), resume=resume)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # Textual would wait for keys that never come
        raise RagError("rag chat needs a terminal (stdin and stdout); in scripts use rag ask or rag serve")
    chat_app.run()


@app.command()
def stats() -> None:
    """What is in the store and where it lives."""
    from rag.config import mask_url
    from rag.embedders import describe as describe_model
    from rag.lexical import LexicalIndex

    with _workspace() as ws:
        store = ws.store
        kept = store.counts()
        papers, chunks = kept if kept is not None else (len(store.paper_hashes()), store.count())
        running = store.ingest_state().running
        lag = " (an ingest is running or was interrupted: as of its last batch)" if running else ""
        rows = [
            ("papers", f"{papers}{lag}"),
            ("chunks", f"{chunks}{lag}"),
            ("store", mask_url(store.location) + (" (Chroma server)" if ws.settings.chroma_url else " (local Chroma)")),
            ("collection", ws.settings.collection),
            ("embedder", configured := describe_model(ws.settings)),
            ("bm25", LexicalIndex.describe(store)),
        ]
        if made := store.made_by():  # what the stored vectors came from, beside what rag is set to use
            same = made.name.split(":")[-1] in configured  # "endpoint:MODEL" is described as "MODEL at URL"
            other = "" if same else "; not the configured embedder: searches refuse until they match"
            rows.insert(5, ("vectors", f"made by {made}{other}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


@app.command("config")
def show_config() -> None:
    """The effective settings and where each came from (secrets are never shown)."""
    from rag.config import config_path, describe
    from rag.embedders import describe as describe_model

    settings = _settings()
    rows = describe(settings)
    width = max(len(r[0]) for r in rows)
    typer.echo(f"config file: {config_path()}" + ("" if config_path().is_file() else " (none)"))
    typer.echo(f"embedding model: {describe_model(settings)}")
    for name, value, source in rows:
        typer.echo(f"{name:<{width}}  {value}  [{source}]")


class _NeverRaised(Exception):
    """Stands for an exception class this click version lacks."""


def _click_error(name: str) -> Any:  # a click exception class; click is typed per version
    """click's exception class `name`, from whichever click typer runs on (newer typers carry
    their own copy, so `import click` may not be the one raising)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name and issubclass(cls, Exception):
            return cls
    return _NeverRaised


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (`timeout`, `kill`) stops a command as cleanly as Ctrl-C: an ingest says how far it
    got, a streamed answer that was never checked says so."""
    raise KeyboardInterrupt


def main() -> None:
    """The console script: a problem the user can fix is one line; so is anything unexpected,
    unless RAG_DEBUG is set, which shows the traceback."""
    signal.signal(signal.SIGTERM, _terminated)
    usage_error, click_exception = _click_error("UsageError"), _click_error("ClickException")
    no_args: Any = getattr(sys.modules[usage_error.__module__], "NoArgsIsHelpError", _NeverRaised)
    try:
        code = app(standalone_mode=False)  # usage errors reach the handlers below, as one line
    except no_args as exc:  # `rag` alone: the help, as before
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(2)
    except usage_error as exc:
        where = exc.ctx.command_path if exc.ctx else "rag"
        _json_errors["on"] = "--json" in sys.argv[1:]  # the command never ran to say so itself
        _say_error(f"{' '.join(exc.format_message().split())} (see '{where} -h')")
        sys.exit(exc.exit_code)
    except click_exception as exc:
        _say_error(exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("rag: interrupted", err=True)
        sys.exit(130)
    except RagError as exc:
        _end_stream()
        _say_error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        _end_stream()
        typer.echo("rag: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("RAG_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = f" writing {exc.filename}" if exc.filename else ""
            _say_error(f"no space left on the device{where}; free some space and run it again")
            sys.exit(1)
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        _say_error(f"internal error: {what} (set RAG_DEBUG=1 for the traceback)")
        sys.exit(1)
    if code == 130 and not _interrupt["said"]:  # typer turns Ctrl-C inside a command into exit code 130
        _end_stream()
        typer.echo("rag: interrupted", err=True)
        if _json_errors["on"]:  # a script reading stdout gets an object, not nothing
            typer.echo(json.dumps({"error": "interrupted"}))
    if isinstance(code, int) and code:  # typer.Exit(code) inside a command
        sys.exit(code)
