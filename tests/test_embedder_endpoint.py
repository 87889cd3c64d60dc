"""The OpenAI-compatible embeddings endpoint, against tests/fakes.py's local server serving real
MiniLM vectors: the same papers as the local embedder, the store refusing a switch of embedder,
and each failure one `rag: error:` line with the store left as it was."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from rag.embedders import embedder_identity, get_embedder
from rag.embedders import endpoint as endpoint_module
from rag.store import Store
from tests.conftest import make_settings, rag_json, run_rag, write_jsonl
from tests.fakes import EMBED_MODEL, serve

QUESTIONS = [
    "which papers compare FP8 vs INT8?",
    "lossless compression of model weights",
    "retrieval augmented generation for long documents",
]
ROWS = [{"title": f"Paper {i}", "abstract": f"Paper {i} studies retrieval of topic {i} in detail."} for i in range(3)]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    return get_embedder(make_settings(tmp_path_factory.mktemp("minilm")))


@pytest.fixture
def server(minilm):
    with serve(embedder=minilm) as script:
        yield script


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch):
    """Each test sees the endpoint anew, as a new process would."""
    monkeypatch.setattr(endpoint_module, "_dimensions", {})


def endpoint_env(url: str, data_dir, **extra: str) -> dict[str, str]:
    return {
        "RAG_DATA_DIR": str(data_dir),
        "RAG_EMBEDDER": "endpoint",
        "RAG_EMBED_ENDPOINT_URL": url,
        "RAG_EMBED_ENDPOINT_MODEL": EMBED_MODEL,
        "RAG_EMBED_ENDPOINT_MAX_TOKENS": "256",
        **extra,
    }


def top_papers(env: dict[str, str], question: str) -> list[str]:
    out = rag_json("search", question, "-k", "3", "--retriever", "dense", "--json", env=env)
    return [r["paper_id"] for r in out["results"]]


def test_the_endpoint_finds_the_papers_the_local_embedder_finds(server, bundled_dir, tmp_path):
    env = endpoint_env(server.url, tmp_path / "endpoint")
    local = {"RAG_DATA_DIR": str(bundled_dir)}
    for question in QUESTIONS:  # the first search ingests the bundled corpus through the endpoint
        assert top_papers(env, question) == top_papers(local, question), question
    stats = run_rag("stats", env=env)
    assert stats.returncode == 0 and "papers      223" in stats.stdout
    assert f"{EMBED_MODEL} at {server.url}/embeddings" in stats.stdout
    assert f"vectors     made by endpoint:{EMBED_MODEL} (384-d)\n" in stats.stdout
    store = Store(make_settings(tmp_path / "endpoint"))
    assert str(store.made_by()) == f"endpoint:{EMBED_MODEL} (384-d)"
    store.close()


def test_vectors_are_unit_length_in_input_order_and_batched(server, minilm, tmp_path):
    settings = make_settings(
        tmp_path,
        embedder="endpoint",
        embed_endpoint_url=server.url,
        embed_endpoint_model=EMBED_MODEL,
        embed_endpoint_batch=2,
    )
    emb = get_embedder(settings)
    assert (emb.name, emb.dimension) == (f"endpoint:{EMBED_MODEL}", 384)
    texts = ["FP8 training", "a much longer text about lossless compression of model weights", "BM25"]
    server.bodies.clear()
    vectors = emb.embed(texts)
    assert [len(b["input"]) for b in server.bodies] == [2, 1]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors, minilm.embed(texts), atol=1e-4)
    assert emb.embed([]).shape == (0, 384)
    assert emb.count_tokens("hello world") == 2
    assert embedder_identity(settings) == embedder_identity(
        settings.model_copy(update={"embed_endpoint_dimension": 384})
    )


def test_the_store_refuses_to_switch_embedder_in_one_line(server, tmp_path):
    corpus = write_jsonl(tmp_path / "a.jsonl", ROWS)
    local = {"RAG_DATA_DIR": str(tmp_path / "d")}
    assert run_rag("ingest", str(corpus), env=local).returncode == 0
    switched = run_rag("search", "topic", env=endpoint_env(server.url, tmp_path / "d"))
    assert switched.returncode == 1 and switched.stdout == ""
    lines = switched.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: ")
    assert "all-MiniLM-L6-v2 (384-d)" not in lines[0]  # same size: the names say it
    assert f"made by all-MiniLM-L6-v2, and rag is set to embed with endpoint:{EMBED_MODEL}" in lines[0]
    assert "set RAG_EMBEDDER=minilm and RAG_EMBED_QUANTIZED=0 to use it" in lines[0]

    endpoint_dir = tmp_path / "e"
    assert run_rag("ingest", str(corpus), env=endpoint_env(server.url, endpoint_dir)).returncode == 0
    back = run_rag("search", "topic", env={"RAG_DATA_DIR": str(endpoint_dir)})
    assert back.returncode == 1 and len(back.stderr.strip().splitlines()) == 1
    assert f"set RAG_EMBEDDER=endpoint and RAG_EMBED_ENDPOINT_MODEL={EMBED_MODEL}" in back.stderr


def test_a_wrong_vector_size_is_named_before_anything_is_stored(server, tmp_path):
    settings = make_settings(
        tmp_path,
        embedder="endpoint",
        embed_endpoint_url=server.url,
        embed_endpoint_model=EMBED_MODEL,
        embed_endpoint_dimension=768,
    )
    with pytest.raises(endpoint_module.EndpointError, match=r"sends 384-d vectors .* not 768-d .* set it to 384"):
        get_embedder(settings)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


FAILURES = {
    "down": (lambda server: _closed_port_url(), {}, "cannot reach the embeddings endpoint"),
    "401": (lambda server: server.url_for("e401"), {}, "needs an API key (HTTP 401"),
    "404 model": (
        lambda server: server.url,
        {"RAG_EMBED_ENDPOINT_MODEL": "nomic-embed-text"},
        "no model 'nomic-embed-text'",
    ),
    "500 always": (lambda server: server.url_for("e500"), {}, "failed 5 times (HTTP 500"),
    "wrong size": (lambda server: server.url, {"RAG_EMBED_ENDPOINT_DIMENSION": "768"}, "384"),
    "malformed": (lambda server: server.url_for("malformed"), {}, "not an OpenAI embeddings response"),
}


def _snapshot(data_dir) -> tuple:
    store = Store(make_settings(data_dir))
    try:
        return store.metadata(), store.chunk_count(), sorted(store.collection.get(include=[])["ids"])
    finally:
        store.close()


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_is_one_line_and_leaves_the_store_untouched(case, server, tmp_path):
    url_of, extra, message = FAILURES[case]
    data_dir = tmp_path / "d"
    first = write_jsonl(tmp_path / "a.jsonl", ROWS[:2])
    assert run_rag("ingest", str(first), env=endpoint_env(server.url, data_dir)).returncode == 0
    before = _snapshot(data_dir)
    more = write_jsonl(tmp_path / "b.jsonl", ROWS)
    for args in (("ingest", str(more)), ("search", "retrieval of topic 2")):
        proc = run_rag(*args, env=endpoint_env(url_of(server), data_dir, **extra))
        assert proc.returncode == 1, (case, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rag: error: "), (case, proc.stderr)
        assert message in lines[0] and "Traceback" not in proc.stderr, (case, lines[0])
        assert _snapshot(data_dir) == before, case


def test_vectors_of_uneven_length_are_named_and_nothing_is_stored(server, tmp_path):
    data_dir, first, more = (
        tmp_path / "d",
        write_jsonl(tmp_path / "a.jsonl", ROWS[:1]),
        write_jsonl(tmp_path / "b.jsonl", ROWS),
    )
    assert run_rag("ingest", str(first), env=endpoint_env(server.url, data_dir)).returncode == 0
    before = _snapshot(data_dir)
    proc = run_rag("ingest", str(more), env=endpoint_env(server.url_for("uneven"), data_dir))  # two papers to embed
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "sent vectors of uneven length (100 to 384)" in proc.stderr and "inhomogeneous" not in proc.stderr
    assert _snapshot(data_dir) == before
    # nothing was written, so the next command has no interrupted ingest to report
    after = run_rag("search", "retrieval of topic 0", env=endpoint_env(server.url, data_dir))
    assert after.returncode == 0 and "interrupted" not in after.stderr and "Paper 0" in after.stdout, after.stderr


def test_vectors_that_cannot_be_matched_to_their_texts_are_refused(server, tmp_path):
    """Every vector numbered 0: sorted by index they would land on the wrong chunks, silently."""
    data_dir = tmp_path / "d"
    proc = run_rag(
        "ingest", str(write_jsonl(tmp_path / "b.jsonl", ROWS)), env=endpoint_env(server.url_for("sameindex"), data_dir)
    )
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "numbered its 3 vectors [0, 0, 0] instead of 0 to 2 once each" in proc.stderr


def test_a_hung_endpoint_is_given_up_on_after_the_timeout_setting(server, tmp_path):
    data_dir = tmp_path / "d"
    assert (
        run_rag(
            "ingest", str(write_jsonl(tmp_path / "a.jsonl", ROWS[:2])), env=endpoint_env(server.url, data_dir)
        ).returncode
        == 0
    )
    env = endpoint_env(server.url_for("slow"), data_dir, RAG_EMBED_ENDPOINT_TIMEOUT="0.2")
    proc = run_rag("search", "retrieval of topic 2", env=env)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "failed 5 times (ReadTimeout" in proc.stderr and "raise RAG_EMBED_ENDPOINT_TIMEOUT" in proc.stderr


def test_a_500_then_success_is_retried(server, tmp_path):
    env = endpoint_env(server.url_for("once500"), tmp_path / "d")
    proc = run_rag("ingest", str(write_jsonl(tmp_path / "a.jsonl", ROWS)), env=env)
    assert proc.returncode == 0, proc.stderr
    assert server.requests["once500"] >= 3  # the failed probe, its retry, the chunks
    assert "3 papers: 3 added" in proc.stderr


def test_config_shows_the_endpoint_settings_with_the_key_masked(tmp_path):
    env = {
        "RAG_EMBEDDER": "endpoint",
        "RAG_EMBED_ENDPOINT_URL": "http://user:pw@gpu-box:11434/v1",
        "RAG_EMBED_ENDPOINT_API_KEY": "sk-embed-secret",
    }
    proc = run_rag("config", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "sk-embed-secret" not in proc.stdout and ":pw@" not in proc.stdout
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert (
        "(set)" in lines["embed_endpoint_api_key"]
        and "[env RAG_EMBED_ENDPOINT_API_KEY]" in lines["embed_endpoint_api_key"]
    )
    assert "http://***@gpu-box:11434/v1" in lines["embed_endpoint_url"]
    assert "endpoint" in lines["embedder"] and "text-embedding-3-small" in lines["embed_endpoint_model"]
    assert "embedding model: text-embedding-3-small at http://***@gpu-box:11434/v1/embeddings" in proc.stdout
