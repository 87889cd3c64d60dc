"""Deciding, before answering, whether the retrieved evidence can answer the question at all.

One similarity threshold cannot separate near-miss questions ("What does FlashAttention-3 do on
H100?") from answerable ones: the retrieved papers are on topic either way. What separates them is
whether the evidence mentions the specific thing asked about. So, in order:
  1. every specific term of the question (a number, an acronym, a named model, method or dataset)
     must appear in the retrieved abstracts, all of them in one abstract, and that abstract must
     also touch the rest of the question ("What is the context length of Gemini 1.5 Pro?" finds
     an abstract naming Gemini 1.5 Pro, but not one about its context length);
  2. a question using two or more words the corpus has never seen is off the corpus, unless the
     closest passage is fairly similar or the abstracts cover the rest of it;
  3. a question whose closest passage is dissimilar and whose words the abstracts barely cover
     is off the corpus.
Lexical coverage alone is not used: paraphrased questions ("making prompts shorter so the model
runs cheaper") share few words with the abstract that answers them. Questions on a missing topic
without any named term ("speculative decoding with draft models") are the hard remainder.
Thresholds were calibrated on eval/suites/tune.jsonl (see the README for the figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.lexical import LexicalIndex, analyse
from rag.retrieval import Mode, SearchResult
from rag.text import contains_key, key_tokens, normalise_key

MIN_TOPIC_COVERAGE = 0.2  # of the words besides the specific terms, in an abstract naming them all
UNSEEN_WORDS = 2  # rule 2: this many words the corpus never uses ...
UNSEEN_SIMILARITY = 0.5  # ... with the closest passage less similar than this
UNSEEN_COVERAGE = 0.35  # ... and the abstracts covering less than this of the question
MIN_SIMILARITY = 0.3  # rule 3: both below these
MIN_COVERAGE = 0.3

# Capitalised words inside a question (not its first word) usually name something, and a number
# right after a name is part of it ("Stable Diffusion 3", "Llama 2").
_NAMED = re.compile(r"(?<=[a-z0-9,;:] )([A-Z][a-z]+[A-Za-z0-9-]*)")
_VERSIONED = re.compile(r"\b([A-Z][A-Za-z-]*[ -]\d+(?:\.\d+)?)\b")


@dataclass(frozen=True)
class Assessment:
    answerable: bool
    reason: str
    coverage: float
    similarity: float
    rule: str = "answerable"  # which rule decided: one of RULES

    def as_json(self) -> dict:
        return {
            "answerable": self.answerable,
            "rule": self.rule,
            "reason": self.reason,
            "coverage": round(self.coverage, 3),
            "similarity": round(self.similarity, 3),
        }


RULES = (
    "answerable",
    "nothing_retrieved",
    "named_term_missing",
    "named_terms_apart",
    "rest_not_addressed",
    "unseen_words",
    "far_from_question",
    "model_abstained",
)


def specific_terms(question: str) -> list[str]:
    """Numbers, acronyms and names in the question, as typed."""
    found = re.findall(r"[A-Za-z0-9][\w.+-]*[\w+]|\d", question)
    keys = key_tokens(question)
    out = [t for t in found if t and (key_tokens(t) & keys)]
    out += [w for w in _NAMED.findall(question) if w not in out]
    out += [v for v in _VERSIONED.findall(question) if v not in out]
    # "Gemini" and "1.5" are already checked as part of "Gemini 1.5"
    return [t for t in out if not any(t != o and t.lower() in o.lower() for o in out)]


def _mentions(text: str, term: str) -> bool:
    keys = key_tokens(term) or {normalise_key(term)}
    return all(contains_key(text, k) or (k.endswith("s") and contains_key(text, k[:-1])) for k in keys)


def coverage(question: str, text: str, lexical: LexicalIndex) -> float:
    """Share of the question's IDF-weighted content words that occur in `text`."""
    q_terms = analyse(question)
    present = set(analyse(text))
    total = sum(lexical.idf(t) for t in q_terms)
    return sum(lexical.idf(t) for t in q_terms if t in present) / total if total else 0.0


def assess(question: str, evidence: list[str], similarity: float, lexical: LexicalIndex) -> Assessment:
    """`evidence`: the retrieved papers' title + abstract texts, best first."""
    everything = " ".join(evidence)
    cover = max((coverage(question, text, lexical) for text in evidence), default=0.0)

    def verdict(ok: bool, reason: str, rule: str = "answerable") -> Assessment:
        return Assessment(ok, reason, cover, similarity, rule)

    if not evidence:
        return verdict(False, "nothing was retrieved", "nothing_retrieved")
    named = specific_terms(question)
    missing = [t for t in named if not _mentions(everything, t)]
    if missing:
        return verdict(False, f"no retrieved abstract mentions {', '.join(missing)}", "named_term_missing")
    if named:
        holders = [text for text in evidence if all(_mentions(text, t) for t in named)]
        if not holders:
            return verdict(False, f"no retrieved abstract mentions {' and '.join(named)} together", "named_terms_apart")
        rest = question
        for term in named:
            rest = rest.replace(term, " ")
        if analyse(rest):
            topic = max(coverage(rest, text, lexical) for text in holders)
            if topic < MIN_TOPIC_COVERAGE:
                return verdict(
                    False,
                    f"the abstracts naming {', '.join(named)} do not address the rest of the question",
                    "rest_not_addressed",
                )
    unseen = sorted({t for t in analyse(question) if len(t) > 3 and not lexical.knows(t)})
    if len(unseen) >= UNSEEN_WORDS and similarity < UNSEEN_SIMILARITY and cover < UNSEEN_COVERAGE:
        return verdict(False, f"the corpus never uses the words {', '.join(unseen)}", "unseen_words")
    if similarity < MIN_SIMILARITY and cover < MIN_COVERAGE:
        return verdict(
            False, f"nothing retrieved is close to the question (similarity {similarity:.2f})", "far_from_question"
        )
    return verdict(True, "the evidence mentions what the question asks about")


# A search's best match is called weak (a note on stderr, not a refusal) when its hybrid score is
# low, or middling while the passage holds little of the query's IDF-weighted words. Chosen on
# eval/suites/tune.jsonl: 10% of answerable questions score below 0.30 and half of the
# unanswerable ones do; middling scores with low coverage are on-topic-sounding misses.
WEAK_SCORE = 0.30
MIDDLING_SCORE = 0.40
WEAK_COVERAGE = 0.25


def weak_match(result: SearchResult, lexical: LexicalIndex, mode: Mode = "hybrid") -> str | None:
    """Why the best hybrid match is weak, or None when it is not (or scores are not hybrid)."""
    if mode != "hybrid" or not result.results:
        return None
    best = result.results[0]
    covered = coverage(result.query, f"{best.title}. {best.evidence}", lexical)
    if best.score < WEAK_SCORE or (best.score < MIDDLING_SCORE and covered < WEAK_COVERAGE):
        return (
            f"the best match is weak (score {best.score:.2f}, {covered:.0%} of the query's words); "
            "the corpus may not cover this"
        )
    return None
