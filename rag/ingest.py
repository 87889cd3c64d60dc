"""Ingest: corpus files -> chunks -> vectors -> Chroma, incrementally, in constant memory.

Every file is validated in full before anything is written, so a bad file changes nothing. The
validating pass streams the files and keeps each paper's id, content hash and first line in a
temporary on-disk SQLite table (deleted when the ingest ends, even when it is killed), so a
multi-gigabyte arXiv snapshot needs no more memory than a small file. Inside the store lock, the
wanted papers are looked up in the store in batches by id, never by reading the whole store, and
only papers whose text (or the chunker) changed are embedded again. The write pass streams the
files once more and commits every BATCH_PAPERS papers; a changed paper's chunks are overwritten
in place and its surplus old chunks deleted, so it is never missing from the store. Each batch is
embedded in a worker thread while the main thread writes the batch before it and chunks the one
after, so an embedder's `embed` runs beside its `count_tokens` (MiniLM counts with a tokenizer of
its own). On an idle 2-core machine that took a 1,000-paper ingest from 35.5-38.1 s to 33.4-33.6 s
(0.77-0.80 to 0.81-0.85 of the embedder alone on the same texts; `python eval/bench_scale.py
--sizes 1000`); what is left is the process start and imports before the first batch, and the CPU
that chunking and writing take from the embedder on 2 cores.
An ingest runs under the store lock and is recorded in the collection metadata as running until
its last write, so an interrupted one is resumed by running it again (see `ensure_index`): it
finds the papers already stored and writes only the rest.

The BM25 index is brought up to date by the ingest that changed the store: a new segment of the
chunks it wrote, its replaced and deleted chunks marked removed (rag.lexical). Only when the
index did not match the store at the start (a killed ingest, a missing index) is it rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from rag.chunking import CHUNKER_VERSION, Window, chunk_paper, title_too_long
from rag.config import mask_url
from rag.corpus import CorpusError, Paper, Selection, bundled_corpus_path, duplicate, iter_papers, normalise_title
from rag.embedders import Embedder, identity_of
from rag.lexical import IndexUpdate, LexicalIndex
from rag.store import LOOKUP_BATCH, Chunk, Store, StoreError

T = TypeVar("T")

if TYPE_CHECKING:
    import numpy as np

BATCH_PAPERS = 32  # papers embedded and committed together
READ_BATCH = 1000  # papers read from the files between lookups in the plan table


@dataclass
class IngestReport:
    papers: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    pruned: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    undated: int = 0  # records --since left out for having no date
    # stored papers replaced by a record of the same id under another title: (id, old, new); ids
    # that only number rows ("1", "2") collide across files ingested apart
    retitled: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.pruned)


Progress = Callable[[int, int], None]  # (papers done, papers to embed)


class Plan:
    """The wanted papers of an ingest, on disk: id, content hash, where each first occurs, and
    (once looked up in the store) whether it must be written and how many chunks it has now."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # a private temporary database on disk, deleted on close
        self.db.execute(
            "CREATE TABLE wanted (id TEXT PRIMARY KEY, hash TEXT, file INT, line INT, "
            "todo INT DEFAULT 0, stored INT DEFAULT 0, chunks INT)"
        )
        self.size = 0
        self.undated = 0  # records --since left out for having no date
        self.stamps: dict[int, tuple[int, int]] = {}  # file number -> (size, mtime) when validated

    def close(self) -> None:
        self.db.close()

    @classmethod
    def scan(cls, paths: list[Path], select: Selection | None, embedder: Window | None = None) -> Plan:
        """Validate every file in one streaming pass (see `_read_batches`); with `embedder`, also
        that every paper can be chunked for its window."""
        plan = cls()
        try:
            for number, path in enumerate(paths):
                seen_any = False
                plan.stamps[number] = _stamp(path)
                for batch in _read_batches(path, None):
                    seen_any = True
                    if embedder is not None:
                        for paper in batch:
                            if problem := title_too_long(paper, embedder):
                                raise CorpusError(path, paper.line, problem)
                    plan._add(number, path, paths, [p for p in batch if not select or select.keeps(p)])
                    plan.undated += sum(select.undated(p) for p in batch) if select else 0
                if not seen_any:
                    raise CorpusError(path, None, "contains no papers")
        except BaseException:
            plan.close()
            raise
        return plan

    def _add(self, number: int, path: Path, paths: list[Path], papers: list[Paper]) -> None:
        fresh: dict[str, Paper] = {}
        for paper in papers:
            first = fresh.setdefault(paper.id, paper)
            if first.content_hash != paper.content_hash:
                raise CorpusError(path, paper.line, duplicate(paper, first.line))
        if not fresh:
            return
        marks = ",".join("?" * len(fresh))
        rows = self.db.execute(f"SELECT id, hash, file, line FROM wanted WHERE id IN ({marks})", list(fresh))
        for pid, digest, file, line in rows.fetchall():
            paper = fresh.pop(pid)
            if digest != paper.content_hash:
                if file == number:
                    raise CorpusError(path, paper.line, duplicate(paper, line))
                raise CorpusError(path, None, f"paper id {pid!r} is also in {paths[file]} with different text")
        self.db.executemany(
            "INSERT INTO wanted (id, hash, file, line) VALUES (?, ?, ?, ?)",
            [(p.id, p.content_hash, number, p.line) for p in fresh.values()],
        )
        self.size += len(fresh)

    def look_up(self, store: Store) -> tuple[int, int]:
        """Mark which wanted papers must be written; returns (new, replaced)."""
        version = f"-{CHUNKER_VERSION}"
        added = replaced = 0
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT rowid, id, hash FROM wanted WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, LOOKUP_BATCH)
            ).fetchall()
            if not rows:
                return added, replaced
            last = rows[-1][0]
            stored = store.stored([pid for _, pid, _ in rows])
            updates: list[tuple[int, int, int | None, str]] = []
            for _, pid, digest in rows:
                have = stored.get(pid)
                if have is None:
                    added += 1
                    updates.append((1, 0, None, pid))
                elif have[0] != digest + version:
                    replaced += 1
                    updates.append((1, 1, have[1], pid))
            self.db.executemany("UPDATE wanted SET todo = ?, stored = ?, chunks = ? WHERE id = ?", updates)

    def to_write(self, number: int, papers: list[Paper]) -> list[tuple[Paper, bool, int | None]]:
        """Of papers read from file `number`: those to write, at their first occurrence, with
        whether they are stored already and how many chunks they have there."""
        if not papers:
            return []
        marks = ",".join("?" * len(papers))
        rows = self.db.execute(
            f"SELECT id, file, line, stored, chunks FROM wanted WHERE todo = 1 AND id IN ({marks})",
            [p.id for p in papers],
        ).fetchall()
        first = {pid: (file, line, bool(stored), chunks) for pid, file, line, stored, chunks in rows}
        out = []
        for paper in papers:
            got = first.get(paper.id)
            if got and got[0] == number and got[1] == paper.line:
                out.append((paper, got[2], got[3]))
        return out

    def unwanted(self, ids: list[str]) -> list[str]:
        """Of these paper ids, those the files do not hold."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        have = {r[0] for r in self.db.execute(f"SELECT id FROM wanted WHERE id IN ({marks})", ids)}
        return [pid for pid in ids if pid not in have]


def _in_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), read lazily."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stamp(path: Path) -> tuple[int, int]:
    """A file's size and modification time: what tells that it changed between the two passes."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _batches(paths: list[Path], plan: Plan, select: Selection | None) -> Iterator[list[tuple[Paper, bool, int | None]]]:
    """The papers to write, BATCH_PAPERS at a time, in file order (see `Plan.to_write`)."""
    return _in_batches(
        (item for number, path in enumerate(paths) for item in _to_write(number, path, plan, select)), BATCH_PAPERS
    )


def _to_write(
    number: int, path: Path, plan: Plan, select: Selection | None
) -> Iterator[tuple[Paper, bool, int | None]]:
    """The papers of one file to write. A file written to since it was validated is not what was
    validated: what it now holds at some line says nothing about the file the user gave."""

    def changed() -> CorpusError:
        return CorpusError(
            path,
            None,
            "changed while it was being ingested (the papers stored so far are kept); run the same command again",
        )

    try:
        for papers in _read_batches(path, select):
            yield from plan.to_write(number, papers)
    except CorpusError:
        if _stamp(path) != plan.stamps.get(number):
            raise changed() from None
        raise
    if _stamp(path) != plan.stamps.get(number):
        raise changed()


def _read_batches(path: Path, select: Selection | None) -> Iterator[list[Paper]]:
    return _in_batches((p for p in iter_papers(path) if not select or select.keeps(p)), READ_BATCH)


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
    if name == step:  # to this thread, handled before raise_signal returns: not wherever it lands later
        signal.raise_signal(getattr(signal, f"SIG{sig or 'KILL'}"))


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest; says what was kept and how to resume."""

    def __init__(self, stored: int, wanted: int, bundled: bool) -> None:
        self.stored, self.wanted, self.bundled = stored, wanted, bundled
        again = "the next command resumes it" if bundled else "run the same `rag ingest` again to finish"
        super().__init__(f"{stored} of {wanted} papers were stored; {again}")


def _command(paths: list[Path] | None, prune: bool, select: Selection | None = None) -> str:
    args = ["rag", "ingest", *(str(p.resolve()) for p in paths or [])] + (["--prune"] if prune else [])
    return shlex.join(args + (select.describe().split() if select else []))


def ingest(
    store: Store,
    embedder: Embedder,
    paths: list[Path] | None = None,
    prune: bool = False,
    progress: Progress | None = None,
    locked: bool = False,
    select: Selection | None = None,
) -> IngestReport:
    """Store the papers of `paths` (default: the bundled corpus) that `select` keeps, then bring
    the BM25 index up to date.

    Holds the store lock for the whole run, records the ingest as running before its first write
    and as done after its last, so a killed ingest is recognised and resumed by running it again;
    Ctrl-C raises IngestInterrupted, which says how many papers were kept. `locked`: the caller
    already holds the store lock exclusively."""
    start = time.perf_counter()
    given = [Path(p) for p in paths] if paths else None
    source = "user" if given else "bundled"
    paths = given or [bundled_corpus_path()]
    # every file validated (against the embedder's window too) before anything is locked or written
    with closing(Plan.scan(paths, select, embedder)) as plan:
        if not plan.size:
            raise CorpusError(
                ", ".join(str(p) for p in paths),
                None,
                f"no paper matches {select.describe() if select else 'the filters'}"
                + (f" ({plan.undated} records have no date)" if plan.undated else ""),
            )

        def waiting() -> None:
            print("rag: another rag process is writing to this store; waiting for it to finish ...", file=sys.stderr)

        command = _command(given, prune, select)
        if locked:
            return _ingest_locked(store, embedder, paths, plan, source, command, prune, progress, start, select)
        with store.lock.exclusive(on_wait=waiting):
            return _ingest_locked(store, embedder, paths, plan, source, command, prune, progress, start, select)


def _ingest_locked(
    store: Store,
    embedder: Embedder,
    paths: list[Path],
    plan: Plan,
    source: str,
    command: str,
    prune: bool,
    progress: Progress | None,
    start: float,
    select: Selection | None,
) -> IngestReport:
    identity = identity_of(embedder)
    store.check_embedder(identity)
    added, replaced = plan.look_up(store)
    to_prune = _to_prune(store, plan) if prune else []
    report = IngestReport(
        papers=plan.size,
        added=added,
        replaced=replaced,
        unchanged=plan.size - added - replaced,
        pruned=len(to_prune),
        undated=plan.undated,
    )
    if not report.changed:
        if store.ingest_state().running:  # a killed ingest whose writes had all landed
            store.recount()
            store.end_ingest()
        elif store.counts() is None:  # a store from before counts were kept
            store.recount()
        if not LexicalIndex.is_fresh(store):
            LexicalIndex.build(store, locked=True)
        report.seconds = time.perf_counter() - start
        return report

    base = LexicalIndex.load(store)  # None: the index does not match the store; rebuilt at the end
    update: IndexUpdate | None = base.update(store) if base is not None and base.saved else None
    before = store.metadata()
    store.begin_ingest(source, plan.size, command)
    store.record_embedder(identity)
    fault_point("start")
    done = 0
    batches = 0
    total = added + replaced
    wrote = False  # a write to the store began (so a failure from then on may have left part of it)

    def write(batch: list[tuple[Paper, bool, int | None]], chunks: list[Chunk], vectors: Future[np.ndarray]) -> None:
        nonlocal done, batches, wrote
        old_ids: set[str] = set()
        unknown = [paper.id for paper, stored, n in batch if stored and n is None]  # layout-1 papers
        if unknown:
            old_ids |= store.chunk_ids_of(unknown)
        for paper, stored, n in batch:
            if stored and n is not None:
                old_ids.update(f"{paper.id}#{i}" for i in range(n))
        replacing = [paper for paper, stored, _ in batch if stored]
        if replacing:
            before_titles = store.abstracts([p.id for p in replacing])
            report.retitled += [
                (p.id, old, p.title)
                for p in replacing
                if (old := before_titles.get(p.id, (p.title, ""))[0])
                and normalise_title(old) != normalise_title(p.title)
            ]
        embedded = vectors.result().tolist()
        wrote = True
        store.add(chunks, embedded)
        new_ids = {c.id for c in chunks}
        store.delete_ids(old_ids - new_ids)
        if update is not None:
            update.remove(old_ids)
            update.add([c.id for c in chunks], [c.text for c in chunks])
        report.chunks_written += len(chunks)
        done += len(batch)
        batches += 1
        if progress:
            progress(done, total)
        fault_point(f"batch-{batches}")

    # One batch is embedded in a worker thread while the main thread writes the batch before it
    # and chunks the one after (onnxruntime and HTTP calls release the GIL). Batches are still
    # written one at a time, in order, each with its own vectors, so what a kill leaves is as before.
    # The worker starts by loading the model while the first batch is chunked (which loads
    # LlamaIndex's splitter): a fresh process otherwise does one after the other.
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-embed")
    ahead.submit(embedder.warm)
    try:
        if progress:
            progress(0, total)
        pending: tuple[list[tuple[Paper, bool, int | None]], list[Chunk], Future[np.ndarray]] | None = None
        for batch in _batches(paths, plan, select):
            chunks = [c for paper, _, _ in batch for c in chunk_paper(paper, embedder)]
            vectors = ahead.submit(embedder.embed, [c.text for c in chunks])
            if pending:
                write(*pending)
            pending = (batch, chunks, vectors)
        if pending:
            write(*pending)
        for i in range(0, len(to_prune), LOOKUP_BATCH):
            wrote = True
            deleted = store.delete_papers(to_prune[i : i + LOOKUP_BATCH])
            if update is not None:
                update.remove(deleted)
        fault_point("before-index")
        store.end_ingest()
    except KeyboardInterrupt:
        if update is not None:
            update.discard()
        raise IngestInterrupted(report.unchanged + done, plan.size, source == "bundled") from None
    except BaseException:
        if update is not None:
            update.discard()
        if not wrote:  # failed (an endpoint error, bad vectors) before writing anything: not interrupted
            with contextlib.suppress(StoreError):
                store.abandon_ingest(before)
        raise
    finally:
        # on an error, queued batches are dropped and the one being embedded is not waited for
        # (the interpreter joins the thread at exit); nothing of theirs was written
        ahead.shutdown(wait=False, cancel_futures=True)
    if update is not None:
        update.commit(store)
    else:
        LexicalIndex.build(store, locked=True)
    with contextlib.suppress(StoreError):  # a speed-up: Chroma's log keeps every vector either way
        store.save_vector_index(identity.dimension)
    report.seconds = time.perf_counter() - start
    return report


def _to_prune(store: Store, plan: Plan) -> list[str]:
    """Stored papers the files do not hold (reads every paper id: --prune asks for it)."""
    out: list[str] = []
    batch: list[str] = []
    for cid in store.iter_ids(where={"chunk": 0}):
        batch.append(cid.rsplit("#", 1)[0])
        if len(batch) >= LOOKUP_BATCH:
            out.extend(plan.unwanted(batch))
            batch = []
    out.extend(plan.unwanted(batch))
    return out


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def terminal_progress(label: str) -> Iterator[Progress | None]:
    """A transient progress bar on stderr when it is a terminal (papers done, papers/s, time
    left); otherwise None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    task = bar.add_task(label, total=None, rate="")
    started = time.perf_counter()

    def update(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f"{done / elapsed:.1f} papers/s" if done and elapsed > 0 else ""
        bar.update(task, completed=done, total=total, rate=rate)

    with bar:
        yield update


def ensure_index(store: Store, embedder_factory: Callable[[], Embedder]) -> IngestReport | None:
    """Make the store ready for a command that reads it.

    Only a store that was never written, with no ingest running, gets the bundled corpus (said
    on stderr, with a progress bar on a terminal). An interrupted ingest of the bundled corpus is
    resumed; an interrupted ingest of the user's files is reported, never topped up with the
    bundled papers. The BM25 index itself is checked (and rebuilt) when the retriever opens it."""
    state = store.ingest_state()
    count = store.chunk_count()
    if state.status is None and count == 0:
        with store.lock.try_exclusive() as mine:
            if not mine:
                raise StoreError(
                    "the store is empty and another rag process is using it (an ingest or a BM25 rebuild); "
                    "try again when it finishes"
                )
            state, count = store.ingest_state(), store.chunk_count()
            if state.status is None and count == 0:
                if others := store.other_collections():  # a mistyped RAG_COLLECTION: no new collection filled
                    raise StoreError(
                        f"the collection {store.settings.collection!r} at {mask_url(store.location)} is empty and the store "
                        f"holds other collections ({', '.join(others)}); set RAG_COLLECTION to one of them, or "
                        "fill this one with `rag ingest`"
                    )
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
    papers = (store.counts() or (0, 0))[0]
    if count == 0:
        raise StoreError(f"an ingest was interrupted before it stored any paper; run `{state.command}` again")
    _notice(
        f"rag: an ingest was interrupted before all {state.wanted} of its papers were stored (the store holds "
        f"{papers} papers in all); run `{state.command}` again to finish"
    )
    return None


def _auto_ingest(store: Store, embedder_factory: Callable[[], Embedder], locked: bool = False) -> IngestReport:
    try:
        with terminal_progress("embedding the bundled corpus") as progress:
            return ingest(store, embedder_factory(), progress=progress, locked=locked)
    except IngestInterrupted as exc:
        _notice(f"rag: interrupted; {exc}")
        raise
