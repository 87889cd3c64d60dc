"""The BM25 index, a cache derived from the Chroma store, kept in Lucene-style segments.

Each ingest adds a small segment holding the chunks it wrote, and records the chunks it replaced
or deleted as removed rows of the older segments, so its cost grows with the change, not with the
store. Segments are merged when there are more than a few, or when many of a segment's rows are
removed. Each segment is a bm25s index (loaded memory-mapped) plus its chunk ids as a sorted
numpy array (memory-mapped too, so a fresh process parses no list of every id) and a forward
index (each chunk's terms) used to merge segments and to subtract removed rows from the
statistics.

Scores are computed at query time from the term frequencies and chunk lengths the segments hold,
with collection-wide statistics (live chunks, their average length, each term's chunk frequency
summed over segments minus removed rows), so a store in several segments scores exactly as one
index built at once would (bm25s's Lucene BM25, k1 1.5, b 0.75).

The index is saved with the store fingerprint it matches. When the fingerprint differs (an ingest
was killed, or another program wrote), the files are missing or they disagree with each other, it
is rebuilt from Chroma's documents (with a notice on stderr), so Chroma stays the single source of
truth.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.store import Store
from rag.terms import ANALYSER_VERSION, analyse

LAYOUT_VERSION = 2  # 2: segments; an index of another layout is rebuilt
CURRENT = "current.json"
K1, B = 1.5, 0.75  # bm25s's defaults, as before segments
SEGMENT_CHUNKS = 100_000  # chunks a segment holds at most (and a builder keeps in memory)
MAX_SEGMENTS = 6  # more than this after an ingest: the smallest are merged
MERGE_AT_ONCE = 4
MAX_REMOVED_SHARE = 0.3  # a segment with more of its rows removed is rewritten
ABANDONED_AFTER = 3600  # seconds after which a temporary build is taken as left by a killed process


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fault(step: str) -> None:
    from rag.ingest import fault_point

    fault_point(step)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def _referenced(info: object) -> set[str]:
    """Names of the files and folders a current.json refers to."""
    if not isinstance(info, dict) or not isinstance(info.get("segments"), list):
        return set()
    names: set[str] = set()
    for seg in info["segments"]:
        if isinstance(seg, dict):
            names.update(str(seg[k]) for k in ("name", "removed") if seg.get(k))
    return names


def _collect(folder: Path, keep: set[str]) -> None:
    """Delete segments and removal files no longer current (after a minute, so a reader that just
    read the previous current.json can still load them), leftovers of older layouts, and
    temporary files and segments abandoned by killed processes."""
    now = time.time()
    try:
        keep_too = _referenced(json.loads((folder / CURRENT).read_text()))  # a concurrent save may have won
    except (OSError, ValueError):
        keep_too = set()
    for entry in folder.iterdir():
        if entry.name in keep or entry.name in keep_too or entry.name == CURRENT:
            continue
        try:
            age = now - entry.stat().st_mtime
            if entry.name.startswith(("seg-", "removed-")):
                doomed = age > 60
            elif entry.name.startswith("."):
                doomed = age > ABANDONED_AFTER
            else:
                doomed = True
            if doomed:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _terms_of(query: str | Sequence[str]) -> Sequence[str]:
    return analyse(query) if isinstance(query, str) else query


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: str
    score: float


def _idf_lucene(df: float, n: float) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


class SegmentBuilder:
    """Chunks' term counts collected for one new segment, in compact arrays (no token lists)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.ids: list[str] = []
        self.lengths = array("i")
        self.terms = array("i")
        self.tfs = array("i")
        self.starts = array("q", [0])

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, chunk_id: str, text: str) -> None:
        terms = analyse(text)
        self.add_counts(chunk_id, Counter(terms), len(terms))

    def add_counts(self, chunk_id: str, counts: dict[str, int], length: int) -> None:
        vocab = self.vocab
        for term, tf in counts.items():
            self.terms.append(vocab.setdefault(term, len(vocab)))
            self.tfs.append(tf)
        self.ids.append(chunk_id)
        self.lengths.append(length)
        self.starts.append(len(self.terms))

    def save(self, parent: Path) -> dict[str, Any]:
        """Write the segment as a hidden folder in `parent`; returns its entry for current.json
        (the folder is renamed to its final name when the index that lists it is committed)."""
        import bm25s

        n = len(self.ids)
        keys = [i.encode() for i in self.ids]
        order = np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)  # rows sorted by chunk id
        starts = np.frombuffer(self.starts, dtype=np.int64)
        counts = np.diff(starts)[order]
        fwd_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        gather = np.repeat(starts[:-1][order], counts) + (
            np.arange(int(fwd_indptr[-1])) - np.repeat(fwd_indptr[:-1], counts)
        )
        fwd_terms = np.frombuffer(self.terms, dtype=np.int32)[gather]
        fwd_tfs = np.frombuffer(self.tfs, dtype=np.int32)[gather]
        rows = np.repeat(np.arange(n, dtype=np.int32), counts)
        by_term = np.lexsort((rows, fwd_terms))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(fwd_terms, minlength=len(self.vocab)))]).astype(np.int64)
        lengths = np.frombuffer(self.lengths, dtype=np.int32)[order]

        name = f"seg-{uuid.uuid4().hex[:12]}"
        tmp = parent / f".tmp-{name}"
        tmp.mkdir(parents=True)
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        # bm25s's layout; `data` holds term frequencies, scored at query time (module docstring)
        retriever.scores = {
            "data": fwd_tfs[by_term].astype(np.float32),
            "indices": rows[by_term],
            "indptr": indptr,
            "num_docs": n,
        }
        retriever.vocab_dict = self.vocab
        retriever.nonoccurrence_array = None
        retriever.save(str(tmp), show_progress=False)
        ids = np.array(keys, dtype=bytes)[order] if n else np.array([], dtype="S1")
        for file, values in (
            ("ids.npy", ids),
            ("lengths.npy", lengths),
            ("fwd_indptr.npy", fwd_indptr),
            ("fwd_terms.npy", fwd_terms),
            ("fwd_tfs.npy", fwd_tfs),
        ):
            np.save(tmp / file, values)
        return {"name": name, "tmp": tmp.name, "docs": n, "tokens": int(lengths.sum())}


class Segment:
    """One saved segment, memory-mapped, with the rows removed from it since it was written."""

    def __init__(self, folder: Path, entry: dict[str, Any], removed: np.ndarray) -> None:
        import bm25s

        self.name = str(entry["name"])
        self.docs = int(entry["docs"])
        self.tokens = int(entry["tokens"])
        self.folder = folder
        self.removed = removed  # sorted row numbers
        self.removed_file: str | None = entry.get("removed")
        self.bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        self.vocab: dict[str, int] = self.bm25.vocab_dict or {}
        self.indptr = self.bm25.scores["indptr"]
        self.rows = self.bm25.scores["indices"]
        self.tfs = self.bm25.scores["data"]
        self.ids = np.load(folder / "ids.npy", mmap_mode="r")
        self.lengths = np.load(folder / "lengths.npy", mmap_mode="r")
        problem = self._inconsistency()
        if problem:
            raise ValueError(problem)

    def _inconsistency(self) -> str | None:
        """Why files that each load do not make one segment (cheap checks only), or None."""
        if int(self.bm25.scores.get("num_docs", -1)) != self.docs or len(self.ids) != self.docs:
            return f"{len(self.ids)} chunk ids for {self.docs} indexed chunks"
        if len(self.lengths) != self.docs:
            return "chunk lengths and chunk ids differ in number"
        if len(self.indptr) != len(self.vocab) + 1 or int(self.indptr[-1]) != len(self.rows) != len(self.tfs):
            return "the vocabulary and the postings differ in size"
        if len(self.removed) and (int(self.removed[-1]) >= self.docs or int(self.removed[0]) < 0):
            return "removed rows that do not exist"
        return None

    @property
    def live(self) -> int:
        return self.docs - len(self.removed)

    @cached_property
    def removed_tokens(self) -> int:
        return int(np.asarray(self.lengths)[self.removed].sum()) if len(self.removed) else 0

    @cached_property
    def removed_df(self) -> dict[int, int]:
        """term id -> removed rows holding it (to subtract from the chunk frequency)."""
        if not len(self.removed):
            return {}
        indptr = np.load(self.folder / "fwd_indptr.npy", mmap_mode="r")
        terms = np.load(self.folder / "fwd_terms.npy", mmap_mode="r")
        picked = np.concatenate([np.asarray(terms[indptr[r] : indptr[r + 1]]) for r in self.removed])
        ids, counts = np.unique(picked, return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))

    def df(self, term: str) -> int:
        i = self.vocab.get(term)
        if i is None:
            return 0
        return int(self.indptr[i + 1] - self.indptr[i]) - self.removed_df.get(i, 0)

    def rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Row numbers of those of `chunk_ids` (sorted bytes) this segment holds."""
        if not self.docs or not len(chunk_ids):
            return np.array([], dtype=np.int64)
        pos = np.searchsorted(self.ids, chunk_ids)
        inside = pos < self.docs
        pos, wanted = pos[inside], chunk_ids[inside]
        return pos[np.asarray(self.ids[pos]) == wanted].astype(np.int64)

    def live_rows(self) -> np.ndarray:
        keep = np.ones(self.docs, dtype=bool)
        keep[self.removed] = False
        return np.flatnonzero(keep)

    def scores(self, weights: list[tuple[str, float]], avgdl: float) -> np.ndarray:
        """BM25 of every row for (term, idf) pairs; removed rows score 0."""
        out = np.zeros(self.docs, dtype=np.float32)
        for term, idf in weights:
            i = self.vocab.get(term)
            if i is None:
                continue
            start, end = int(self.indptr[i]), int(self.indptr[i + 1])
            rows = np.asarray(self.rows[start:end])
            tf = np.asarray(self.tfs[start:end])
            dl = np.asarray(self.lengths)[rows]
            out[rows] += (idf * tf / (K1 * ((1 - B) + B * dl / avgdl) + tf)).astype(np.float32)
        if len(self.removed):
            out[self.removed] = 0.0
        return out

    def counts_of(self, row: int, inverse: list[str]) -> tuple[dict[str, int], int]:
        """A row's term counts and length, for merging."""
        a, b = int(self._fwd_indptr[row]), int(self._fwd_indptr[row + 1])
        terms = np.asarray(self._fwd_terms[a:b]).tolist()
        tfs = np.asarray(self._fwd_tfs[a:b]).tolist()
        return {inverse[t]: tf for t, tf in zip(terms, tfs)}, int(self.lengths[row])

    @cached_property
    def _fwd_indptr(self) -> np.ndarray:
        return np.load(self.folder / "fwd_indptr.npy", mmap_mode="r")

    @cached_property
    def _fwd_terms(self) -> np.ndarray:
        return np.load(self.folder / "fwd_terms.npy", mmap_mode="r")

    @cached_property
    def _fwd_tfs(self) -> np.ndarray:
        return np.load(self.folder / "fwd_tfs.npy", mmap_mode="r")

    def inverse_vocab(self) -> list[str]:
        inverse = [""] * len(self.vocab)
        for term, i in self.vocab.items():
            inverse[i] = term
        return inverse


def _encode_ids(chunk_ids: Iterable[str]) -> np.ndarray:
    keys = sorted(i.encode() for i in chunk_ids)
    return np.array(keys, dtype=bytes) if keys else np.array([], dtype="S1")


@dataclass
class _Pending:
    """A save in preparation: new segment folders written under temporary names, removal files."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


class LexicalIndex:
    """BM25 over every chunk in the store, in segments saved beside it.

    Layout, in `folder(store)`: `current.json` names the segments in use (each with its file of
    removed rows), the store fingerprint they match and the layout and analyser versions. New
    segments and removal files are written under unique names, and only then made current by
    atomically replacing `current.json`, so concurrent writers never share a file and a reader
    sees either the old complete index or the new one. An index is saved only by an ingest
    holding the store lock, or by a rebuild while no ingest holds it and the store did not
    change while it was read.
    """

    def __init__(self, segments: list[Segment], fingerprint: str, saved: bool = False) -> None:
        self.segments = segments
        self.fingerprint = fingerprint
        self.saved = saved  # False: this index lives in memory only (it could not be saved)
        self.size = sum(s.live for s in segments)
        tokens = sum(s.tokens - s.removed_tokens for s in segments)
        self.avgdl = tokens / self.size if self.size else 1.0
        self._df: dict[str, int] = {}

    @staticmethod
    def folder(store: Store) -> Path:
        return Path(store.settings.data_dir) / "bm25" / store.key()

    @property
    def chunk_ids(self) -> list[str]:
        """Every live chunk id (reads them all: for `rag stats` and tests)."""
        out: list[str] = []
        for seg in self.segments:
            out.extend(bytes(seg.ids[r]).decode() for r in seg.live_rows())
        return out

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, store: Store, *, locked: bool = False) -> LexicalIndex:
        """Index every chunk of the store, a page at a time, and save the result. `locked`: the
        caller (an ingest) holds the store lock exclusively, so nothing else writes meanwhile."""
        if locked:
            return cls._build(store, may_save=True)
        with store.lock.try_shared() as no_writer:
            index = cls._build(store, may_save=no_writer)
        if not no_writer:
            _notice("rag: an ingest is writing to the store; the BM25 index is kept in memory until it finishes")
        return index

    @classmethod
    def _build(cls, store: Store, may_save: bool) -> LexicalIndex:
        folder = cls.folder(store)
        try:
            return cls._build_in(store, folder, _scratch(folder), may_save)
        except OSError as exc:  # a full disk under the index folder: build beside, keep in memory
            _notice(
                f"rag: cannot save the BM25 index in {folder} ({exc.strerror or exc}); "
                "using it in memory for this command"
            )
            return cls._build_in(store, folder, Path(tempfile.mkdtemp(prefix="rag-bm25-")), may_save=False)

    @classmethod
    def _build_in(cls, store: Store, folder: Path, scratch: Path, may_save: bool) -> LexicalIndex:
        before = store.fingerprint()
        try:
            pending = _Pending()
            builder = SegmentBuilder()
            for ids, docs in store.iter_chunks():
                for cid, doc in zip(ids, docs):
                    builder.add(cid, doc)
                if len(builder) >= SEGMENT_CHUNKS:
                    _write_segment(builder, scratch, pending)
                    builder = SegmentBuilder()
            if len(builder):
                _write_segment(builder, scratch, pending)
            index = cls(_open_pending(scratch, pending), before)
            if may_save and store.fingerprint() == before:
                index._commit(folder, scratch, pending, removed={})
        finally:
            # an index kept in memory has its arrays mapped already; unlinked files stay readable
            shutil.rmtree(scratch, ignore_errors=True)
        return index

    def _commit(self, folder: Path, scratch: Path, pending: _Pending, removed: dict[str, np.ndarray]) -> None:
        """Move the new segments from `scratch` into `folder`, write the removal files and make
        them current; on a full disk or an unwritable folder the index stays in memory for this
        command, with a notice."""
        leftovers: list[Path] = []  # removed again if the save fails half way
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for new in pending.entries:
                dest = folder / f".tmp-{new['name']}"
                shutil.move(str(scratch / new["tmp"]), dest)
                leftovers.append(dest)
            entries = []
            for seg in self.segments:
                entry: dict[str, Any] = {"name": seg.name, "docs": seg.docs, "tokens": seg.tokens, "removed": None}
                if seg.name in removed:
                    name = f"removed-{uuid.uuid4().hex[:12]}.npy"
                    np.save(folder / name, removed[seg.name].astype(np.int64))
                    leftovers.append(folder / name)
                    entry["removed"] = seg.removed_file = name
                elif len(seg.removed):  # unchanged since it was loaded: keep its file
                    entry["removed"] = seg.removed_file
                entries.append(entry)
            _fault("bm25-save")
            for new in pending.entries:
                (folder / f".tmp-{new['name']}").rename(folder / new["name"])
                leftovers.append(folder / new["name"])
            current = folder / f".current-{uuid.uuid4().hex[:12]}.json"
            leftovers.append(current)
            current.write_text(
                json.dumps(
                    {
                        "layout": LAYOUT_VERSION,
                        "analyser": ANALYSER_VERSION,
                        "fingerprint": self.fingerprint,
                        "segments": entries,
                    }
                )
            )
            os.replace(current, folder / CURRENT)
        except OSError as exc:
            for path in leftovers:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            _notice(
                f"rag: cannot save the BM25 index in {folder} ({exc.strerror or exc}); "
                "using it in memory for this command"
            )
            return
        for seg in self.segments:  # the saved copies, for later updates
            if seg.folder.parent != folder:
                seg.folder = folder / seg.name
        self.saved = True
        _collect(folder, keep=_referenced({"segments": entries}))

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def _read(cls, store: Store, fingerprint: str | None = None) -> tuple[LexicalIndex | None, str]:
        """The saved index if it matches the store, else None and why: missing, stale or damaged."""
        folder = cls.folder(store)
        for _attempt in range(3):  # a concurrent save may remove the segments just named
            try:
                info = json.loads((folder / CURRENT).read_text())
            except (FileNotFoundError, NotADirectoryError):
                return None, "missing"
            except (OSError, ValueError) as exc:
                return None, f"damaged ({_why(exc)})"
            if not isinstance(info, dict) or not isinstance(info.get("segments"), list):
                return None, "stale" if isinstance(info, dict) and "build" in info else "damaged (no segments listed)"
            if info.get("layout") != LAYOUT_VERSION or info.get("analyser") != ANALYSER_VERSION:
                return None, "stale"
            if info.get("fingerprint") != (fingerprint or store.fingerprint()):
                return None, "stale"
            try:
                segments = [_open_segment(folder, entry) for entry in info["segments"]]
            except FileNotFoundError:
                continue
            except Exception as exc:  # bm25s and numpy raise what json and numpy raise on damaged files
                return None, f"damaged ({_why(exc)})"
            return cls(segments, info["fingerprint"], saved=True), "fresh"
        return None, "missing"

    @classmethod
    def saved_ids(cls, store: Store) -> list[str] | None:
        """The live chunk ids of the saved index, fresh or not (for inspection), or None."""
        folder = cls.folder(store)
        try:
            info = json.loads((folder / CURRENT).read_text())
            index = cls([_open_segment(folder, e) for e in info["segments"]], "")
        except Exception:
            return None
        return index.chunk_ids

    @classmethod
    def load(cls, store: Store) -> LexicalIndex | None:
        """The saved index if it matches the store, else None."""
        return cls._read(store)[0]

    @classmethod
    def status(cls, store: Store) -> str:
        """fresh, missing, stale or damaged (why), without rebuilding."""
        return cls._read(store)[1]

    @classmethod
    def is_fresh(cls, store: Store) -> bool:
        return cls.status(store) == "fresh"

    @classmethod
    def open(cls, store: Store) -> LexicalIndex:
        """The saved index, or a rebuilt one (saved when possible), announced on stderr: a store
        left half built by an interrupted command is completed by whichever command comes next."""
        index, why = cls._read(store)
        if index is not None:
            return index
        n = store.chunk_count()
        if why == "stale":
            _notice(f"rag: the BM25 index is out of date with the store; rebuilding it ({n} chunks) ...")
        elif why == "missing":
            if n:
                _notice(f"rag: the BM25 index is missing; building it ({n} chunks) ...")
        else:
            _notice(f"rag: the BM25 index in {cls.folder(store)} is {why}; rebuilding it ({n} chunks) ...")
        return cls.build(store)

    @classmethod
    def describe(cls, store: Store) -> str:
        """For `rag stats`: a stale or damaged index is rebuilt here (with the notice), so the
        answer is about the index the next search will use."""
        index = cls.open(store)
        n, parts = index.size, len(index.segments)
        segments = f"{parts} segment{'s' if parts != 1 else ''}"
        if index.saved:
            return f"fresh ({n} chunks), {segments}"
        return f"in memory only ({n} chunks), {segments}: it could not be saved, see the notice above"

    # -- scoring ---------------------------------------------------------------------------

    def df(self, term: str) -> int:
        """Live chunks holding an analysed term, over all segments."""
        got = self._df.get(term)
        if got is None:
            got = self._df[term] = sum(seg.df(term) for seg in self.segments)
        return got

    def idf(self, term: str) -> float:
        """Inverse chunk frequency of an analysed term; unseen terms get the highest value."""
        n = self.size
        df = self.df(term) if n else 0
        return math.log((n + 1) / (df + 0.5))

    def perfect_score(self, query: str | Sequence[str]) -> float:
        """About the BM25 score of a chunk that contains every query term once: the sum of their
        IDFs (bm25s's Lucene variant). Dividing by it gives the share of the query a chunk matched.
        `query` is text, or its terms already analysed."""
        n = self.size
        return sum(_idf_lucene(self.df(term) if n else 0, n) for term in _terms_of(query))

    def knows(self, term: str) -> bool:
        return self.df(term) > 0

    def search(self, query: str | Sequence[str], n: int) -> list[LexicalHit]:
        """The `n` best chunks for `query` (text, or its terms already analysed)."""
        terms = [t for t in _terms_of(query) if self.df(t) > 0]
        if not terms or not self.size:
            return []
        weights = [(t, _idf_lucene(self.df(t), self.size)) for t in terms]
        found: list[tuple[float, str]] = []
        for seg in self.segments:
            scores = seg.scores(weights, self.avgdl)
            k = min(n, len(scores))
            if not k:
                continue
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            for row in top:
                if scores[row] > 0:
                    found.append((float(scores[row]), bytes(seg.ids[row]).decode()))
        found.sort(key=lambda p: (-p[0], p[1]))
        return [LexicalHit(cid, score) for score, cid in found[:n]]

    # -- updating ----------------------------------------------------------------------------

    def update(self, store: Store) -> IndexUpdate:
        """Start recording an ingest's changes against this (fresh, saved) index of `store`."""
        return IndexUpdate(self, LexicalIndex.folder(store))


class IndexUpdate:
    """What one ingest changes: a new segment of the chunks it wrote (written out every
    SEGMENT_CHUNKS, so memory stays bounded) and the chunk ids it replaced or deleted."""

    def __init__(self, base: LexicalIndex, folder: Path) -> None:
        self.base = base
        self.scratch = _scratch(folder)
        self.pending = _Pending()
        self.builder = SegmentBuilder()
        self.removed: set[str] = set()

    def add(self, chunk_ids: list[str], texts: list[str]) -> None:
        for cid, text in zip(chunk_ids, texts):
            self.builder.add(cid, text)
        if len(self.builder) >= SEGMENT_CHUNKS:
            _write_segment(self.builder, self.scratch, self.pending)
            self.builder = SegmentBuilder()

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Chunks deleted, or about to be overwritten, in the store."""
        self.removed.update(chunk_ids)

    def discard(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def commit(self, store: Store) -> LexicalIndex | None:
        """Save base + new segments, removals applied and small segments merged, as matching
        the store as it is now (the caller holds the store lock and wrote nothing else). None
        when the segments cannot be written (a full disk): the index is then stale, and the
        next command rebuilds it."""
        try:
            return self._commit(store)
        except OSError as exc:
            _notice(f"rag: cannot save the BM25 index ({exc.strerror or exc}); the next command rebuilds it")
            return None
        finally:
            self.discard()

    def _commit(self, store: Store) -> LexicalIndex:
        if len(self.builder):
            _write_segment(self.builder, self.scratch, self.pending)
        new_segments = _open_pending(self.scratch, self.pending)
        gone = _encode_ids(self.removed)
        removed: dict[str, np.ndarray] = {}
        old: list[Segment] = []
        for seg in self.base.segments:
            rows = seg.rows_of(gone)
            if len(rows):
                seg = _with_removed(seg, np.union1d(seg.removed, rows))
                removed[seg.name] = seg.removed
            if seg.live:
                old.append(seg)
        segments = old + [s for s in new_segments if s.docs]
        segments = _merge(segments, self.scratch, self.pending)
        removed = {s.name: s.removed for s in segments if s.name in removed}
        index = LexicalIndex(segments, store.fingerprint())
        index._commit(LexicalIndex.folder(store), self.scratch, self.pending, removed)
        return index


def _scratch(folder: Path) -> Path:
    """A private folder for segments being written: inside the index folder, so saving them is
    a rename, or in the system's temporary folder when that one cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-build-", dir=folder))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="rag-bm25-"))


def _write_segment(builder: SegmentBuilder, scratch: Path, pending: _Pending) -> None:
    entry = builder.save(scratch)
    pending.entries.append(entry)


def _open_pending(scratch: Path, pending: _Pending) -> list[Segment]:
    return [Segment(scratch / e["tmp"], e, np.array([], dtype=np.int64)) for e in pending.entries]


def _open_segment(folder: Path, entry: object) -> Segment:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError("a segment entry names no segment")
    removed = np.array([], dtype=np.int64)
    if entry.get("removed"):
        removed = np.load(folder / str(entry["removed"]))
    return Segment(folder / entry["name"], entry, np.sort(removed.astype(np.int64)))


def _with_removed(seg: Segment, removed: np.ndarray) -> Segment:
    seg.removed = removed.astype(np.int64)
    seg.__dict__.pop("removed_tokens", None)
    seg.__dict__.pop("removed_df", None)
    return seg


def _merge(segments: list[Segment], scratch: Path, pending: _Pending) -> list[Segment]:
    """Rewrite segments with many removed rows, and merge the smallest while there are more
    than MAX_SEGMENTS (never into one larger than SEGMENT_CHUNKS)."""
    doomed = [s for s in segments if s.docs and len(s.removed) / s.docs > MAX_REMOVED_SHARE]
    if len(segments) > MAX_SEGMENTS:
        small = sorted((s for s in segments if s not in doomed), key=lambda s: s.live)
        total = sum(s.live for s in doomed)
        for seg in small[:MERGE_AT_ONCE]:
            if total + seg.live > SEGMENT_CHUNKS and len(doomed) >= 2:
                break
            doomed.append(seg)
            total += seg.live
    if not doomed:
        return segments
    builder = SegmentBuilder()
    for seg in doomed:
        inverse = seg.inverse_vocab()
        for row in seg.live_rows():
            counts, length = seg.counts_of(int(row), inverse)
            builder.add_counts(bytes(seg.ids[row]).decode(), counts, length)
    kept = [s for s in segments if s not in doomed]
    dropped = {s.name for s in doomed}
    pending.entries = [e for e in pending.entries if e["name"] not in dropped]
    if len(builder):
        _write_segment(builder, scratch, pending)
        entry = pending.entries[-1]
        kept.append(Segment(scratch / entry["tmp"], entry, np.array([], dtype=np.int64)))
    return kept
