"""The number a question asks for, and whether sentences state it: "how many languages" is
answered by a count of languages, "what accuracy" by a percentage, "by how much" by some number the
question does not already state. Shared by the extractive answerer and strict mode's repair, and
light (no numpy) so the repair step can import it on every path."""

from __future__ import annotations

import re

from rag.terms import analyse

# How a question asks for a number ("how many", "by how much", "what FID"): a sentence stating none
# does not answer it, however close its words.
_ASKING_NUMBER = (
    r"\bhow (many|much|often|large|long|fast|quickly|big|small|far)\b|\bby how\b|\bup to what\b|\bwhat (score|number|size)\b"
    # a measure with one word naming it ("what top-1 accuracy", "what workload coverage", "what win rate")
    r"|\bwhat (?:[\w-]+ )?(percentage|fraction|share|accuracy|rate|ratio|speed-?up|latency|fid|bleu|coverage|perplexity)\b"
)
_ASKS_NUMBER = re.compile(_ASKING_NUMBER, re.I)
# A question asking when a paper or method came out is answered by a year, which abstracts rarely
# state ("When was LitSearch published?" is not answered by "recently published papers").
_ASKS_YEAR = re.compile(
    r"\b(?:what|which|in what) year\b|\bwhen (?:was|were|did|has|have)\b[^?]*?\b(?:publish|releas|introduc|propos"
    r"|appear|present|submit|first)\w*",
    re.I,
)
_YEAR = re.compile(r"(?<![\d.,])(?:19[5-9]\d|20\d\d)(?![\d.,]\d)")
# What the extractive answerer favours a sentence with a number for: those, and any question using
# "score" (which also names things, "as an anomaly score", so it does not demand a number).
_QUANTITY_QUESTION = re.compile(_ASKING_NUMBER + r"|\bscore\b", re.I)
# "how many" as the object of a method's verb ("trains the model to predict how many tokens remain",
# "learns how much to trust each source") describes the method; the question asks for the method.
_EMBEDDED = re.compile(
    r"\b(?:predict|estimat|forecast|decid|determin|choos|learn|control|teach|adjust|adapt|select)\w*"
    r"(?:\s+(?:the|a|an|its|their|each)?\s*[\w-]+)?\s+how (?:many|much)\b",
    re.I,
)


def _asking(question: str) -> str:
    """The question without "how many" clauses that only describe a method."""
    return _EMBEDDED.sub(" ", question)


def wants_quantity(question: str) -> bool:
    """Whether a sentence stating a number is favoured: the question asks for one, or uses "score"."""
    return bool(_QUANTITY_QUESTION.search(_asking(question)))


# A quantity stated on its own ("597", "92.64%", "1.86times", "1.1T", "eleven"), not part of a name
# like "Llama-3.1" and not a list marker like "(2)".
_QUANTITY = re.compile(
    r"(?<![\w.\-])(\d+(?:[.,]\d+)*)(?:%|x|×|times|[TBMK])?(?!\w)"
    r"|\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?|millions?|billions?)\b",
    re.I,
)
_HOW_MANY = re.compile(r"\bhow many ([\w-]+(?: [\w-]+)?)", re.I)


# "how much training data", "how much cloud cost": an amount of a named thing, stated in a
# sentence that speaks of it ("trained on 2M image-text pairs", "cuts the cloud cost by 66%");
# "how much does ..." and "how much faster" name no such thing
# the comparatives of "how much faster", "how many times more": a question asking for a factor
_COMPARATIVE = r"(?:faster|slower|quicker|smaller|larger|bigger|cheaper|less|more|fewer|better|worse|higher|lower)"
_HOW_MUCH = re.compile(
    r"\bhow much (?!(?:does|did|do|is|are|was|were|can|could|will|would|should|has|have|had|of|it|they|the|a|an"
    rf"|{_COMPARATIVE})\b)([\w-]+(?: [\w-]+)?)",
    re.I,
)


def stated_numbers(text: str) -> set[str]:
    """The quantities `text` states ("597", "92.64%", "eleven"), list markers like "(2)" left out."""
    return {
        (m.group(1) or m.group(2)).lower()
        for m in _QUANTITY.finditer(text)
        if not (text[m.start() - 1 : m.start()] == "(" and text[m.end() : m.end() + 1] == ")")  # "(2)" marks a list
    }


def counted_thing(question: str) -> set[str]:
    """Stems of what a "how many ..." question counts ("how many languages" -> {"languag"})."""
    match = _HOW_MANY.search(_asking(question))
    return set(analyse(match.group(1))) if match else set()


def counts(sentence: str, counted: set[str]) -> bool:
    """Does a quantity stand within four words before the counted thing?"""
    words = re.findall(r"[\w.%-]+", sentence)
    for i, word in enumerate(words):
        if _QUANTITY.fullmatch(word) and counted & set(analyse(" ".join(words[i + 1 : i + 5]))):
            return True
    return False


def asks_number(question: str) -> bool:
    """Whether the question is answered only by a number ("how many", "by how much", "what FID",
    "in what year")."""
    asking = _asking(question)
    return bool(_ASKS_NUMBER.search(asking) or _ASKS_YEAR.search(asking))


# A question asking for a share ("what accuracy", "what share of the parameters", "what percentage")
# is answered by a percentage or a fraction, not by any number.
_ASKS_SHARE = re.compile(r"\bwhat (?:percentage|fraction|share|proportion|accuracy)\b|\bwhat (?:\w+ )?rate\b", re.I)
_SHARE = re.compile(r"\d\s*%|\bper ?cent\b|\b\d+\s*/\s*\d+\b|\b(?:half|thirds?|quarters?|fifths?|tenths?)\b", re.I)


# A question asking how much one thing beats another ("how much faster", "how many times more
# parameters") is answered by a factor, a percentage, a difference in points or a change "from A to
# B", not by any number: "evaluation has been limited to a few million documents" does not say how
# much faster a method is.
_ASKS_FACTOR = re.compile(rf"\bhow (?:much|many times) {_COMPARATIVE}\b", re.I)
_FACTOR = re.compile(
    r"\d\s*(?:%|x\b|×|times\b|-?fold\b|points?\b|pp\b|percent)|\d(?:x|×|times)"
    r"|\b(?:twice|double[sd]?|half|halve[sd]?|triple[sd]?|(?:two|three|four|five|ten|hundred|thousand)-?fold)\b|\bfrom \S*\d[^.;]{0,20}? to \S*\d",
    re.I,
)


def states_asked_number(sentences: list[str], question: str) -> bool:
    """Whether the sentences state a number the question does not (a percentage or fraction for a
    share; for "how many X", a count of X; for "when was X published", a year), as a question
    asking for a number needs."""
    text = " ".join(sentences)
    if _ASKS_YEAR.search(_asking(question)) and not _ASKS_NUMBER.search(_asking(question)):
        return bool(set(_YEAR.findall(text)) - set(_YEAR.findall(question)))
    if not stated_numbers(text) - stated_numbers(question):
        return False
    if _ASKS_SHARE.search(question) and not _SHARE.search(text):
        return False
    if _ASKS_FACTOR.search(_asking(question)) and not _FACTOR.search(text):
        return False
    measured = _HOW_MUCH.search(_asking(question))
    if measured and not any(
        set(analyse(measured.group(1))) & set(analyse(s)) and stated_numbers(s) - stated_numbers(question)
        for s in sentences
    ):
        return False  # the number stands in a sentence about something else ("over 20 variants")
    counted = counted_thing(question)
    return not counted or any(counts(s, counted) for s in sentences)
