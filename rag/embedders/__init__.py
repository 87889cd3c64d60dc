"""Embedders: what turns chunk and question texts into vectors, and counts their tokens.

`Embedder` is the protocol the rest of rag uses (retrieval, ingest, chunking, abstention,
extractive answers); `get_embedder(settings)` builds the configured one. An implementation is one
module here plus one entry in EMBEDDERS (and its name in the `embedder` setting). The module
defines `identity(settings)` (name and dimension, without loading a model: the store checks it
before anything is embedded), `build(settings)`, `how_to_use(identity)` (the setting that selects
the variant that made a store's vectors, or "") and `describe(settings)` (one line for `rag stats`). The store records the identity of the embedder that made its vectors
and refuses another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from rag.config import Settings

RECENT_VECTORS = 2048  # texts `RecentVectors` remembers (a few questions' worth of sentences)


@dataclass(frozen=True)
class EmbedderIdentity:
    """What makes two embedders' vectors comparable: the model's name and the vectors' size."""

    name: str
    dimension: int

    def __str__(self) -> str:
        return f"{self.name} ({self.dimension}-d)"


class Embedder(Protocol):
    name: str  # recorded in the store with `dimension`; vectors of two embedders never mix
    dimension: int  # length of each vector
    max_tokens: int  # the model's window in its own tokens; the chunker keeps every chunk within it

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector (float32, `dimension` long) per text, in order. Ingest calls it in a
        worker thread while the main thread calls `count_tokens`: the two must not share state."""
        ...

    def embed_cached(self, texts: list[str]) -> np.ndarray:
        """`embed`, remembering recent texts (see `RecentVectors`)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, before any truncation."""
        ...

    def warm(self) -> None:
        """Load what the first `embed` would wait for (a local model's session); ingest calls it in
        its worker thread while the first batch is chunked. Nothing to do for a remote model."""
        ...


class RecentVectors:
    """`embed` with a memory of the last RECENT_VECTORS texts: answering reads the same abstract
    sentences twice (the answerability check, then the extractive answerer). Any embedder's
    `embed_cached` can be one of these."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray]) -> None:
        import threading

        self._embed = embed
        self._recent: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # `rag serve` embeds a search beside an answer being checked

    def __len__(self) -> int:
        return len(self._recent)

    def __call__(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return self._embed([])
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
            if missing:
                for text, vector in zip(missing, self._embed(missing)):
                    self._recent[text] = vector
            out = np.stack([self._recent[t] for t in texts])
            while len(self._recent) > RECENT_VECTORS:  # the oldest go first
                self._recent.pop(next(iter(self._recent)))
        return out


@dataclass(frozen=True)
class Registration:
    """Where an embedder lives: a module of this package with `identity(settings)` and
    `build(settings)`, imported only when that embedder is used."""

    module: str

    def _load(self):
        return importlib.import_module(f"{__name__}.{self.module}")

    def identity(self, settings: Settings) -> EmbedderIdentity:
        return self._load().identity(settings)

    def build(self, settings: Settings) -> Embedder:
        return self._load().build(settings)

    def how_to_use(self, made_by: EmbedderIdentity) -> str:
        return self._load().how_to_use(made_by)

    def describe(self, settings: Settings) -> str:
        return self._load().describe(settings)


EMBEDDERS: dict[str, Registration] = {
    "minilm": Registration("minilm"),  # all-MiniLM-L6-v2 over ONNX (Chroma's default embedder)
    "endpoint": Registration("endpoint"),  # an OpenAI-compatible /v1/embeddings server
}


def _registration(name: str) -> Registration:
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(EMBEDDERS))}") from None


def embedder_identity(settings: Settings) -> EmbedderIdentity:
    """The identity of the embedder `settings` configure, without loading its model."""
    return _registration(settings.embedder).identity(settings)


def get_embedder(settings: Settings) -> Embedder:
    """The embedder `settings` configure (the `embedder` setting)."""
    return _registration(settings.embedder).build(settings)


def describe(settings: Settings) -> str:
    """One line for `rag stats` / `rag config`: the configured embedder's model and where it is."""
    return _registration(settings.embedder).describe(settings)


def identity_of(embedder: Embedder) -> EmbedderIdentity:
    return EmbedderIdentity(embedder.name, embedder.dimension)


def unrecorded_identity() -> EmbedderIdentity:
    """What made the vectors of a store from before the identity was recorded: the full-precision
    MiniLM, the only embedder rag had then."""
    from rag.embedders.minilm import UNRECORDED

    return UNRECORDED


def how_to_use(made_by: EmbedderIdentity, settings: Settings) -> str:
    """The settings that make rag embed as `made_by` did ("" when no registered embedder can),
    for the store's refusal to mix vectors: the `embedder` setting too when it names another."""
    for name, registration in EMBEDDERS.items():
        hint = registration.how_to_use(made_by)
        if hint and name != settings.embedder:
            return f"set RAG_EMBEDDER={name} and {hint.removeprefix('set ')}"
        if hint:
            return hint
    return ""
