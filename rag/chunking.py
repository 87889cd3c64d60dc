"""Splitting abstracts into chunks that fit the embedder's window (`Embedder.max_tokens`).

LlamaIndex's `SentenceSplitter` cuts on sentence boundaries, counting tokens with tiktoken. Each
chunk's text starts with the paper's title, so a chunk is retrievable on its own. Because the
embedder counts WordPiece tokens, not tiktoken ones, every chunk is measured with the embedder's
own tokenizer and a paper is re-split smaller until all its chunks fit: nothing is truncated.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from rag.corpus import Paper
from rag.errors import quoted
from rag.store import Chunk
from rag.tokens import tiktoken_encoding

CHUNK_TOKENS = 160  # tiktoken tokens of abstract per chunk, before the title
CHUNK_OVERLAP = 24
TITLE_ROOM = 64  # tokens left beside a title for a piece of abstract (the smallest piece is 16 tiktoken tokens)
CHUNKER_VERSION = "2"  # bump when chunking changes, so re-ingest replaces old chunks


@lru_cache(maxsize=16)
def _splitter(chunk_size: int):
    """One splitter per size, kept: building one costs more than splitting an abstract with it."""
    from llama_index.core.node_parser import SentenceSplitter

    encoding = tiktoken_encoding()
    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(CHUNK_OVERLAP, chunk_size // 4),
        tokenizer=encoding.encode,
    )


def _first_extra(extra: dict[str, str | int], abstract: str, n: int) -> dict[str, str | int]:
    return {**extra, "chunks": n, **({"abstract": abstract} if n > 1 else {})}


class Window(Protocol):
    """What the chunker needs of an embedder (see rag.embedders.Embedder)."""

    max_tokens: int

    def count_tokens(self, text: str) -> int: ...


def title_too_long(paper: Paper, embedder: Window) -> str | None:
    """Why `paper` cannot be chunked for `embedder` (its title leaves no room in the window), or
    None. Checked while a file is validated, before anything is written. A WordPiece or BPE token
    covers at least one character, so a title that many characters shorter than the window, with
    TITLE_ROOM to spare for the smallest abstract piece the chunker tries, fits without chunking."""
    if len(paper.title) + TITLE_ROOM < embedder.max_tokens:
        return None
    try:
        chunk_paper(paper, embedder)
    except ValueError:
        tokens = embedder.count_tokens(paper.title)
        return (
            f"the title of {quoted(paper.title)} is {tokens:,} tokens, too long for the embedder's window of "
            f"{embedder.max_tokens:,} with any of its abstract; shorten it"
        )
    return None


def chunk_paper(paper: Paper, embedder: Window) -> list[Chunk]:
    """Chunks of one paper, each at most the embedder's window in its tokens, title included."""
    size = CHUNK_TOKENS
    while True:
        pieces = _splitter(size).split_text(paper.abstract) or [paper.abstract]
        texts = [f"{paper.title}\n{piece}" for piece in pieces]
        if all(embedder.count_tokens(t) <= embedder.max_tokens for t in texts):
            break
        if size <= 16:
            raise ValueError(f"paper {quoted(paper.id)}: its title alone does not fit the embedder's window")
        size = int(size * 0.8)
    extra: dict[str, str | int] = {
        "url": paper.url,
        "authors": paper.authors,
        "year": paper.year,
        "categories": paper.categories,
    }
    extra.update(doi=paper.doi, arxiv_id=paper.arxiv_id)
    content_hash = f"{paper.content_hash}-{CHUNKER_VERSION}"
    return [
        Chunk(
            id=f"{paper.id}#{i}",
            paper_id=paper.id,
            title=paper.title,
            text=text,
            index=i,
            content_hash=content_hash,
            # the first chunk records the paper's chunk count, and carries the whole abstract
            # (which answers quote and check) when it is split; otherwise its text holds it
            extra=_first_extra(extra, paper.abstract, len(texts)) if i == 0 else extra,
        )
        for i, text in enumerate(texts)
    ]
