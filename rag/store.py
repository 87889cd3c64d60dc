"""The Chroma store: the single source of truth for chunks, their vectors and their papers.

A local `PersistentClient` under the data directory, or a Chroma server when `chroma_url` is set.
Vectors are computed here by an `Embedder` (so a server never needs the model), and every chunk
carries its paper's id, title and content hash, so ingest can tell what changed.

Derived indexes (BM25) compare themselves with `fingerprint()`: the chunk count and a generation
counter kept in the collection's metadata, bumped *before* every write. A writer killed at any
point therefore leaves the generation ahead of every index built before its write, never behind.
The collection metadata also records the last ingest (running or done, bundled or user files),
so a killed ingest is told apart from a store that was never written.

Nothing here reads the whole collection on a normal path: ingest looks papers up by their first
chunk's id (`stored`), and the paper and chunk counts are kept in the collection metadata, updated
after every write (`counts`). A write killed before its count update leaves the store marked as
an ingest in progress, and the ingest that resumes it counts again (`recount`), the one step that
reads every record.

Layout 3 (`LAYOUT_KEY`): a chunk's text is in its metadata (`TEXT_KEY`), not in Chroma's
document, which Chroma also indexes for a full-text search rag never uses (that index was 40% of
the time of a write); `chunk_rows` reads both, so older stores read the same. A paper's first chunk
records how many chunks it has (since layout 2), and carries the whole abstract only when the
abstract is split over several chunks (a one-chunk paper's abstract is its chunk's text). Layout-1
stores (every first chunk carries the abstract) read the same.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from rag.config import mask_url
from rag.embedders import EmbedderIdentity
from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings

GENERATION_KEY = "rag_generation"
INGEST_KEY = "rag_ingest"  # "running" while an ingest writes, "done" when it finished
SOURCE_KEY = "rag_source"  # "bundled" or "user": what the last ingest read
WANTED_KEY = "rag_wanted"  # papers the last ingest wanted stored
COMMAND_KEY = "rag_command"  # the last ingest's command line, to tell the user what to re-run
PAPERS_KEY = "rag_papers"  # papers stored, kept up to date by every write
CHUNKS_KEY = "rag_chunks"  # chunks stored, likewise
LAYOUT_KEY = "rag_layout"
EMBEDDER_KEY = "rag_embedder"  # which embedder made the vectors (its name); a store never mixes two
DIMENSION_KEY = "rag_embedder_dimension"  # and the size of its vectors (stores before it: see `embedder`)
TEXT_KEY = "text"  # a chunk's text (layout 3)
LAYOUT = 3
LOOKUP_BATCH = 500  # ids per Chroma lookup

T = TypeVar("T")


def chunk_rows(got: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, text, metadata without the text) of each chunk of a Chroma `get` that included
    metadatas and documents: the text is in the metadata since layout 3, in the document before."""
    metas = got.get("metadatas") or [{} for _ in got["ids"]]
    docs = got.get("documents") or [None for _ in got["ids"]]
    rows = []
    for cid, meta, doc in zip(got["ids"], metas, docs):
        meta = dict(meta or {})
        text = meta.pop(TEXT_KEY, None)
        rows.append((str(cid), str(text if text is not None else doc or ""), meta))
    return rows


def abstract_of(first_chunk_meta: Mapping[str, Any], first_chunk_text: str) -> str:
    """A paper's abstract from its first chunk: the metadata holds it when the abstract is split
    over several chunks; a one-chunk paper's chunk is its title line and the abstract."""
    abstract = first_chunk_meta.get("abstract")
    if abstract is None:
        return _strip_title(str(first_chunk_text), str(first_chunk_meta["title"]))
    return str(abstract)


class StoreError(RagError):
    pass


@dataclass(frozen=True)
class IngestState:
    """What the collection metadata says about the last ingest; `status` None: never ingested."""

    status: str | None
    source: str | None
    wanted: int
    command: str

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class Chunk:
    id: str
    paper_id: str
    title: str
    text: str  # what is embedded and indexed: title line, then a slice of the abstract
    index: int
    content_hash: str
    extra: dict[str, str | int]

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
    _check_database(path / "chroma.sqlite3")
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        if _disk_full(exc):
            raise StoreError(
                f"the disk holding the Chroma store at {path} is full; free some space and run the command again"
            ) from None
        if "readonly" in str(exc).lower().replace("-", "").replace(" ", ""):
            raise StoreError(
                f"the Chroma store at {path} is read-only here, and rag writes to it even to search (Chroma "
                "opens its database for writing); give this user write access, or copy the data folder "
                "somewhere writable and point RAG_DATA_DIR at the copy"
            ) from None
        raise StoreError(
            f"cannot open the Chroma store at {path} ({_one_line(exc)}); check RAG_DATA_DIR, or move that "
            "folder away to start a new store"
        ) from None


def _check_database(db: Path) -> None:
    """A zero-byte or non-SQLite database is reported, never silently replaced by an empty store
    (SQLite would happily treat a zero-byte file as a new database)."""
    try:
        size = db.stat().st_size
        with db.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise StoreError(
            f"{db.parent} is a file where the Chroma store's folder goes; move it away, or point RAG_DATA_DIR "
            "at another folder"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read the Chroma database {db} ({exc.strerror}); check its permissions") from None
    fix = f"restore it from a backup, or move the folder {db.parent} away to start a new store"
    if size == 0:
        raise StoreError(f"the Chroma database {db} is empty (0 bytes); {fix}")
    if head != b"SQLite format 3\x00":
        raise StoreError(f"the Chroma database {db} is not an SQLite database; {fix}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
        or "disk is full" in text
        or "no space left" in text
        or (isinstance(exc, sqlite3.OperationalError) and "full" in text)
    )


FULL_DISK_BYTES = 1 << 20  # a local store's failed write with less free space than this is a full disk


def _little_space(folder: str) -> bool:
    """Whether the file system of `folder` is (nearly) full: Chroma reports some writes that ran
    out of space only as a failed compaction."""
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


# HNSW candidates examined per query. At Chroma's default (100) the dense top 60 of the bundled
# store (459 chunks) differed between processes, as each process's graph differs, so answers and
# eval figures changed from run to run; at 512 the search is exact there and repeatable.
SEARCH_EF = 512
# Chroma's default sync_threshold: it saves its HNSW index every this many vectors written, and a
# process that loads the index replays the ones written since the last save from its log.
SYNC_THRESHOLD = 1000


class Store:
    """Chunks of papers in one Chroma collection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = settings.chroma_url or str(Path(settings.data_dir) / "chroma")
        self.lock = StoreLock(Path(settings.data_dir) / "locks" / f"{self.key()}.lock")
        self.embedder_identity: EmbedderIdentity | None = None  # what rag embeds with, once checked
        self._warming: threading.Thread | None = None  # see warm()
        self._loaded_at: str | None = None  # the fingerprint when the vector index was loaded (see dense)
        self._client = _client(settings)
        try:
            self.collection = self._client.get_or_create_collection(
                settings.collection,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine", "ef_search": SEARCH_EF}},
            )
        except Exception as exc:
            raise self._error(exc, f"opening collection {settings.collection!r}") from None
        self._settle_index_settings()

    def _settle_index_settings(self) -> None:
        """Stores made before SEARCH_EF was set search with Chroma's default (100): raise it once.
        Put back SYNC_THRESHOLD if a `save_vector_index` was killed before it did.
        A store that cannot be written (read-only folder) keeps searching as it did."""
        try:
            hnsw = (self.collection.configuration or {}).get("hnsw") or {}
            if int(hnsw.get("ef_search") or 0) < SEARCH_EF:
                self.collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
            if hnsw.get("sync_threshold") not in (None, SYNC_THRESHOLD):
                self.collection.modify(configuration={"hnsw": {"sync_threshold": SYNC_THRESHOLD}})
        except Exception:  # noqa: BLE001 - an optimisation; searching works without it
            pass

    def close(self) -> None:
        """Release the Chroma client (its files, or its HTTP connections to a server); the store
        refuses calls afterwards."""
        if self._warming is not None:
            self._warming.join(timeout=60)  # never close the client under a running query
        self._client.close()

    def key(self) -> str:
        """Names this store's files beside the data (BM25 index, lock): the server and the
        collection. A local store is named by its collection alone, so a data folder that is
        moved or copied keeps its BM25 index."""
        where = self.settings.chroma_url or "local"
        return hashlib.sha1(f"{where}|{self.settings.collection}".encode()).hexdigest()[:12]

    # -- errors --------------------------------------------------------------------------

    def _error(self, exc: BaseException, action: str) -> StoreError:
        """One line for a failed Chroma call: what failed and what to do."""
        if isinstance(exc, StoreError):
            return exc
        text = _one_line(exc)
        if "dimension" in text.lower():
            ours = (
                f"rag embeds {self.embedder_identity} vectors"
                if self.embedder_identity
                else "rag's embedder makes vectors of another size"
            )
            return StoreError(
                f"collection {self.settings.collection!r} at {mask_url(self.location)} holds vectors of another size "
                f"({mask_url(text)}); {ours}: use another collection (RAG_COLLECTION) or another data directory"
            )
        if _disk_full(exc) or (not self.settings.chroma_url and _little_space(self.location)):
            return StoreError(
                f"the disk is full while {action} in the Chroma store at {mask_url(self.location)}; free some space "
                "and run the same command again (papers already stored are kept)"
            )
        if self.settings.chroma_url and _connection_lost(exc):
            return StoreError(
                f"lost the Chroma server at {mask_url(self.settings.chroma_url or '')} while {action} ({mask_url(text)}); start it "
                "again and re-run the command (an interrupted `rag ingest` resumes where it stopped)"
            )
        if "hnsw" in text.lower() and not self.settings.chroma_url:
            return StoreError(
                f"the vector index of the Chroma store at {self.location} is damaged ({text}); move that folder "
                "away and run `rag ingest` with your corpus files again to rebuild it"
            )
        advice = (
            "check the server's log"
            if self.settings.chroma_url
            else f"if it fails again, the store may be damaged: move {self.location} away and run `rag ingest` again"
        )
        return StoreError(
            f"the Chroma store at {mask_url(self.location)} failed while {action} ({mask_url(text)}); {advice}"
        )

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (KeyboardInterrupt, SystemExit, RagError):
            raise
        except Exception as exc:
            raise self._error(exc, action) from None

    # -- reading -------------------------------------------------------------------------

    def other_collections(self) -> list[str]:
        """Names of the store's collections besides the configured one (a mistyped RAG_COLLECTION
        would otherwise make a new, empty one beside them)."""
        found = self._call("listing collections", self._client.list_collections)
        return sorted(name for c in found if (name := str(getattr(c, "name", c))) != self.settings.collection)

    def count(self) -> int:
        return self._call("counting chunks", self.collection.count)

    def metadata(self) -> dict[str, Any]:
        """The collection metadata as stored now (another process may have changed it)."""
        name = self.settings.collection
        return dict(self._call("reading the collection", lambda: self._client.get_collection(name).metadata) or {})

    def fingerprint(self) -> str:
        """Changes whenever the stored chunks change: the write generation, which every write
        bumps before it touches a chunk, so no kill leaves it unchanged. One metadata read."""
        return f"g{int(self.metadata().get(GENERATION_KEY, 0))}"

    def counts(self) -> tuple[int, int] | None:
        """(papers, chunks) as kept in the collection metadata, or None for a store written
        before counts were kept. While an ingest runs, or after one was killed, they may lag
        its last batch."""
        meta = self.metadata()
        if PAPERS_KEY not in meta or CHUNKS_KEY not in meta:
            return None
        return int(meta[PAPERS_KEY]), int(meta[CHUNKS_KEY])

    def chunk_count(self) -> int:
        """Chunks stored: the kept count, or Chroma's own count for an older store."""
        kept = self.counts()
        return kept[1] if kept is not None else self.count()

    def recount(self) -> tuple[int, int]:
        """Count papers and chunks by reading every id, and keep the result. Reads the whole
        store: only for a store from before counts were kept, or after a killed ingest."""
        papers = sum(1 for _ in self.iter_ids(where={"chunk": 0}))
        chunks = self.count()
        self._update_metadata(**{PAPERS_KEY: papers, CHUNKS_KEY: chunks, LAYOUT_KEY: LAYOUT})
        return papers, chunks

    def _add_counts(self, papers: int, chunks: int) -> None:
        kept = self.counts()
        if kept is not None:
            self._update_metadata(**{PAPERS_KEY: max(0, kept[0] + papers), CHUNKS_KEY: max(0, kept[1] + chunks)})

    def ingest_state(self) -> IngestState:
        meta = self.metadata()
        status = meta.get(INGEST_KEY)
        return IngestState(
            status=str(status) if status else None,
            source=str(meta[SOURCE_KEY]) if meta.get(SOURCE_KEY) else None,
            wanted=int(meta.get(WANTED_KEY, 0) or 0),
            command=str(meta.get(COMMAND_KEY, "") or ""),
        )

    def chunk_ids(self) -> set[str]:
        return set(self._all(include=[])["ids"])

    def stored(self, paper_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        """paper id -> (content hash, number of chunks; None in a layout-1 store) of those of
        `paper_ids` that are stored, looked up by their first chunk's id in batches."""
        out: dict[str, tuple[str, int | None]] = {}
        for i in range(0, len(paper_ids), LOOKUP_BATCH):
            ids = [f"{pid}#0" for pid in paper_ids[i : i + LOOKUP_BATCH]]
            got = self._call("looking papers up", partial(self.collection.get, ids=ids, include=["metadatas"]))
            for meta in got["metadatas"] or []:
                n = meta.get("chunks")
                out[str(meta["paper_id"])] = (str(meta["content_hash"]), int(n) if n is not None else None)
        return out

    def iter_ids(self, where: dict[str, Any] | None = None, page: int = 5000) -> Iterator[str]:
        """Every chunk id (matching `where`), page by page: reads the whole store."""
        offset = 0
        while True:
            got = self._call(
                "reading chunks", partial(self.collection.get, where=where, include=[], limit=page, offset=offset)
            )
            yield from got["ids"]
            if len(got["ids"]) < page:
                return
            offset += page

    def iter_chunks(self, page: int = 2000) -> Iterator[tuple[list[str], list[str]]]:
        """(ids, texts) of every chunk, a page at a time: reads the whole store, holding one
        page. For rebuilding the BM25 index after a crash or when it is missing."""
        offset = 0
        while True:
            got = self._call(
                "reading chunks",
                partial(self.collection.get, include=["documents", "metadatas"], limit=page, offset=offset),
            )
            if got["ids"]:
                rows = chunk_rows(got)
                yield [cid for cid, _, _ in rows], [text for _, text, _ in rows]
            if len(got["ids"]) < page:
                return
            offset += page

    def paper_hashes(self) -> dict[str, str]:
        """paper id -> content hash of everything stored: reads the whole store (tests, --prune)."""
        out: dict[str, str] = {}
        for meta in self._all(include=["metadatas"])["metadatas"]:
            out[str(meta["paper_id"])] = str(meta["content_hash"])
        return out

    def titles(self) -> dict[str, str]:
        """paper id -> title of every stored paper."""
        return {str(m["paper_id"]): str(m["title"]) for m in self._all(include=["metadatas"])["metadatas"]}

    def all_chunks(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """(ids, texts, metadatas) of every chunk: reads the whole store (tests, inspection)."""
        rows = chunk_rows(self._all(include=["documents", "metadatas"]))
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def _all(self, include: list[str], page: int = 5000) -> dict[str, list]:
        result: dict[str, list] = {"ids": [], "documents": [], "metadatas": []}
        offset = 0
        while True:
            got = self._call("reading chunks", partial(self.collection.get, include=include, limit=page, offset=offset))
            for key in result:
                result[key].extend(got.get(key) or [])
            if len(got["ids"]) < page:
                return result
            offset += page

    def paper(self, paper_id: str) -> tuple[str, list[str]] | None:
        """Title and chunk texts (in order) of one stored paper."""
        got = self._call(
            "reading a paper",
            lambda: self.collection.get(where={"paper_id": paper_id}, include=["documents", "metadatas"]),
        )
        if not got["ids"]:
            return None
        rows = sorted(chunk_rows(got), key=lambda row: row[2]["chunk"])
        return str(rows[0][2]["title"]), [text for _, text, _ in rows]

    def abstracts(self, paper_ids: list[str]) -> dict[str, tuple[str, str]]:
        """paper id -> (title, abstract) of stored papers."""
        if not paper_ids:
            return {}
        out: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(paper_ids))
        for i in range(0, len(ids), LOOKUP_BATCH):
            first = [f"{pid}#0" for pid in ids[i : i + LOOKUP_BATCH]]
            got = self._call(
                "reading abstracts", partial(self.collection.get, ids=first, include=["metadatas", "documents"])
            )
            for _, text, meta in chunk_rows(got):
                out[str(meta["paper_id"])] = (str(meta["title"]), abstract_of(meta, text))
        return out

    def _load_vector_index(self, dimension: int) -> None:
        """Have Chroma load its vector index, with a query for one unit vector (any will do)."""
        self.collection.query(query_embeddings=[[1.0] + [0.0] * (dimension - 1)], n_results=1, include=[])

    def save_vector_index(self, dimension: int) -> None:
        """Have Chroma save its vector index now, so that no process replays vectors from its log
        (all 459 of the bundled store's on every command; 867 cost 0.2 s at 100k papers). Chroma
        has no call for it: a fresh load of the index with a sync threshold of 1 replays the log
        and saves; the threshold is then put back. A Chroma server keeps its own index loaded."""
        if self.settings.chroma_url:
            return
        if self._warming is not None:
            self._warming.join(timeout=60)
            self._warming = None

        def save() -> None:
            self.collection.modify(configuration={"hnsw": {"sync_threshold": 1}})
            try:
                self._client.close()
                self._client = _client(self.settings)
                self.collection = self._client.get_collection(self.settings.collection, embedding_function=None)
                self._loaded_at = self.fingerprint()
                self._load_vector_index(dimension)
            finally:
                self.collection.modify(configuration={"hnsw": {"sync_threshold": SYNC_THRESHOLD}})

        self._call("saving the vector index", save)

    def warm(self, dimension: int) -> None:
        """Load the vector index in a background thread: a fresh process's first query otherwise
        waits for it (about 0.4 s at 100k papers), while it could be embedding the question."""

        def load() -> None:
            try:
                self._load_vector_index(dimension)
            except Exception:  # the real query reports any problem
                pass

        if self._warming is None:
            self._note_loading()
            self._warming = threading.Thread(target=load, name="warm-vector-index", daemon=True)
            self._warming.start()

    def _note_loading(self) -> None:
        if self._loaded_at is None and not self.settings.chroma_url:
            with contextlib.suppress(StoreError):
                self._loaded_at = self.fingerprint()

    def _reload_if_written(self) -> None:
        """A local client loads the vector index once and never sees vectors another process adds
        afterwards (`rag serve`, `rag chat` or `rag mcp` beside a `rag ingest`): when the write
        generation moved since the index was loaded, open the client again, which loads it anew.
        A Chroma server keeps its own index current."""
        if self.settings.chroma_url:
            return
        if self._loaded_at is None:
            self._note_loading()
            return
        now = self.fingerprint()
        if now == self._loaded_at:
            return
        if self._warming is not None:
            self._warming.join(timeout=60)  # never close the client under a running query
            self._warming = None

        def reopen() -> None:
            self._client.close()
            self._client = _client(self.settings)
            self.collection = self._client.get_collection(self.settings.collection, embedding_function=None)

        self._call("reopening the store", reopen)
        self._loaded_at = now

    def dense(self, vector: list[float], n: int) -> list[DenseHit]:
        """The `n` nearest chunks (fewer in a smaller store); no count of the store per query."""
        self._reload_if_written()
        got = self._call(
            "searching",
            lambda: self.collection.query(
                query_embeddings=[vector], n_results=n, include=["documents", "metadatas", "distances"]
            ),
        )
        if not got["ids"] or not got["ids"][0]:
            return []
        rows = chunk_rows({key: (got.get(key) or [None])[0] for key in ("ids", "documents", "metadatas")})
        return [
            DenseHit(cid, 1.0 - float(dist), text, meta) for (cid, text, meta), dist in zip(rows, got["distances"][0])
        ]

    # -- writing -------------------------------------------------------------------------
    # Every write bumps the generation first (see the module docstring).

    def _existing(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """chunk id -> metadata of those of `ids` that are stored."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            got = self._call("reading chunks", partial(self.collection.get, ids=part, include=["metadatas"]))
            out.update(zip(got["ids"], got["metadatas"] or []))
        return out

    def add(self, chunks: list[Chunk], vectors: Iterable[list[float]]) -> None:
        if chunks:
            vectors = list(vectors)
            before = self._existing([c.id for c in chunks])
            metadatas = []
            for c in chunks:
                meta = {**c.metadata(), TEXT_KEY: c.text}
                # Chroma's upsert keeps keys the new metadata lacks; None removes them (such as
                # the abstract a layout-1 first chunk carried)
                meta.update({k: None for k in before.get(c.id, {}) if k not in meta})
                metadatas.append(meta)
            self._bump()
            self._call(
                "writing chunks",
                lambda: self.collection.upsert(ids=[c.id for c in chunks], metadatas=metadatas, embeddings=vectors),
            )
            self._add_counts(
                sum(1 for c in chunks if c.index == 0 and c.id not in before),
                sum(1 for c in chunks if c.id not in before),
            )

    def chunks(self, ids: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of those of `ids` that are stored."""
        return chunk_rows(
            self._call("reading chunks", lambda: self.collection.get(ids=ids, include=["documents", "metadatas"]))
        )

    def vectors(self, ids: list[str]) -> dict[str, list[float]]:
        """The stored embedding of each of `ids` that is stored."""
        got = self._call("reading chunks", lambda: self.collection.get(ids=ids, include=["embeddings"]))
        embeddings = got.get("embeddings")
        if embeddings is None:
            return {}
        return {cid: list(vector) for cid, vector in zip(got["ids"], embeddings)}

    def chunk_ids_of(self, paper_ids: list[str]) -> set[str]:
        got = self._call(
            "reading chunks", lambda: self.collection.get(where={"paper_id": {"$in": paper_ids}}, include=[])
        )
        return set(got["ids"])

    def delete_ids(self, ids: Iterable[str]) -> None:
        existing = self._existing(list(ids))
        if existing:
            self._bump()
            self._call("deleting chunks", lambda: self.collection.delete(ids=list(existing)))
            self._add_counts(-sum(1 for m in existing.values() if m.get("chunk") == 0), -len(existing))

    def delete_papers(self, paper_ids: Iterable[str]) -> list[str]:
        """Delete whole papers; returns the chunk ids deleted."""
        ids = list(paper_ids)
        deleted: list[str] = []
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            got = self._call(
                "reading chunks",
                partial(self.collection.get, where={"paper_id": {"$in": part}}, include=["metadatas"]),
            )
            if not got["ids"]:
                continue
            self._bump()
            self._call("deleting papers", partial(self.collection.delete, ids=list(got["ids"])))
            self._add_counts(-sum(1 for m in got["metadatas"] if m.get("chunk") == 0), -len(got["ids"]))
            deleted.extend(got["ids"])
        return deleted

    def _update_metadata(self, **values: Any) -> None:
        """Read-modify-write of the collection metadata; writers hold the store lock, so no
        two of them interleave."""
        meta = self.metadata()
        meta.update(values)
        self._call("writing the collection metadata", lambda: self.collection.modify(metadata=meta))

    def _bump(self) -> None:
        self._update_metadata(**{GENERATION_KEY: int(self.metadata().get(GENERATION_KEY, 0)) + 1})

    def made_by(self) -> EmbedderIdentity | None:
        """The embedder whose vectors the store holds; None for a store never written. A store
        without a record was made by the embedder rag had before records were kept, and one
        recording a name only, by an embedder of that name making vectors of its size."""
        from rag.embedders import unrecorded_identity

        meta = self.metadata()
        if EMBEDDER_KEY not in meta and not self.chunk_count():
            return None
        before = unrecorded_identity()
        return EmbedderIdentity(
            str(meta.get(EMBEDDER_KEY) or before.name), int(meta.get(DIMENSION_KEY) or before.dimension)
        )

    def check_embedder(self, embedder: EmbedderIdentity) -> None:
        """Refuse, in one line that says what to do, to mix vectors of two embedders."""
        from rag.embedders import how_to_use

        self.embedder_identity = embedder
        made_by = self.made_by()
        if made_by is None or made_by == embedder:
            return
        if made_by.dimension == embedder.dimension:
            theirs, ours = made_by.name, embedder.name
        else:
            theirs, ours = str(made_by), str(embedder)
        hint = how_to_use(made_by, self.settings)
        raise StoreError(
            f"collection {self.settings.collection!r} holds vectors made by {theirs}, and rag is set to embed "
            f"with {ours}; {hint + ' to use it, or ' if hint else ''}choose another collection (RAG_COLLECTION)"
        )

    def record_embedder(self, embedder: EmbedderIdentity) -> None:
        meta = self.metadata()
        if meta.get(EMBEDDER_KEY) != embedder.name or meta.get(DIMENSION_KEY) != embedder.dimension:
            self._update_metadata(**{EMBEDDER_KEY: embedder.name, DIMENSION_KEY: embedder.dimension})

    def begin_ingest(self, source: str, wanted: int, command: str) -> None:
        """Recorded before an ingest writes anything: a kill from here on is seen as an
        interrupted ingest of these files, not as a store that was never written. Counts that
        a killed ingest may have left behind its writes, or that an older store never kept,
        are made exact first."""
        meta = self.metadata()
        if meta.get(INGEST_KEY) == "running" or PAPERS_KEY not in meta or CHUNKS_KEY not in meta:
            self.recount()
        self._update_metadata(**{INGEST_KEY: "running", SOURCE_KEY: source, WANTED_KEY: wanted, COMMAND_KEY: command})

    def abandon_ingest(self, before: dict[str, Any]) -> None:
        """An ingest that failed before its first write: the record of the last ingest is put back
        as `before` (the metadata begin_ingest found; "" for a key it lacked, read as none), so the
        next command does not report an interrupted ingest."""
        keys = (INGEST_KEY, SOURCE_KEY, WANTED_KEY, COMMAND_KEY)
        self._update_metadata(**{k: before.get(k, "") for k in keys})

    def end_ingest(self) -> None:
        meta = self.metadata()
        self._update_metadata(**{INGEST_KEY: "done", GENERATION_KEY: int(meta.get(GENERATION_KEY, 0)) + 1})


def _strip_title(text: str, title: str) -> str:
    head, _, rest = text.partition("\n")
    return rest if head == title else text


def _connection_lost(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    text = str(exc).lower()
    return bool(
        names & {"ConnectError", "ConnectTimeout", "ReadError", "RemoteProtocolError", "ReadTimeout", "ConnectionError"}
        or "connect" in text
        or "connection" in text
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


class StoreLock:
    """An advisory file lock beside the data (flock): ingest holds it exclusively for its whole
    run; a process that rebuilds the BM25 index holds it shared while it reads the store and
    saves, and saves nothing when a writer is active. The kernel drops it when a process dies,
    so a killed ingest never leaves the store locked. It covers processes on this machine (for
    a Chroma server, those sharing this data directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _lock(self, exclusive: bool, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no protection against concurrent processes
            yield True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+b")  # noqa: SIM115 - closed below, which releases the lock
        except OSError:
            yield True  # an unwritable data dir: nothing to coordinate with
            return
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait:
                    on_wait()
                fcntl.flock(fh, mode)
            yield True
        finally:
            fh.close()

    def exclusive(self, on_wait: Callable[[], None] | None = None) -> contextlib.AbstractContextManager[bool]:
        """Waits for other writers and index builders; `on_wait` runs once if it has to."""
        return self._lock(True, True, on_wait)

    def try_exclusive(self) -> contextlib.AbstractContextManager[bool]:
        return self._lock(True, False)

    def try_shared(self) -> contextlib.AbstractContextManager[bool]:
        """Yields False at once when a writer holds the lock."""
        return self._lock(False, False)
