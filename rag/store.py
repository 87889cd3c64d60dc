"""The Chroma store: the single source of truth for chunks, their vectors and their papers.

A local `PersistentClient` under the data directory, or a Chroma server when `chroma_url` is set.
Vectors are computed here by `Embedder` (so a server never needs the model), and every chunk
carries its paper's id, title and content hash, so ingest can tell what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rag.config import mask_url
from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings

FINGERPRINT_KEY = "rag_fingerprint"


class StoreError(RagError):
    pass


@dataclass(frozen=True)
class Chunk:
    id: str
    paper_id: str
    title: str
    text: str  # what is embedded and indexed: title line, then a slice of the abstract
    index: int
    content_hash: str
    extra: dict[str, str]

    def metadata(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "chunk": self.index,
            "content_hash": self.content_hash,
            **{k: v for k, v in self.extra.items() if v},
        }


@dataclass(frozen=True)
class DenseHit:
    chunk_id: str
    similarity: float  # cosine similarity in [-1, 1]
    text: str
    metadata: dict[str, Any]


def _client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError(f"RAG_CHROMA_URL={mask_url(settings.chroma_url)!r} is not an http(s)://host:port address")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {mask_url(settings.chroma_url)} ({mask_url(str(exc))}); start it with "
                "`chroma run` or unset RAG_CHROMA_URL to use the local store"
            ) from None
    path = Path(settings.data_dir) / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        raise StoreError(f"cannot open the Chroma store at {path} ({exc}); check RAG_DATA_DIR") from None


class Store:
    """Chunks of papers in one Chroma collection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = settings.chroma_url or str(Path(settings.data_dir) / "chroma")
        self._client = _client(settings)
        try:
            self.collection = self._client.get_or_create_collection(
                settings.collection,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            raise StoreError(
                f"cannot open collection {settings.collection!r} at {mask_url(self.location)} ({mask_url(str(exc))})"
            ) from None

    # -- reading -------------------------------------------------------------------------

    def count(self) -> int:
        return self.collection.count()

    def fingerprint(self) -> str:
        """Changes whenever the stored chunks change; derived indexes compare against it."""
        meta = self.collection.metadata or {}
        return str(meta.get(FINGERPRINT_KEY, ""))

    def paper_hashes(self) -> dict[str, str]:
        """paper id -> content hash of what is stored."""
        out: dict[str, str] = {}
        for meta in self._all(include=["metadatas"])["metadatas"]:
            out[str(meta["paper_id"])] = str(meta["content_hash"])
        return out

    def titles(self) -> dict[str, str]:
        """paper id -> title of every stored paper."""
        return {str(m["paper_id"]): str(m["title"]) for m in self._all(include=["metadatas"])["metadatas"]}

    def all_chunks(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        got = self._all(include=["documents", "metadatas"])
        return got["ids"], got["documents"], got["metadatas"]

    def _all(self, include: list[str], page: int = 5000) -> dict[str, list]:
        result: dict[str, list] = {"ids": [], "documents": [], "metadatas": []}
        offset = 0
        while True:
            got = self.collection.get(include=include, limit=page, offset=offset)
            for key in result:
                result[key].extend(got.get(key) or [])
            if len(got["ids"]) < page:
                return result
            offset += page

    def paper(self, paper_id: str) -> tuple[str, list[str]] | None:
        """Title and chunk texts (in order) of one stored paper."""
        got = self.collection.get(where={"paper_id": paper_id}, include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        pairs = sorted(zip(got["metadatas"], got["documents"]), key=lambda p: p[0]["chunk"])
        return str(pairs[0][0]["title"]), [doc for _, doc in pairs]

    def abstracts(self, paper_ids: list[str]) -> dict[str, tuple[str, str]]:
        """paper id -> (title, abstract) of stored papers."""
        if not paper_ids:
            return {}
        got = self.collection.get(
            where={"$and": [{"paper_id": {"$in": list(paper_ids)}}, {"chunk": 0}]}, include=["metadatas"]
        )
        return {str(m["paper_id"]): (str(m["title"]), str(m.get("abstract", ""))) for m in got["metadatas"]}

    def dense(self, vector: list[float], n: int) -> list[DenseHit]:
        total = self.count()
        if total == 0:
            return []
        got = self.collection.query(
            query_embeddings=[vector], n_results=min(n, total), include=["documents", "metadatas", "distances"]
        )
        return [
            DenseHit(cid, 1.0 - float(dist), doc, meta)
            for cid, dist, doc, meta in zip(
                got["ids"][0], got["distances"][0], got["documents"][0], got["metadatas"][0]
            )
        ]

    # -- writing -------------------------------------------------------------------------

    def add(self, chunks: list[Chunk], vectors: Iterable[list[float]]) -> None:
        if chunks:
            self.collection.upsert(
                ids=[c.id for c in chunks],
                documents=[c.text for c in chunks],
                metadatas=[c.metadata() for c in chunks],
                embeddings=list(vectors),
            )

    def chunk_ids_of(self, paper_ids: list[str]) -> set[str]:
        got = self.collection.get(where={"paper_id": {"$in": paper_ids}}, include=[])
        return set(got["ids"])

    def delete_ids(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.collection.delete(ids=ids)

    def delete_papers(self, paper_ids: Iterable[str]) -> None:
        ids = list(paper_ids)
        for i in range(0, len(ids), 500):
            self.collection.delete(where={"paper_id": {"$in": ids[i : i + 500]}})

    def mark_changing(self) -> None:
        """Clear the fingerprint first, so an interrupted ingest leaves derived indexes stale."""
        self._set_fingerprint("")

    def _set_fingerprint(self, value: str) -> None:
        meta = dict(self.collection.metadata or {})
        meta[FINGERPRINT_KEY] = value
        self.collection.modify(metadata=meta)

    def refresh_fingerprint(self) -> None:
        hashes = self.paper_hashes()
        digest = hashlib.sha1("".join(f"{k}:{v};" for k, v in sorted(hashes.items())).encode()).hexdigest()[:16]
        self._set_fingerprint(digest)
