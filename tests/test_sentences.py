"""Sentences and citations (rag/sentences.py)."""

from __future__ import annotations

from rag.sentences import citations_of, negation_scopes, normalise_citations, split_sentences, strip_citations


def test_sentences_end_at_stops_before_a_capital_not_at_abbreviations():
    text = "We compare BERT vs. RoBERTa, e.g. on GLUE. Results improve by 2.5 points! Why? 3 runs."
    assert split_sentences(text) == [
        "We compare BERT vs. RoBERTa, e.g. on GLUE.",
        "Results improve by 2.5 points!",
        "Why?",
        "3 runs.",
    ]


def test_a_citation_after_the_stop_stays_with_its_sentence():
    assert split_sentences("FP8 wins [1]. INT8 loses. [2, 3] Both are fast.") == [
        "FP8 wins [1].",
        "INT8 loses. [2, 3]",
        "Both are fast.",
    ]


def test_cjk_full_stops_end_sentences_without_a_space_after_them():
    text = "我们提出了一种新方法。它快两倍。[2] We then test it."
    assert split_sentences(text) == ["我们提出了一种新方法。", "它快两倍。[2]", "We then test it."]


def test_list_items_and_lines_are_sentences_of_their_own():
    text = "Papers:\n- *Is it good? A study* — It is. [1]\n\n2. Second item. Still it."
    assert split_sentences(text) == ["Papers:", "- *Is it good? A study* — It is. [1]", "2. Second item. Still it."]


def test_citations_in_order_of_first_mention_without_repeats():
    assert citations_of("A [2] and B [1, 3; 2]. C [10]") == [2, 1, 3, 10]
    assert citations_of("no citations, [a] or [] here") == []


def test_citation_forms_models_write_become_plain_citations():
    assert normalise_citations("A [1-3]. B [2–3]. C [ 1 ]. D [Source 2]. E [sources 1 and 2].") == (
        "A [1, 2, 3]. B [2, 3]. C [1]. D [2]. E [1, 2]."
    )
    assert normalise_citations("F [-1].") == "F [0]."  # names no source: checked as a bad citation
    # other scripts' brackets and Markdown's footnote mark
    assert normalise_citations("J 【1】. K 【1，2】 and ［3］. L[^2].") == "J [1]. K [1, 2] and [3]. L[2]."
    assert normalise_citations("M 【a】.") == "M 【a】."
    # left as written: citations already plain, year ranges, intervals, reversed ranges
    for text in ("G [1,2] [3; 4] [5]", "in [2019-2023]", "values in [-1, 1]", "H [3-1]", "I [1a]"):
        assert normalise_citations(text) == text


def test_stripping_citations_and_bold():
    assert strip_citations("**FP8** beats INT8 [1][2, 3].") == "FP8 beats INT8 ."


def negated(text: str) -> bool:
    return bool(negation_scopes(text))


def test_negation():
    assert negated("The method does not improve recall.")
    assert negated("It fails without labels.")
    assert negated("It won't.")
    assert not negated("The method improves recall.")


def test_a_nil_price_is_not_a_negation():
    """'at no cost', 'without additional training', 'no loss of accuracy' affirm a finding."""
    assert not negated("It samples 10x faster at almost no cost in sample quality.")
    assert not negated("The model adapts without additional training.")
    assert not negated("Quantization to FP8 gives no loss of accuracy.")
    assert not negated("Pruning halves latency with negligible degradation.")
    assert not negated("It improves perplexity without increasing the model size.")
    assert not negated("Distillation halves the steps without sacrificing sample quality.")
    assert negated("Without retrieval the model cannot answer.")
    assert negated("It samples faster but does not keep sample quality.")


def test_a_negation_governs_the_words_up_to_the_end_of_its_clause():
    assert negation_scopes("It does not improve recall, but it is faster.") == [["improve", "recall"]]
    assert negation_scopes("Gains hold without obvious saturation.") == [["obvious", "saturation"]]
    assert negation_scopes("It adds no overheads and scales.") == []
    assert negation_scopes("It is not only faster but also more accurate.") == []  # additive, no denial
    assert negation_scopes("It is not faster, only cheaper.") == [["faster"]]
    assert negated("There is no improvement without labels.")
