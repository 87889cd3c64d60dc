"""Prints, as JSON, what a data folder holds: Chroma's chunk ids, the saved BM25 index's ids,
the ingest state and any orphan chunks. Run in its own process (`python -m
tests.faults.inspect_store`) so the test process never keeps a Chroma client open on a store
that other processes write."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from rag.config import load_settings
from rag.lexical import LexicalIndex
from rag.store import Store


def inspect() -> dict:
    store = Store(load_settings())
    ids, _, metas = store.all_chunks()
    by_paper: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for meta in metas:
        by_paper[str(meta["paper_id"])].append((int(meta["chunk"]), str(meta["content_hash"])))
    orphans = sorted(
        pid
        for pid, chunks in by_paper.items()
        if sorted(i for i, _ in chunks) != list(range(len(chunks))) or len({h for _, h in chunks}) != 1
    )
    bm25_ids = LexicalIndex.saved_ids(store)  # what the saved index holds, fresh or not
    state = store.ingest_state()
    return {
        "chroma_ids": sorted(ids),
        "papers": sorted(by_paper),
        "orphans": orphans,
        "bm25_ids": sorted(bm25_ids) if bm25_ids is not None else None,
        "bm25_status": LexicalIndex.status(store),
        "ingest": state.status,
        "source": state.source,
    }


if __name__ == "__main__":
    json.dump(inspect(), sys.stdout)
