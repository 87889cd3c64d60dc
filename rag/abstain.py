"""Deciding, before answering, whether the retrieved evidence can answer the question at all.

The retrieved papers are on topic either way: a near-miss question ("What does FlashAttention-3
do on H100?", "How do diffusion models generate audio?") finds neighbours full of its general
words. What separates an answerable question is evidence about its focus. So, in order:
  1. every specific term of the question (a number, an acronym, a named model, method or dataset)
     must appear in the retrieved abstracts, all of them (or of each part of a question of
     several) in one abstract, and that abstract must
     also touch the rest of the question ("What is the context length of Gemini 1.5 Pro?" finds
     an abstract naming Gemini 1.5 Pro, but not one about its context length);
  2. a question using two or more words the corpus never uses, barely covered by the evidence,
     is about something else;
  3. a small logistic model (`features`, weights in rag/data/abstention.json, fitted by
     eval/fit_abstention.py on the tune suite and its counterfactual questions, whose gold papers
     are hidden from retrieval) must find the evidence addresses the question's focus: its best
     single sentence, its rarest words, and whether one paper stands out from its neighbours.
Lexical coverage of the whole question is not a criterion: paraphrased questions ("making prompts
shorter so the model runs cheaper") share few words with the abstract that answers them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.lexical import LexicalIndex
from rag.question import Question, joined_names
from rag.retrieval import SearchResult
from rag.retrievers import Mode
from rag.sentences import split_sentences
from rag.terms import analyse, mentions

if TYPE_CHECKING:
    from rag.embedders import Embedder


@dataclass(frozen=True)
class Tuning:
    """The rules' thresholds and what the answerability model reads. None was fitted: each was
    hand-set on the development suite (eval/suites/dev.jsonl, since grown into tune.jsonl) and kept
    when the model (weights in rag/data/abstention.json, fitted by eval/fit_abstention.py) came."""

    # An abstract naming every specific term must hold this share of the question's other words
    # (hand-set on the dev suite with the rule, commit "all named terms in one abstract").
    min_topic_coverage: float = 0.2
    # A question using this many words the corpus never uses, and whose words the evidence covers
    # less than `unseen_coverage`, is about something else (hand-set on the dev suite).
    unseen_words: int = 2
    unseen_coverage: float = 0.35
    # The model reads the top five papers, whatever k the answer draws on, and takes the question's
    # three rarest words as its focus: hand-set on the tune suite when the model was designed; its
    # weights were fitted with these values, so changing them means refitting.
    evidence_papers: int = 5
    rare_words: int = 3


TUNING = Tuning()
MODEL_PATH = Path(__file__).resolve().parent / "data" / "abstention.json"


@dataclass(frozen=True)
class Assessment:
    answerable: bool
    reason: str
    coverage: float
    similarity: float
    rule: str = "answerable"  # which rule decided: one of RULES
    confidence: float | None = None  # the model's probability that the evidence answers

    def as_json(self) -> dict:
        return {
            "answerable": self.answerable,
            "rule": self.rule,
            "reason": self.reason,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
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
    "model",
    "model_abstained",
    "number_not_stated",  # decided after retrieval by the extractive answerer (rag/extractive.py)
    "parts_not_stated",  # likewise: a question of several parts, none of them answered
    "authors_asked",
    "absence_asked",
    "no_topic",
)

# Who wrote a paper: abstracts do not say, and a sentence using the word "authors" does not answer it.
_ASKS_AUTHORS = re.compile(
    r"\bwho (?:are|were|is|was) (?:the|its|their) (?:authors?|researchers?)\b|\bwho (?:wrote|authored|co-?authored)\b"
    r"|\b(?:which|what) (?:authors?|researchers|institutions?|universit(?:y|ies)|labs?|affiliations?|companies|company)"
    r" (?:wrote|authored|published|developed|released|are behind|is behind)\b",
    re.I,
)

# Papers picked by what they lack ("which paper does not use GPT-4", "papers that never evaluate on
# MMLU"): retrieval finds the papers that name a term, never the ones that leave it out, so an answer
# would list exactly the papers asked to be excluded. Only with a name after the negation: "methods
# that don't need retraining" asks for a property an abstract states ("without retraining").
_ASKS_ABSENCE = re.compile(
    r"\b(?:papers?|works?|studies|study|articles?|abstracts?)\s+(?:(?:that|which|here)\s+)?"
    r"(?:(?:do|does|did|have|has|had)\s*(?:n['’]t|\s+not)|never|not)\b(?!\s+(?:only|just)\b)(?P<rest>.*)",
    re.I | re.S,
)


def absence_asked(question: Question) -> list[str]:
    """The names a question asks papers to lack, or none when it does not ask that."""
    match = _ASKS_ABSENCE.search(question.text)
    return [t for t in question.specific if t in match.group("rest")] if match else []


_GENERIC = frozenset(analyse("paper papers work works study studies"))  # how questions name papers

# Words that ask about the corpus or rank its papers, not about a topic: "which paper is the most
# cited?", "what's new?", "summarise the corpus" name nothing an abstract could address (and
# abstracts hold no citation counts or ranking), yet always retrieve something to quote.
_NO_TOPIC = _GENERIC | frozenset(
    analyse(
        "article abstract corpus collection best worst most least new newest latest recent old oldest first "
        "cite cited citations popular famous important influential interesting good great cool top "
        "summarise summarize summary overview list show tell give all every any thing something anything "
        "everything me please about one ones s"
    )
)


# How a question frames what it asks ("which papers report ...", "does any work describe ..."): a
# user's own corpus may never use these words, which says nothing about its topics. Usage, not fitted.
_FRAMING = _GENERIC | frozenset(
    analyse(
        "report reports reported describe describes propose proposes present presents mention mentions discuss "
        "find finds found"
    )
)


def coverage(question: str | Sequence[str], text: str, lexical: LexicalIndex) -> float:
    """Share of the question's IDF-weighted content words (`question` as text, or its analysed
    terms) that occur in `text`."""
    q_terms = [t for t in (analyse(question) if isinstance(question, str) else question) if t not in _GENERIC]
    present = set(analyse(text))
    total = sum(lexical.idf(t) for t in q_terms)
    return sum(lexical.idf(t) for t in q_terms if t in present) / total if total else 0.0


@dataclass(frozen=True)
class Evidence:
    """What retrieval found for a question, as the answerability model reads it."""

    texts: list[str]  # "title. abstract" of the retrieved papers, best first
    scores: list[float]  # their hybrid retrieval scores
    paper_similarities: tuple[float, ...]  # per paper, the best cosine of the question with a sentence or title
    titles: tuple[str, ...] = ()  # the papers' titles, when the caller has them apart

    @property
    def sentence_similarity(self) -> float:
        """The best cosine of the question with any sentence or title of the papers."""
        return max(self.paper_similarities, default=0.0)

    @property
    def sentence_lead(self) -> float:
        """How far the first paper's best sentence stands above every other paper's best."""
        sims = self.paper_similarities
        return sims[0] - max(sims[1:], default=0.0) if sims else 0.0


def gather_evidence(
    question: Question, texts: list[str], scores: list[float], embedder: Embedder, titles: Sequence[str] = ()
) -> Evidence:
    """Compare the question with every sentence of the top papers: MiniLM is a sentence model, and
    a sentence that answers shows up sharper than the chunk it sits in."""
    per_paper = [split_sentences(text) for text in texts[: TUNING.evidence_papers]]
    sentences = [s for paper in per_paper for s in paper]
    if not sentences:
        return Evidence(texts, scores, (), tuple(titles))
    cosines = embedder.embed_cached(sentences) @ question.vector
    best, start = [], 0
    for paper in per_paper:
        best.append(float(cosines[start : start + len(paper)].max()) if paper else 0.0)
        start += len(paper)
    return Evidence(texts, scores, tuple(best), tuple(titles))


def rarest(words: Sequence[str], lexical: LexicalIndex, n: int = TUNING.rare_words) -> list[str]:
    """The `n` rarest of `words` (analysed terms) in the corpus, by IDF: a question's focus, where
    its general words (diffusion, LLM, retrieval) fill the corpus. Ties are broken by the word
    itself, so the same words are chosen in every process."""
    return sorted(set(words), key=lambda t: (-lexical.idf(t), t))[:n]


def focus_words(question: Question, lexical: LexicalIndex) -> list[str]:
    """The rarer half of the question's words (at least three), less those that only name papers
    ("which papers ..."): an answer to the question names one of them (strict mode's repair,
    rag/repair.py). Half, not a fixed few: a question's rarest words are as often its own verbs
    ("check", "too") as the thing it asks about."""
    words = {t for t in question.terms if t not in _GENERIC}
    return rarest(list(words), lexical, max(3, (len(words) + 1) // 2))


def features(question: str | Question, evidence: Evidence, lexical: LexicalIndex) -> dict[str, float]:
    """The answerability model's inputs, each about the question's focus rather than its topic:
    * sentence_similarity: how close the best single sentence comes to the question;
    * rare_coverage: the share (IDF-weighted) of the question's rarest words that one abstract
      holds: the general words (diffusion, LLM, retrieval) fill the corpus, the rare ones do not;
    * lead: how far the best paper's score stands above the fifth one's: a paper that answers
      stands out, while a question on a missing topic finds a flat cluster of neighbours;
    * sentence_lead: the same at the sentence level: how far the first paper's best sentence
      stands above the best sentence of every other paper (with the answering paper hidden, its
      on-topic neighbours come close to one another)."""
    question = Question.of(question)
    top = evidence.texts[: TUNING.evidence_papers]
    scores = evidence.scores[: TUNING.evidence_papers]
    words = rarest(question.terms, lexical)
    rare = analyse(" ".join(words))  # the stems analysed once more, as the model was fitted
    return {
        "sentence_similarity": evidence.sentence_similarity,
        "rare_coverage": max((coverage(rare, text, lexical) for text in top), default=0.0),
        "lead": scores[0] - scores[-1] if scores else 0.0,
        "sentence_lead": evidence.sentence_lead,
    }


@dataclass(frozen=True)
class AnswerabilityModel:
    """Logistic regression over `features`, fitted by eval/fit_abstention.py on the tune suite
    and its counterfactual questions; weights and thresholds live in rag/data/abstention.json."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # below it, an extractive answer abstains
    threshold_llm: float  # with an LLM, only clear misses are stopped; the model decides the rest

    def probability(self, values: dict[str, float]) -> float:
        z = self.bias + sum(w * values[n] for n, w in zip(self.names, self.weights))
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> AnswerabilityModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            tuple(data["features"]),
            tuple(data["weights"]),
            data["bias"],
            data["threshold"],
            data["threshold_llm"],
        )


@lru_cache(maxsize=1)
def default_model() -> AnswerabilityModel:
    return AnswerabilityModel.load()


def as_typed(text: str, stems: Sequence[str]) -> list[str]:
    """`stems` (analysed terms) as `text` writes them: a reason names "swallows", not "swallow"."""
    written: dict[str, str] = {}
    for word in re.findall(r"[\w'-]+", text):
        for stem in analyse(word):
            written.setdefault(stem, word)
    return [written.get(stem, stem) for stem in stems]


def _listing(terms: Sequence[str], sep: str, most: int = 6) -> str:
    """At most `most` terms for a one-line reason, and how many more there are."""
    return sep.join(terms[:most]) + (f" and {len(terms) - most} more" if len(terms) > most else "")


def _each_apart(text: str, group: list[str], evidence: Evidence) -> bool:
    """Whether the question joins names of papers ("LitSearch and Mr. TyDi", "AlphaQ vs BetaQ"), each
    in the title of a retrieved paper whose abstract holds the group's other names: "what accuracy do
    AlphaQ and BetaQ reach on CommonBench?" asks about two papers, not one naming both. Names that are
    no paper's title ("FP8 vs INT8") must still meet in one abstract."""
    joined = joined_names(text, group)
    if len(joined) < 2:
        return False
    rest = [t for t in group if t not in joined]
    papers = list(zip(evidence.titles, evidence.texts))
    return all(any(mentions(title, t) and all(mentions(doc, n) for n in rest) for title, doc in papers) for t in joined)


def assess(
    question: str | Question,
    evidence: Evidence,
    lexical: LexicalIndex,
    with_llm: bool = False,
    model: AnswerabilityModel | None = None,
) -> Assessment:
    """Rules on named terms first (deterministic, and they say what is missing), then the model."""
    question = Question.of(question)
    texts = evidence.texts
    everything = " ".join(texts)
    cover = max((coverage(question.terms, text, lexical) for text in texts), default=0.0)
    similarity = evidence.sentence_similarity

    def verdict(ok: bool, reason: str, rule: str = "answerable", confidence: float | None = None) -> Assessment:
        return Assessment(ok, reason, cover, similarity, rule, confidence)

    if not texts:
        return verdict(False, "nothing was retrieved", "nothing_retrieved")
    if _ASKS_AUTHORS.search(question.text):
        return verdict(False, "abstracts do not say who wrote a paper", "authors_asked")
    if question.terms and all(t in _NO_TOPIC for t in question.terms) and not question.specific:
        return verdict(
            False,
            "the question names no topic an abstract could address; ask about a method, task or finding",
            "no_topic",
        )
    if lacked := absence_asked(question):
        return verdict(
            False,
            f"abstracts say what a paper does, not what it leaves out: ask which papers mention {_listing(lacked, ', ')}",
            "absence_asked",
        )
    named = question.specific
    missing = [t for t in named if not mentions(everything, t)]
    if missing:
        return verdict(False, f"no retrieved abstract mentions {_listing(missing, ', ')}", "named_term_missing")
    # the names of one part of a question must stand in one abstract; two parts may ask about two
    # papers ("How many queries does LitSearch contain? How large is Mr. TyDi?")
    groups = [[t for t in named if t in part] for part in question.parts] if len(question.parts) > 1 else [list(named)]
    groups = [g for g in groups if g] or [list(named)]
    for group in groups if named else []:
        if not any(all(mentions(text, t) for t in group) for text in texts) and not _each_apart(
            question.text, group, evidence
        ):
            return verdict(
                False, f"no retrieved abstract mentions {_listing(group, ' and ')} together", "named_terms_apart"
            )
    if named:
        holders = [text for text in texts if any(all(mentions(text, t) for t in g) for g in groups)] or [
            text
            for text in texts
            if any(mentions(text, t) for t in named)  # names asked of papers apart
        ]
        rest = question.text
        for term in named:
            rest = rest.replace(term, " ")
        if rest_terms := [t for t in analyse(rest) if t not in _FRAMING]:
            topic = max(coverage(rest_terms, text, lexical) for text in holders)
            if topic < TUNING.min_topic_coverage:
                return verdict(
                    False,
                    f"the abstracts naming {', '.join(named)} do not address the rest of the question",
                    "rest_not_addressed",
                )
    unseen = sorted({t for t in question.terms if len(t) > 3 and t not in _FRAMING and not lexical.knows(t)})
    if len(unseen) >= TUNING.unseen_words and cover < TUNING.unseen_coverage:
        return verdict(
            False, f"the corpus never uses the words {', '.join(as_typed(question.text, unseen))}", "unseen_words"
        )
    model = model or default_model()
    confidence = model.probability(features(question, evidence, lexical))
    threshold = model.threshold_llm if with_llm else model.threshold
    if confidence < threshold:
        return verdict(
            False,
            f"no retrieved passage addresses what the question asks (confidence {confidence:.2f} < {threshold:.2f})",
            "model",
            confidence,
        )
    return verdict(True, "the evidence addresses what the question asks about", "answerable", confidence)


@dataclass(frozen=True)
class WeakMatch:
    """When `rag search` calls its best match weak (a note on stderr, not a refusal): a low hybrid
    score, or a middling one while the passage holds little of the query's IDF-weighted words.
    Chosen on eval/suites/tune.jsonl (its first 104 questions): 10% of answerable questions score
    below 0.30 and half of the unanswerable ones do; middling scores with low coverage are
    on-topic-sounding misses."""

    score: float = 0.30
    middling_score: float = 0.40
    coverage: float = 0.25


WEAK = WeakMatch()


def weak_match(result: SearchResult, lexical: LexicalIndex, mode: Mode = "hybrid") -> str | None:
    """Why the best hybrid match is weak, or None when it is not (or scores are not hybrid)."""
    if mode != "hybrid" or not result.results:
        return None
    best = result.results[0]
    covered = coverage(result.query, f"{best.title}. {best.evidence}", lexical)
    if best.score < WEAK.score or (best.score < WEAK.middling_score and covered < WEAK.coverage):
        return (
            f"the best match is weak (score {best.score:.2f}, {covered:.0%} of the query's words); "
            "the corpus may not cover this"
        )
    return None
