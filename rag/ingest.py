"""Ingest: corpus files -> chunks -> vectors -> Chroma, incrementally.

Every file is validated in full before anything is written, so a bad file changes nothing.
Only papers whose text (or the chunker) changed are embedded again; a changed paper's chunks are
overwritten in place and its surplus old chunks deleted, so it is never missing from the store.
An ingest runs under the store lock and is recorded in the collection metadata as running until
its last write, so an interrupted one is resumed by running it again (see `ensure_index`).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.chunking import CHUNKER_VERSION, chunk_paper
from rag.corpus import CorpusError, Paper, bundled_corpus_path, iter_papers, scan_corpus
from rag.embedder import Embedder
from rag.lexical import LexicalIndex
from rag.store import Store, StoreError

BATCH_PAPERS = 32


@dataclass
class IngestReport:
    papers: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    pruned: int = 0
    chunks_written: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.pruned)


Progress = Callable[[int, int], None]  # (papers done, papers to embed)


def _wanted(paths: list[Path]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        for pid, digest in scan_corpus(path).items():
            if pid in wanted and wanted[pid] != digest:
                raise CorpusError(path, None, f"paper id {pid!r} is also in {origin[pid]} with different text")
            wanted[pid] = digest
            origin.setdefault(pid, path)
    return wanted


def _papers_to_write(paths: list[Path], ids: set[str]) -> Iterator[Paper]:
    seen: set[str] = set()
    for path in paths:
        for paper in iter_papers(path):
            if paper.id in ids and paper.id not in seen:
                seen.add(paper.id)
                yield paper


def fault_point(step: str) -> None:
    """Test hook: `RAG_FAULT_STOP_AT=<step>[:<signal>]` sends the process <signal> (KILL by
    default; INT acts like Ctrl-C, STOP pauses it until SIGCONT) when it reaches <step>. The
    fault-injection tests (tests/faults/) use it to stop an ingest at a chosen point. Steps:
    `start` (the ingest is recorded as running, nothing written yet), `batch-N` (after the N-th
    batch of papers is stored), `before-index` (every chunk written, the ingest not yet marked
    done nor the BM25 index built), `bm25-save` (a BM25 build written to its temporary folder, not
    yet made current). Unset, it costs one environment lookup."""
    wanted = os.environ.get("RAG_FAULT_STOP_AT")
    if not wanted:
        return
    name, _, sig = wanted.partition(":")
    if name == step:
        os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest; says what was kept and how to resume."""

    def __init__(self, stored: int, wanted: int, bundled: bool) -> None:
        self.stored, self.wanted, self.bundled = stored, wanted, bundled
        again = "the next command resumes it" if bundled else "run the same `rag ingest` again to finish"
        super().__init__(f"{stored} of {wanted} papers were stored; {again}")


def _command(paths: list[Path] | None, prune: bool) -> str:
    args = ["rag", "ingest", *(str(p.resolve()) for p in paths or [])] + (["--prune"] if prune else [])
    return shlex.join(args)


def ingest(
    store: Store,
    embedder: Embedder,
    paths: list[Path] | None = None,
    prune: bool = False,
    progress: Progress | None = None,
    locked: bool = False,
) -> IngestReport:
    """Store the papers of `paths` (default: the bundled corpus), then rebuild the BM25 index.

    Holds the store lock for the whole run, records the ingest as running before its first write
    and as done after its last, so a killed ingest is recognised and resumed by running it again;
    Ctrl-C raises IngestInterrupted, which says how many papers were kept. `locked`: the caller
    already holds the store lock exclusively."""
    start = time.perf_counter()
    given = [Path(p) for p in paths] if paths else None
    source = "user" if given else "bundled"
    paths = given or [bundled_corpus_path()]
    wanted = _wanted(paths)  # every file validated before anything is locked or written

    def waiting() -> None:
        print("rag: another rag process is writing to this store; waiting for it to finish ...", file=sys.stderr)

    if locked:
        return _ingest_locked(store, embedder, paths, wanted, source, _command(given, prune), prune, progress, start)
    with store.lock.exclusive(on_wait=waiting):
        return _ingest_locked(store, embedder, paths, wanted, source, _command(given, prune), prune, progress, start)


def _ingest_locked(
    store: Store,
    embedder: Embedder,
    paths: list[Path],
    wanted: dict[str, str],
    source: str,
    command: str,
    prune: bool,
    progress: Progress | None,
    start: float,
) -> IngestReport:
    stored = store.paper_hashes()
    version = f"-{CHUNKER_VERSION}"
    to_write = {pid for pid, digest in wanted.items() if stored.get(pid) != digest + version}
    to_prune = set(stored) - set(wanted) if prune else set()
    report = IngestReport(
        papers=len(wanted),
        added=sum(1 for pid in to_write if pid not in stored),
        replaced=sum(1 for pid in to_write if pid in stored),
        unchanged=len(wanted) - len(to_write),
        pruned=len(to_prune),
    )
    if not report.changed:
        if store.ingest_state().running:  # a killed ingest whose writes had all landed
            store.end_ingest()
        if not LexicalIndex.is_fresh(store):
            LexicalIndex.build(store, locked=True)
        report.seconds = time.perf_counter() - start
        return report

    store.begin_ingest(source, len(wanted), command)
    fault_point("start")
    done = 0
    batches = 0
    batch: list[Paper] = []

    def flush() -> None:
        nonlocal done, batches
        chunks = [c for paper in batch for c in chunk_paper(paper, embedder.count_tokens)]
        replaced = [p.id for p in batch if p.id in stored]
        old_ids = store.chunk_ids_of(replaced) if replaced else set()
        store.add(chunks, embedder.embed([c.text for c in chunks]).tolist())
        store.delete_ids(old_ids - {c.id for c in chunks})
        report.chunks_written += len(chunks)
        done += len(batch)
        batches += 1
        batch.clear()
        if progress:
            progress(done, len(to_write))
        fault_point(f"batch-{batches}")

    try:
        for paper in _papers_to_write(paths, to_write):
            batch.append(paper)
            if len(batch) >= BATCH_PAPERS:
                flush()
        if batch:
            flush()
        store.delete_papers(to_prune)
        fault_point("before-index")
        store.end_ingest()
    except KeyboardInterrupt:
        raise IngestInterrupted(report.unchanged + done, len(wanted), source == "bundled") from None
    LexicalIndex.build(store, locked=True)
    report.seconds = time.perf_counter() - start
    return report


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def terminal_progress(label: str) -> Iterator[Progress | None]:
    """A transient progress bar on stderr when it is a terminal; otherwise None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as Bar

    bar = Bar(transient=True, console=Console(stderr=True))
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def ensure_index(store: Store, embedder_factory: Callable[[], Embedder]) -> IngestReport | None:
    """Make the store ready for a command that reads it.

    Only a store that was never written, with no ingest running, gets the bundled corpus (said
    on stderr, with a progress bar on a terminal). An interrupted ingest of the bundled corpus is
    resumed; an interrupted ingest of the user's files is reported, never topped up with the
    bundled papers. The BM25 index itself is checked (and rebuilt) when the retriever opens it."""
    state = store.ingest_state()
    count = store.count()
    if state.status is None and count == 0:
        with store.lock.try_exclusive() as mine:
            if not mine:
                raise StoreError(
                    "the store is empty and another rag process is using it (an ingest or a BM25 rebuild); "
                    "try again when it finishes"
                )
            state, count = store.ingest_state(), store.count()
            if state.status is None and count == 0:
                _notice(f"rag: the store at {store.location} is empty; ingesting the bundled corpus first ...")
                return _auto_ingest(store, embedder_factory, locked=True)
    if not state.running:
        if count == 0:
            raise StoreError(f"the store at {store.location} holds no papers; add some with `rag ingest FILE`")
        return None
    with store.lock.try_shared() as idle:
        if not idle:
            if count == 0:
                raise StoreError(
                    "an ingest into this store is running and nothing is stored yet; try again when it finishes"
                )
            _notice("rag: an ingest into this store is running; results cover the papers stored so far")
            return None
    if state.source == "bundled":
        _notice("rag: resuming the interrupted ingest of the bundled corpus ...")
        return _auto_ingest(store, embedder_factory)
    papers = len(store.paper_hashes())
    if count == 0:
        raise StoreError(f"an ingest was interrupted before it stored any paper; run `{state.command}` again")
    _notice(
        f"rag: an ingest was interrupted ({papers} papers stored, {state.wanted} wanted); "
        f"run `{state.command}` again to finish"
    )
    return None


def _auto_ingest(store: Store, embedder_factory: Callable[[], Embedder], locked: bool = False) -> IngestReport:
    try:
        with terminal_progress("embedding the bundled corpus") as progress:
            return ingest(store, embedder_factory(), progress=progress, locked=locked)
    except IngestInterrupted as exc:
        _notice(f"rag: interrupted; {exc}")
        raise
