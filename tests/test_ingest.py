import numpy as np
import pytest

from rag.corpus import CorpusError, paper_id_for
from rag.ingest import ingest
from rag.lexical import LexicalIndex
from rag.store import chunk_rows
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


def test_a_replacement_under_another_title_is_reported(tmp_path):
    """Row-number ids ("1", "2") collide across files ingested apart: the stored paper is replaced,
    and the report names it, so a CLI warning can say so. A changed abstract alone is no news."""
    ws = open_ws(tmp_path / "data")
    first = [{"id": "1", "title": "Wombat burrows", "abstract": "Wombats dig burrows in Tasmania."}]
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", first)])
    edited = [{"id": "1", "title": "Wombat burrows", "abstract": "Wombats dig deep burrows in Tasmania."}]
    assert ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "a.jsonl", edited)]).retitled == []
    other = [{"id": "1", "title": "Quokka smiles", "abstract": "Quokkas smile for photos on islands."}]
    report = ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "b.jsonl", other)])
    assert report.replaced == 1 and report.retitled == [("1", "Wombat burrows", "Quokka smiles")]


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


def test_a_title_too_long_for_the_embedders_window_is_refused_before_anything_is_written(tmp_path):
    """Within the character limit, but not within MiniLM's 256 WordPiece tokens (CJK characters are
    a token each): refused at its line while the file is validated, so no paper before it is stored."""
    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "good.jsonl", papers())])
    before = ws.store.paper_hashes()
    rows = [
        {"title": f"Paper {i} on routing", "abstract": f"Routing method {i} helps."} for i in range(40)
    ]  # a batch and more
    rows.append({"title": "多语言稠密检索方法研究" * 30, "abstract": "Dense retrieval across languages."})
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    with pytest.raises(CorpusError, match=r"long.jsonl:41: the title of .* tokens, too long for the embedder's window"):
        ingest(ws.store, ws.embedder, [path])
    assert ws.store.paper_hashes() == before
    assert not ws.store.ingest_state().running


def test_a_file_rewritten_during_the_ingest_is_said_to_have_changed(tmp_path, monkeypatch):
    """Not "malformed at line N" of a file that no longer has that line: the file changed, and
    running the command again ingests what it holds now."""
    import rag.ingest

    ws = open_ws(tmp_path / "data")
    path = write_jsonl(tmp_path / "moving.jsonl", many(80))

    def rewrite(step: str) -> None:
        if step == "batch-1":
            write_jsonl(path, papers())

    monkeypatch.setattr(rag.ingest, "fault_point", rewrite)
    with pytest.raises(
        CorpusError, match=r"moving.jsonl: changed while it was being ingested .* run the same command again"
    ):
        ingest(ws.store, ws.embedder, [path])
    monkeypatch.undo()
    report = ingest(ws.store, ws.embedder, [path])
    assert report.papers == 3 and ws.store.ingest_state().running is False


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


def test_a_file_where_the_data_dir_should_be_is_named(monkeypatch, tmp_path):
    from rag.config import SettingsError, load_settings

    (tmp_path / "afile").write_text("x")
    for given in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        monkeypatch.setenv("RAG_DATA_DIR", str(given))
        with pytest.raises(SettingsError, match=f"data_dir: {tmp_path / 'afile'} is a file, not a folder"):
            load_settings()


def many(n: int) -> list[dict]:
    return [
        {"title": f"Paper {i} on topic {i}", "abstract": f"Paper {i} studies retrieval of topic {i}."} for i in range(n)
    ]


def test_the_next_batch_is_embedded_off_the_main_thread_while_the_one_before_is_written(tmp_path, monkeypatch):
    import threading

    from rag import ingest as ingest_module
    from rag.store import Store
    from tests.test_embedders import FakeEmbedder

    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 4)
    second_embed_started = threading.Event()
    threads: list[str] = []
    seen: list[bool] = []

    class Recording(FakeEmbedder):
        def embed(self, texts):
            threads.append(threading.current_thread().name)
            if len(threads) == 2:
                second_embed_started.set()
            return super().embed(texts)

    add = Store.add

    def writing(self, chunks, vectors):
        if not seen:  # the first batch's write: the second batch is being embedded meanwhile
            seen.append(second_embed_started.wait(timeout=20))
        add(self, chunks, vectors)

    monkeypatch.setattr(Store, "add", writing)
    store = Store(make_settings(tmp_path / "data"))
    fake = Recording()
    report = ingest(store, fake, [write_jsonl(tmp_path / "c.jsonl", many(10))])
    assert (report.added, store.count()) == (10, 10)
    assert seen == [True]
    assert len(threads) == 3 and threading.main_thread().name not in threads
    ids = [f"{pid}#0" for pid in store.paper_hashes()]
    got = store.collection.get(ids=ids, include=["embeddings", "documents", "metadatas"])
    assert np.allclose(np.asarray(got["embeddings"]), fake.embed([text for _, text, _ in chunk_rows(got)]))


def test_an_embedding_error_keeps_the_batches_before_it_and_the_ingest_resumes(tmp_path, monkeypatch):
    from rag import ingest as ingest_module
    from rag.store import Store
    from tests.test_embedders import FakeEmbedder

    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 4)

    class Failing(FakeEmbedder):
        calls = 0

        def embed(self, texts):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("the embedder broke")
            return super().embed(texts)

    store = Store(make_settings(tmp_path / "data"))
    corpus = write_jsonl(tmp_path / "c.jsonl", many(20))
    with pytest.raises(RuntimeError, match="the embedder broke"):
        ingest(store, Failing(), [corpus])
    assert len(store.paper_hashes()) == 8 and store.ingest_state().running
    again = ingest(store, FakeEmbedder(), [corpus])
    assert (again.added, again.unchanged) == (12, 8)
    assert len(store.paper_hashes()) == 20 and not store.ingest_state().running


def test_ingested_minilm_vectors_match_the_embedder_on_the_same_texts(workspace):
    got = workspace.store.collection.get(limit=40, include=["embeddings", "documents", "metadatas"])
    again = workspace.embedder.embed([text for _, text, _ in chunk_rows(got)])
    assert np.abs(np.asarray(got["embeddings"]) - again).max() < 1e-5


def test_counting_tokens_while_another_thread_embeds(workspace):
    import threading

    embedder = workspace.embedder
    long = " ".join(["retrieval"] * 400)
    stop = threading.Event()
    errors: list[BaseException] = []

    def embedding() -> None:
        try:
            while not stop.is_set():
                assert embedder.embed([long, "short text"]).shape == (2, embedder.dimension)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=embedding)
    worker.start()
    try:
        counts = {embedder.count_tokens(long) for _ in range(300)}
    finally:
        stop.set()
        worker.join()
    assert counts == {402} and not errors


def test_a_running_process_finds_by_meaning_the_papers_another_process_ingests(tmp_path):
    """`rag serve`, `rag chat` and `rag mcp` keep one store open: papers a `rag ingest` in
    another process adds must reach their dense search, not only BM25."""
    data = tmp_path / "data"
    ws = open_ws(data)
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    query = "sorting pancakes with a quantum computer"
    assert ws.retriever.search(query, k=1, mode="dense").results[0].paper_id != paper_id_for("Quantum pancakes")

    extra = write_jsonl(
        tmp_path / "extra.jsonl",
        [{"title": "Quantum pancakes", "abstract": "A quantum computer sorts a stack of pancakes by flipping it."}],
    )
    proc = run_rag("ingest", str(extra), env={"RAG_DATA_DIR": str(data), "RAG_LLM": "off"})
    assert proc.returncode == 0, proc.stderr
    assert ws.retriever.search(query, k=1, mode="dense").results[0].paper_id == paper_id_for("Quantum pancakes")


def test_a_read_only_store_says_rag_needs_write_access(tmp_path, monkeypatch):
    """A store on a read-only mount fails inside Chroma as "attempt to write a readonly database"
    (root ignores file modes, so the mount is what makes it happen; here Chroma's own error is
    raised in its place): the line says what is wrong, not to move a healthy store away."""
    import chromadb

    from rag.store import Store, StoreError

    def read_only(*args, **kwargs):
        raise RuntimeError("error returned from database: (code: 1032) attempt to write a readonly database")

    monkeypatch.setattr(chromadb, "PersistentClient", read_only)
    with pytest.raises(StoreError) as err:
        Store(make_settings(tmp_path / "data"))
    assert "is read-only here" in str(err.value) and "move that folder away" not in str(err.value)


def test_a_mistyped_collection_is_named_not_filled_with_the_bundled_corpus(tmp_path):
    """A mistyped RAG_COLLECTION opens a new, empty collection: a command that reads it says which
    collections the store holds, and writes nothing (it used to fill it with the bundled corpus)."""
    from rag.ingest import ensure_index
    from rag.store import StoreError

    ws = open_ws(tmp_path / "data")
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "c.jsonl", papers())])
    other = open_ws(tmp_path / "data", collection="paperz")
    assert other.store.other_collections() == ["papers"]
    with pytest.raises(
        StoreError,
        match=r"the collection 'paperz' at .* is empty and the store holds other "
        r"collections \(papers\); set RAG_COLLECTION to one of them",
    ):
        ensure_index(other.store, lambda: other.embedder)
    assert other.store.chunk_count() == 0
