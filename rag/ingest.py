"""Ingest: corpus files -> chunks -> vectors -> Chroma, incrementally.

Every file is validated in full before anything is written, so a bad file changes nothing.
Only papers whose text (or the chunker) changed are embedded again; a changed paper's chunks are
overwritten in place and its surplus old chunks deleted, so it is never missing from the store.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.chunking import CHUNKER_VERSION, chunk_paper
from rag.corpus import CorpusError, Paper, bundled_corpus_path, iter_papers, scan_corpus
from rag.embedder import Embedder
from rag.lexical import LexicalIndex
from rag.store import Store

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


def ingest(
    store: Store,
    embedder: Embedder,
    paths: list[Path] | None = None,
    prune: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    start = time.perf_counter()
    paths = [Path(p) for p in paths] if paths else [bundled_corpus_path()]
    wanted = _wanted(paths)
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
        if not LexicalIndex.is_fresh(store):
            LexicalIndex.build(store)
        report.seconds = time.perf_counter() - start
        return report

    store.mark_changing()
    done = 0
    batch: list[Paper] = []

    def flush() -> None:
        nonlocal done
        chunks = [c for paper in batch for c in chunk_paper(paper, embedder.count_tokens)]
        replaced = [p.id for p in batch if p.id in stored]
        old_ids = store.chunk_ids_of(replaced) if replaced else set()
        store.add(chunks, embedder.embed([c.text for c in chunks]).tolist())
        store.delete_ids(old_ids - {c.id for c in chunks})
        report.chunks_written += len(chunks)
        done += len(batch)
        batch.clear()
        if progress:
            progress(done, len(to_write))

    for paper in _papers_to_write(paths, to_write):
        batch.append(paper)
        if len(batch) >= BATCH_PAPERS:
            flush()
    if batch:
        flush()
    store.delete_papers(to_prune)
    store.refresh_fingerprint()
    LexicalIndex.build(store)
    report.seconds = time.perf_counter() - start
    return report


def ensure_index(store: Store, embedder_factory: Callable[[], Embedder]) -> IngestReport | None:
    """Commands that need the index ingest the bundled corpus when the store is empty."""
    if store.count() > 0:
        return None
    print("rag: the store is empty; ingesting the bundled corpus first ...", file=sys.stderr)
    return ingest(store, embedder_factory(), progress=None)
