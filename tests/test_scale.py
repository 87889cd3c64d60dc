"""Cost grows with the change, not with the store: ingest looks papers up instead of reading the
store, counts are kept, and the BM25 index grows by segments that score exactly like one index."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from rag import lexical
from rag.corpus import CorpusError, Selection, bundled_corpus_path, iter_papers, parse_selection
from rag.ingest import ingest
from rag.lexical import CURRENT, LexicalIndex
from rag.store import SYNC_THRESHOLD, Store
from rag.workspace import Workspace
from tests.conftest import make_settings, run_rag, write_jsonl

QUERIES = [
    "quantization of large language models to FP8",
    "retrieval benchmark for scientific literature search",
    "diffusion models for image generation",
    "attention kernels on GPUs",
]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    papers = list(iter_papers(bundled_corpus_path()))[:60]
    return [{"id": f"p{i:03d}", "title": p.title, "abstract": p.abstract} for i, p in enumerate(papers)]


def open_ws(data_dir, **kw) -> Workspace:
    return Workspace(make_settings(data_dir, **kw))


def no_scans(monkeypatch) -> None:
    """Fail any read of the whole store."""

    def scan(*args, **kwargs):
        raise AssertionError("read the whole store")

    for name in ("_all", "iter_ids", "iter_chunks", "paper_hashes", "all_chunks", "recount"):
        monkeypatch.setattr(Store, name, scan)
    monkeypatch.setattr(LexicalIndex, "build", classmethod(lambda cls, store, locked=False: scan()))


def same_scores(a: LexicalIndex, b: LexicalIndex) -> None:
    for q in QUERIES:
        got = [(h.chunk_id, round(h.score, 4)) for h in a.search(q, 20)]
        want = [(h.chunk_id, round(h.score, 4)) for h in b.search(q, 20)]
        assert got == want, q
        assert a.perfect_score(q) == pytest.approx(b.perfect_score(q))
    assert sorted(a.chunk_ids) == sorted(b.chunk_ids)


def test_incremental_ingests_never_read_the_whole_store_and_score_like_a_full_build(tmp_path, rows, monkeypatch):
    ws = open_ws(tmp_path / "data")
    first = write_jsonl(tmp_path / "a.jsonl", rows[:40])
    ingest(ws.store, ws.embedder, [first])
    assert ws.store.counts() == (40, ws.store.count())

    changed = [dict(r) for r in rows[:50]]
    for r in changed[:5]:
        r["abstract"] = "Zebra finches sing in dialects that young birds learn from tutors. " + r["abstract"][:200]
    with monkeypatch.context() as m:
        no_scans(m)
        report = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", changed)])
        assert (report.added, report.replaced, report.unchanged) == (10, 5, 35)
        noop = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", changed)])
        assert noop.chunks_written == 0
        index = LexicalIndex.load(ws.store)
        assert index is not None and len(index.segments) == 2  # the first ingest's and this one's
        assert ws.store.counts() == (50, ws.store.count())
        hits = index.search("zebra finches dialects tutors", 10)
        assert {h.chunk_id.split("#")[0] for h in hits} == {r["id"] for r in changed[:5]}
        assert index.perfect_score("zebra finches") > 0

    pruned = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", changed[5:45])], prune=True)
    assert pruned.pruned == 10 and ws.store.counts() == (40, ws.store.count())
    segmented = LexicalIndex.load(ws.store)
    assert segmented is not None and any(len(s.removed) for s in segmented.segments)
    assert "zebra" not in {t for t in ("zebra",) if segmented.knows(t)}  # removed rows leave the statistics
    rebuilt = LexicalIndex.build(ws.store)
    assert len(rebuilt.segments) == 1
    same_scores(segmented, rebuilt)


def test_segments_are_merged_when_there_are_too_many(tmp_path, rows, monkeypatch):
    monkeypatch.setattr(lexical, "MAX_SEGMENTS", 2)
    ws = open_ws(tmp_path / "data")
    for n in (10, 20, 30, 40):
        ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / f"{n}.jsonl", rows[:n])])
    index = LexicalIndex.load(ws.store)
    assert index is not None and len(index.segments) <= 2
    assert len(index.chunk_ids) == ws.store.count()
    folder = LexicalIndex.folder(ws.store)
    listed = {s["name"] for s in json.loads((folder / CURRENT).read_text())["segments"]}
    assert listed == {s.name for s in index.segments}
    same_scores(index, LexicalIndex.build(ws.store))


def test_counts_are_kept_and_made_exact_after_a_killed_ingest(tmp_path, rows):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", rows[:10])])
    papers, chunks = ws.store.counts() or (0, 0)
    assert papers == 10 and chunks == ws.store.count()
    # what a kill between a write and its count update leaves: running, counts behind
    ws.store.begin_ingest("user", 12, "rag ingest a.jsonl")
    ws.store._update_metadata(rag_papers=3, rag_chunks=3)
    report = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", rows[:12])])
    assert report.added == 2
    assert ws.store.counts() == (12, ws.store.count())


def test_one_chunk_papers_keep_one_copy_of_their_abstract_and_old_layouts_read(tmp_path, rows):
    ws = open_ws(tmp_path / "data")
    short = min(rows, key=lambda r: len(r["abstract"]))
    short_id0 = f"{short['id']}#0"
    long = {"id": "long", "title": "A long one", "abstract": " ".join(r["abstract"] for r in rows[:3])}
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", [short, long])])
    got = ws.store.collection.get(ids=[short_id0, "long#0"], include=["metadatas"])
    meta = dict(zip(got["ids"], got["metadatas"]))
    assert "abstract" not in meta[short_id0] and meta[short_id0]["chunks"] == 1
    assert meta["long#0"]["abstract"] == long["abstract"] and meta["long#0"]["chunks"] > 1
    abstracts = ws.store.abstracts([short["id"], "long"])
    assert abstracts[short["id"]] == (short["title"], short["abstract"])
    assert abstracts["long"][1] == long["abstract"]
    # a layout-1 first chunk: the abstract in its metadata, no chunk count; read and replaced alike
    old = dict(meta[short_id0], abstract=short["abstract"])
    old["chunks"] = None  # Chroma removes a key set to None
    ws.store.collection.update(ids=[short_id0], metadatas=[old])
    assert ws.store.abstracts([short["id"]])[short["id"]][1] == short["abstract"]
    assert ws.store.stored([short["id"]])[short["id"]][1] is None
    edited = dict(short, abstract="Entirely new text about zebra finches.")
    assert ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", [edited, long])]).replaced == 1
    assert ws.store.abstracts([short["id"]])[short["id"]][1] == edited["abstract"]


def test_chunk_text_is_kept_in_metadata_and_stores_with_it_in_documents_read_the_same(tmp_path, rows):
    """Chroma indexes documents for a full-text search rag never uses; layout 3 keeps the text in
    the metadata. A layout-2 store (text in the document) reads and re-ingests alike."""
    ws = open_ws(tmp_path / "data")
    papers = rows[:3] + [{"id": "long", "title": "A long one", "abstract": " ".join(r["abstract"] for r in rows[3:6])}]
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", papers)])
    got = ws.store.collection.get(include=["documents", "metadatas"])
    assert not any(got["documents"] or [])
    assert all(m["text"].startswith(m["title"] + "\n") for m in got["metadatas"])
    ids, texts, metas = ws.store.all_chunks()
    assert all("text" not in m for m in metas)
    question = rows[1]["abstract"][:200]

    def reads() -> tuple:
        hits = ws.store.dense(ws.embedder.embed([question])[0].tolist(), 5)
        index = LexicalIndex.build(ws.store)
        return (
            sorted(zip(*ws.store.all_chunks()[:2])),
            [(h.chunk_id, h.text, h.metadata) for h in hits],
            ws.store.abstracts([p["id"] for p in papers]),
            ws.store.paper("long"),
            [(h.chunk_id, round(h.score, 4)) for h in index.search(question, 10)],
        )

    before = reads()
    assert before[1][0][0] == f"{rows[1]['id']}#0" and before[1][0][1] == texts[ids.index(f"{rows[1]['id']}#0")]
    assert before[2]["long"] == ("A long one", papers[3]["abstract"])
    # layout 2: the text in Chroma's document, none in the metadata (Chroma removes a key set to None)
    vectors = ws.store.collection.get(ids=ids, include=["embeddings"])["embeddings"]
    ws.store.collection.update(
        ids=ids, embeddings=vectors, documents=texts, metadatas=[{**m, "text": None} for m in metas]
    )
    assert not any("text" in m for m in ws.store.collection.get(include=["metadatas"])["metadatas"])
    assert reads() == before
    edited = dict(rows[0], abstract="Entirely new text about zebra finches.")
    report = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", [edited, *papers[1:]])])
    assert report.replaced == 1
    got = ws.store.collection.get(ids=[f"{rows[0]['id']}#0"], include=["metadatas"])
    assert got["metadatas"][0]["text"] == f"{rows[0]['title']}\n{edited['abstract']}"
    assert ws.store.abstracts([rows[0]["id"]])[rows[0]["id"]][1] == edited["abstract"]


def test_an_ingest_leaves_chromas_vector_index_saved(tmp_path, rows):
    """Chroma saves its HNSW index every SYNC_THRESHOLD vectors; what was written since is replayed
    from its log by every process that loads the index. After an ingest nothing is left to replay,
    and the threshold is Chroma's own again, also after a save killed half-way."""
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", rows[:20])])
    db = sqlite3.connect(tmp_path / "data" / "chroma" / "chroma.sqlite3")
    (logged,) = db.execute("SELECT max(seq_id) FROM embeddings_queue").fetchone()
    saved = db.execute(
        "SELECT s.type, m.seq_id FROM segments s LEFT JOIN max_seq_id m ON m.segment_id = s.id"
    ).fetchall()
    assert len(saved) == 2 and all(seq == logged for _, seq in saved), saved  # the vector segment's too
    db.close()
    assert ws.store.collection.configuration["hnsw"]["sync_threshold"] == SYNC_THRESHOLD
    hits = ws.store.dense(ws.embedder.embed([rows[3]["abstract"]])[0].tolist(), 3)  # the reopened client
    assert hits[0].chunk_id == f"{rows[3]['id']}#0"
    ws.store.collection.modify(configuration={"hnsw": {"sync_threshold": 1}})  # killed between its two steps
    ws.close()
    again = open_ws(tmp_path / "data")
    assert again.store.collection.configuration["hnsw"]["sync_threshold"] == SYNC_THRESHOLD
    again.close()


def test_category_and_since_select_arxiv_records(tmp_path, rows):
    snapshot = [
        dict(rows[0], id="2301.00001", categories="cs.CL cs.AI", update_date="2023-02-01"),
        dict(rows[1], id="2101.00002", categories="cs.CL", update_date="2021-05-01"),
        dict(rows[2], id="2302.00003", categories="math.CO", update_date="2023-03-01"),
        dict(rows[3], id="2303.00004", categories="cs.LG stat.ML", update_date="2023-01-01"),
    ]
    path = write_jsonl(tmp_path / "arxiv.jsonl", snapshot)
    ws = open_ws(tmp_path / "data")
    select = parse_selection("cs.CL,cs.LG", "2023-01-01")
    report = ingest(ws.store, ws.embedder, [path], select=select)
    assert report.added == 2 and set(ws.store.paper_hashes()) == {"2301.00001", "2303.00004"}
    with pytest.raises(CorpusError, match="no paper matches --category q-bio.NC"):
        ingest(ws.store, ws.embedder, [path], select=Selection(frozenset({"q-bio.NC"})))
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    proc = run_rag("ingest", str(path), "--since", "2023-13-01", env=env)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "rag: error: --since '2023-13-01' is not a date; give it as YYYY-MM-DD"
    )
    for option, value, said in [
        ("--category", ",,", "--category names no category"),
        ("--since", "", "--since is empty"),
    ]:
        proc = run_rag("ingest", str(path), option, value, env=env)  # `--category "$UNSET"` selects nothing, not all
        assert proc.returncode == 2 and said in proc.stderr
    proc = run_rag("stats", env=env)
    assert proc.returncode == 0 and proc.stdout.split("\n")[0].split() == ["papers", "2"]
    # categories listed with commas or in capitals match; records without a date are counted
    more = write_jsonl(
        tmp_path / "more.jsonl",
        [
            dict(rows[4], id="2304.00005", categories="CS.CL,cs.LG", update_date="2023-04-01"),
            dict(rows[5], id="x6", categories="cs.CL"),
        ],
    )
    proc = run_rag("ingest", str(more), "--category", "cs.CL", "--since", "2023-01-01", env=env)
    assert proc.returncode == 0 and "1 paper: 1 added" in proc.stderr, proc.stderr
    assert "rag: 1 record without a date (update_date or year) was left out by --since" in proc.stderr


def test_a_plan_keeps_the_first_of_repeated_records_and_rejects_conflicts(tmp_path, rows):
    ws = open_ws(tmp_path / "data")
    path = write_jsonl(tmp_path / "a.jsonl", [rows[0], rows[1], rows[0]])
    assert ingest(ws.store, ws.embedder, [path]).added == 2
    clash = write_jsonl(tmp_path / "b.jsonl", [dict(rows[0], abstract="Other text.")])
    with pytest.raises(CorpusError, match="paper id 'p000' is also in .*a.jsonl with different text"):
        ingest(ws.store, ws.embedder, [path, clash])


def test_segment_ids_are_a_memory_mapped_array(tmp_path, rows):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", rows[:5])])
    index = LexicalIndex.load(ws.store)
    assert index is not None
    (seg,) = index.segments
    assert isinstance(seg.ids, np.memmap) and isinstance(seg.rows, np.memmap)
    assert list(seg.ids) == sorted(seg.ids)


def test_the_embedder_uses_the_configured_threads_and_batching_keeps_vectors(tmp_path):
    from rag.embedders.minilm import MiniLM, available_cpus

    one = MiniLM.from_settings(make_settings(tmp_path / "d", embed_threads=1))
    every = MiniLM.from_settings(make_settings(tmp_path / "d"))
    assert one._fn.threads == 1 and every._fn.threads == available_cpus()
    texts = [f"Paper {i}: " + "quantization of language models " * (i % 7 + 1) for i in range(20)]
    small, large = one.embed(texts, batch_size=8), one.embed(texts, batch_size=32)
    assert np.allclose(small, large, atol=1e-5)
    assert np.allclose(small, every.embed(texts), atol=1e-5)


def test_the_int8_embedder_is_made_once_beside_the_model_and_a_store_never_mixes_vectors(tmp_path, rows):
    import shutil

    from rag.embedders.minilm import MiniLM
    from rag.store import StoreError
    from tests.conftest import MODEL_DIR

    model = tmp_path / "models" / "all-MiniLM-L6-v2"
    shutil.copytree(MODEL_DIR, model)
    data = tmp_path / "data"
    full = MiniLM(model)
    int8 = MiniLM(model, quantized=True)
    made = model.parent / "all-MiniLM-L6-v2-int8" / "model.onnx"
    assert made.is_file() and made.stat().st_size < (model / "onnx" / "model.onnx").stat().st_size / 2
    assert int8.name == "all-MiniLM-L6-v2-int8" and full.name == "all-MiniLM-L6-v2"
    texts = [r["abstract"] for r in rows[:8]]
    a, b = full.embed(texts), int8.embed(texts)
    assert not np.allclose(a, b) and float(np.min(np.sum(a * b, axis=1))) > 0.9  # close, not equal

    ws = Workspace(make_settings(data, embed_model_dir=model, embed_quantized=True))
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", rows[:3])])
    assert ws.store.metadata()["rag_embedder"] == "all-MiniLM-L6-v2-int8"
    assert ws.retriever.search("language models", k=1).results
    other = Workspace(make_settings(data, embed_model_dir=model))
    with pytest.raises(StoreError, match="holds vectors made by all-MiniLM-L6-v2-int8.*RAG_EMBED_QUANTIZED=1"):
        ingest(other.store, other.embedder, [write_jsonl(tmp_path / "b.jsonl", rows[:4])])
    with pytest.raises(StoreError, match="holds vectors made by all-MiniLM-L6-v2-int8"):
        _ = other.retriever
    assert other.store.counts() == (3, other.store.count())
    proc = run_rag("search", "language models", env={"RAG_DATA_DIR": str(data), "RAG_EMBED_MODEL_DIR": str(model)})
    assert proc.returncode == 1 and proc.stderr.startswith("rag: error: collection 'papers' holds vectors made by")
