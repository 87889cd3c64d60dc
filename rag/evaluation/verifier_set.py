"""A labelled set for measuring the grounding verifier, made from the corpus itself.

Supported pairs: a sentence of an abstract (whole, or cut short) with its own abstract.
Unsupported pairs: the same sentence with a swapped number, a number cut to a part of itself (12 ->
2, 92.64% -> 2.64%), a name cut to a part of itself (RoBERTa -> BERTa), a method or dataset name
swapped for one from another paper, a negation added, or the sentence paired with another paper's
abstract. The "part of itself" kinds catch a matcher that compares substrings instead of tokens.
The set is drawn with a fixed seed, so every run measures the same pairs.

Word swaps do not test what a fluent model writes, so `written_pairs` also reads true claims written as
paraphrases of one abstract each (eval/drafts/paraphrases.jsonl: reworded, compressed, joining two
findings, numbers restated, stated more generally): strict mode removes the ones the verifier
rejects, so their false-unsupported rate is what a strong model would lose.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rag.grounding import check
from rag.sentences import split_sentences
from rag.terms import key_tokens, terms

_NUMBER = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?![\w.]\d)")
_AUX = re.compile(r"\b(is|are|was|were|can|could|does|do|has|have|will|should|may)\b")
_NAME = re.compile(r"\b([A-Za-z][\w-]*[A-Z][\w-]*|[A-Z]{2,}[\w-]*)\b")


@dataclass(frozen=True)
class Pair:
    kind: str
    sentence: str
    title: str
    abstract: str
    supported: bool


def _swap_number(sentence: str, rng: random.Random) -> str | None:
    numbers = _NUMBER.findall(sentence)
    if not numbers:
        return None
    old = rng.choice(numbers)
    value = float(old)
    new = value * rng.choice([2, 3, 0.5]) + rng.choice([1, 7])
    new_text = f"{new:.2f}" if "." in old else str(int(new))
    return re.sub(rf"(?<![\w.\-]){re.escape(old)}(?![\w.]\d)", new_text, sentence, count=1)


def _cut_number(sentence: str) -> str | None:
    """A number of two or more digits without its first digit: a different number hidden in it."""
    for match in _NUMBER.finditer(sentence):
        old = match.group(1)
        if len(old.split(".")[0]) >= 2 and old[1] != "0" and key_tokens(old[1:]):
            return sentence[: match.start()] + old[1:] + sentence[match.end() :]
    return None


def _cut_name(sentence: str) -> str | None:
    """A name with an inner capital cut to its tail from that capital ("RoBERTa" -> "BERTa")."""
    for name in _NAME.findall(sentence):
        inner = [i for i, c in enumerate(name) if i >= 1 and c.isupper() and name[i - 1].islower()]
        if inner and len(name) - inner[0] >= 3 and key_tokens(name[inner[0] :]):
            return re.sub(rf"\b{re.escape(name)}\b", name[inner[0] :], sentence, count=1)
    return None


def _swap_name(sentence: str, abstract: str, other_names: list[str], rng: random.Random) -> str | None:
    names = [n for n in _NAME.findall(sentence) if key_tokens(n) and not any(c.isdigit() for c in n)]
    candidates = [n for n in other_names if not (key_tokens(n) & key_tokens(abstract))]
    if not names or not candidates:
        return None
    return sentence.replace(rng.choice(names), rng.choice(candidates), 1)


def _negate(sentence: str) -> str | None:
    match = _AUX.search(sentence)
    if not match or re.search(r"\bnot\b|n't\b", sentence):
        return None
    return sentence[: match.end()] + " not" + sentence[match.end() :]


def build(papers: list[tuple[str, str]], size: int = 80, seed: int = 13) -> list[Pair]:
    """`papers`: (title, abstract). About `size` sentences, each giving one supported and up to
    four unsupported pairs."""
    rng = random.Random(seed)
    all_names = sorted(
        {n for _, a in papers for n in _NAME.findall(a) if key_tokens(n) and not any(c.isdigit() for c in n)}
    )
    pairs: list[Pair] = []
    order = list(range(len(papers)))
    rng.shuffle(order)
    for i in order[:size]:
        title, abstract = papers[i]
        sentences = [s for s in split_sentences(abstract) if len(terms(s)) >= 8 and len(s) < 400]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        pairs.append(Pair("verbatim", sentence, title, abstract, True))
        words = sentence.rstrip(".").split()
        pairs.append(Pair("shortened", " ".join(words[: max(6, int(len(words) * 0.7))]) + ".", title, abstract, True))
        other_title, other_abstract = papers[rng.choice([j for j in order if j != i])]
        pairs.append(Pair("wrong_paper", sentence, other_title, other_abstract, False))
        for kind, variant in (
            ("number_swap", _swap_number(sentence, rng)),
            ("number_cut", _cut_number(sentence)),
            ("name_cut", _cut_name(sentence)),
            ("name_swap", _swap_name(sentence, abstract, all_names, rng)),
            ("negation", _negate(sentence)),
        ):
            if variant and variant != sentence:
                pairs.append(Pair(kind, variant, title, abstract, False))
    return pairs


def written_pairs(path: Path, abstracts: dict[str, tuple[str, str]], supported: bool = True) -> list[Pair]:
    """The written claims in `path` (JSON Lines of title, claim, style) as pairs labelled
    `supported` (paraphrases of true claims, or near misses when False), each with its paper's
    abstract (`abstracts`: paper id -> (title, abstract)); claims whose paper is not stored are left
    out."""
    from rag.jsonl import read_jsonl

    by_title = {title.strip().lower(): (title, abstract) for title, abstract in abstracts.values()}
    pairs = []
    for _, row in read_jsonl(path):
        found = by_title.get(str(row["title"]).strip().lower())
        if found:
            pairs.append(Pair(str(row.get("style", "written")), str(row["claim"]), found[0], found[1], supported))
    return pairs


def measure(pairs: list[Pair], verifier=None) -> dict:
    """Balanced accuracy of the verifier on `pairs`, with rates per kind."""
    outcomes: dict[str, list[bool]] = {}
    tp = tn = pos = neg = 0
    for pair in pairs:
        said = check(f"{pair.sentence.rstrip('.')} [1].", {1: (pair.title, pair.abstract)}, verifier).sentences
        verdict = bool(said) and said[0].supported
        correct = verdict == pair.supported
        outcomes.setdefault(pair.kind, []).append(correct)
        if pair.supported:
            pos += 1
            tp += correct
        else:
            neg += 1
            tn += correct
    tpr = tp / pos if pos else 0.0
    tnr = tn / neg if neg else 0.0
    return {
        "pairs": len(pairs),
        "balanced_accuracy": round((tpr + tnr) / 2, 4),
        "tpr": round(tpr, 4),
        "tnr": round(tnr, 4),
        "accuracy_by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(outcomes.items())},
    }
