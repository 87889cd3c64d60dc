import pytest

from rag.grounding import BAD_CITATION, NO_CLAIM, SUPPORTED, UNCITED, UNSUPPORTED, check
from rag.sentences import strip_citations, without_pointers
from rag.terms import contains_key

SOURCES = {
    1: (
        "Efficient Post-training Quantization with FP8 Formats",
        "We study FP8 across 75 unique network architectures. Our empirical results show that FP8 formats "
        "outperform INT8 in multiple aspects, including workload coverage (92.64% vs. 65.87%). "
        "E4M3 is better suited for NLP models, whereas E3M4 performs marginally better on computer vision tasks.",
    ),
    2: ("Densing Law of LLMs", "The capacity density of LLMs doubles approximately every three months."),
}


def verdicts(answer: str) -> list[str]:
    return [s.verdict for s in check(answer, SOURCES).sentences]


def test_supported_and_perturbed_sentences():
    assert verdicts("FP8 formats outperform INT8 in workload coverage (92.64% vs. 65.87%) [1].") == [SUPPORTED]
    assert verdicts("FP8 formats outperform INT8 in workload coverage (93.64% vs. 65.87%) [1].") == [UNSUPPORTED]
    assert verdicts("FP8 formats do not outperform INT8 in workload coverage [1].") == [UNSUPPORTED]
    assert verdicts("FP8 formats outperform BF16 in workload coverage [1].") == [UNSUPPORTED]  # swapped names
    assert verdicts("The capacity density of LLMs doubles every three months [1].") == [UNSUPPORTED]  # wrong paper


def test_citation_problems_are_told_apart():
    answer = "Capacity density doubles every three months [2]. Quantum computers will replace GPUs by 2030. See [7] for more about density laws."
    assert verdicts(answer) == [SUPPORTED, UNCITED, BAD_CITATION]
    assert verdicts("Here is what I found.") == [NO_CLAIM]


def test_alce_precision_and_recall():
    # one supported sentence with one needed and one irrelevant citation, one unsupported sentence
    g = check(
        "The capacity density of LLMs doubles every three months [2][1]. "
        "FP8 formats outperform INT8 on speech recognition and protein folding [1].",
        SOURCES,
    )
    first, second = g.sentences
    assert first.supported and first.precise == [2]
    assert not second.supported
    assert g.citation_recall == 0.5
    assert g.citation_precision == 1 / 3


def test_perfect_and_empty_answers():
    assert check("", SOURCES).citation_recall == 1.0
    g = check(
        "E4M3 is better suited for NLP models [1]. Capacity density doubles approximately every three months [2].",
        SOURCES,
    )
    assert (g.citation_precision, g.citation_recall, g.supported_ratio) == (1.0, 1.0, 1.0)


def test_jointly_supported_sentence_needs_both_citations():
    g = check(
        "FP8 was studied across 75 architectures and the capacity density of LLMs doubles every three months [1][2].",
        SOURCES,
    )
    (s,) = g.sentences
    assert s.supported and sorted(s.precise) == [1, 2]


def test_key_terms_match_whole_tokens_not_substrings():
    source = {1: ("Multilingual tuning", "We fine-tune RoBERTa and mT5 on 2 languages and report 1.5x gains.")}
    wrong = check("We fine-tune BERT and T5 on 12 languages [1].", source).sentences[0]
    assert wrong.verdict == "unsupported"
    right = check("They fine-tune RoBERTa and mT5 on 2 languages [1].", source).sentences[0]
    assert right.verdict == "supported"
    # spelling variants of one token still match
    assert contains_key("Llama 2-7B and FlashAttention-3 on 1,000 GPUs", "llama2")
    assert contains_key("FlashAttention 3", "flashattention3")
    assert contains_key("over 1,000 GPUs", "1000")
    assert not contains_key("version 1.5 of it", "5") and not contains_key("1.5 times", "1")


def test_abstention_names_must_appear_as_tokens():
    from rag.terms import mentions

    assert not mentions("We fine-tune RoBERTa and mT5.", "BERT")
    assert mentions("We fine-tune BERT-base models.", "BERT")


# ---- the Verifier seam ---------------------------------------------------------------------------

CLAIM = "FP8 formats outperform INT8 in workload coverage (92.64% vs. 65.87%) [1]."


class ScriptedJudge:
    """A judge function that answers from a script and records what it was asked."""

    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, list[str]]] = []

    def __call__(self, claim: str, passages: list[str]) -> bool | None:
        self.asked.append((claim, passages))
        return self.answers.pop(0)


def test_both_verifiers_satisfy_the_protocol_and_neither_subclasses_the_other():
    from rag.grounding import LLMVerifier, OverlapVerifier, Passage, Verifier

    verifiers: list[Verifier] = [OverlapVerifier(), LLMVerifier(ScriptedJudge(True))]
    passage = Passage(*SOURCES[1])
    for verifier in verifiers:
        ok, score, window = verifier.supports(CLAIM, [passage])
        assert ok is True and score == 1.0 and "92.64%" in window
    assert not issubclass(LLMVerifier, OverlapVerifier) and not issubclass(OverlapVerifier, LLMVerifier)


def test_the_llm_verifier_decides_and_reports_the_overlap_score():
    from rag.grounding import LLMVerifier, OverlapVerifier, Passage

    judge = ScriptedJudge(False)
    passage = Passage(*SOURCES[1])
    ok, score, window = LLMVerifier(judge).supports(CLAIM, [passage])
    assert not ok  # the judge said no, whatever the overlap says
    assert (score, window) == OverlapVerifier().supports(CLAIM, [passage])[1:]
    assert judge.asked == [(without_pointers(strip_citations(CLAIM)), [passage.full])]
    assert LLMVerifier(ScriptedJudge()).supports(CLAIM, []) == (False, 0.0, "")  # no sources: not asked


def test_a_judge_reply_is_read_however_it_is_dressed_and_an_unreadable_one_leaves_the_overlap_verdict():
    from rag.grounding import LLMVerifier, OverlapVerifier, Passage, read_verdict

    for reply in ("Yes.", "**Yes**", "The answer is yes.", "YES - fully supported", "`yes`"):
        assert read_verdict(reply) is True, reply
    for reply in ("No", "**No.**", "The answer is no, the passage says otherwise."):
        assert read_verdict(reply) is False, reply
    assert read_verdict("Sí") is None and read_verdict("") is None and read_verdict("Noted.") is None
    passage = Passage(*SOURCES[1])
    overlap_ok = OverlapVerifier().supports(CLAIM, [passage])[0]
    assert LLMVerifier(ScriptedJudge(None)).supports(CLAIM, [passage])[0] == overlap_ok is True


def test_check_takes_any_verifier():
    from rag.grounding import LLMVerifier

    judge = ScriptedJudge(True, True)  # the joint check, then the "alone" check of its one citation
    (checked,) = check(
        "The capacity density of LLMs doubles every three months [1].", SOURCES, LLMVerifier(judge)
    ).sentences
    assert checked.verdict == SUPPORTED and checked.precise == [1] and len(judge.asked) == 2


def test_make_verifier_builds_the_configured_one(tmp_path):
    from rag.config import SettingsError
    from rag.grounding import LLMVerifier, OverlapVerifier, Passage, make_verifier
    from tests.conftest import make_settings

    class ScriptedLLM:
        model, endpoint, usage = "scripted", "scripted://", {}

        def __init__(self) -> None:
            self.prompts: list[tuple[str, str]] = []

        def stream(self, system: str, user: str):
            self.prompts.append((system, user))
            yield "Yes, it does."

    assert type(make_verifier(make_settings(tmp_path), None)) is OverlapVerifier
    llm = ScriptedLLM()
    verifier = make_verifier(make_settings(tmp_path, verifier="llm"), llm)
    assert isinstance(verifier, LLMVerifier)
    assert verifier.supports("Capacity density of LLMs doubles quickly [2].", [])[0] is False
    assert verifier.supports("Capacity density of LLMs doubles quickly [2].", [Passage(*SOURCES[2])])[0] is True
    assert without_pointers(strip_citations("Capacity density of LLMs doubles quickly [2].")) in llm.prompts[0][1]
    with pytest.raises(SettingsError, match="verifier = llm needs an LLM"):
        make_verifier(make_settings(tmp_path, verifier="llm"), None)


def test_the_support_threshold_is_the_verifiers_own_setting():
    from rag.grounding import GROUNDING, OverlapVerifier, Passage

    half = "FP8 formats outperform some quantum annealers on galaxy surveys [1]."
    ok, score, _ = OverlapVerifier().supports(half, [Passage(*SOURCES[1])])
    assert not ok and 0 < score < GROUNDING.support_threshold
    lenient = OverlapVerifier(type(GROUNDING)(support_threshold=score))
    assert lenient.supports(half, [Passage(*SOURCES[1])])[0]


def test_a_reworded_claim_is_supported_by_sentence_similarity_but_numbers_and_negation_still_count(tmp_path):
    """The paraphrase rule (GroundingTuning.paraphrase_*): with the real MiniLM embedder, a claim
    sharing too few words is judged by its similarity to the cited window; a changed number, a
    negation or another paper still fail."""
    from rag.embedders import get_embedder
    from rag.grounding import OverlapVerifier, Passage
    from tests.conftest import make_settings

    embed = get_embedder(make_settings(tmp_path)).embed_cached
    speech = [
        Passage(
            "Sparse experts for speech",
            "We study mixture-of-experts models for speech recognition. Routing each frame to two of 32 experts "
            "cuts training time by 40% while word error rate stays the same as the dense baseline. The code is released.",
        )
    ]
    images = [
        Passage(
            "Diffusion for images",
            "We train a diffusion model for image generation. Sampling with 8 steps reaches an FID of 3.1 on ImageNet.",
        )
    ]
    claim = "Dispatching every audio frame to two of 32 experts makes training 40% quicker while error rates hold steady [1]."
    plain, reworded = OverlapVerifier(), OverlapVerifier(embed=embed)
    ok, score, _ = plain.supports(claim, speech)
    assert not ok and 0.4 <= score < 0.6  # too few shared words for the overlap rule alone
    assert reworded.supports(claim, speech)[0]
    assert not reworded.supports(claim.replace("40%", "45%"), speech)[0]
    assert not reworded.supports(claim.replace("hold steady", "do not hold steady"), speech)[0]
    assert not reworded.supports(claim, images)[0]


def test_the_similarity_test_reads_a_window_after_its_title(tmp_path):
    """An abstract's sentences say "we" and "they" for what its title names: a claim naming it is
    compared with each window after the title too."""
    from rag.embedders import get_embedder
    from rag.grounding import OverlapVerifier, Passage
    from tests.conftest import make_settings

    embed = get_embedder(make_settings(tmp_path)).embed_cached
    text = (
        "We study knowledge distillation from a new angle. We train students parameterized identically to "
        "their teachers, and surprisingly they outperform their teachers significantly."
    )
    claim = (
        "In born-again neural networks, students with the same architecture as their teachers end up beating them [1]."
    )
    verifier = OverlapVerifier(embed=embed)
    assert verifier.supports(claim, [Passage("Born-Again Neural Networks", text)])[0]
    assert not verifier.supports(claim, [Passage("Distillation revisited", text)])[0]  # the title names it
    assert not verifier.supports(
        claim.replace("end up beating", "never beat"), [Passage("Born-Again Neural Networks", text)]
    )[0]


def test_a_claim_that_states_the_opposite_without_a_negation_word_is_not_supported():
    """An antonym ("more slowly" for "faster") or the sides of a comparison swapped."""
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "FastTrain",
            "FastTrain trains diffusion transformers three times faster than DiT and reaches a comparable FID on ImageNet.",
        )
    ]
    verifier = OverlapVerifier()
    assert verifier.supports(
        "FastTrain trains diffusion transformers faster than DiT with a comparable FID [1].", source
    )[0]
    assert not verifier.supports(
        "FastTrain trains diffusion transformers slower than DiT with a comparable FID [1].", source
    )[0]
    assert not verifier.supports(
        "FastTrain trains diffusion transformers more slowly than DiT and reaches a comparable FID on ImageNet [1].",
        source,
    )[0]
    # the sides of a comparison swapped around a winning word, however many words are shared; a
    # title's "Bigger Is Better" decides nothing
    routers = [
        Passage(
            "Bigger Is Better for Routing",
            "We compare sparse routers of several sizes. Under a fixed compute budget, smaller routers often "
            "outperform their larger counterparts on held-out tasks.",
        )
    ]
    budget = "Under a fixed compute budget, {} on held-out tasks [1]."
    assert verifier.supports(budget.format("smaller routers often do better than larger ones"), routers)[0]
    assert not verifier.supports(budget.format("larger routers often do better than smaller ones"), routers)[0]
    assert not verifier.supports(budget.format("larger routers often outperform their smaller counterparts"), routers)[
        0
    ]


def test_a_ranking_turned_around_is_not_supported_and_as_well_is_no_judgement():
    """A model wrote "Google Search performs best on LitSearch, leading the best dense retriever by 32
    points" of an abstract saying it performs poorly, lagging behind by 32 points."""
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "LitSearch",
            "Search engines like Google Search perform poorly on LitSearch, lagging behind the best dense "
            "retriever by 32 points. Dense retrievers work well on it, as well as rerankers.",
        )
    ]
    verifier = OverlapVerifier()
    said = "Google Search performs poorly on LitSearch, lagging behind the best dense retriever by 32 points [1]."
    assert verifier.supports(said, source)[0]
    for turned in (
        "Google Search performs well on LitSearch, ahead of the best dense retriever by 32 points [1].",
        "Google Search performs best on LitSearch, leading the best dense retriever by 32 points [1].",
    ):
        assert not verifier.supports(turned, source)[0], turned
    assert verifier.supports("Dense retrievers work well on LitSearch, as well as rerankers [1].", source)[0]


def test_a_comparison_of_two_named_things_turned_around_is_not_supported():
    """ "INT8 activation consistently outshines its FP8 equivalent" passed against an abstract saying
    FP8 outshines INT8: every word was there. The passive keeps the sides; another finding of the
    same names stands."""
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "ZeroQuant-FP",
            "Our findings reveal that FP8 activation consistently outshines its integer (INT8) equivalent, "
            "with the performance edge becoming more noticeable in models with more than one billion "
            "parameters. INT8 kernels are easier to deploy on older GPUs.",
        )
    ]
    verifier = OverlapVerifier()
    for said in (
        "FP8 activation consistently outshines its INT8 equivalent [1].",
        "INT8 activation is consistently outshone by its FP8 equivalent [1].",
        "INT8 kernels are easier to deploy on older GPUs than FP8 [1].",
    ):
        assert verifier.supports(said, source)[0], said
    for turned in (
        "INT8 activation consistently outshines its FP8 equivalent [1].",
        "INT8 activation consistently outperforms FP8 activation [1].",
    ):
        assert not verifier.supports(turned, source)[0], turned


def test_counts_in_words_must_be_stated_by_the_window():
    from rag.grounding import OverlapVerifier, Passage

    source = [Passage(*SOURCES[2])]
    verifier = OverlapVerifier()
    assert verifier.supports("The capacity density of LLMs doubles roughly every three months [1].", source)[0]
    assert verifier.supports("The capacity density of LLMs doubles roughly every 3 months [1].", source)[0]
    assert not verifier.supports("The capacity density of LLMs doubles roughly every six months [1].", source)[0]
    assert not verifier.supports("The capacity density of LLMs triples roughly every three months [1].", source)[0]


def test_a_rounded_number_is_supported_when_hedged_and_a_changed_one_is_not():
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage("Hybrid SD", "Hybrid SD splits inference between cloud and edge. It reduces the cloud cost by 66%.")
    ]
    verifier = OverlapVerifier()
    assert verifier.supports("Hybrid SD reduces the cloud cost by about two thirds [1].", source)[0]
    assert verifier.supports("Hybrid SD reduces the cloud cost by roughly 65% [1].", source)[0]
    assert not verifier.supports("Hybrid SD reduces the cloud cost by about a third [1].", source)[0]
    assert not verifier.supports("Hybrid SD reduces the cloud cost by 65% [1].", source)[0]  # not hedged: exact
    assert not verifier.supports("Hybrid SD reduces the cloud cost by more than 70% [1].", source)[0]


def test_an_acronym_for_words_the_source_spells_out_is_stated_and_an_unrelated_one_is_not():
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "Ranked training",
            "Summarization models are trained with maximum likelihood estimation, which assumes a "
            "deterministic target distribution. We train with a ranking loss over candidate summaries.",
        )
    ]
    verifier = OverlapVerifier()
    assert verifier.supports("Summarization models are trained with MLE, assuming a deterministic target [1].", source)[
        0
    ]
    assert not verifier.supports(
        "Summarization models are trained with PPO, assuming a deterministic target [1].", source
    )[0]
    # two initials in a row happen by chance ("target distribution"): not taken as spelling out "TD"
    assert not verifier.supports(
        "Summarization models are trained with TD, assuming a deterministic target [1].", source
    )[0]


def test_a_share_stated_by_its_remainder_is_supported_and_a_reversed_one_is_not():
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "Quality pruning",
            "Pruning by quality score improves accuracy while using 40% lesser data on the OpenWebText dataset.",
        )
    ]
    verifier = OverlapVerifier()
    assert verifier.supports("Pruning by quality score improves accuracy using only 60% of the data [1].", source)[0]
    assert not verifier.supports("Pruning by quality score improves accuracy using 60% less data [1].", source)[0]
    assert not verifier.supports("Pruning by quality score improves accuracy using only 70% of the data [1].", source)[
        0
    ]


def test_a_claim_may_join_two_findings_of_one_abstract():
    from dataclasses import replace

    from rag.grounding import GROUNDING, OverlapVerifier, Passage

    source = [
        Passage(
            "LitSearch",
            "We introduce LitSearch, a benchmark of 597 literature search queries about recent ML and NLP papers. "
            "We describe how the queries were written by authors and annotators. "
            "We find a gap of 24.8 points in recall@5 between BM25 and dense retrievers on LitSearch queries.",
        )
    ]
    claim = "On 597 literature search queries about ML and NLP papers, dense retrievers beat BM25 by 24.8 points of recall@5 [1]."
    assert OverlapVerifier().supports(claim, source)[0]
    assert not OverlapVerifier(replace(GROUNDING, second_window=False)).supports(claim, source)[0]
    # a number the abstract does not state anywhere still fails
    assert not OverlapVerifier().supports(claim.replace("24.8", "28.4"), source)[0]


def test_a_heavy_price_where_the_source_states_none_is_not_supported():
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "Improved DDPM",
            "Learning the variances of the reverse process allows sampling with an order of magnitude fewer "
            "forward passes with a negligible difference in sample quality.",
        )
    ]
    verifier = OverlapVerifier()
    claim = "Learning the reverse process variances allows sampling with far fewer forward passes {} [1]."
    assert verifier.supports(claim.format("with a negligible difference in sample quality"), source)[0]
    assert not verifier.supports(claim.format("at a substantial cost in sample quality"), source)[0]
    assert not verifier.supports(claim.format("with a significant difference in sample quality"), source)[0]


def test_a_negation_counts_only_for_the_words_it_governs():
    """A negation denies the words after it in its clause: one about something the claim does not
    mention decides nothing; one the claim drops, adds, or restates from a neighbouring sentence does."""
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "Scaling retrieval datastores",
            "Growing the datastore of a retrieval-based LM monotonically improves language modeling without "
            "obvious saturation. LlamaGen is not yet on par with diffusion models for compositional generation. "
            "FLUX rivals DALL-E3 in compositional generation.",
        )
    ]
    verifier = OverlapVerifier()
    # the source's "without obvious saturation" is not about what the claim says
    assert verifier.supports("Growing the datastore of a retrieval-based LM improves language modeling [1].", source)[0]
    # a claim joining two sentences keeps the negation of the one it restates
    assert verifier.supports(
        "LlamaGen is not yet on par with diffusion models, while FLUX rivals DALL-E3 in compositional generation [1].",
        source,
    )[0]
    # dropping the negation, or denying what the source states, still fails
    assert not verifier.supports("LlamaGen is on par with diffusion models for compositional generation [1].", source)[
        0
    ]
    assert not verifier.supports(
        "Growing the datastore of a retrieval-based LM does not improve language modeling [1].", source
    )[0]


def test_a_nil_price_in_the_plural_is_not_a_negation():
    from rag.grounding import OverlapVerifier, Passage

    source = [
        Passage(
            "Data mollification",
            "Data mollification adds one line of code to the optimization loop and boosts generation quality "
            "of likelihood-based models, without computational overheads.",
        )
    ]
    claim = "Data mollification boosts the generation quality of likelihood-based models with one line of code [1]."
    assert OverlapVerifier().supports(claim, source)[0]


def test_not_only_adds_a_finding_and_a_prefix_or_another_sentence_can_state_a_denial():
    from rag.grounding import OverlapVerifier, Passage

    verifier = OverlapVerifier()
    stratified = [
        Passage(
            "SimpleStrat",
            "We show not only does raising the temperature produce lower quality individual generations, "
            "but it depends on next-token probabilities matching the true answer distribution.",
        )
    ]
    assert verifier.supports("Raising the temperature produces lower quality individual generations [1].", stratified)[
        0
    ]
    assert not verifier.supports("Raising the temperature does not lower the quality of generations [1].", stratified)[
        0
    ]
    flows = [
        Passage(
            "FFJORD",
            "We use Hutchinson's trace estimator to give a scalable unbiased estimate of the log-density. "
            "The result is a continuous-time invertible generative model that allows unrestricted neural "
            "network architectures.",
        )
    ]
    assert verifier.supports(
        "FFJORD uses Hutchinson's trace estimator for an unbiased log-density estimate without restricting "
        "the network architecture [1].",
        flows,
    )[0]
    assert not verifier.supports(
        "FFJORD gives an unbiased log-density estimate without Hutchinson's trace estimator [1].", flows
    )[0]


def test_a_denial_is_supported_by_a_source_that_denies_without_a_negation_word():
    """ "does not require tuning the distance parameter" restates "eliminating the need for the
    difficult to tune distance scale parameter"; "without derivatives", "a derivative-free approach";
    "without adding computational overhead", "without computational overheads"."""
    from rag.grounding import OverlapVerifier, Passage

    verifier = OverlapVerifier()
    hdbscan = [
        Passage(
            "Accelerated HDBSCAN*",
            "The accelerated HDBSCAN* algorithm provides comparable performance to DBSCAN, while supporting "
            "variable density clusters, and eliminating the need for the difficult to tune distance scale parameter.",
        )
    ]
    assert verifier.supports(
        "Accelerated HDBSCAN* does not require tuning the distance scale parameter and supports variable "
        "density clusters [1].",
        hdbscan,
    )[0]
    # the denial must be of what the source denies
    assert not verifier.supports(
        "Accelerated HDBSCAN* does not support variable density clusters or the distance scale parameter [1].",
        hdbscan,
    )[0]
    enkg = [
        Passage(
            "EnKG", "We propose EnKG, a derivative-free approach that solves inverse problems with diffusion priors."
        )
    ]
    assert verifier.supports("EnKG solves inverse problems with diffusion priors without derivatives [1].", enkg)[0]
    assert not verifier.supports("EnKG solves inverse problems with diffusion priors without diffusion [1].", enkg)[0]
    mollify = [
        Passage(
            "Data mollification",
            "We demonstrate that data mollification provides a boost in generation quality of likelihood-based "
            "generative models, without computational overheads.",
        )
    ]
    assert verifier.supports(
        "Data mollification boosts the generation quality of likelihood-based generative models without adding "
        "computational overhead [1].",
        mollify,
    )[0]
    # "A rather than B" denies B
    apis = [
        Passage(
            "Inference efficiency of APIs",
            "The superior inference runtime of certain APIs is often a byproduct of optimizations within the API "
            "rather than the underlying model.",
        )
    ]
    assert verifier.supports(
        "The better inference runtime of some APIs comes not from the underlying model but from optimizations "
        "within the API [1].",
        apis,
    )[0]
    assert not verifier.supports(
        "The better inference runtime of some APIs comes not from optimizations within the API but from the "
        "underlying model [1].",
        apis,
    )[0]


def test_a_denial_about_earlier_work_does_not_deny_the_papers_own_finding():
    """Abstracts say what earlier work cannot do before what the paper does: a claim that the
    paper does it is supported; the paper's own denial, and a claim about the earlier work, still count."""
    from rag.grounding import OverlapVerifier, Passage

    verifier = OverlapVerifier()
    shift = [
        Passage(
            "Localizing shifted features",
            "While previous shift detection approaches can identify if a shift has occurred, these approaches "
            "cannot localize which specific features have caused a distribution shift. We localize the specific "
            "features that caused the shift with conditional hypothesis tests.",
        )
    ]
    assert verifier.supports(
        "The method localizes which specific features have caused a distribution shift [1].", shift
    )[0]
    assert not verifier.supports(
        "Previous shift detection approaches can localize which specific features caused a shift [1].", shift
    )[0]
    labels = [
        Passage("LabelFree", "Unlike previous estimators, our estimator does not require labels after deployment.")
    ]
    assert not verifier.supports("The estimator requires labels after deployment [1].", labels)[0]
    assert verifier.supports("The estimator does not require labels after deployment [1].", labels)[0]


def test_an_acronym_in_the_plural_is_stated_by_the_acronym_and_no_other():
    from rag.grounding import OverlapVerifier, Passage

    source = [Passage("T", "We evaluate the LLM on math reasoning tasks and report accuracy.")]
    assert OverlapVerifier().supports("We evaluate LLMs on math reasoning tasks [1].", source)[0]
    assert not OverlapVerifier().supports("We evaluate GANs on math reasoning tasks [1].", source)[0]


def test_a_claim_made_absolute_needs_a_source_that_says_so():
    """ "every", "all", "always", "fully" turn a finding with limits into an overclaim ("all 12" where
    the source says "most of the 12"); the same word, or one of its kind, in the source, and "not
    always", are no overclaim."""
    from rag.grounding import OverlapVerifier, Passage

    limited = [
        Passage(
            "Sparse routing for translation",
            "Sparse routing improves translation quality on most of the 12 language pairs we evaluate. "
            "Training is stable in our experiments.",
        )
    ]
    verifier = OverlapVerifier()
    claim = "Sparse routing improves translation quality on {} language pairs [1]."
    assert verifier.supports(claim.format("most of the 12"), limited)[0]
    assert not verifier.supports(claim.format("every one of the"), limited)[0]
    assert not verifier.supports(claim.format("all"), limited)[0]
    assert not verifier.supports(claim.format("all 12"), limited)[0]
    every = [Passage("Sparse routing for translation", "Sparse routing improves translation quality on all 12 pairs.")]
    assert verifier.supports(claim.format("each of the 12"), every)[0]
    assert not verifier.supports("Sparse routing always improves translation quality on language pairs [1].", limited)[
        0
    ]
    assert verifier.supports(
        "Sparse routing does not always improve translation quality on language pairs [1].",
        [Passage("Sparse routing", "Sparse routing does not always improve translation quality on language pairs.")],
    )[0]
    # the source says it in other words of the same kind
    complete = [Passage("Generic theorems", "The theorems here are completely generic and hold for any encoder.")]
    assert verifier.supports("The theorems are fully generic and hold for any encoder [1].", complete)[0]


def test_a_hedged_denial_is_stated_by_a_case_where_the_effect_fails():
    """ "does not necessarily improve" claims only that it can fail to: a source sentence on the same
    thing saying it "can, in fact, be detrimental" states that; one saying it helps does not."""
    from rag.grounding import OverlapVerifier, Passage

    verifier = OverlapVerifier()
    claim = "Encouraging models to produce valid answer choices does not necessarily improve their task accuracy [1]."
    hurts = "Encouraging models to produce valid answer choices can, in fact, be detrimental to task accuracy for some models."
    helps = "Encouraging models to produce valid answer choices improves their task accuracy on every dataset we test."
    assert verifier.supports(claim, [Passage("Answer choices", hurts)])[0]
    assert not verifier.supports(claim, [Passage("Answer choices", helps)])[0]


def test_a_claim_may_take_its_names_from_two_sentences_apart_from_its_finding():
    """The finding in one sentence, the benchmark's name in another, the routers' acronym in a third:
    each window after the best covers what the ones before still lack (one extra window did not)."""
    from dataclasses import replace

    from rag.grounding import GROUNDING, OverlapVerifier, Passage

    text = (
        "Sparse routers (SRMs) are spreading fast in deployed systems. Their failures are poorly understood. "
        "We introduce RouteBench, a diagnostic benchmark. The best model scores 41.2 on a scale of 100. "
        "In this benchmark, larger routers do not guarantee better accuracy; the training data also plays a role."
    )
    source = [Passage("A Diagnostic Benchmark for Routing Models", text)]
    claim = "On RouteBench, larger routers do not guarantee better accuracy for {} [1]."
    assert OverlapVerifier().supports(claim.format("SRMs"), source)[0]
    assert not OverlapVerifier().supports(claim.format("MoEs"), source)[0]  # a name the abstract lacks
    assert not OverlapVerifier(replace(GROUNDING, extra_windows=1)).supports(claim.format("SRMs"), source)[0]


def test_a_short_sentence_that_cites_a_source_is_checked():
    """ "It was created by Google [1]." asserts something of [1]; only an uncited filler makes no claim."""
    from rag.grounding import NO_CLAIM, SUPPORTED, UNSUPPORTED, check

    sources = {1: ("LitSearch", "LitSearch is a multilingual benchmark of 597 literature search queries.")}
    verdicts = [
        s.verdict
        for s in check(
            "LitSearch has 597 queries [1]. It was created by Google [1]. It is multilingual [1]. In short, yes.",
            sources,
        ).sentences
    ]
    assert verdicts == [SUPPORTED, UNSUPPORTED, SUPPORTED, NO_CLAIM]
