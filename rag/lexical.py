"""The BM25 index (bm25s), a cache derived from the Chroma store.

It is saved beside the store together with the store fingerprint it was built from. When the
fingerprint differs (the store changed), the files are missing or they disagree with each other,
it is rebuilt from Chroma's documents (with a notice on stderr), so Chroma stays the single source
of truth.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.store import Store

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
ANALYSER_VERSION = 3  # bump when `analyse` changes: saved indexes are then rebuilt
CURRENT = "current.json"
ABANDONED_AFTER = 3600  # seconds after which a temporary build is taken as left by a killed process


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fault(step: str) -> None:
    from rag.ingest import fault_point

    fault_point(step)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def _inconsistency(retriever, ids: object) -> str | None:
    """Why files that each parse do not make one index, or None."""
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return "ids.json is not a list of chunk ids"
    if not ids:
        return None
    scores = retriever.scores
    n_docs = int(scores.get("num_docs", -1))
    if n_docs != len(ids):
        return f"{len(ids)} chunk ids for {n_docs} indexed chunks"
    indptr, indices = scores["indptr"], scores["indices"]
    vocab = len(retriever.vocab_dict or {})
    if len(indptr) not in (vocab, vocab + 1) or int(indptr[-1]) != len(indices):  # bm25s counts "" in vocab
        return "the vocabulary and the score matrix differ in size"
    if len(indices) and int(indices.max()) >= n_docs:
        return "the score matrix names chunks that do not exist"
    return None


def _collect(folder: Path, keep: str) -> None:
    """Delete builds no longer current (after a minute, so a reader that just looked one up can
    still load it), leftovers of the old single-folder layout, and temporary builds abandoned by
    killed processes."""
    now = time.time()
    try:
        keep_too = json.loads((folder / CURRENT).read_text()).get("build")  # a concurrent save may have won
    except (OSError, ValueError, AttributeError):
        keep_too = None
    for entry in folder.iterdir():
        if entry.name in (keep, keep_too, CURRENT):
            continue
        try:
            age = now - entry.stat().st_mtime
            if entry.name.startswith("build-"):
                doomed = age > 60
            elif entry.name.startswith("."):
                doomed = age > ABANDONED_AFTER
            else:
                doomed = True
            if doomed:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s's English list is short; these question and filler words carry no topic either
    extra = (
        "here there what which who whom whose how also following below above according "
        "do does did doing done can could would should may might must shall will were was been being "
        "has have had".split()
    )
    return frozenset(STOPWORDS_EN) | frozenset(extra)


def analyse(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed terms: the same for chunks and queries."""
    stop = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: str
    score: float


class LexicalIndex:
    """BM25 over every chunk in the store, saved beside it.

    Layout, in `folder(store)`: `current.json` names the build in use and the store fingerprint it
    was built from; each build is its own folder (bm25s's files and the chunk ids). A build is
    written under a unique temporary name, renamed, and only then made current by atomically
    replacing `current.json`, so concurrent rebuilds never share a folder and a reader sees
    either the old complete index or the new one. A build is saved only while no ingest holds the
    store lock and the store did not change while it was read.
    """

    def __init__(self, retriever, chunk_ids: list[str], fingerprint: str, saved: bool = False) -> None:
        self._bm25 = retriever
        self.chunk_ids = chunk_ids
        self.fingerprint = fingerprint
        self.saved = saved  # False: this index lives in memory only (it could not be saved)

    @staticmethod
    def folder(store: Store) -> Path:
        return Path(store.settings.data_dir) / "bm25" / store.key()

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, store: Store, *, locked: bool = False) -> LexicalIndex:
        """Index the store's chunks and save the result. `locked`: the caller (an ingest) holds
        the store lock exclusively, so nothing else writes meanwhile."""
        if locked:
            return cls._build(store, may_save=True)
        with store.lock.try_shared() as no_writer:
            index = cls._build(store, may_save=no_writer)
        if not no_writer:
            _notice("rag: an ingest is writing to the store; the BM25 index is kept in memory until it finishes")
        return index

    @classmethod
    def _build(cls, store: Store, may_save: bool) -> LexicalIndex:
        import bm25s

        before = store.fingerprint()
        ids, docs, _ = store.all_chunks()
        retriever = bm25s.BM25()
        if ids:
            retriever.index([analyse(d) for d in docs], show_progress=False)
        index = cls(retriever, ids, before)
        if may_save and store.fingerprint() == before:
            index._save(cls.folder(store))
        return index

    def _save(self, folder: Path) -> None:
        """Write a new build and make it current; on a full disk or an unwritable folder the
        index stays in memory for this command, with a notice."""
        leftovers: list[Path] = []  # removed again if the save fails half way
        name = f"build-{uuid.uuid4().hex[:12]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
            leftovers.append(tmp)
            if self.chunk_ids:
                self._bm25.save(str(tmp))
            (tmp / "ids.json").write_text(json.dumps(self.chunk_ids))
            _fault("bm25-save")
            tmp.rename(folder / name)
            leftovers = [folder / name, folder / f".current-{name}.json"]
            leftovers[1].write_text(
                json.dumps({"build": name, "fingerprint": self.fingerprint, "analyser": ANALYSER_VERSION})
            )
            os.replace(leftovers[1], folder / CURRENT)
        except OSError as exc:
            for path in leftovers:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            _notice(
                f"rag: cannot save the BM25 index in {folder} ({exc.strerror or exc}); "
                "using it in memory for this command"
            )
            return
        self.saved = True
        _collect(folder, keep=name)

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def _read(cls, store: Store) -> tuple[LexicalIndex | None, str]:
        """The saved index if it matches the store, else None and why: missing, stale or damaged."""
        import bm25s

        folder = cls.folder(store)
        for _attempt in range(3):  # a concurrent rebuild may remove the build just named
            try:
                info = json.loads((folder / CURRENT).read_text())
            except (FileNotFoundError, NotADirectoryError):
                return None, "missing"
            except (OSError, ValueError) as exc:
                return None, f"damaged ({_why(exc)})"
            if not isinstance(info, dict) or not isinstance(info.get("build"), str):
                return None, "damaged (current.json names no build)"
            if info.get("fingerprint") != store.fingerprint() or info.get("analyser") != ANALYSER_VERSION:
                return None, "stale"
            build = folder / info["build"]
            try:
                ids = json.loads((build / "ids.json").read_text())
                retriever = bm25s.BM25.load(str(build), show_progress=False) if ids else bm25s.BM25()
            except FileNotFoundError:
                continue
            except Exception as exc:  # bm25s raises what numpy and json raise on damaged files
                return None, f"damaged ({_why(exc)})"
            try:
                problem = _inconsistency(retriever, ids)
            except Exception as exc:  # arrays of the wrong kind
                problem = _why(exc)
            if problem:
                return None, f"damaged ({problem})"
            return cls(retriever, ids, info["fingerprint"], saved=True), "fresh"
        return None, "missing"

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
        n = store.count()
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
        n = len(index.chunk_ids)
        if index.saved:
            return f"fresh ({n} chunks)"
        return f"in memory only ({n} chunks): it could not be saved, see the notice above"

    def idf(self, term: str) -> float:
        """Inverse chunk frequency of an analysed term; unseen terms get the highest value."""
        vocab = self._bm25.vocab_dict or {}
        n = len(self.chunk_ids)
        i = vocab.get(term)
        df = 0 if i is None or not n else int(self._bm25.scores["indptr"][i + 1] - self._bm25.scores["indptr"][i])
        return math.log((n + 1) / (df + 0.5))

    def perfect_score(self, query: str) -> float:
        """About the BM25 score of a chunk that contains every query term once: the sum of their
        IDFs (bm25s's Lucene variant). Dividing by it gives the share of the query a chunk matched."""
        vocab = self._bm25.vocab_dict or {}
        indptr = self._bm25.scores["indptr"] if self.chunk_ids else None
        n = len(self.chunk_ids)
        total = 0.0
        for term in analyse(query):
            i = vocab.get(term)
            df = 0 if i is None or indptr is None else int(indptr[i + 1] - indptr[i])
            total += math.log(1 + (n - df + 0.5) / (df + 0.5))
        return total

    def knows(self, term: str) -> bool:
        return term in (self._bm25.vocab_dict or {})

    def search(self, query: str, n: int) -> list[LexicalHit]:
        vocab = self._bm25.vocab_dict or {}
        terms = [t for t in analyse(query) if t in vocab]
        if not terms or not self.chunk_ids:
            return []
        docs, scores = self._bm25.retrieve([terms], k=min(n, len(self.chunk_ids)), show_progress=False, n_threads=1)
        return [LexicalHit(self.chunk_ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
