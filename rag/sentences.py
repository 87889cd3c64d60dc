"""Sentences and their citations: how answers, abstracts and drafts are cut into claims."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (optionally followed by citations) before white space and a capital,
# digit, quote or bracket; common abbreviations do not end sentences.
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|et al|vs|cf|Fig|Eq|approx|resp|Mr|Dr|No)\.$", re.I)
# A reference into a paper's own parts ("see Sec. 2", "Tab. 3", "pp. 4-5", "Thm. 1") ends no
# sentence before its number; only before a number, so "we release the app. It ..." still ends.
_BEFORE_NUMBER = re.compile(
    r"\b(?:Figs|Tabs?|Tables?|Secs?|Sects?|Sections?|Eqs|Apps?|Appx|Chs?|Chap|Thms?|Algs?|Defs?|Lems?|Props?"
    r"|Cors?|Refs?|Vol|Nos|Exs?|Lines?|p|pp)\.$"
)
_NUMBER_START = re.compile(r"\s*(?:\d|[IVX]+\b)")
_SPLIT = re.compile(r"(?<=[.!?])((?:\s*\[[\d,;\s]+\])*)\s+(?=[A-Z0-9\"'(*]|\[(?!\d))")
# "。", "！" and "？" end a sentence whatever follows them: CJK text puts no space after a full stop.
_CJK_END = re.compile(r"(?<=[。！？])((?:\s*\[[\d,;\s]+\])*)\s*(?=\S)")
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")

# Citation forms models write besides [n]: a range "[1-3]" or "[1–3]", "[ 1 ]", "[Source 1]",
# "[sources 1, 2]", and "[-1]", which names no source. Rewritten as [n, ...] ("[-1]" as [0], a
# source that does not exist) before an answer is checked: a correct sentence is not lost over the
# form, a range's numbers are not read as the claim's, and no marker escapes the check.
_LOOSE_CITATION = re.compile(
    r"\[\s*(?:sources?\s*)?(-?\d+(?:\s*(?:[,;]|[-–—]|,?\s*and)\s*(?:sources?\s*)?\d+)*)\s*\]", re.I
)
_MAX_SOURCE = 100  # a range beyond this ("[2019-2023]") is not citations
# Brackets of other scripts and a footnote mark: "【1】" and "［1, 2］" (Qwen and DeepSeek write them),
# "[^1]" (Markdown's footnote), read as [1] and [1, 2].
_OTHER_BRACKETS = re.compile(r"(?:[【［]\s*(\d+(?:\s*[,，、;]\s*\d+)*)\s*[】］])|\[\^(\d+)\]")


def normalise_citations(text: str) -> str:
    """`text` with every citation written as [n] or [n, m, ...] (see _LOOSE_CITATION)."""

    def canonical(m: re.Match[str]) -> str:
        body = m.group(1)
        if CITATION.fullmatch(m.group(0)):
            return m.group(0)  # already a citation: left as written
        if body.startswith("-"):
            return "[0]" if re.fullmatch(r"-\d+", body) else m.group(0)
        nums: list[int] = []
        for piece in re.split(r"\s*(?:[,;]|,?\s*and)\s*(?:sources?\s*)?", body, flags=re.I):
            ends = [int(n) for n in re.split(r"\s*[-–—]\s*", piece)]
            if len(ends) == 2 and 0 < ends[0] < ends[1] <= _MAX_SOURCE:
                nums += range(ends[0], ends[1] + 1)
            elif len(ends) == 1:
                nums.append(ends[0])
            else:
                return m.group(0)
        return "[" + ", ".join(str(n) for n in dict.fromkeys(nums)) + "]"

    def plain(m: re.Match[str]) -> str:
        return "[" + re.sub(r"\s*[,，、;]\s*", ", ", m.group(1) or m.group(2)) + "]"

    return _LOOSE_CITATION.sub(canonical, _OTHER_BRACKETS.sub(plain, text))


_NEGATIONS = frozenset(
    "not no never none neither nor cannot can't don't doesn't didn't isn't aren't wasn't weren't "
    "won't fails fail failed without unable lack lacks".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph; a citation after the full stop stays with its sentence."""
    out: list[str] = []
    for line in _CJK_END.sub(lambda m: m.group(1) + "\n", text).splitlines():
        line = line.strip()
        if not line:
            continue
        if _BULLET.match(line):  # a list item is one claim, even when a title in it has a "?"
            out.append(line)
            continue
        pieces = _SPLIT.split(line)
        # re.split with a group returns [sent, cites, sent, cites, ...]
        current = ""
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                current += piece
            else:
                current += piece or ""
                ahead = pieces[i + 1] if i + 1 < len(pieces) else ""
                if _ABBREV.search(current.rstrip()) or (
                    not piece and _BEFORE_NUMBER.search(current.rstrip()) and _NUMBER_START.match(ahead)
                ):
                    current += " "
                    continue
                out.append(current.strip())
                current = ""
        if current.strip():
            out.append(current.strip())
    return out


# An abstract's own references: "prior work [3] and [12]", "[4, 7]", "[5-9]" (no 0: "[0, 1]" is an interval)
_REFERENCE = re.compile(r"\[\s*([1-9]\d*(?:\s*(?:[,;–-]|,?\s*and)\s*[1-9]\d*)*)\s*\]")


def own_references_marked(abstract: str) -> str:
    """`abstract` with its own bracketed references written "[ref 3]": quoted in an answer, or
    copied from the prompt by a model, "[3]" would read as citing the answer's source 3."""
    return _REFERENCE.sub(lambda m: f"[ref {' '.join(m.group(1).split())}]", abstract)


def citations_of(sentence: str) -> list[int]:
    """The source numbers a sentence cites, in order of first mention ("[1, 3] ... [2]" -> 1, 3, 2)."""
    nums: list[int] = []
    for group in CITATION.findall(sentence):
        for n in re.split(r"[,;]", group):
            if n.strip().isdigit() and int(n) not in nums:
                nums.append(int(n))
    return nums


# Pointers into a paper's own parts ("(Fig. 7)", "see Table 5", "Section 4.2", "pp. 4-5") and the
# year of an author-year citation ("Ajith et al. (2024)", "(Ajith et al., 2024)"): no claim about
# what the paper found, so none of their numbers is one a source must state.
_POINTER = re.compile(
    r"(?:\b(?:Figs?|Figures?|Tabs?|Tables?|Secs?|Sections?|Sect|Eqs?|Equations?|Apps?|Appendix|Appx|Ch|Chap"
    r"|Chapters?|Thms?|Theorems?|Lems?|Lemmas?|Algs?|Algorithms?|Defs?|Definitions?|Props?|Propositions?"
    r"|Cors?|Corollary|Lines?)\.?|\b(?:pp?|No)\.|§)[\s~]*(?:\d+(?:\.\d+)*[a-z]?|[IVX]+\b)"
    r"(?:\s*(?:[-–,]|and)\s*\d+(?:\.\d+)*[a-z]?)*"
)
_AUTHOR_YEAR = re.compile(r"((?:\bet al\.?|\b[A-Z][\w'’-]+))\s*\(\s*(?:19|20)\d\d[a-z]?\s*\)")
_PARENTHETICAL_YEAR = re.compile(
    r"\(\s*[A-Z][\w'’-]+(?:\s+(?:et al\.?|and|&)(?:\s+[A-Z][\w'’-]+)?)*,?\s+(?:19|20)\d\d[a-z]?\s*\)"
)
_EMPTIED = re.compile(r"\((?:\s|see\b|cf\.?|e\.g\.,?|and\b|[,;])*\)|,?\s*\b(?:see|cf\.)(?:\s|and\b|,)*(?=[.;)]|$)")


def without_pointers(claim: str) -> str:
    """`claim` without pointers into a paper's parts or author-year years (see _POINTER), as the
    grounding check reads it; what is shown is left as written."""
    text = _PARENTHETICAL_YEAR.sub(" ", _AUTHOR_YEAR.sub(r"\1", _POINTER.sub(" ", claim)))
    return " ".join(_EMPTIED.sub(" ", text).split()).replace(" .", ".").replace(" ,", ",")


def strip_citations(sentence: str) -> str:
    """The claim without its `[n]` markers (and Markdown bold), as the checks compare it."""
    return CITATION.sub("", sentence).replace("**", "").strip()


# "at no cost in quality", "without adding computational overhead", "without additional training",
# "no loss of accuracy", "without sacrificing accuracy": a negation word that states a finding's
# price is nil affirms the finding; it does not deny it.
_NO_PRICE = re.compile(
    r"\b(?:no|without|little|negligible)\s+(?:\w+\s+){0,3}?"
    r"(?:costs?|loss|losses|degradations?|overheads?|drops?|penalty|penalties|additional|extra|retraining)\b"
    # "without increasing its size", "without sacrificing accuracy"
    r"|\bwithout\s+(?:increasing|sacrificing|compromising|hurting|harming|degrading|losing|reducing|affecting)\b"
)


# "not only ... but", "not just", "not merely": adds a finding to another, denies nothing
_ADDITIVE = re.compile(r"\bnot\s+(?:only|just|merely|simply|solely)\b")


# A negation governs the words after it up to the end of its clause, at most NEGATION_SCOPE content
# words: "does not improve accuracy, but ..." denies "improve accuracy", not what follows "but".
NEGATION_SCOPE = 4
CLAUSE_END = re.compile(r"[,;:.()\[\]]|\b(?:but|while|whereas|although|though|however|and)\b")


# "While previous detectors can tell that a shift occurred, they cannot localize it. We ...": an
# abstract states what earlier work lacks before what the paper does; such a denial is about the
# earlier work, not a finding of the paper. "Unlike previous methods, ours does not need labels"
# is the paper's own: the paper is named between the earlier work and the negation.
PRIOR_WORK = re.compile(r"\b(?:previous|prior|existing|current|traditional|conventional|earlier)\b", re.I)
_OWN_WORK = re.compile(r"\b(?:we|our|ours|this (?:paper|work|study|method|approach|model))\b")
_SENTENCE_START = re.compile(r"[.!?]\s")


def _about_prior_work(before: str) -> bool:
    """Whether a negation preceded by `before` (lower case) is about earlier work: its sentence
    names earlier work before it, and not the paper after that."""
    starts = [m.end() for m in _SENTENCE_START.finditer(before)]
    sentence = before[starts[-1] if starts else 0 :]
    prior = [m.end() for m in PRIOR_WORK.finditer(sentence)]
    return bool(prior) and not _OWN_WORK.search(sentence[prior[-1] :])


def clause_words(rest: str) -> list[str]:
    """The words of lower-case `rest` up to the end of its clause (CLAUSE_END): what a negation,
    or a word that denies, at its start governs."""
    end = CLAUSE_END.search(rest)
    return re.findall(r"[a-z0-9][\w.-]*", rest[: end.start()] if end else rest)


def negation_scopes(text: str, prior_work: bool = True) -> list[list[str]]:
    """The words each negation of `text` denies, as raw words in order (the caller stems them).
    With `prior_work` False, a negation whose sentence speaks of earlier work before it
    (PRIOR_WORK) is left out."""
    lowered = _ADDITIVE.sub(" ", _NO_PRICE.sub(" ", text.lower()))
    scopes = []
    for cue in re.finditer(r"[a-z']+", lowered):
        if cue.group() in _NEGATIONS or cue.group().endswith("n't"):
            if not prior_work and _about_prior_work(lowered[: cue.start()]):
                continue
            scopes.append(clause_words(lowered[cue.end() :]))
    return scopes
