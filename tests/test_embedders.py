"""The Embedder seam: the registry, and the store refusing to mix vectors of two embedders (fake
embedders against a real Chroma store in a temporary folder; no model is loaded)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rag.config import Settings
from rag.embedders import (
    EMBEDDERS,
    EmbedderIdentity,
    RecentVectors,
    embedder_identity,
    identity_of,
)
from rag.ingest import ingest
from rag.store import DIMENSION_KEY, EMBEDDER_KEY, Chunk, Store, StoreError
from tests.conftest import make_settings, write_jsonl

MINILM = EmbedderIdentity("all-MiniLM-L6-v2", 384)
MINILM_INT8 = EmbedderIdentity("all-MiniLM-L6-v2-int8", 384)
ROWS = [{"title": f"Paper {i}", "abstract": f"Paper {i} studies retrieval of topic {i}."} for i in range(3)]


class FakeEmbedder:
    """Hash-seeded unit vectors; words as tokens."""

    max_tokens = 512

    def __init__(self, name: str = "fake-hash", dimension: int = 8) -> None:
        self.name, self.dimension = name, dimension
        self.embedded = 0
        self.embed_cached = RecentVectors(self.embed)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=self.dimension)
            out[i] = v / np.linalg.norm(v)
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def warm(self) -> None:
        pass


def _chunk(i: int = 0) -> Chunk:
    return Chunk(f"p{i}#0", f"p{i}", "T", "T\nsome text", 0, "h", {"chunks": 1})


def test_a_store_records_its_embedder_and_refuses_another_in_one_line(tmp_path):
    store = Store(make_settings(tmp_path))
    fake = FakeEmbedder()
    ingest(store, fake, [write_jsonl(tmp_path / "a.jsonl", ROWS)])
    meta = store.metadata()
    assert (meta[EMBEDDER_KEY], meta[DIMENSION_KEY]) == ("fake-hash", 8)
    assert store.made_by() == identity_of(fake)
    store.check_embedder(identity_of(FakeEmbedder()))  # the same embedder again is fine

    with pytest.raises(StoreError) as err:
        store.check_embedder(MINILM)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        "collection 'papers' holds vectors made by fake-hash (8-d), and rag is set to embed with "
        "all-MiniLM-L6-v2 (384-d); choose another collection (RAG_COLLECTION)"
    )

    wider = FakeEmbedder(dimension=16)  # same name, other size: still another embedder
    with pytest.raises(StoreError, match=r"made by fake-hash \(8-d\).*fake-hash \(16-d\)"):
        ingest(store, wider, [write_jsonl(tmp_path / "b.jsonl", ROWS + [{"title": "New", "abstract": "New text."}])])
    assert wider.embedded == 0 and store.counts() == (3, 3)  # refused before anything was embedded or written


def test_another_minilm_variant_is_told_which_setting_to_change(tmp_path):
    store = Store(make_settings(tmp_path))
    store.record_embedder(MINILM_INT8)
    with pytest.raises(StoreError, match=r"made by all-MiniLM-L6-v2-int8, .* set RAG_EMBED_QUANTIZED=1 to use it"):
        store.check_embedder(MINILM)


def test_stores_from_before_the_dimension_was_recorded_still_open(tmp_path):
    store = Store(make_settings(tmp_path))
    assert store.made_by() is None
    store.check_embedder(EmbedderIdentity("anything", 3))  # an empty store takes any embedder

    store.add([_chunk()], [[1.0] + [0.0] * 383])  # vectors, but no record: the MiniLM of old
    assert store.made_by() == MINILM
    store.check_embedder(MINILM)
    with pytest.raises(StoreError, match="RAG_EMBED_QUANTIZED=0"):
        store.check_embedder(MINILM_INT8)

    store._update_metadata(**{EMBEDDER_KEY: MINILM_INT8.name})  # a name only, as stores recorded it
    assert store.made_by() == MINILM_INT8
    store.check_embedder(MINILM_INT8)
    store.record_embedder(MINILM_INT8)
    assert store.metadata()[DIMENSION_KEY] == 384


def test_the_registry_names_the_configured_embedder_without_loading_it(tmp_path):
    settings = make_settings(tmp_path, embed_quantized=True, embed_model_dir=tmp_path / "no-model-here")
    assert embedder_identity(settings) == MINILM_INT8  # no model is read for the identity
    assert embedder_identity(make_settings(tmp_path)) == MINILM
    with pytest.raises(ValueError, match="embedder"):
        make_settings(tmp_path, embedder="nope")


def test_the_embedder_setting_allows_exactly_the_registered_names():
    from typing import get_args

    assert set(get_args(Settings.model_fields["embedder"].annotation)) == set(EMBEDDERS)
    assert Settings.model_fields["embedder"].default == "minilm"


def test_recent_vectors_embed_only_what_they_have_not_seen(monkeypatch):
    from rag import embedders

    monkeypatch.setattr(embedders, "RECENT_VECTORS", 3)
    fake = FakeEmbedder()
    first = fake.embed_cached(["a", "b"])
    again = fake.embed_cached(["a", "b", "c", "d"])
    assert fake.embedded == 4 and np.allclose(again[:2], first) and len(fake.embed_cached) == 3
    assert fake.embed_cached([]).shape == (0, 8)
