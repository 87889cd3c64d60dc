"""A full disk, on a small tmpfs (needs root and mount; skipped otherwise): while Chroma writes,
and while the BM25 index is saved. One line or a notice, and the store stays consistent."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.faults.conftest import N_PAPERS, assert_consistent, inspect, one_error_line, rag


@pytest.fixture
def tmpfs(tmp_path):
    """Mounts a tmpfs; yields a function that remounts it with a new size."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(where)

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_while_chroma_writes_is_one_line_and_resumable(tmp_path, tmpfs, corpus):
    disk = tmp_path / "disk"
    tmpfs(disk, "700k")  # room for the empty store (about 190k), not for the corpus (about 1.1 MB)
    env = {"RAG_DATA_DIR": str(disk / "data")}
    line = one_error_line(rag("ingest", str(corpus), env=env))
    assert "disk is full" in line and "free some space" in line
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # takes whatever room the failed write left
    with contextlib.suppress(OSError):
        while os.write(filler, b"\0" * 4096):
            pass
    os.close(filler)
    for command in (["search", "quantization"], ["stats"]):  # the full disk is named, not a broken store
        line = one_error_line(rag(*command, env=env))
        assert "is full" in line and "free some space" in line

    (disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    again = rag("ingest", str(corpus), env=env)
    assert again.returncode == 0, again.stderr
    assert_consistent(env, papers=N_PAPERS)


def test_a_full_disk_while_saving_bm25_keeps_the_index_in_memory(tmpfs, ingested):
    bm25 = Path(ingested["RAG_DATA_DIR"]) / "bm25"
    for f in sorted(bm25.rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() else f.unlink()
    tmpfs(bm25, "8k")
    for _ in range(2):
        proc = rag("search", "quantization", "--json", "--retriever", "bm25", env=ingested)
        assert proc.returncode == 0, proc.stderr
        assert "rag: cannot save the BM25 index in" in proc.stderr and "using it in memory" in proc.stderr
        assert json.loads(proc.stdout)["results"]
    assert [p.name for p in bm25.rglob("*") if p.name.startswith((".tmp-", "build-"))] == []  # no half builds left
    assert inspect(ingested)["bm25_status"] == "missing"
