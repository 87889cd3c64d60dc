import pytest

from rag.corpus import CorpusError, paper_id_for
from rag.ingest import ingest
from rag.lexical import LexicalIndex
from rag.workspace import Workspace
from tests.conftest import make_settings, run_rag, write_jsonl

LONG = " ".join(f"Sentence {i} reports that method M{i} reaches {i}.5 points on benchmark B{i}." for i in range(60))


def papers(abstract_b: str = "Quantization to FP8 keeps accuracy on language models.") -> list[dict]:
    return [
        {
            "title": "Paper A on kernel density",
            "abstract": "Kernel density estimators in high dimensions behave oddly.",
        },
        {"title": "Paper B on FP8", "abstract": abstract_b},
        {"title": "Paper C, a long one", "abstract": LONG},
    ]


def open_ws(data_dir, **kw) -> Workspace:
    return Workspace(make_settings(data_dir, **kw))


def test_ingest_is_idempotent_and_incremental(tmp_path):
    ws = open_ws(tmp_path / "data")
    corpus = write_jsonl(tmp_path / "c.jsonl", papers())
    first = ingest(ws.store, ws.embedder, [corpus])
    assert (first.added, first.replaced, first.unchanged) == (3, 0, 0)
    assert len(ws.store.paper_hashes()) == 3
    chunks = ws.store.count()
    assert chunks > 3  # the long abstract is split

    again = ingest(ws.store, ws.embedder, [corpus])
    assert (again.added, again.replaced, again.unchanged, again.chunks_written) == (0, 0, 3, 0)
    assert ws.store.count() == chunks

    changed = write_jsonl(tmp_path / "c.jsonl", papers("Quantization to INT4 loses accuracy on small models."))
    report = ingest(ws.store, ws.embedder, [changed])
    assert (report.added, report.replaced, report.unchanged) == (0, 1, 2)
    title, texts = ws.store.paper(paper_id_for("Paper B on FP8"))
    assert "INT4" in texts[0] and "FP8 keeps" not in " ".join(texts)
    hits = ws.retriever.search("INT4 quantization loses accuracy", k=1, mode="bm25").results
    assert hits[0].paper_id == paper_id_for("Paper B on FP8")  # BM25 followed the change


def test_prune_removes_papers_missing_from_the_files(tmp_path):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    fewer = write_jsonl(tmp_path / "d.jsonl", papers()[:1])
    kept = ingest(ws.store, ws.embedder, [fewer])
    assert kept.pruned == 0 and len(ws.store.paper_hashes()) == 3
    pruned = ingest(ws.store, ws.embedder, [fewer], prune=True)
    assert pruned.pruned == 2
    assert set(ws.store.paper_hashes()) == {paper_id_for("Paper A on kernel density")}


def test_every_chunk_fits_the_embedder_window_and_carries_its_title(workspace):
    ids, docs, metas = workspace.store.all_chunks()
    assert len({m["paper_id"] for m in metas}) == 223
    for doc, meta in zip(docs, metas):
        assert doc.startswith(meta["title"] + "\n")
        assert workspace.embedder.count_tokens(doc) <= workspace.embedder.max_tokens


def test_a_bad_file_changes_nothing(tmp_path):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "good.jsonl", papers())])
    before = ws.store.paper_hashes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "New", "abstract": "fine"}\n{"title": "Broken"\n', encoding="utf-8")
    with pytest.raises(CorpusError):
        ingest(ws.store, ws.embedder, [bad])
    assert ws.store.paper_hashes() == before


def test_cli_reports_bad_input_in_one_line_with_exit_1(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "T", "abstract": "A"}\n{"title": "No abstract here"}\n', encoding="utf-8")
    proc = run_rag("ingest", str(bad), env={"RAG_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"rag: error: {bad}:2: record 'No abstract here' has no abstract"]
    assert "Traceback" not in proc.stderr


def test_bm25_is_rebuilt_when_missing(tmp_path):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    folder = LexicalIndex.folder(ws.store)
    import shutil

    shutil.rmtree(folder)
    assert not LexicalIndex.is_fresh(ws.store)
    fresh = open_ws(tmp_path / "data")
    hits = fresh.retriever.search("kernel density estimators", k=1, mode="bm25").results
    assert hits[0].paper_id == paper_id_for("Paper A on kernel density")
    assert LexicalIndex.is_fresh(ws.store)


def test_ingest_against_a_chroma_server(tmp_path, chroma_url):
    import uuid

    ws = open_ws(tmp_path / "data", chroma_url=chroma_url, collection=f"test-{uuid.uuid4().hex[:8]}")
    corpus = write_jsonl(tmp_path / "c.jsonl", papers())
    assert ingest(ws.store, ws.embedder, [corpus]).added == 3
    assert ingest(ws.store, ws.embedder, [corpus]).chunks_written == 0
    for mode in ("dense", "bm25", "hybrid"):
        top = ws.retriever.search("FP8 quantization accuracy", k=2, mode=mode).results[0]
        assert top.paper_id == paper_id_for("Paper B on FP8"), mode
    ws.store._client.delete_collection(ws.settings.collection)


def test_every_write_moves_the_fingerprint_even_if_the_ingest_never_finishes(tmp_path):
    """What a killed ingest leaves: chunks written, never marked done. A BM25 index built before
    must not match the store afterwards, also when a chunk is replaced in place (same count)."""
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    assert LexicalIndex.is_fresh(ws.store)
    before = ws.store.fingerprint()
    ids, docs, metas = ws.store.all_chunks()
    vector = ws.embedder.embed(["replaced text"]).tolist()
    from rag.store import Chunk

    meta = metas[0]
    chunk = Chunk(ids[0], meta["paper_id"], meta["title"], "replaced text", 0, "other-hash", {})
    ws.store.add([chunk], vector)
    assert ws.store.count() == len(ids)
    assert ws.store.fingerprint() != before
    assert LexicalIndex.status(ws.store) == "stale"
    assert LexicalIndex.open(ws.store).saved and LexicalIndex.is_fresh(ws.store)


def test_no_index_is_saved_while_an_ingest_holds_the_store_lock(tmp_path):
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    import shutil

    shutil.rmtree(LexicalIndex.folder(ws.store))
    with ws.store.lock.exclusive():
        index = LexicalIndex.build(ws.store)
    assert not index.saved and len(index.chunk_ids) == ws.store.count()
    assert LexicalIndex.status(ws.store) == "missing"


def test_a_store_that_was_written_and_emptied_never_gets_the_bundled_corpus(tmp_path):
    from rag.ingest import ensure_index
    from rag.store import StoreError

    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    ws.store.delete_papers(list(ws.store.paper_hashes()))
    with pytest.raises(StoreError, match="holds no papers; add some with `rag ingest FILE`"):
        ensure_index(ws.store, lambda: ws.embedder)
    assert ws.store.count() == 0


def test_an_empty_data_dir_setting_is_rejected(monkeypatch):
    from rag.config import SettingsError, load_settings

    monkeypatch.setenv("RAG_DATA_DIR", "")
    with pytest.raises(SettingsError, match="invalid setting data_dir: .*it is empty"):
        load_settings()
