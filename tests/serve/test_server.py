"""`rag serve` end to end: a real server process over a temporary store of a few bundled abstracts
(real embedder; the `served` fixture in conftest.py), and `rag search` / `rag ask` / `rag mcp` sent
to it through RAG_SERVER_URL give what the local path gives. One server serves the whole module."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rag.followup import standalone_question
from rag.serve.client import ServerError, health, request
from tests.conftest import REPO
from tests.serve.conftest import Served, start_served

SEARCH = "FP8 versus INT8 quantization"
ASK = "How many queries does the LitSearch benchmark contain?"
FIRST = "which papers compare FP8 vs INT8?"
FOLLOW_UP = "which of them proposes a format for NLP models?"
HEAVY = ("chromadb", "onnxruntime", "llama_index", "openai", "numpy")


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


def test_the_server_rewrites_a_follow_up_with_the_history(served: Served) -> None:
    first = request(served.url, "/ask", {"question": FIRST}).body
    history = [[FIRST, first["answer"]]]
    follow = request(served.url, "/ask", {"question": FOLLOW_UP, "history": history}).body
    assert follow["question"] == standalone_question(FOLLOW_UP, [(FIRST, first["answer"])]) == f"{FOLLOW_UP} ({FIRST})"
    assert request(served.url, "/ask", {"question": FOLLOW_UP}).body["question"] == FOLLOW_UP
    assert request(served.url, "/ask", {"question": ASK, "history": history}).body["question"] == ASK
    with pytest.raises(ServerError, match=r"'history' must be a list of \[question, answer\] pairs"):
        request(served.url, "/ask", {"question": FOLLOW_UP, "history": [FIRST]})
    # an unpaired surrogate (JSON "\ud800") in the history is cleaned as in the question
    odd = request(served.url, "/ask", {"question": FOLLOW_UP, "history": [[f"{FIRST} \ud800", "x"]]}).body
    assert odd["question"] == f"{FOLLOW_UP} ({FIRST} \ufffd)" and not odd["abstained"]


def test_papers_gives_the_stored_abstracts(served: Served) -> None:
    asked = request(served.url, "/ask", {"question": ASK}).body
    ids = [c["paper_id"] for c in asked["citations"]]
    papers = request(served.url, "/papers", {"ids": [*ids, "no-such-paper", ids[0]]}).body["papers"]
    assert [p["paper_id"] for p in papers] == ids
    assert [p["title"] for p in papers] == [c["title"] for c in asked["citations"]]
    assert "597" in papers[0]["abstract"]
    with pytest.raises(ServerError, match=r"'ids' must be a list of at most 200 paper ids"):
        request(served.url, "/papers", {"ids": "x"})
    assert request(served.url, "/papers", {"ids": ["\ud800", ids[0]]}).body["papers"][0]["paper_id"] == ids[0]


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
    # RAG_SERVER_URL written like an LLM endpoint's: the path is named as the mistake
    with pytest.raises(
        ServerError, match=r"is the server's address alone \(http://host:port\), without a path like /v1"
    ):
        request(f"{served.url}/v1", "/search", {"query": "x"})
    with pytest.raises(ServerError, match=r"'question' is too long: it is 7,999 characters long"):
        request(served.url, "/ask", {"question": "why " * 2000})
    # a misspelt field is named, not silently the default; null is the default for every optional field
    with pytest.raises(ServerError, match=r"unknown field 'top_k'; this endpoint takes query, k, retriever"):
        request(served.url, "/search", {"query": "x", "top_k": 3})
    with pytest.raises(ServerError, match=r"unknown field 'paper_ids'"):
        request(served.url, "/papers", {"paper_ids": []})
    asked = request(served.url, "/ask", {"question": ASK, "no_llm": None, "k": None, "retriever": None}, timeout=120)
    assert "597" in asked.body["answer"]


def test_an_endpoint_behind_the_server_that_fails_is_a_bad_gateway() -> None:
    from rag.embedders.endpoint import EndpointError
    from rag.llm import LLMError
    from rag.serve.server import BadRequest, _failure

    assert _failure(LLMError("the LLM endpoint is unreachable")) == (502, "the LLM endpoint is unreachable")
    assert _failure(EndpointError("the embedding endpoint said 500"))[0] == 502
    assert _failure(BadRequest("'k' must be ...")) == (400, "bad request: 'k' must be ...")


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


def test_other_methods_garbage_and_clients_that_hang_up_get_json_and_one_log_line(served: Served) -> None:
    """The standard library's HTML error page and its tracebacks on stderr are not rag's: any
    refusal is the JSON every reply is, and a client that hangs up leaves no traceback."""
    import http.client
    import socket
    from urllib.parse import urlsplit

    host, port = urlsplit(served.url).hostname, urlsplit(served.url).port
    assert host is not None and port is not None
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("DELETE", "/search")
        response = conn.getresponse()
        assert response.status == 501
        assert "try GET /health" in json.loads(response.read())["error"]
    finally:
        conn.close()
    # an endpoint asked with the other method says which to use; a query string is no other path
    for method, path, status, said in [
        ("GET", "/search", 405, "use POST /search with a JSON body"),
        ("POST", "/health", 405, "use GET /health"),
        ("GET", "/health?verbose=1", 200, None),
        ("HEAD", "/health", 200, None),
        ("HEAD", "/search", 405, None),
    ]:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request(method, path, body=b"{}" if method == "POST" else None)
            response = conn.getresponse()
            data = response.read()
            if method == "HEAD":  # the headers of the reply GET would give, and no body
                assert data == b"" and int(response.headers["Content-Length"]) > 0
                assert response.status == status, (method, path)
                continue
            body = json.loads(data)
            assert response.status == status and (said is None or body["error"] == said), (method, path, body)
        finally:
            conn.close()
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(b"GARBAGE\r\n\r\n")
        reply = raw.recv(65536).decode()
    assert reply.startswith("{") or "\r\n\r\n{" in reply, reply  # JSON, with or without HTTP/0.9 headers
    before = len("".join(served.log))
    for _ in range(3):  # a body shorter than its Content-Length, then gone before the reply
        with socket.create_connection((host, port), timeout=30) as raw:
            raw.sendall(b'POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"query": ')
            raw.shutdown(socket.SHUT_WR)
    request(served.url, "/search", {"query": SEARCH})  # still serving
    assert "Traceback" not in "".join(served.log)[before:]
    # arrays nested too deep for the JSON parser's recursion, and a chunked body, get their reason
    for body, headers, status, said in [
        (b"[" * 100_000 + b"]" * 100_000, {}, 400, "bad request: the body must be a JSON object"),
        (b'{"query": "FP8"}', {"Transfer-Encoding": "chunked"}, 411, "with a Content-Length, not chunked"),
    ]:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("POST", "/search", body=body, headers=headers)
            response = conn.getresponse()
            assert response.status == status and said in json.loads(response.read())["error"]
        finally:
            conn.close()
    assert "RecursionError" not in "".join(served.log)[before:]


def test_a_host_that_is_not_this_machines_is_named_as_the_problem(served: Served) -> None:
    proc = served.rag("serve", "--host", "999.1.1.1", "--port", "0", served=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("give --host an address of this machine, such as 127.0.0.1"), proc.stderr


def test_an_empty_host_is_refused_and_ipv6_loopback_is_served(served: Served, tmp_path) -> None:
    proc = served.rag("serve", "--host", "", "--port", "0", served=False)
    assert proc.returncode == 1 and proc.stderr.startswith("rag: error: --host is empty; give an address"), proc.stderr
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:  # a machine without IPv6: said in one line, not a traceback
        proc = served.rag("serve", "--host", "::1", "--port", "0", served=False)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        return
    with start_served(tmp_path, "--host", "::1") as six:
        assert six.url.startswith("http://[::1]:")
        proc = six.rag("search", "quantization", "-k", "1")
        assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
