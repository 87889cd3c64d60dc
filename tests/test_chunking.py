"""Chunking, without the store or the model: a fake embedder that counts words and has a small
window stands in for MiniLM."""

from __future__ import annotations

import pytest

from rag.chunking import CHUNKER_VERSION, chunk_paper
from rag.corpus import Paper

SENTENCES = [f"Sentence number {i} says one distinct thing about topic {i}." for i in range(60)]
PAPER = Paper(id="p", title="A short title", abstract=" ".join(SENTENCES), url="http://x", year="2024")


class WordEmbedder:
    """Counts words as tokens; the window is whatever the test sets."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return len(text.split())


def _sentences_of(text: str) -> list[int]:
    return [i for i, s in enumerate(SENTENCES) if s in text]


def test_chunks_start_with_the_title_cover_the_abstract_in_order_and_overlap():
    chunks = chunk_paper(PAPER, WordEmbedder(10_000))
    assert len(chunks) > 1
    assert all(c.text.startswith(f"{PAPER.title}\n") for c in chunks)
    assert [c.id for c in chunks] == [f"p#{i}" for i in range(len(chunks))]
    covered = [_sentences_of(c.text) for c in chunks]
    assert sorted({i for part in covered for i in part}) == list(range(60))  # nothing lost
    for before, after in zip(covered, covered[1:]):
        assert after[0] <= before[-1], "consecutive chunks share their boundary sentence"
        assert after[-1] > before[-1]


def test_every_chunk_fits_the_embedders_window_and_a_smaller_window_makes_more_chunks():
    wide = chunk_paper(PAPER, WordEmbedder(10_000))
    small = WordEmbedder(40)
    narrow = chunk_paper(PAPER, small)
    assert len(narrow) > len(wide)
    assert all(small.count_tokens(c.text) <= 40 for c in narrow)
    assert small.counted, "the chunker measures chunks with the embedder's own count"


def test_a_title_longer_than_the_window_is_an_error():
    with pytest.raises(ValueError, match="does not fit the embedder's window"):
        chunk_paper(Paper(id="t", title="word " * 50, abstract="An abstract."), WordEmbedder(20))


def test_the_first_chunk_carries_the_paper_and_a_split_abstract():
    first, *rest = chunk_paper(PAPER, WordEmbedder(10_000))
    assert first.extra["chunks"] == len(rest) + 1 and first.extra["abstract"] == PAPER.abstract
    assert all("abstract" not in c.extra and "chunks" not in c.extra for c in rest)
    assert first.content_hash == f"{PAPER.content_hash}-{CHUNKER_VERSION}"
    (only,) = chunk_paper(Paper(id="s", title="T", abstract="One short sentence."), WordEmbedder(100))
    assert only.extra["chunks"] == 1 and "abstract" not in only.extra
