"""Repair, then guarantee: what a user reads of an LLM's answer is supported by what it cites.

The grounding check (rag/grounding.py) judges every sentence against the sources it cites. This
step acts on the verdicts, whatever model wrote the answer:
  * a sentence citing the wrong source (or one not listed) that another retrieved source supports
    gets that source's citation instead (verdict `corrected`), and a supported sentence loses the
    citations that do not support it (also `corrected`);
  * an uncited sentence that a source supports gets that citation (`attributed`);
  * in `strict` mode a sentence no single source supports is removed from the answer and listed
    as removed; in `mark` mode the answer is left exactly as the model wrote it, marks and all;
  * in `strict` mode, when too little of the model's answer survives (MIN_KEPT), the answer falls
    back to the extractive one, quoted from the abstracts; a surviving sentence that only repeats
    the question or a source's title ("Sparse Upcycling: Inference Inefficient Finetuning [1]"),
    or adds one stray word or number to a whole title (MIN_NEW), does not count as surviving, and
    an answer whose surviving claims share no word with the question, state no number when the
    question asks for one, or name none of the rarer half of the question's words (its focus) where the
    extractive answer names one, falls back too.
A claim repeated word for word (a model looping) is kept once. Sentences making no claim ("Here is
what the sources say:") are kept as they are. An answer whose
every sentence is supported as the model cited it, and that shares a word with the question, comes
out unchanged, character for character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from rag.grounding import (
    ATTRIBUTED,
    BAD_CITATION,
    CORRECTED,
    NO_CLAIM,
    UNCITED,
    UNSUPPORTED,
    Grounding,
    OverlapVerifier,
    Passage,
    SentenceCheck,
    Verifier,
    check,
)
from rag.numbers import asks_number, states_asked_number
from rag.sentences import CITATION
from rag.terms import key_tokens, terms

GroundingMode = Literal["strict", "mark"]

# Strict mode falls back to the extractive answer when fewer than this share of the model's claims
# survive the check (after repair), or none does. Chosen on eval/suites/tune.jsonl only, with
# SmolLM2-135M over llama.cpp, by eval/fit_grounding.py: the threshold with the highest key-fact
# recall of the shown answer, the lowest on a tie. First on 72 tune questions (18 with key facts):
# 0.667 at 0.0 (fall back only when nothing survives), 0.944 from 0.6 up. Then on 116 (the 44
# y-* questions added; 40 with key facts): 0.762 at 0.0-0.3, 0.787 at 0.4-0.6, 0.812 from 0.7 up,
# so 0.7: what survives of a mostly unsupported answer is true but rarely the fact asked.
MIN_KEPT = 0.7
# A kept claim that holds a source's whole title counts when it says at least this many things
# (words, numbers, names) beyond the question and the titles; any other kept claim, one ("FP8
# formats outperform INT8" to "which papers compare FP8 vs INT8?", "by 12%" to "how much"). Hand-set
# on the tune suite's SmolLM2 answers (eval/fit_grounding.py cache): at 1, "<a title> Premise 1 [4]"
# and "<a title> 2.30 [4]" stood as the model's answer to a number question.
MIN_NEW = 2

FELL_BACK = "The model's answer did not hold up against the sources; showing sentences quoted from the abstracts."
REMOVED_HEADING = "removed: not supported by the sources"


@dataclass
class Repaired:
    text: str  # the answer as shown
    grounding: Grounding  # the checks of the shown answer's sentences
    removed: list[SentenceCheck] = field(default_factory=list)  # the model's sentences taken out (strict)
    fell_back: bool = False  # the shown answer is the extractive one
    repeats: int = 0  # claims the model repeated word for word, kept once

    @property
    def changed(self) -> bool:
        return (
            bool(self.removed)
            or self.fell_back
            or bool(self.repeats)
            or any(s.cited_before is not None for s in self.grounding.sentences)
        )


def uncited(sentence: str) -> str:
    """`sentence` without its citations ("X [1]." becomes "X.")."""
    body = re.sub(r"\s+([.,;:!?])", r"\1", CITATION.sub("", sentence))
    return re.sub(r"[ \t]{2,}", " ", body).strip()


def recite(sentence: str, numbers: list[int]) -> str:
    """`sentence` with its citations replaced by `numbers` after its final punctuation."""
    return f"{uncited(sentence)} {''.join(f'[{n}]' for n in numbers)}"


def find_support(
    sentence: str, sources: Mapping[int, Passage], verifier: Verifier, skip: set[int]
) -> tuple[int, float, str] | None:
    """The single source (not in `skip`) that best supports `sentence`: (number, score, window)."""
    best: tuple[int, float, str] | None = None
    for n, src in sources.items():
        if n in skip:
            continue
        ok, score, window = verifier.supports(sentence, [src])
        if ok and (best is None or score > best[1]):
            best = (n, score, window)
    return best


def _rebuild(text: str, old: list[SentenceCheck], new: list[str | None]) -> str:
    """`text` with each checked sentence replaced by its new form (None: removed), layout kept."""
    out: list[str] = []
    pos = 0
    for check_, replacement in zip(old, new, strict=True):
        at = text.find(check_.text, pos)
        if at < 0:  # the splitter normalised some spacing: rebuild from the sentences alone
            return "\n".join(r for r in new if r)
        out += [text[pos:at], replacement or ""]
        pos = at + len(check_.text)
    out.append(text[pos:])
    lines = [re.sub(r"[ \t]{2,}", " ", line).strip() for line in "".join(out).splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip()


def repair(
    text: str,
    grounding: Grounding,
    sources: Mapping[int, tuple[str, str]],
    verifier: Verifier | None = None,
    mode: GroundingMode = "strict",
    fallback: Callable[[], str] | None = None,
    min_kept: float = MIN_KEPT,
    question: str = "",
    focus: Collection[str] = (),
) -> Repaired:
    """Apply `mode` to a checked answer (see the module docstring). `fallback` composes the
    extractive answer; without one, strict mode never falls back. A kept sentence saying nothing
    beyond `question` and the sources' titles does not count as kept. `focus`: the question's
    focus words (analysed terms, rag.abstain.focus_words); kept claims naming none of them fall
    back to an extractive answer that names one."""
    if mode == "mark":
        return Repaired(text, grounding)
    verifier = verifier or OverlapVerifier()
    srcs = {n: Passage(t, a) for n, (t, a) in sources.items()}
    checks: list[SentenceCheck] = []
    replacements: list[str | None] = []
    removed: list[SentenceCheck] = []
    said_before: set[str] = set()
    repeats = 0
    for s in grounding.sentences:
        claim = " ".join(uncited(s.text).lower().split())
        if s.is_claim and claim in said_before:  # a model repeating itself (looping) says nothing new
            repeats += 1
            replacements.append(None)
            continue
        said_before.add(claim)
        if s.supported and s.precise and len(s.precise) < len(s.citations):  # drop citations that add nothing
            new_text = recite(s.text, s.precise)
            checks.append(
                SentenceCheck(new_text, s.precise, CORRECTED, s.score, s.precise, s.window, cited_before=s.citations)
            )
            replacements.append(new_text)
            continue
        if s.supported or s.verdict == NO_CLAIM:
            checks.append(s)
            replacements.append(s.text)
            continue
        found = None
        if s.verdict in (UNSUPPORTED, BAD_CITATION, UNCITED):
            skip = set(s.citations) if s.verdict == UNSUPPORTED else set()
            found = find_support(s.text, srcs, verifier, skip)
        if found is None:
            removed.append(s)
            replacements.append(None)
            continue
        n, score, window = found
        verdict = ATTRIBUTED if s.verdict == UNCITED else CORRECTED
        new_text = recite(s.text, [n])
        checks.append(SentenceCheck(new_text, [n], verdict, score, [n], window, cited_before=list(s.citations)))
        replacements.append(new_text)
    claims = len(grounding.claims) - repeats
    # a kept sentence that only repeats the question or a source's title tells the user nothing, nor
    # does a title with one stray word or number after it ("FasterDiT: ... Premise 1 [4]")
    known = terms(question).union(*(terms(title) for title, _ in sources.values()))
    known_keys = key_tokens(question).union(*(key_tokens(title) for title, _ in sources.values()))
    titles = [t for t in (terms(title) for title, _ in sources.values()) if len(t) >= 3]

    def says_something(sentence: str) -> bool:
        """Does `sentence` say something beyond the question and the titles? A sentence holding a
        whole title must add MIN_NEW things (words, numbers, names) to it, any other one thing."""
        body = uncited(sentence)
        said = terms(body)
        words = {t for t in said - known if not t.isdigit()}  # a number counts once, as a key
        new = len(words | (key_tokens(body) - known_keys))
        return new >= (MIN_NEW if any(title <= said for title in titles) else 1)

    kept = sum(c.is_claim and says_something(c.text) for c in checks)
    # supported claims that share no word with the question ("1.5B 2.06 [2]") answer nothing asked
    said = set().union(*(terms(uncited(c.text)) for c in checks if c.is_claim))
    off_point = bool(question) and not terms(question) & said
    # a question asking for a number is not answered by claims stating none (rag/numbers.py)
    kept_claims = [uncited(c.text) for c in checks if c.is_claim]
    off_point |= bool(question) and asks_number(question) and not states_asked_number(kept_claims, question)
    extractive = None
    if fallback is not None and not off_point and focus and not said & set(focus):
        # kept claims on the question's topic but not on its focus ("which benchmark tests tool
        # use when the tools are missing?" answered by a sentence on LLM evaluation), where the
        # abstracts' own sentences name it
        extractive = fallback()
        off_point = bool(terms(extractive) & set(focus))
    if fallback is not None and (kept == 0 or kept / claims < min_kept or off_point):
        extractive = fallback() if extractive is None else extractive
        return Repaired(extractive, check(extractive, sources, verifier), removed, fell_back=True)
    if not removed and not repeats and all(c.cited_before is None for c in checks):
        return Repaired(text, grounding)
    return Repaired(_rebuild(text, grounding.sentences, replacements), Grounding(checks), removed, repeats=repeats)
