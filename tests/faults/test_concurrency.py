"""Several `rag` processes at once on one store: parallel rebuilds of a stale BM25 index, and a
search while an ingest is writing."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from tests.conftest import write_jsonl
from tests.faults.conftest import N_PAPERS, assert_consistent, inspect, popen_rag, rag, wait_stopped

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

QUERY = "mixture of experts routing"


def extra_corpus(tmp_path, corpus_rows, n=40):
    rows = [{**r, "id": "x" + r["id"], "title": r["title"] + " (revisited)"} for r in corpus_rows[:n]]
    return write_jsonl(tmp_path / "extra.jsonl", rows)


def test_parallel_searches_on_a_stale_index_all_succeed(tmp_path, ingested, corpus_rows):
    killed = rag("ingest", str(extra_corpus(tmp_path, corpus_rows)), env=ingested, stop_at="before-index")
    assert killed.returncode == -signal.SIGKILL
    assert inspect(ingested)["bm25_status"] == "stale"

    procs = [popen_rag("search", QUERY, "--json", "--retriever", "bm25", env=ingested) for _ in range(6)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    results = [[r["paper_id"] for r in json.loads(out)["results"]] for out, _ in outputs]
    assert results[0] and all(r == results[0] for r in results)
    assert_consistent(ingested, papers=N_PAPERS + 40)


def test_a_search_during_an_ingest_uses_what_is_stored_and_saves_nothing(tmp_path, ingested, corpus_rows):
    before = inspect(ingested)
    writer = popen_rag("ingest", str(extra_corpus(tmp_path, corpus_rows)), env=ingested, stop_at="batch-1:STOP")
    try:
        wait_stopped(writer)
        reader = rag("search", QUERY, "--json", "--retriever", "bm25", env=ingested)
        assert reader.returncode == 0, reader.stderr
        assert "rag: an ingest into this store is running; results cover the papers stored so far" in reader.stderr
        assert "the BM25 index is kept in memory until it finishes" in reader.stderr
        during = inspect(ingested)
        assert len(during["papers"]) == N_PAPERS + 32
        assert during["bm25_ids"] == before["bm25_ids"] and during["bm25_status"] == "stale"
    finally:
        writer.send_signal(signal.SIGCONT)
    _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert_consistent(ingested, papers=N_PAPERS + 40)
