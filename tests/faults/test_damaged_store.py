"""Damaged or foreign store files: one line that says what to do, or a notice and a rebuild;
never a traceback, never a silently replaced store, never the bundled corpus in a user's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rag.lexical import CURRENT
from tests.conftest import REPO
from tests.faults.conftest import assert_consistent, inspect, one_error_line, rag

QUERY = "quantization of large language models"


def bm25_folder(env: dict) -> Path:
    (folder,) = (Path(env["RAG_DATA_DIR"]) / "bm25").iterdir()
    return folder


def current_build(env: dict) -> Path:
    """The folder of the index's first segment (the small corpus is one segment)."""
    folder = bm25_folder(env)
    return folder / json.loads((folder / CURRENT).read_text())["segments"][0]["name"]


def test_zero_byte_database_is_reported_not_replaced(data_env):
    db = Path(data_env["RAG_DATA_DIR"]) / "chroma" / "chroma.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"")
    for command in (["search", QUERY], ["stats"], ["ingest"]):
        line = one_error_line(rag(*command, env=data_env))
        assert f"the Chroma database {db} is empty (0 bytes)" in line and "restore it from a backup" in line
    assert db.stat().st_size == 0
    assert sorted(p.name for p in db.parent.iterdir()) == ["chroma.sqlite3"]


def test_a_database_that_is_not_sqlite_is_reported(data_env):
    db = Path(data_env["RAG_DATA_DIR"]) / "chroma" / "chroma.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage" * 100)
    line = one_error_line(rag("search", QUERY, env=data_env))
    assert "is not an SQLite database" in line
    assert db.read_bytes() == b"\x00garbage" * 100


def test_a_file_where_the_store_folder_goes_is_named(data_env):
    folder = Path(data_env["RAG_DATA_DIR"]) / "chroma"
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")
    line = one_error_line(rag("search", QUERY, env=data_env))
    assert f"{folder} is a file where the Chroma store's folder goes; move it away" in line
    assert folder.read_text() == "not a folder"


def test_a_damaged_vector_index_says_how_to_rebuild(corpus, data_env):
    assert rag("ingest", str(corpus), env=data_env).returncode == 0
    (index_file,) = (Path(data_env["RAG_DATA_DIR"]) / "chroma").rglob("data_level0.bin")
    index_file.unlink()
    line = one_error_line(rag("search", QUERY, env=data_env))
    assert "the vector index of the Chroma store at" in line and "is damaged" in line
    assert line.endswith("move that folder away and run `rag ingest` with your corpus files again to rebuild it")


def test_an_empty_data_dir_setting_is_a_settings_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "search", QUERY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "RAG_DATA_DIR": "", "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    line = one_error_line(proc)
    assert "invalid setting data_dir" in line and "RAG_DATA_DIR" in line
    assert list(tmp_path.iterdir()) == []  # nothing written into the current directory


def test_garbage_bm25_files_are_rebuilt_with_a_notice(ingested):
    build = current_build(ingested)
    for f in build.iterdir():
        if f.suffix == ".npy":
            f.write_bytes(b"not numpy at all")
    proc = rag("search", QUERY, "--json", "--retriever", "bm25", env=ingested)
    assert proc.returncode == 0, proc.stderr
    assert "is damaged" in proc.stderr and "rebuilding it" in proc.stderr
    assert json.loads(proc.stdout)["results"]
    assert_consistent(ingested)

    (bm25_folder(ingested) / CURRENT).write_text("{ not json")
    proc = rag("search", QUERY, "--retriever", "bm25", env=ingested)
    assert proc.returncode == 0 and "is damaged" in proc.stderr
    assert_consistent(ingested)


def test_bm25_files_that_parse_but_disagree_are_rebuilt(ingested):
    import numpy as np

    ids_file = current_build(ingested) / "ids.npy"
    ids = np.load(ids_file)
    np.save(ids_file, ids[:-5])  # a valid array, but five chunks short of the postings
    proc = rag("search", QUERY, "--retriever", "bm25", env=ingested)
    assert proc.returncode == 0, proc.stderr
    assert f"is damaged ({len(ids) - 5} chunk ids for {len(ids)} indexed chunks); rebuilding it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_consistent(ingested)


def test_a_bm25_folder_that_is_a_file_falls_back_to_memory_each_time(ingested):
    bm25 = Path(ingested["RAG_DATA_DIR"]) / "bm25"
    for sub in bm25.iterdir():
        for f in sorted(sub.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        sub.rmdir()
    bm25.rmdir()
    bm25.write_text("not a folder")
    for _ in range(2):  # the same notice every time, until the folder is fixed
        proc = rag("search", QUERY, "--json", "--retriever", "bm25", env=ingested)
        assert proc.returncode == 0, proc.stderr
        assert "rag: cannot save the BM25 index in" in proc.stderr and "using it in memory" in proc.stderr
        assert json.loads(proc.stdout)["results"]
    assert bm25.read_text() == "not a folder"


def test_a_collection_of_another_embedding_size_is_one_line(data_env, corpus):
    """Vectors of 768 dimensions (another embedder) in the collection rag would use."""
    script = (
        "import chromadb, sys; from chromadb.config import Settings; "
        "c = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False)); "
        "col = c.get_or_create_collection('papers', embedding_function=None); "
        "col.add(ids=['x#0'], documents=['Some title\\nsome text'], embeddings=[[0.1] * 768], "
        "metadatas=[{'paper_id': 'x', 'title': 'Some title', 'chunk': 0, 'content_hash': 'h'}])"
    )
    chroma = Path(data_env["RAG_DATA_DIR"]) / "chroma"
    subprocess.run([sys.executable, "-c", script, str(chroma)], check=True, timeout=120)
    for command in (["search", QUERY, "--retriever", "dense"], ["ask", QUERY], ["ingest", str(corpus)]):
        line = one_error_line(rag(*command, env=data_env))
        assert "holds vectors of another size" in line and "RAG_COLLECTION" in line, command
    assert inspect(data_env)["chroma_ids"] == ["x#0"]  # the foreign collection is left as it was
