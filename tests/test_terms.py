"""Terms of a text (rag/terms.py): analysis, key tokens, whole-token matching, specific terms, acronyms."""

from __future__ import annotations

from rag.terms import (
    acronyms,
    analyse,
    contains_key,
    key_tokens,
    normalise_key,
    quantities,
    specific_terms,
    states_quantity,
    terms,
)


def test_analysis_drops_stop_and_question_words_and_stems():
    assert analyse("Which papers are comparing the retrievers?") == ["paper", "compar", "retriev"]
    assert analyse("retrieval retrieval") == ["retriev", "retriev"]  # repeats kept, BM25 weighs them
    assert terms("How does it do?") == set()


def test_key_tokens_are_numbers_acronyms_and_named_methods():
    assert key_tokens("LitSearch has 597 queries written by GPT-4 [1].") == {"litsearch", "597", "gpt4"}
    assert key_tokens("a GPT-4-generated set, BERT-based models") == {"gpt4", "bert"}
    assert key_tokens("over 500,000 evaluations") == {"500000"}
    assert key_tokens("(1) first, 2 second, and the model") == set()  # single digits mark lists
    assert key_tokens("Llama-2 reaches 92.64%") == {"llama2", "92.64%"}


def test_normalised_keys_ignore_case_hyphens_and_spaces():
    assert normalise_key("Llama-2") == normalise_key("llama 2") == normalise_key("LLaMA2") == "llama2"
    assert normalise_key("500,000.") == "500000"


def test_a_key_matches_only_as_a_whole_token():
    assert contains_key("We release Llama 2 and its chat models.", "llama2")
    assert contains_key("a 1.5x speed-up", "1.5")
    assert contains_key("several LLMs", "llm")  # a plural follows
    assert not contains_key("We fine-tune RoBERTa.", "bert")
    assert not contains_key("mT5 and ByT5", "t5")
    assert not contains_key("in 12 languages, 1.2 points", "2")
    assert not contains_key("anything", "")


def test_specific_terms_keep_names_as_typed_and_drop_their_parts():
    assert specific_terms("What is the context length of Gemini 1.5 Pro?") == ["Pro", "Gemini 1.5"]
    assert specific_terms("How many GPT-4-generated queries are in LitSearch?") == ["GPT-4-generated", "LitSearch"]
    assert specific_terms("how do diffusion models generate audio?") == []
    assert specific_terms("Is LitSearch large? How large is LitSearch? " * 3) == ["LitSearch"]  # once
    # a name with a modifier names the thing: "trained on the Pile" states it
    assert specific_terms("how far is it from a Pile-trained LM?") == ["LM", "Pile"]
    # the caller's key tokens are used when given
    assert specific_terms("Does FP8 beat INT8?", {"fp8"}) == ["FP8"]
    # a metric's cutoff is a kind of measurement, not a name; the model or dataset beside it is one
    assert specific_terms("When a pruned classifier keeps its top-1 accuracy, what gets hurt?") == []
    assert specific_terms("What top-5 error does DenseNet-264 reach?") == ["DenseNet-264"]


def test_acronyms_map_to_the_words_they_stand_for():
    text = "We study Retrieval-Augmented Generation (RAG) and Large Language Models (LLMs). RAG helps."
    assert acronyms(text) == {"RAG": "Retrieval Augmented Generation", "LLMs": "Large Language Models"}
    assert acronyms("no definitions here (none)") == {}


def test_quantities_are_counts_and_factors_in_words_or_lone_digits():
    assert quantities("capacity doubles every six months") == {"#6", "x2"}
    assert quantities("with an eighth of the compute, in 2 steps") == {"x8", "#2"}
    # list numbers, parts of names and numbers with a decimal or a thousands separator are not counts
    assert quantities("(2) we train GPT-4 in int8 at 3.0 FID on 4,425 questions") == set()
    assert quantities("1. A two-stage method") == set()


def test_a_quantity_is_found_in_words_digits_or_as_a_factor():
    assert states_quantity("doubles approximately every three months", "#3")
    assert states_quantity("as few as 4 steps", "#4")
    assert not states_quantity("as few as 4 steps", "#2")
    assert not states_quantity("12 layers and 1.2 points", "#2")  # 2 is not in 12 or 1.2
    assert states_quantity("trains 3x faster", "#3")
    assert states_quantity("speeds up pre-training by sim3x", "#3")  # LaTeX's $\sim$3x
    for text in ("twice as fast", "2x faster", "halving the steps", "50% fewer", "two times"):
        assert states_quantity(text, "x2"), text
    assert states_quantity("using 4 times less compute", "x4")
    assert not states_quantity("using 4 times less compute", "x8")
    assert not states_quantity("Google Search lags by 30% in recall@5", "#5")  # a metric's name counts nothing


def test_numbers_written_another_way_are_the_same_key():
    assert key_tokens("indexing 138 million passages with a 1.4-trillion-token datastore") == {"138m", "1.4t"}
    assert contains_key("Splade embeddings of 138M passages", "138m")
    assert contains_key("a datastore of 1.4 trillion tokens", "1.4t")
    assert contains_key("achieving 85.0% accuracy", "85%") and not contains_key("achieving 85.5% accuracy", "85%")
    assert contains_key("with only a half of the training data", "50%")
    assert not contains_key("with only a third of the training data", "50%")
    assert contains_key("runs up to 1.86times faster", "1.86")
    assert contains_key("4,425 questions", "4425") and not contains_key("4,426 questions", "4425")
    assert not contains_key("a 7B model", "7") and not contains_key("12 models", "12m")
    assert key_tokens("DenseNet-based students") == {"densenet"}  # the modifier is no part of the name
    # a size, with a LaTeX \times flattened to text
    for size in ("ImageNet 256x256", "ImageNet 256×256", "ImageNet 256 times 256", "ImageNet 256times256"):
        assert contains_key(size, "256x256"), size
    assert not contains_key("ImageNet 256 x 512", "256x256") and not contains_key("a 256-times larger model", "256x256")


def test_a_hedged_quantity_is_stated_by_a_close_number_on_its_side():
    from rag.terms import hedged_quantities, states_approximately

    (third,) = hedged_quantities("cuts cloud cost by about two thirds [1].")
    assert third.percent and round(third.value, 1) == 66.7 and third.keys() == {"#2"}
    assert states_approximately("reduces the cloud cost by 66%", third)
    assert not states_approximately("reduces the cloud cost by 50%", third)
    assert not states_approximately("reduces the cloud cost by 66 points", third)  # no percentage
    (nearly,) = hedged_quantities("nearly three quarters of the variance")
    assert states_approximately("by 72% on average", nearly) and not states_approximately("by 78%", nearly)
    (over,) = hedged_quantities("an improvement of more than 20%")
    assert states_approximately("improves by 21.5%", over) and not states_approximately("improves by 19%", over)
    (twice,) = hedged_quantities("ran nearly twice as fast")
    assert states_approximately("up to 1.86 times faster", twice) and not states_approximately("1.5 times", twice)
    assert hedged_quantities("it beats the baseline by 20%") == []  # unhedged: the number is exact
    (halves,) = hedged_quantities("as good as one trained with nearly one and a half times as many steps")
    assert halves.factor and halves.value == 1.5
    assert states_approximately("comparable to the one trained for 48% more steps", halves)
    assert not states_approximately("trained for 60% more steps", halves)  # 1.6: over "nearly"
    assert not states_approximately("trained for 48% fewer steps", halves)
    (roughly,) = hedged_quantities("roughly 3 times faster")
    assert states_approximately("is 190% faster", roughly) and not states_approximately("is 150% faster", roughly)
    # a change "from A to B" states its difference too
    (gain,) = hedged_quantities("improved the best reported PSNR by almost 5 dB")
    assert states_approximately("boosting the best PSNR from 28.53 dB to 33.49 dB", gain)
    assert not states_approximately("boosting the best PSNR from 28.53 dB to 34.49 dB", gain)  # 5.96: over "almost"
    assert not states_approximately("from 28.53 dB to 33.49%", gain)  # not one unit


def test_a_share_is_stated_by_its_remainder():
    from rag.terms import key_tokens, quantities, remainder_keys, states_remainder

    claim = "Pruning keeps accuracy while using only 60% of the data and training 42% faster."
    assert remainder_keys(claim, key_tokens(claim)) == {"60%": "60%", "42%": "42%"}
    assert states_remainder("using 40% lesser data and training 42% faster", "60%")
    assert states_remainder("even when we reject 40% of the dataset", "60%")
    assert not states_remainder("using 30% lesser data", "60%") and not states_remainder("40% more data", "60%")
    assert remainder_keys("it uses 60% less data", {"60%"}) == {}  # a removed share states no remainder
    # a share in words: "only a tenth of the corpus is kept" is stated by "we reject 90% of it"
    kept = "Models still win when only a tenth of the original corpus is kept."
    assert remainder_keys(kept, quantities(kept)) == {"x10": "10%"}
    assert states_remainder("even when we reject 90% of the original dataset", "10%")
    assert remainder_keys("a tenfold speed-up", {"x10"}) == {}  # a factor, not a share


def test_more_than_rounds_down_to_a_round_number_and_a_change_may_be_derived():
    from rag.terms import hedged_quantities, states_approximately

    (over,) = hedged_quantities("an improvement of more than 20%")
    assert states_approximately("improves by 26%", over)  # 20 is the round number below it
    assert not states_approximately("improves by 31%", over)  # a writer would say "more than 30%"
    # a relative change the source states as a move from one value to another
    assert states_approximately("lowers the FID from 1.81 to 1.40", over)  # 22.7% lower
    assert not states_approximately("lowers the FID from 1.81 to 1.70", over)  # 6%
    assert not states_approximately("accuracy goes from 40% to 51.5", over)  # a percentage and a value
    (about,) = hedged_quantities("about 25% faster")
    assert not states_approximately("improves by 31%", about)  # "about" keeps the close tolerance
    (fourfold,) = hedged_quantities("roughly 4 times less memory")
    assert states_approximately("memory falls from 80 GB to 19.5 GB", fourfold)
    assert not states_approximately("memory falls from 80 GB to 40 GB", fourfold)


def test_an_acronym_is_spelled_out_by_content_words_with_its_initials_in_order():
    from rag.terms import spells_out

    assert spells_out("trained with maximum likelihood estimation, which", "MLE")
    assert spells_out("a sparse mixture-of-experts model", "MoE")  # "of" may give a letter
    assert not spells_out("demonstrating the effect of", "DTE")  # chance initials across "the"
    assert not spells_out("the current and past values", "CAP")
    assert not spells_out("maximum likelihood. Estimation", "MLE")  # not across a sentence
    assert not spells_out("reinforcement learning", "RL")  # two letters: too often by chance


def test_a_question_acronym_is_mentioned_by_the_words_it_stands_for():
    from rag.terms import mentions

    assert mentions("Models are trained by maximum likelihood estimation.", "MLE")
    assert mentions("A sparse Mixture-of-Experts layer.", "MoE")
    assert not mentions("Models are trained by maximum likelihood.", "MLE")
    assert not mentions("Models are trained by maximum likelihood estimation.", "Mle")  # not written as an acronym


def test_a_two_letter_abbreviation_of_the_field_is_mentioned_by_its_words():
    """ "how do I train an MoE LM ..." abstained: no abstract writes "LM", they write "language models"."""
    from rag.terms import mentions

    assert mentions("We train mixture-of-experts language models densely.", "LM")
    assert mentions("Code LLMs struggle with infilling.", "LMs")
    assert mentions("Policies trained with reinforcement-learning.", "RL")
    assert mentions("We use RL.", "RL")
    assert not mentions("We fit a linear model.", "LM")  # its initials by chance
    assert not mentions("We study reinforcement.", "RL")
    # "code LLMs" asks about code language models, however large their abstract calls them
    assert mentions("Fill-in-the-middle is integral to code language models.", "LLMs")
    assert not mentions("We fit a linear model to the data.", "LLMs")


def test_a_subscript_flattened_to_an_underscore_is_the_same_name():
    """LaTeX's "RoBERTa$_{Large}$" reaches the corpus as "RoBERTa_Large": a claim's "RoBERTa-Large" states it."""
    from rag.terms import contains_key, key_tokens, mentions

    assert key_tokens("on RoBERTa_Large") == key_tokens("on RoBERTa-Large") == {"robertalarge"}
    assert contains_key("reduce density by 50.72% on RoBERTa_Large and Flan-T5_XXL", "robertalarge")
    assert mentions("results on Flan-T5_XXL (11B)", "Flan-T5-XXL")
    assert not contains_key("reduce density on RoBERTa_Base", "robertalarge")


def test_a_name_written_without_its_accents_is_the_same_name():
    from rag.terms import contains_key, mentions, normalise_key

    assert mentions("We show that Über-models reach 88% on BibBench.", "Uber")
    assert mentions("The Uber model.", "Über") and normalise_key("Über") == "uber"
    assert contains_key("Résumé parsing with BÉRT", normalise_key("BERT"))
    assert not mentions("We show that Über-models reach 88%.", "Ubers-x")


def test_words_in_capitals_for_emphasis_are_not_acronyms():
    assert key_tokens("Which paper does NOT use GPT-4, ONLY BERT?") == {"gpt4", "bert"}
    assert specific_terms("Is there work on US elections, NOT on EU ones?") == ["US", "EU"]
