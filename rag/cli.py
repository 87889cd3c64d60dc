"""The `rag` command: a thin layer over the core. Heavy modules are imported inside commands,
so `rag --help` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.workspace import Workspace

app = typer.Typer(
    name="rag",
    help="Answer questions about research papers from their abstracts, with every claim cited and checked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

RetrieverOpt = Annotated[Optional[str], typer.Option("--retriever", help="hybrid, dense or bm25.")]


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"rag: error: {message}", err=True)
    raise typer.Exit(code)


def _settings(**flags) -> Settings:
    from rag.config import load_settings

    return load_settings(**flags)


def _workspace(**flags) -> Workspace:
    from rag.workspace import Workspace

    return Workspace(_settings(**flags))


@app.command()
def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Corpus files (.txt, .jsonl, .csv); default: the bundled abstracts.")] = None,
    prune: Annotated[bool, typer.Option(help="Delete stored papers that are not in the given files.")] = False,
) -> None:
    """Add papers to the store; unchanged papers are skipped, changed ones replaced."""
    from rag.ingest import ingest as run_ingest

    ws = _workspace()
    progress = None
    if sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True, console=__import__("rich.console").console.Console(stderr=True))
        task = bar.add_task("embedding", total=None)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

    try:
        report = run_ingest(ws.store, ws.embedder, paths or None, prune=prune, progress=progress)
    finally:
        if progress:
            bar.stop()
    typer.echo(
        f"{report.papers} papers: {report.added} added, {report.replaced} replaced, "
        f"{report.unchanged} unchanged, {report.pruned} pruned; "
        f"{report.chunks_written} chunks embedded in {report.seconds:.1f} s",
        err=True,
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many papers.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see README).")] = False,
    retriever: RetrieverOpt = None,
) -> None:
    """Rank papers for a query (hybrid dense + BM25 by default)."""
    if not query.strip():
        _fail("the query is empty; give some words to search for", 2)
    ws = _workspace(retriever=retriever)
    result = ws.retriever.search(query, k=k, mode=ws.settings.retriever)
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    from rag.render import print_search

    print_search(result)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question; '-' reads it from standard input.")],
    k: Annotated[Optional[int], typer.Option("-k", min=1, max=50, help="How many papers to draw on.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object at the end (see README).")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the answer only when complete.")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Answer extractively even if an LLM is configured.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="LLM model name (RAG_LLM_MODEL).")] = None,
    retriever: RetrieverOpt = None,
) -> None:
    """Answer a question from the papers, citing each sentence and checking the citations."""
    if question == "-":
        question = sys.stdin.read()
    question = " ".join(question.split())
    if not question:
        _fail("the question is empty; ask something, e.g. rag ask \"which papers compare FP8 vs INT8?\"", 2)
    settings = _settings(top_k=k, retriever=retriever, llm_model=model, llm="off" if no_llm else None)
    from rag.backends import open_llm, open_verifier

    llm = open_llm(settings)  # starts importing the LLM client in the background
    from rag.answer import answer_question
    from rag.workspace import Workspace

    ws = Workspace(settings)
    stream = llm is not None and not as_json and not no_stream and sys.stdout.isatty()
    from rag import render

    answer = answer_question(
        question,
        ws.retriever,
        k=settings.top_k,
        mode=settings.retriever,
        llm=llm.get() if llm else None,
        on_token=render.stream_token if stream else None,
        verifier=open_verifier(settings, llm),
    )
    if as_json:
        typer.echo(json.dumps(answer.as_json(), ensure_ascii=False))
    else:
        render.print_answer(answer, streamed=stream)


@app.command()
def stats() -> None:
    """What is in the store and where it lives."""
    from rag.lexical import LexicalIndex

    ws = _workspace()
    store = ws.store
    papers = len(store.paper_hashes())
    rows = [
        ("papers", str(papers)),
        ("chunks", str(store.count())),
        ("store", store.location + (" (Chroma server)" if ws.settings.chroma_url else " (local Chroma)")),
        ("collection", ws.settings.collection),
        ("embedder", f"all-MiniLM-L6-v2 (ONNX) from {ws.settings.model_dir}"),
        ("bm25", "fresh" if LexicalIndex.is_fresh(store) and papers else "stale (rebuilt on next search)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


@app.command("config")
def show_config() -> None:
    """The effective settings and where each came from (secrets are never shown)."""
    from rag.config import config_path, describe

    settings = _settings()
    rows = describe(settings)
    width = max(len(r[0]) for r in rows)
    typer.echo(f"config file: {config_path()}")
    for name, value, source in rows:
        typer.echo(f"{name:<{width}}  {value}  [{source}]")


def main() -> None:
    try:
        app()
    except RagError as exc:
        typer.echo(f"rag: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("rag: interrupted", err=True)
        sys.exit(130)
