"""Sentence choice of the extractive answerer (rag/extractive.py) on constructed abstracts, with a
bag-of-words embedder and a small IDF table: no store, no model."""

from __future__ import annotations

from rag.extractive import WEIGHTS, compose, compose_parts
from rag.question import Question
from tests.fakes_text import BagOfWords, TinyLexical

LITSEARCH = (
    "LitSearch: A Retrieval Benchmark for Scientific Literature Search",
    "Literature search questions are hard to answer with existing tools. "
    "Recently, retrieval benchmarks have remained challenging for search engines. "
    "We introduce LitSearch, a retrieval benchmark comprising 597 realistic literature search queries. "
    "The queries were written by GPT-4 and by the authors of the papers.",
)
FP8 = (
    "Efficient Post-training Quantization with FP8 Formats",
    "We study FP8 data formats for post-training quantization. "
    "Our results show that FP8 formats outperform INT8 in workload coverage (92.64% vs. 65.87%).",
)
OTHER = ("Diffusion Models Beat GANs", "Diffusion models generate images. We train them on ImageNet.")


def _compose(question: str, sources, embedder=None):
    lexical = TinyLexical([f"{t}. {a}" for t, a in (LITSEARCH, FP8, OTHER)])
    embedder = embedder or BagOfWords()
    return compose_parts(Question.parse(question, embedder), sources, embedder, lexical)  # type: ignore[arg-type]


def test_a_how_many_question_gets_the_sentence_with_the_count():
    text, parts = _compose("How many queries does LitSearch contain?", [LITSEARCH, OTHER])
    assert (
        text == "We introduce LitSearch, a retrieval benchmark comprising 597 realistic literature search queries. [1]"
    )
    assert parts == []


def test_a_finding_is_preferred_over_background():
    text, _ = _compose("Does FP8 outperform INT8?", [FP8])
    assert text.startswith("Our results show that FP8 formats outperform INT8")


def test_a_which_papers_question_lists_each_qualifying_paper_with_its_best_sentence():
    text, _ = _compose("Which papers study FP8 quantization or literature search?", [LITSEARCH, FP8, OTHER])
    lines = text.splitlines()
    assert lines[0].startswith("- *LitSearch: A Retrieval Benchmark") and lines[0].endswith("[1]")
    assert lines[1].startswith("- *Efficient Post-training Quantization with FP8 Formats* — ") and lines[1].endswith(
        "[2]"
    )
    assert len(lines) == 2  # the diffusion paper scores under the list floor
    assert WEIGHTS.list_floor == 0.55


def test_each_part_of_a_two_part_question_is_answered_or_named():
    text, parts = _compose("How many queries does LitSearch contain, and how were the queries written?", [LITSEARCH])
    assert [p.ask for p in parts] == ["How many queries does LitSearch contain", "how were the queries written"]
    assert all(p.answered for p in parts)
    assert "597 realistic" in text and "written by GPT-4" in text
    assert text.index("597") < text.index("GPT-4")  # in the abstract's order


def test_the_question_is_embedded_once_for_every_sentence_scored():
    embedder = BagOfWords()
    question = Question.parse("How many queries does LitSearch contain?", embedder)
    compose(question, [LITSEARCH, OTHER], embedder, TinyLexical([LITSEARCH[1]]))  # type: ignore[arg-type]
    compose(question, [LITSEARCH, OTHER], embedder, TinyLexical([LITSEARCH[1]]))  # type: ignore[arg-type]
    assert sum(question.text in call for call in embedder.calls) == 1
