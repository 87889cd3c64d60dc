import pytest

from rag.evaluation.metrics import retrieval_metrics
from rag.evaluation.suite import load_suite
from rag.workspace import Workspace
from tests.conftest import REPO


@pytest.fixture(scope="module")
def dev_suite(workspace):
    titles = {m["paper_id"]: m["title"] for m in workspace.store.all_chunks()[2]}
    return load_suite(REPO / "eval" / "suites" / "tune.jsonl", titles)


@pytest.mark.parametrize(
    "question, title",
    [
        ("which papers compare FP8 vs INT8?", "Efficient Post-training Quantization with FP8 Formats"),
        (
            "compressing long prompts for faster LLM inference",
            "LLMLingua: Compressing Prompts for Accelerated Inference of Large Language Models",
        ),
        (
            "benchmark of hallucinations for tool-using language models",
            "ToolBeHonest: A Multi-level Hallucination Diagnostic Benchmark for Tool-Augmented Large Language Models",
        ),
    ],
)
def test_known_questions_find_their_paper_near_the_top(workspace, question, title):
    for mode in ("hybrid", "dense", "bm25"):
        top = workspace.retriever.search(question, k=5, mode=mode).results
        assert title in [h.title for h in top[:3]], mode


def test_hybrid_beats_each_retriever_on_the_dev_suite(workspace, dev_suite):
    questions = [q for q in dev_suite.questions if q.answerable]
    gold = {q.id: q.gold for q in questions}
    scores = {}
    for mode in ("bm25", "dense", "hybrid"):
        ranked = {
            q.id: [h.paper_id for h in workspace.retriever.search(q.question, 10, mode).results] for q in questions
        }
        scores[mode] = retrieval_metrics(gold, ranked)
    assert scores["hybrid"]["R@10"] >= 0.95
    assert scores["hybrid"]["nDCG@10"] > max(scores["bm25"]["nDCG@10"], scores["dense"]["nDCG@10"])


def test_evidence_is_the_papers_best_chunk_without_its_title(workspace):
    hit = workspace.retriever.search("FP8 workload coverage compared with INT8", k=1).results[0]
    assert "92.64%" in hit.evidence
    assert not hit.evidence.startswith(hit.title)


def test_results_are_papers_not_chunks(workspace):
    results = workspace.retriever.search("mixture of experts", k=20).results
    assert len({h.paper_id for h in results}) == len(results) == 20
    assert [h.rank for h in results] == list(range(1, 21))
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))


def test_embed_cached_gives_the_vectors_of_embed_past_its_capacity(workspace, monkeypatch):
    import numpy as np

    from rag import embedders as module

    monkeypatch.setattr(module, "RECENT_VECTORS", 3)
    emb = workspace.embedder
    texts = [f"sentence number {i} about retrieval" for i in range(6)]
    first = emb.embed_cached(texts[:2])
    again = emb.embed_cached(texts)  # the first two are remembered, then the oldest are dropped
    assert np.allclose(again, emb.embed(texts), atol=1e-5)
    assert np.allclose(first, again[:2], atol=1e-5)
    assert len(emb._recent) <= 3


def test_in_a_crowded_store_the_one_abstract_naming_a_rare_term_ranks_first_at_any_k(tmp_path):
    """Hundreds of near-identical abstracts push the one naming "Synth400" below the dense depth;
    its dense side must still be scored, not taken as 0, or its rank depends on k (before the fix,
    a third of these terms missed the top 5 and some ranked first only at k=100)."""
    import random

    from rag.ingest import ingest
    from tests.conftest import make_settings, write_jsonl

    rng = random.Random(7)
    words = (
        "transformer network data neural attention retrieval scaling training model alpha beta gamma delta "
        "epsilon zeta theta lambda sigma omega"
    ).split()
    numbers = range(0, 1200, 4)
    rows = [
        {
            "id": f"syn-{n}",
            "title": f"Synthetic paper {n} on {' '.join(rng.sample(words, 4))}",
            "abstract": " ".join(rng.choice(words) for _ in range(120)) + f". Synth{n} reaches {n} points.",
        }
        for n in numbers
    ]
    ws = Workspace(make_settings(tmp_path / "data"))
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "crowd.jsonl", rows)])
    for n in numbers[::10]:
        shallow, deep = (ws.retriever.search(f"Synth{n} reaches", k=k).results for k in (5, 100))
        assert shallow[0].paper_id == deep[0].paper_id == f"syn-{n}"
        assert shallow[0].score == pytest.approx(deep[0].score, abs=1e-6)  # float32 on both sides


def test_a_paper_named_by_its_id_comes_first_and_its_question_is_answered(tmp_path):
    """Ids are what `rag search` prints and users paste; no abstract holds its own id, so the paper
    ranked third and `rag ask` said no retrieved abstract mentions it."""
    from rag.answer import answer_question
    from rag.ingest import ingest
    from tests.conftest import make_settings, write_jsonl

    rows = [
        {
            "id": f"2305.1{i:04d}",
            "title": f"On the algebraic curves of moduli: a study number {i}",
            "abstract": f"We study algebraic curves of moduli spaces number {i}. We find that {i + 3} curves are rational.",
        }
        for i in range(40)
    ]
    ws = Workspace(make_settings(tmp_path / "data"))
    ingest(ws.store, ws.embedder, [write_jsonl(tmp_path / "arx.jsonl", rows)])
    for query in ("2305.10004", "what is in 2305.10004?"):
        assert ws.retriever.search(query, k=3).results[0].paper_id == "2305.10004", query
    hits = ws.retriever.search("2305.10004", k=3, exclude={"2305.10004"}).results  # the evaluation's exclusion holds
    assert "2305.10004" not in [h.paper_id for h in hits]
    answer = answer_question("What does paper 2305.10004 find?", ws.retriever, k=3)
    assert not answer.abstained, answer.assessment
    assert answer.sources[0].paper_id == "2305.10004" and "7 curves are rational" in answer.text
