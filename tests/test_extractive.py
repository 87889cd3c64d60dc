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


def _compose(question: str, sources, embedder=None, lexical=None):
    lexical = lexical or TinyLexical([f"{t}. {a}" for t, a in (LITSEARCH, FP8, OTHER)])
    embedder = embedder or BagOfWords()
    return compose_parts(Question.parse(question, embedder), sources, embedder, lexical)  # type: ignore[arg-type]


def test_a_how_many_question_gets_the_sentence_with_the_count():
    text, parts = _compose("How many queries does LitSearch contain?", [LITSEARCH, OTHER])
    assert (
        text == "We introduce LitSearch, a retrieval benchmark comprising 597 realistic literature search queries. [1]"
    )
    assert parts == []


def test_the_answer_quotes_retrievals_first_paper_even_when_a_neighbour_shares_more_words():
    """A neighbour's sentence naming the question's words does not outrank the paper retrieval put
    first: it ranks papers on all their evidence."""
    neighbour = ("Quantized LLMs", "Quantized FP8 models hold up except for literature search queries.")
    text, _ = _compose("Is there a benchmark of literature search queries for FP8?", [LITSEARCH, neighbour])
    assert text.startswith("We introduce LitSearch") and text.endswith("[1]") and "[2]" not in text


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
    assert WEIGHTS.list_floor == 0.65


def test_each_part_of_a_two_part_question_is_answered_or_named():
    text, parts = _compose("How many queries does LitSearch contain, and how were the queries written?", [LITSEARCH])
    assert [p.ask for p in parts] == ["How many queries does LitSearch contain", "how were the queries written"]
    assert all(p.answered for p in parts)
    assert "597 realistic" in text and "written by GPT-4" in text
    assert text.index("597") < text.index("GPT-4")  # in the abstract's order


def test_a_part_naming_another_paper_is_answered_from_that_paper():
    text, parts = _compose(
        "How many queries does LitSearch contain? How much better is FP8 than INT8?", [LITSEARCH, FP8]
    )
    assert all(p.answered for p in parts)
    assert text.endswith("(92.64% vs. 65.87%). [2]") and "597 realistic literature search queries. [1]" in text
    assert text.index("597") < text.index("92.64%")  # the answer's paper first


def test_a_name_a_later_part_brings_in_does_not_steer_an_earlier_part():
    capacity = (
        "Knowledge Capacity Scaling Laws",
        "We study how much knowledge language models store. "
        "Language models can store 2 bits of knowledge per parameter. "
        "Consequently, a 7B model can store 14B bits of knowledge.",
    )
    text, parts = _compose(
        "How many bits of knowledge can a model store per parameter, and what does that imply for a 7B model?",
        [capacity],
    )
    assert all(p.answered for p in parts)
    assert "2 bits of knowledge per parameter" in text and "14B bits" in text


def test_a_part_naming_what_another_abstract_merely_uses_stays_with_the_answers_paper():
    """Only a paper's title moves a part to it: another abstract's "GPUs" does not answer which
    GPUs LitSearch used."""
    serving = ("Serving LLMs Cheaply", "We find that W4A16 offers the best cost-efficiency on mid-tier GPUs.")
    text, parts = _compose("How many queries does LitSearch contain, and which GPUs were used?", [LITSEARCH, serving])
    assert [p.answered for p in parts] == [True, False]
    assert "597" in text and "[2]" not in text and "GPUs" not in text


def test_a_how_much_faster_question_needs_a_factor_not_any_number():
    slow = ("FP8 speed", "We evaluate FP8 on 75 workloads. FP8 inference runs faster than INT8.")
    assert _compose("How much faster is FP8 than INT8?", [slow]) == ("", [])
    for stated in ("FP8 inference is 1.5x faster than INT8.", "FP8 cuts latency from 10 ms to 6 ms."):
        fast = ("FP8 speed", f"We evaluate FP8 on 75 workloads. {stated}")
        text, _ = _compose("How much faster is FP8 than INT8?", [fast])
        assert stated in text


def test_how_much_of_a_named_thing_is_answered_by_a_number_in_a_sentence_about_it():
    """ "How much image-text training data does Lynx use?" was answered by "We implement over 20
    variants": a number, about something else."""
    lynx = ("Lynx", "We implement over 20 variants with controlled settings. Lynx is trained on image-text data.")
    assert _compose("How much image-text training data does Lynx use?", [lynx]) == ("", [])
    stated = ("Lynx", "We implement over 20 variants. Lynx is trained on 2M image-text pairs.")
    text, _ = _compose("How much image-text training data does Lynx use?", [stated])
    assert "2M image-text pairs" in text


def test_an_answer_that_describes_a_method_without_its_name_adds_the_sentence_naming_it():
    """ "Estimate a classifier's accuracy after deployment without labels" quoted what the method
    does, never that it is M-CBPE, the word a reader searches for next."""
    estimation = (
        "We don't need no labels: Estimating post-deployment model performance under covariate shift",
        "Models degrade after deployment when the data shifts. "
        "We estimate the accuracy of a deployed classifier on unlabeled data under covariate shift. "
        "We call it multi-calibrated confidence-based performance estimation (M-CBPE).",
    )
    text, _ = _compose("estimate a deployed classifier's accuracy under covariate shift without labels", [estimation])
    assert text.startswith("We estimate the accuracy of a deployed classifier") and text.endswith("(M-CBPE). [1]")
    # a question that names the method, or an answer that already does, gets nothing more
    text, _ = _compose("how does M-CBPE estimate a deployed classifier's accuracy under covariate shift?", [estimation])
    assert "We call it" not in text
    # an acronym the abstract defines for a background term is no name of the paper's own
    background = (
        "Detectors",
        "Models must tell In-Distribution (ID) samples from others. We detect shifted samples with flows.",
    )
    text, _ = _compose("detecting shifted samples with flows", [background])
    assert text == "We detect shifted samples with flows. [1]"


def test_the_question_is_embedded_once_for_every_sentence_scored():
    embedder = BagOfWords()
    question = Question.parse("How many queries does LitSearch contain?", embedder)
    compose(question, [LITSEARCH, OTHER], embedder, TinyLexical([LITSEARCH[1]]))  # type: ignore[arg-type]
    compose(question, [LITSEARCH, OTHER], embedder, TinyLexical([LITSEARCH[1]]))  # type: ignore[arg-type]
    assert sum(question.text in call for call in embedder.calls) == 1


CYBER_1 = (
    "Feature Density for Cyberbullying Detection",
    "We use feature density to estimate classifier performance for cyberbullying detection.",
)
CYBER_2 = (
    "Linguistic Features and Cyberbullying Detection",
    "We use feature density in cyberbullying detection and report the results.",
)
# on topic (feature density, detection), but not about cyberbullying
DENSITY_OOD = (
    "Feature Density for Anomaly Detection",
    "We use feature density for anomaly detection and show detection results.",
)
# a corpus where feature density and detection are common words and cyberbullying a rare one
CORPUS = TinyLexical(["feature density detection methods proposed in new papers"] * 8 + ["cyberbullying"] * 2)


def _cited(text: str) -> list[int]:
    return [int(line.rsplit("[", 1)[1].rstrip("]")) for line in text.splitlines()]


def test_a_which_papers_answer_leaves_out_a_neighbour_missing_the_questions_focus_words():
    question = "Which papers use feature density for cyberbullying detection?"
    text, _ = _compose(question, [CYBER_1, DENSITY_OOD, CYBER_2], lexical=CORPUS)
    assert _cited(text) == [1, 3]  # in source order; the anomaly-detection paper is left out
    assert WEIGHTS.list_focus == 0.5


def test_the_words_of_asking_for_papers_are_not_focus_words(monkeypatch):
    from rag import extractive

    question = "Which papers propose new methods for cyberbullying detection?"
    on_point = ("Cyberbullying Detection", "We propose new methods for cyberbullying detection.")
    wordy = ("Anomaly Detection", "This paper proposes new methods for anomaly detection.")
    text, _ = _compose(question, [on_point, wordy], lexical=CORPUS)
    assert _cited(text) == [1]
    monkeypatch.setattr(extractive, "_ASKING", frozenset())  # counted as focus, they would let it in
    text, _ = _compose(question, [on_point, wordy], lexical=CORPUS)
    assert _cited(text) == [1, 2]


def test_at_most_list_max_papers_are_listed_the_best_scored(monkeypatch):
    from rag import extractive

    question = "Which papers use feature density for cyberbullying detection?"
    assert _cited(_compose(question, [CYBER_1, CYBER_2], lexical=CORPUS)[0]) == [1, 2]
    monkeypatch.setattr(extractive, "WEIGHTS", extractive.Weights(list_max=1))
    assert _cited(_compose(question, [CYBER_1, CYBER_2], lexical=CORPUS)[0]) == [2]  # CYBER_2 scores higher
    assert WEIGHTS.list_max == 8


def test_a_list_question_whose_words_no_source_holds_is_listed_by_score_alone():
    text, _ = _compose("Which papers study zebras?", [LITSEARCH, FP8])
    assert text.startswith("- *")


def test_a_question_asking_for_a_number_is_not_answered_by_a_sentence_without_one():
    # the count is stated, but not in the sentence closest in words: that sentence is added
    text, _ = _compose("How many realistic queries were written by GPT-4 and the authors?", [LITSEARCH])
    assert "597 realistic literature search queries" in text
    # the source states no count of what is asked: no answer (the caller abstains)
    assert _compose("How many authors wrote the LitSearch queries?", [LITSEARCH]) == ("", [])
    assert _compose("By how much do diffusion models beat GANs?", [OTHER]) == ("", [])
    # a part asking for a number is answered only by a number
    _, parts = _compose("What does FP8 outperform, and how many workloads did it cover?", [FP8])
    assert [p.answered for p in parts] == [True, False]


def test_a_question_asking_for_a_share_is_answered_by_a_percentage_or_fraction():
    source = (
        "FP8 coverage",
        "We evaluate 75 network workloads with FP8. The FP8 format covers 92.64% of the workloads. "
        "It needs 1/4 of the memory of FP32.",
    )
    text, _ = _compose("What share of the network workloads does FP8 cover?", [source])
    assert "92.64%" in text
    text, _ = _compose("What fraction of the FP32 memory does FP8 need?", [source])
    assert "1/4" in text
    no_share = ("FP8 study", "We evaluate 75 network workloads with FP8 formats.")
    assert _compose("What share of the network workloads does FP8 cover?", [no_share]) == ("", [])


def test_two_papers_named_together_are_each_answered_from_their_own_abstract(workspace):
    """ "How many queries do LitSearch and Mr. TyDi contain?" abstained: no abstract names both."""
    from rag.answer import answer_question

    both = answer_question("How many queries do LitSearch and Mr. TyDi contain?", workspace.retriever)
    assert not both.abstained and "597" in both.text
    assert [(p.ask, p.answered) for p in both.parts] == [
        ("How many queries do LitSearch contain?", True),
        ("How many queries do TyDi contain?", False),  # its abstract gives no count
    ]
