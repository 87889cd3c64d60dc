"""Deciding, before answering, whether the retrieved evidence can answer the question at all.

One similarity threshold cannot separate near-miss questions ("What does FlashAttention-3 do on
H100?") from answerable ones: the retrieved papers are on topic either way. What separates them is
whether the evidence mentions the specific thing asked about. So, in order:
  1. every specific term of the question (a number, an acronym, a named model, method or dataset)
     must appear in the retrieved abstracts, all of them in one abstract, and that abstract must
     also touch the rest of the question ("What is the context length of Gemini 1.5 Pro?" finds
     an abstract naming Gemini 1.5 Pro, but not one about its context length);
  2. a question with two or more content words the corpus has never seen, and middling coverage
     otherwise, is off the corpus;
  3. the best abstract must cover enough of the question's IDF-weighted content words;
  4. the best dense similarity must clear a floor.
Thresholds were calibrated on eval/suites/dev.jsonl (see the README for the figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.lexical import LexicalIndex, analyse
from rag.text import contains_key, key_tokens, normalise_key

MIN_COVERAGE = 0.33
MIN_TOPIC_COVERAGE = 0.2  # of the words besides the specific terms, in an abstract naming them all
MIN_SIMILARITY = 0.22
MAX_UNSEEN_TERMS = 1
UNSEEN_COVERAGE = 0.6  # ... unless the rest of the question is well covered

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

    def as_json(self) -> dict:
        return {
            "answerable": self.answerable,
            "reason": self.reason,
            "coverage": round(self.coverage, 3),
            "similarity": round(self.similarity, 3),
        }


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

    def verdict(ok: bool, reason: str) -> Assessment:
        return Assessment(ok, reason, cover, similarity)

    if not evidence:
        return verdict(False, "nothing was retrieved")
    named = specific_terms(question)
    missing = [t for t in named if not _mentions(everything, t)]
    if missing:
        return verdict(False, f"no retrieved abstract mentions {', '.join(missing)}")
    if named:
        holders = [text for text in evidence if all(_mentions(text, t) for t in named)]
        if not holders:
            return verdict(False, f"no retrieved abstract mentions {' and '.join(named)} together")
        rest = question
        for term in named:
            rest = rest.replace(term, " ")
        if analyse(rest):
            topic = max(coverage(rest, text, lexical) for text in holders)
            if topic < MIN_TOPIC_COVERAGE:
                return verdict(
                    False, f"the abstracts naming {', '.join(named)} do not address the rest of the question"
                )
    unseen = sorted({t for t in analyse(question) if len(t) > 3 and not lexical.knows(t)})
    if len(unseen) > MAX_UNSEEN_TERMS and cover < UNSEEN_COVERAGE:
        return verdict(False, f"the corpus never uses the words {', '.join(unseen)}")
    if cover < MIN_COVERAGE:
        return verdict(False, f"the closest abstracts cover only {cover:.0%} of the question's terms")
    if similarity < MIN_SIMILARITY:
        return verdict(False, f"the closest passage is only {similarity:.2f} similar to the question")
    return verdict(True, "the evidence mentions what the question asks about")
