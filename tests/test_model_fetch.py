"""Fetching Chroma's embedding model on first use, against a local HTTP server (never the internet).

The server serves a .tar.gz built here from the shared model folder, in the layout of Chroma's own
archive (a top folder `onnx/`), or a corrupted copy, or cuts the connection mid-file.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import rag.config
from rag.config import load_settings
from rag.embedders.minilm import EmbedderError, MiniLM
from rag.model_fetch import MODEL_FILES, ModelFetchError, fetch
from tests.conftest import MODEL_DIR, run_rag

WAYS_OUT = ("connect to the internet once", "set RAG_EMBED_MODEL_DIR to a folder holding onnx/model.onnx")
SENTENCE = "Low-rank adapters make fine-tuning large language models cheap."


@dataclass
class Archive:
    data: bytes
    sha256: str


@pytest.fixture(scope="session")
def archive() -> Archive:
    """Chroma's archive layout: onnx/<the six files>."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(MODEL_DIR / "onnx", arcname="onnx")
    data = buf.getvalue()
    return Archive(data, hashlib.sha256(data).hexdigest())


@dataclass
class Server:
    url: str
    body: bytes = b""
    drop_after: int | None = None  # bytes sent before the connection is cut
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(archive: Archive) -> Iterator[Server]:
    state = Server(url="", body=archive.data)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            if state.drop_after is None:
                self.wfile.write(state.body)
            else:
                self.wfile.write(state.body[: state.drop_after])
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/all-MiniLM-L6-v2/onnx.tar.gz"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _assert_one_line_with_ways_out(message: str) -> None:
    assert "\n" not in message
    for way in WAYS_OUT:
        assert way in message


def test_no_setting_and_empty_cache_fetches_then_embeds(tmp_path, monkeypatch, server, archive, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(rag.config, "CHROMA_CACHE_MODEL_DIR", cache)
    monkeypatch.delenv("RAG_EMBED_MODEL_DIR")
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.embed_model_dir is None and settings.model_dir == cache

    fetched = MiniLM.from_settings(settings, url=server.url, sha256=archive.sha256)

    assert len(server.requests) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["onnx"]  # no temporary file or folder left
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == sorted(MODEL_FILES)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "downloading the embedding model all-MiniLM-L6-v2" in err and str(cache) in err
    vector = fetched.embed([SENTENCE])[0]
    expected = MiniLM(MODEL_DIR).embed([SENTENCE])[0]
    assert vector.shape == (384,) and np.allclose(vector, expected, atol=1e-6)
    MiniLM.from_settings(settings, url=server.url, sha256=archive.sha256)
    assert len(server.requests) == 1  # complete now: no second download


def test_an_incomplete_onnx_folder_is_replaced(tmp_path, server, archive):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"half a model")
    MiniLM(tmp_path, fetch=True, url=server.url, sha256=archive.sha256)
    assert (tmp_path / "onnx" / "model.onnx").read_bytes() == (MODEL_DIR / "onnx" / "model.onnx").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


def test_corrupted_archive_is_a_checksum_error_and_leaves_nothing(tmp_path, server, archive):
    body = bytearray(archive.data)
    body[len(body) // 2] ^= 0xFF
    server.body = bytes(body)
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ModelFetchError) as err:
        MiniLM(cache, fetch=True, url=server.url, sha256=archive.sha256)
    assert "SHA-256" in str(err.value)
    _assert_one_line_with_ways_out(str(err.value))
    assert server.requests  # it did download
    assert list(cache.iterdir()) == []


def test_connection_dropped_mid_file_leaves_nothing(tmp_path, server, archive):
    server.drop_after = len(archive.data) // 3
    cache = tmp_path / "new" / "cache"  # folders that do not exist yet are not left behind either
    with pytest.raises(ModelFetchError) as err:
        fetch(cache, url=server.url, sha256=archive.sha256)
    assert "broke off" in str(err.value)
    _assert_one_line_with_ways_out(str(err.value))
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_server_names_both_ways_out(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ModelFetchError) as err:
        MiniLM(cache, fetch=True, url=f"http://127.0.0.1:{port}/onnx.tar.gz", sha256="0" * 64)
    message = str(err.value)
    assert message.startswith("cannot download the embedding model all-MiniLM-L6-v2")
    assert "cannot connect" in message
    _assert_one_line_with_ways_out(message)
    assert list(cache.iterdir()) == []


def test_explicit_empty_folder_never_contacts_the_server(tmp_path, monkeypatch, server, archive):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RAG_EMBED_MODEL_DIR", str(empty))
    settings = load_settings(data_dir=tmp_path / "data")
    with pytest.raises(EmbedderError) as err:
        MiniLM.from_settings(settings, url=server.url, sha256=archive.sha256)
    assert str(err.value).startswith(f"embedding model not found: {empty}/onnx/model.onnx is missing")
    assert server.requests == []
    assert list(empty.iterdir()) == []


def test_stats_and_config_show_where_the_model_is(tmp_path, monkeypatch):
    data = str(tmp_path / "data")
    missing_config = str(tmp_path / "no-config.toml")
    present = run_rag("config", env={"RAG_DATA_DIR": data, "RAG_CONFIG": missing_config})
    assert present.returncode == 0, present.stderr
    lines = present.stdout.splitlines()
    assert lines[0] == f"config file: {missing_config} (none)"
    assert lines[1] == f"embedding model: all-MiniLM-L6-v2 (ONNX) at {MODEL_DIR} (present)"

    empty = tmp_path / "empty"
    empty.mkdir()
    stats = run_rag("stats", env={"RAG_DATA_DIR": data, "RAG_EMBED_MODEL_DIR": str(empty)})
    assert stats.returncode == 0, stats.stderr
    assert f"embedder    all-MiniLM-L6-v2 (ONNX) at {empty} (missing)\n" in stats.stdout

    home = tmp_path / "home"
    monkeypatch.delenv("RAG_EMBED_MODEL_DIR")
    cache = home / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2"
    env = {"RAG_DATA_DIR": data, "HOME": str(home)}
    stats = run_rag("stats", env=env)
    assert stats.returncode == 0, stats.stderr
    assert f"embedder    all-MiniLM-L6-v2 (ONNX) at {cache} (missing: fetched on first use)\n" in stats.stdout
    config_file = tmp_path / "config.toml"
    config_file.write_text("top_k = 3\n")
    config = run_rag("config", env={**env, "RAG_CONFIG": str(config_file)})
    assert config.returncode == 0, config.stderr
    assert config.stdout.splitlines()[:2] == [
        f"config file: {config_file}",
        f"embedding model: all-MiniLM-L6-v2 (ONNX) at {cache} (missing: fetched on first use)",
    ]
    assert not cache.exists()  # showing it never fetches it


@pytest.mark.parametrize(
    ("damaged", "content"),
    [
        ("model.onnx", b"\x00not a protobuf" * 100),
        ("tokenizer.json", b'{"version": "1.0", "trunc'),
        ("tokenizer.json", b""),
    ],
)
def test_a_damaged_model_file_is_named_in_one_line(tmp_path, damaged, content):
    """A model folder with every file present but one cut short or overwritten (an interrupted copy)."""
    from tests.conftest import MODEL_DIR, run_rag

    onnx = tmp_path / "model" / "onnx"
    onnx.mkdir(parents=True)
    for f in (MODEL_DIR / "onnx").iterdir():
        (onnx / f.name).symlink_to(f)
    (onnx / damaged).unlink()
    (onnx / damaged).write_bytes(content)
    proc = run_rag(
        "search",
        "dense retrieval",
        env={"RAG_EMBED_MODEL_DIR": str(tmp_path / "model"), "RAG_DATA_DIR": str(tmp_path / "data")},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert f"the embedding model file {onnx / damaged} is damaged" in proc.stderr
    assert "RAG_EMBED_MODEL_DIR" in proc.stderr.strip().splitlines()[-1]
