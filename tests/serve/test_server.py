"""`rag serve` end to end: a real server process over a temporary store of a few bundled abstracts
(real embedder), and `rag search` / `rag ask` / `rag mcp` sent to it through RAG_SERVER_URL give
what the local path gives. One server serves the whole module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.corpus import bundled_corpus_path, iter_papers
from rag.serve.client import ServerError, health, request
from tests.conftest import MODEL_DIR, REPO, write_jsonl

WANTED = ("LitSearch", "FP8 Formats", "ZeroQuant-FP", "Give Me BF16", "Dense Retrieval Model Training")
SEARCH = "FP8 versus INT8 quantization"
ASK = "How many queries does the LitSearch benchmark contain?"
HEAVY = ("chromadb", "onnxruntime", "llama_index", "openai", "numpy")


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


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    (folder / "config.toml").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(
        RAG_DATA_DIR=str(folder / "data"),
        RAG_EMBED_MODEL_DIR=str(MODEL_DIR),
        RAG_CONFIG=str(folder / "config.toml"),
        RAG_LLM="off",
    )
    corpus = _few_papers(folder / "few.jsonl")
    papers = len(corpus.read_text().splitlines())
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(corpus)], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True, cwd=REPO
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
    yield Served(url, env, papers, log)
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert "rag: server stopped" in "".join(log)


def test_health_names_the_store_corpus_and_embedder(served: Served) -> None:
    info = health(served.url)
    assert info["status"] == "ok"
    assert info["papers"] == served.papers
    assert info["store"] == str(Path(served.env["RAG_DATA_DIR"]) / "chroma")
    assert (info["collection"], info["embedder"], info["embed_device"]) == ("papers", "all-MiniLM-L6-v2", "cpu")
    assert (info["retriever"], info["llm"]) == ("hybrid", None)


def test_search_through_the_server_prints_what_the_local_path_prints(served: Served) -> None:
    remote, local = (
        served.rag("search", SEARCH, "-k", "3", "--json"),
        served.rag("search", SEARCH, "-k", "3", "--json", served=False),
    )
    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    got, want = json.loads(remote.stdout), json.loads(local.stdout)
    assert got["results"] == want["results"] and got["query"] == want["query"]
    assert any("FP8 Formats" in hit["title"] for hit in got["results"])

    remote, local = served.rag("search", SEARCH, "-k", "3"), served.rag("search", SEARCH, "-k", "3", served=False)
    assert remote.stdout == local.stdout and remote.stdout.count("\n") == 6


def test_ask_through_the_server_gives_the_local_answer(served: Served) -> None:
    remote, local = served.rag("ask", ASK, "--json"), served.rag("ask", ASK, "--json", served=False)
    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    got, want = json.loads(remote.stdout), json.loads(local.stdout)
    got.pop("timings_ms"), want.pop("timings_ms")
    assert got == want
    assert "597" in got["answer"] and got["sentences"][0]["verdict"] == "supported"

    def without_time(text: str) -> str:
        return re.sub(r"\d+ ms\.", "N ms.", text)

    remote, local = served.rag("ask", ASK), served.rag("ask", ASK, served=False)
    assert without_time(remote.stdout) == without_time(local.stdout)
    assert "Sources:" in remote.stdout and remote.stderr == local.stderr


def test_flags_travel_with_the_request(served: Served) -> None:
    remote = served.rag("search", "LLM quantization", "-k", "2", "--retriever", "bm25", "--json")
    local = served.rag("search", "LLM quantization", "-k", "2", "--retriever", "bm25", "--json", served=False)
    assert json.loads(remote.stdout)["results"] == json.loads(local.stdout)["results"]
    assert len(json.loads(remote.stdout)["results"]) == 2


def test_a_weak_match_is_said_on_stderr_as_locally(served: Served) -> None:
    query = "protein folding in marine biology"
    remote, local = served.rag("search", query), served.rag("search", query, served=False)
    assert "the best match is weak" in local.stderr
    assert remote.stderr == local.stderr


CLIENT_IMPORTS = """
import sys
from rag.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("imported:", [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["search", SEARCH, "--json"], ["ask", ASK]])
def test_the_client_path_never_imports_the_store_or_the_models(served: Served, command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT_IMPORTS.format(heavy=HEAVY), *command],
        capture_output=True,
        text=True,
        env={**served.env, "RAG_SERVER_URL": served.url},
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "imported: []" in proc.stderr.splitlines(), proc.stderr


def test_bad_requests_get_a_one_line_reason(served: Served) -> None:
    with pytest.raises(ServerError, match=r"bad request: 'query' must be a string"):
        request(served.url, "/search", {"query": 5})
    with pytest.raises(ServerError, match=r"'k' must be a whole number from 1 to 100"):
        request(served.url, "/search", {"query": "x", "k": 0})
    with pytest.raises(ServerError, match=r"no such endpoint /nowhere"):
        request(served.url, "/nowhere", {"query": "x"})


def test_a_refused_request_leaves_the_connection_usable(served: Served) -> None:
    """HTTP/1.1 keeps the connection: the body of a request to a wrong path must be read, not
    taken for the next request."""
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(served.url).hostname, urlsplit(served.url).port, timeout=30)
    try:
        for path, status in (("/nowhere", 404), ("/search", 200)):
            conn.request("POST", path, body=json.dumps({"query": SEARCH}), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == status
            assert isinstance(json.loads(response.read()), dict)
    finally:
        conn.close()


def test_the_mcp_tools_use_the_server(served: Served, tmp_path: Path) -> None:
    """With RAG_SERVER_URL set, `rag mcp`'s search and ask answer from the server's store, not
    from its own data folder (here an empty one, which would get the whole bundled corpus)."""
    pytest.importorskip("mcp")
    import anyio

    async def call() -> tuple[dict, dict]:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        env = {**served.env, "RAG_SERVER_URL": served.url, "RAG_DATA_DIR": str(tmp_path / "unused")}
        params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp"], env=env, cwd=str(REPO))
        async with Client(params, read_timeout_seconds=60) as client:
            found = await client.call_tool("search", {"query": SEARCH, "k": 3})
            asked = await client.call_tool("ask", {"question": ASK})
            return found.structured_content, asked.structured_content

    found, asked = anyio.run(call)
    direct = request(served.url, "/search", {"query": SEARCH, "k": 3}).body
    assert found["results"] == direct["results"]
    assert "597" in asked["answer"]
    assert not (tmp_path / "unused" / "chroma").exists()
