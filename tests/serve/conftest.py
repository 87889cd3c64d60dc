"""A real `rag serve` process over a temporary store of a few bundled abstracts (real Chroma, real
embedder, no LLM), one per test module that asks for `served`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.corpus import bundled_corpus_path, iter_papers
from tests.conftest import MODEL_DIR, REPO, write_jsonl

WANTED = ("LitSearch", "FP8 Formats", "ZeroQuant-FP", "Give Me BF16", "Dense Retrieval Model Training")


def _few_papers(path: Path) -> Path:
    papers = list(iter_papers(bundled_corpus_path()))
    chosen = [p for p in papers if any(w in p.title for w in WANTED)] + papers[:4]
    rows = [{"title": p.title, "abstract": p.abstract} for p in {p.title: p for p in chosen}.values()]
    return write_jsonl(path, rows)


class Served:
    def __init__(self, url: str, env: dict[str, str], papers: int, log: list[str]) -> None:
        self.url, self.env, self.papers, self.log = url, env, papers, log

    def rag(self, *args: str, served: bool = True) -> subprocess.CompletedProcess:
        env = {**self.env, "RAG_SERVER_URL": self.url} if served else self.env
        return subprocess.run(
            [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
        )


@contextmanager
def start_served(folder: Path, *args: str, **settings: str) -> Iterator[Served]:
    """A `rag serve` over a store of a few bundled abstracts in `folder`; `args` added to its
    command line, `settings` (environment variables) on top of no LLM."""
    (folder / "config.toml").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(
        RAG_DATA_DIR=str(folder / "data"),
        RAG_EMBED_MODEL_DIR=str(MODEL_DIR),
        RAG_CONFIG=str(folder / "config.toml"),
        RAG_LLM="off",
    )
    env.update(settings)
    corpus = _few_papers(folder / "few.jsonl")
    papers = len(corpus.read_text().splitlines())
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(corpus)], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", "0", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    log: list[str] = []
    assert proc.stderr is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: log.extend(stderr), daemon=True).start()  # keeps the pipe drained
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"RAG_SERVER_URL=(\S+);", "".join(log))
        url = found.group(1) if found else None
        time.sleep(0.1)
    assert url, f"rag serve did not start: {''.join(log)}"
    try:
        yield Served(url, env, papers, log)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert "rag: server stopped" in "".join(log)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    with start_served(tmp_path_factory.mktemp("served")) as server:
        yield server
