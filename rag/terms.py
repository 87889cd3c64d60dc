"""Terms of a text: the analysis BM25 and the answer checks share, and the specific terms
(numbers, acronyms, named models and methods) a question or a claim must find stated."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from rag.sanitise import unaccented
from rag.sentences import strip_citations

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
ANALYSER_VERSION = 3  # bump when `analyse` changes: saved BM25 indexes are then rebuilt


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s's English list is short; these question and filler words carry no topic either
    extra = (
        "here there what which who whom whose how also following below above according "
        "do does did doing done can could would should may might must shall will were was been being "
        "has have had".split()
    )
    return frozenset(STOPWORDS_EN) | frozenset(extra)


def analyse(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed terms: the same for chunks and queries."""
    stop = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


def terms(text: str) -> set[str]:
    """Stemmed content words (the same analysis BM25 uses)."""
    return set(analyse(text))


_KEY_TOKEN = re.compile(r"[A-Za-z0-9](?:[\w.%+-]|,(?=\d{3}))*[\w%]|\d")  # "500,000" is one token


# Words typed in capitals for emphasis ("which paper does NOT use GPT-4", "ONLY on images") are
# not acronyms: a source need not print them in capitals, nor a question's names include them.
_EMPHASIS = frozenset(
    "not no never none without only all any both each every either neither nor and or but the is are was were "
    "do does did with most best least more less first same what which who how why when where".split()
)


def _is_key(token: str) -> bool:
    """Numbers, acronyms and named methods: tokens with a digit or an inner capital."""
    core = token.strip(".-")
    if not core or (core.isalpha() and core.isupper() and core.lower() in _EMPHASIS):
        return False
    if any(c.isdigit() for c in core):
        return True
    return sum(c.isupper() for c in core) >= 2 or (core[0].islower() and any(c.isupper() for c in core))


def normalise_key(token: str) -> str:
    """One spelling per key: "Llama-2", "llama 2", "LLaMA2" and "Llama_2" (a LaTeX subscript
    flattened to text: "RoBERTa_Large") are all "llama2"; "Über" is "uber"."""
    token = unaccented(token).lower().rstrip(".")
    token = token.replace(",", "")
    return re.sub(r"[-‐–—_\s]", "", token)


_MODIFIER = re.compile(r"(?<=[A-Za-z0-9])-[a-z]{3,}$")


# "138 million" and "138M" state the same number: magnitudes are written as their letter first
_MAGNITUDE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[\s-]*(thousand|million|billion|trillion)\b", re.I)


_MAGNITUDE_LETTER = {"thousand": "K", "million": "M", "billion": "B", "trillion": "T"}


def _magnitudes(text: str) -> str:
    return _MAGNITUDE.sub(lambda m: m.group(1) + _MAGNITUDE_LETTER[m.group(2).lower()], text)


def named_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised key) of each name in `text` (a key with a letter: "FP8", "GPT-4",
    "BERT"; not a bare number), in order."""
    return [
        (m.start(), m.end(), normalise_key(m.group()))
        for m in _KEY_TOKEN.finditer(text)
        if _is_key(m.group()) and any(c.isalpha() for c in m.group())
    ]


def key_tokens(text: str) -> set[str]:
    """Tokens that must appear in a source for a sentence to be supported by it."""
    out = set()
    for tok in _KEY_TOKEN.findall(_magnitudes(strip_citations(text)).replace("×", "x")):
        tok = _MODIFIER.sub("", tok)  # "GPT-4-generated" states GPT-4; "BERT-based", BERT
        if _is_key(tok):
            # a bare list number like "1" or "(2)" carries no claim
            if tok.isdigit() and len(tok) == 1:
                continue
            out.add(normalise_key(tok))
    return out


_KEY_SEPARATORS = r"[\s,\-‐–—_]*"


@lru_cache(maxsize=8192)
def _key_pattern(key: str) -> re.Pattern[str]:
    """A normalised key as a whole token of a source: spacing and hyphens may differ ("Llama 2",
    "Llama-2", "llama2"), a plural "s" may follow, but it never matches inside another token:
    "BERT" is not in "RoBERTa", "T5" not in "mT5", 2 not in 12 or 1.2."""
    body = _KEY_SEPARATORS.join(
        # a size "256x256" is also written "256 times 256" (a LaTeX \times flattened to text)
        r"(?:x|\s*times\s*)"
        if c == "x" and 0 < i < len(key) - 1 and key[i - 1].isdigit() and key[i + 1].isdigit()
        else re.escape(c)
        for i, c in enumerate(key)
    )
    suffix = "(?:x|×|times)?" if key[-1].isdigit() else "s?"  # "1.5" is stated by "1.5x", "1.5times"
    if whole := re.fullmatch(r"(\d+)(%?)", key):  # "85%" is stated by "85.0%", "50%" by "half"
        body = _KEY_SEPARATORS.join(whole.group(1)) + r"(?:\.0+)?" + whole.group(2)
        if whole.group(2):
            words = [w for w, v in _FRACTION_WORDS.items() if round(v) == int(whole.group(1))]
            body = "|".join([f"(?:{body})", *words])
    return re.compile(rf"(?<![a-z0-9])(?<![0-9][.,])(?:{body}){suffix}(?![a-z0-9])(?![.,][0-9])")


@lru_cache(maxsize=4096)
def _lowered(text: str) -> str:
    return unaccented(_magnitudes(text)).lower().replace("×", "x")


# the plural of an acronym ("LLMs", "GANs"), as key_tokens gives it: "llms"
_ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Za-z0-9]*[A-Z])s\b")


def acronym_plurals(text: str) -> set[str]:
    """Keys of the acronym plurals `text` uses ("LLMs" -> "llms"): a source stating the acronym
    ("LLM") states them (the grounding check's rule; retrieval and answering keep the plural)."""
    return {normalise_key(m.group(0)) for m in _ACRONYM_PLURAL.finditer(strip_citations(text))}


def contains_key(source: str, key: str) -> bool:
    """Does `source` state the key token `key` (from `key_tokens` or `normalise_key`) as a whole?"""
    return bool(key) and _key_pattern(key).search(_lowered(source)) is not None


# Quantities stated in words. A claim's "six months", "an eighth of the compute" or "2 steps" is as
# checkable as "6.7B": the grounding check requires it of the cited window, in words or digits.
_CARDINALS = {w: i for i, w in enumerate("two three four five six seven eight nine ten eleven twelve".split(), 2)}
_CARDINAL_OF = {i: w for w, i in _CARDINALS.items()}
# multiplicative words: a factor stated as a word, a fraction, "Nx", "N times", "N-fold" or a percentage
_FACTORS = {
    2: ("twice", "double", "doubles", "doubled", "doubling", "half", "halves", "halved", "halving", "50%"),
    3: ("triple", "triples", "tripled", "tripling", "threefold"),
    4: ("quarter", "quarters", "fourfold", "25%"),
    8: ("eighth", "eightfold", "12.5%"),
    10: ("tenth", "tenfold", "10%"),
}
_FACTOR_OF = {w.rstrip("%"): n for n, words in _FACTORS.items() for w in words if not w.endswith("%")}
# whole words only: "int8", "3.0", "4,425", "GPT-4" and "recall@5" state no count in words
_WORD = re.compile(r"(?<![\w.,@-])[a-z0-9]+(?![\w-]|[.,]\w)")
# a lone digit is a list number when it is bracketed or opens the text: "(2)", "2)", "1."
_LIST_NUMBER = re.compile(r"(?:^|\()\s*\d\s*[).]|\(\d\)")


def quantities(text: str) -> set[str]:
    """Counts and factors a claim states in words or as a lone digit ("three months" -> "#3",
    "an eighth" -> "x8", "in 2 steps" -> "#2"); `states_quantity` finds them in a source."""
    lowered = _LIST_NUMBER.sub(" ", strip_citations(text).lower())
    out = set()
    for word in _WORD.findall(lowered):
        if word in _CARDINALS:
            out.add(f"#{_CARDINALS[word]}")
        elif word.isdigit() and len(word) == 1 and int(word) >= 2:
            out.add(f"#{word}")
        elif word in _FACTOR_OF:
            out.add(f"x{_FACTOR_OF[word]}")
    return out


@lru_cache(maxsize=64)
def _quantity_pattern(key: str) -> re.Pattern[str]:
    n = int(key[1:])
    word = _CARDINAL_OF.get(n, "")
    if key[0] == "#":
        options = [rf"(?<![0-9][.,]){n}(?![.,]?[0-9])(?:x|×)?"] + ([word] if word else [])
    else:
        options = [re.escape(w) for w in _FACTORS.get(n, ())]
        options += [rf"{n}\s*(?:x|×|times|-fold|fold)", rf"1/{n}"]
        if word:
            options += [rf"{word}\s*(?:times|-fold|fold)"]
    # "sim3x" is how arXiv abstracts keep LaTeX's "$\sim$3x"; the 5 of "recall@5" counts nothing
    return re.compile(rf"(?:(?<![a-z0-9@])|(?<=\bsim))(?:{'|'.join(options)})(?![a-z0-9])")


def states_quantity(source: str, key: str) -> bool:
    """Does `source` state the count or factor `key` (from `quantities`), in words or digits?"""
    return _quantity_pattern(key).search(_lowered(source)) is not None


# A quantity a claim hedges ("about two thirds", "roughly 23%", "more than 20%") is stated by a
# source number close to it: a fluent summary rounds "66%" to "two thirds". Within HEDGE_TOLERANCE
# (relative), and on the hedge's side ("more than 20%" needs at least 20, "nearly 75%" at most 75).
# "More than X" is how a writer rounds down to a round number, so it covers values up to the next
# one on X's leading digit ("more than 20%" for 22.6%, not for 31%).
HEDGE_TOLERANCE = 0.1
_FRACTION_WORDS = {
    "half": 50.0, "a third": 100 / 3, "one third": 100 / 3, "two thirds": 200 / 3, "a quarter": 25.0,
    "one quarter": 25.0, "three quarters": 75.0, "a fifth": 20.0, "one fifth": 20.0, "a tenth": 10.0,
    "one tenth": 10.0,
}  # fmt: skip
_AT_LEAST = ("more than", "over", "at least", "upwards of")
_AT_MOST = ("nearly", "almost", "under", "less than", "just under", "up to")
_HEDGES = ("about", "around", "roughly", "approximately", "some", "close to", "~", *_AT_LEAST, *_AT_MOST)
_NUMBER = r"\d+(?:\.\d+)?"
_HALVES = {"one and a half": 1.5, "two and a half": 2.5}
_TIMES = r"\s*(?:times|x|×|-fold|fold)\b"
_HEDGED = re.compile(
    rf"(?<![\w-])(?P<hedge>{'|'.join(sorted(map(re.escape, _HEDGES), key=len, reverse=True))})\s*"
    rf"(?:(?P<fraction>{'|'.join(sorted(_FRACTION_WORDS, key=len, reverse=True))})\b|(?P<twice>twice)\b"
    rf"|(?P<halves>{'|'.join(_HALVES)}){_TIMES}"
    rf"|(?P<number>{_NUMBER})(?:(?P<times>{_TIMES})|\s*(?P<percent>%|percent\b))?)"
)
_SOURCE_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})\s*(%|percent\b)?")
# "48% more steps" is a factor of 1.48: what a writer rounds to "nearly one and a half times as many"
_PERCENT_MORE = re.compile(rf"(?<![\w.])({_NUMBER})\s*(?:%|percent\b)\s*(?:more|higher|larger|greater|longer|faster)\b")
# "from 1.81 to 1.40" states a change of 23% (a writer's "an improvement of more than 20%"), and a
# factor of 1.29 ("nearly 1.3 times lower"); "from 28.53 dB to 33.49 dB" a gain of "almost 5 dB"
_FROM_TO = re.compile(rf"\bfrom\s+({_NUMBER})\s*(%|[a-z]+\b)?\s*(?:to|down to|up to)\s+({_NUMBER})\s*(%|[a-z]+\b)?")


@dataclass(frozen=True)
class Hedged:
    """A hedged quantity of a claim: its words, its value (a percentage when `percent`) and side."""

    text: str
    value: float
    percent: bool
    side: int  # 1: the source may be above (not below), -1: below (not above), 0: either
    factor: bool = False  # "N times": a source's "P% more" states the factor 1 + P/100

    def keys(self) -> set[str]:
        """The key tokens and quantities these words would otherwise require verbatim."""
        return key_tokens(self.text) | quantities(self.text)


def hedged_quantities(text: str) -> list[Hedged]:
    """The quantities `text` states with a hedge ("about", "nearly", "more than", ...)."""
    out = []
    for m in _HEDGED.finditer(strip_citations(text).lower().replace(",", "")):
        hedge = m.group("hedge")
        side = 1 if hedge in _AT_LEAST else -1 if hedge in _AT_MOST else 0
        if m.group("twice"):
            out.append(Hedged(m.group(0), 2.0, False, side, factor=True))
        elif m.group("halves"):
            out.append(Hedged(m.group(0), _HALVES[m.group("halves")], False, side, factor=True))
        elif m.group("times"):
            out.append(Hedged(m.group(0), float(m.group("number")), False, side, factor=True))
        elif m.group("fraction"):
            out.append(Hedged(m.group(0), _FRACTION_WORDS[m.group("fraction")], True, side))
        else:
            out.append(Hedged(m.group(0), float(m.group("number")), bool(m.group("percent")), side))
    return out


# A share and its remainder: "using 40% less data" and "rejecting 40% of it" state that 60% was used.
_LESS = re.compile(rf"(?<![\w.])({_NUMBER})\s*(?:%|percent\b)\s*(?:less|lesser|fewer|smaller)\b")
_REMOVED = re.compile(
    rf"\b(?:reject|remov|prun|discard|drop|cut|eliminat|filter)\w*\s+(?:out\s+)?(?:only\s+)?({_NUMBER})\s*(?:%|percent\b)"
)
_PERCENT_KEY = re.compile(rf"^({_NUMBER})%$")


def removed_shares(text: str) -> set[float]:
    """The percentages `text` states as removed or saved ("40% less data", "pruning 40%")."""
    lowered = text.lower().replace(",", "")
    return {float(m.group(1)) for pattern in (_LESS, _REMOVED) for m in pattern.finditer(lowered)}


_SHARE_WORDS = {2: "half", 4: "quarter", 5: "fifth", 10: "tenth"}  # "a tenth" is the quantity x10


def remainder_keys(claim: str, keys: set[str]) -> dict[str, str]:
    """The keys of `claim` a source may state as their remainder, each with the percentage it is
    ("60%"; "a tenth of the data" is "10%"): shares the claim itself does not state as removed
    ("60% of the data", not "60% less data")."""
    removed = removed_shares(claim)
    lowered = claim.lower()
    out = {}
    for k in keys:
        if m := _PERCENT_KEY.match(k):
            share = float(m.group(1))
        elif (m := re.fullmatch(r"x(\d+)", k)) and (word := _SHARE_WORDS.get(int(m.group(1)))):
            if not re.search(rf"\b(?:a|one)\s+{word}\b", lowered):
                continue  # "tenfold" is a factor, not a share
            share = 100 / int(m.group(1))
        else:
            continue
        if share not in removed:
            out[k] = f"{share:g}%"
    return out


def states_remainder(source: str, key: str) -> bool:
    """Does `source` state the percentage `key` ("60%") as its remainder ("40% less")?"""
    m = _PERCENT_KEY.match(key)
    if m is None:
        return False
    return any(abs(100 - share - float(m.group(1))) < 1e-9 for share in removed_shares(source))


def states_approximately(source: str, hedged: Hedged) -> bool:
    """Does `source` state a number close to `hedged` (a percentage for a percentage, a factor
    also as a percentage more; each also as a change "from A to B": relative, factor or difference)?"""
    lowered = source.lower().replace(",", "")
    values = [float(m.group(1)) for m in _SOURCE_NUMBER.finditer(lowered) if bool(m.group(2)) == hedged.percent]
    if hedged.factor:
        values += [1 + float(m.group(1)) / 100 for m in _PERCENT_MORE.finditer(lowered)]
    for m in _FROM_TO.finditer(lowered):
        before, after = float(m.group(1)), float(m.group(3))
        first, second = ("%" if u == "percent" else u for u in (m.group(2), m.group(4)))
        same_unit = first == second or (second is None and first != "%")  # "from 80 GB to 19.5"
        if before > 0 and after > 0 and same_unit:
            if hedged.percent:
                values.append(abs(after - before) / before * 100)
            elif hedged.factor:
                values.append(max(before, after) / min(before, after))
            else:  # "boosting PSNR from 28.53 dB to 33.49 dB": "by almost 5 dB"
                values.append(abs(after - before))
    tolerance = HEDGE_TOLERANCE * hedged.value
    if hedged.side > 0 and hedged.value > 0:
        tolerance = max(tolerance, 10 ** math.floor(math.log10(hedged.value)))
    for value in values:
        gap = value - hedged.value
        if abs(gap) <= tolerance and gap * hedged.side >= 0:
            return True
    return False


# Capitalised words inside a question (not its first word) usually name something, and a number
# right after a name is part of it ("Stable Diffusion 3", "Llama 2").
# (letters of any script after the capital: "Erdős", "Poincaré", "Schrödinger" are whole names)
_NAMED = re.compile(r"(?<=[a-z0-9,;:] )([A-Z][^\W\d_A-Z]+(?:[^\W_]|-)*)")
_HONORIFICS = frozenset("Mr Mrs Ms Dr Prof St".split())
_VERSIONED = re.compile(r"\b([A-Z](?:[^\W\d_]|-)*[ -]\d+(?:\.\d+)?)\b")


# Abbreviations of the field and the words they stand for: `spells_out` needs three letters and
# the exact long form, and a question's "code LMs" or "code LLMs" is about papers on code language
# models however their abstracts write it ("large" is how the field says it, not a restriction).
# Domain usage, not fitted to any suite.
_FIELD_SHORT = {
    "lm": ("language model", "llm"),
    "llm": ("language model", "lm"),
    "rl": ("reinforcement learning",),
    "ml": ("machine learning",),
    "dl": ("deep learning",),
    "ai": ("artificial intelligence",),
    "qa": ("question answering",),
    "mt": ("machine translation",),
    "ir": ("information retrieval",),
    "kd": ("knowledge distillation",),
    "lr": ("learning rate",),
    "nn": ("neural network",),
    "cv": ("computer vision",),
}


def _states_short(text: str, key: str) -> bool:
    """Does `text` state an abbreviation of the field (`key`, "lm" or "llms") by its words?"""
    forms = _FIELD_SHORT.get(key) or (_FIELD_SHORT.get(key[:-1], ()) if key.endswith("s") else ())
    lowered = _lowered(text)
    for form in forms:
        if " " not in form:
            if contains_key(text, form) or contains_key(text, form + "s"):
                return True
        elif re.search(r"\b" + r"[\s-]+".join(map(re.escape, form.split())) + r"s?\b", lowered):
            return True
    return False


def mentions(text: str, term: str) -> bool:
    """Does `text` state the specific term `term` (as `specific_terms` gives it), whole? An
    acronym is also stated by the words it stands for ("MLE": "maximum likelihood estimation")."""
    keys = key_tokens(term) or {normalise_key(term)}
    if all(
        contains_key(text, k) or (k.endswith("s") and contains_key(text, k[:-1])) or _states_short(text, k)
        for k in keys
    ):
        return True
    return sum(c.isupper() for c in term) >= 2 and spells_out(text, term)


# "top-1 accuracy" names a kind of measurement, as "accuracy" does, not a model or dataset: an
# abstract reporting accuracy need not spell out its cutoff for the question to be on its topic.
_METRIC_CUTOFF = re.compile(r"top[-\s]?\d+", re.I)


def specific_terms(question: str, keys: set[str] | None = None) -> list[str]:
    """Numbers, acronyms and names in the question, as typed; `keys` are its `key_tokens` when
    the caller has them already."""
    found = re.findall(r"[^\W_][\w.+-]*[\w+]|\d", question)
    keys = key_tokens(question) if keys is None else keys
    out = [t for t in found if t and (key_tokens(t) & keys)]
    # a name with a modifier ("Pile-trained", "BERT-based") names the Pile, BERT
    out += [
        n
        for m in _NAMED.finditer(question)
        if (n := _MODIFIER.sub("", m.group(1))) not in out
        and not (n in _HONORIFICS and question.startswith(".", m.end()))  # "Mr. TyDi": the name is TyDi
    ]
    out += [v for v in _VERSIONED.findall(question) if v not in out]
    # "Gemini" and "1.5" are already checked as part of "Gemini 1.5"
    out = list(dict.fromkeys(out))  # a name the question repeats is one term
    out = [t for t in out if not _METRIC_CUTOFF.fullmatch(t)]
    return [t for t in out if not any(t != o and t.lower() in o.lower() for o in out)]


_DEFINITION = re.compile(r"\(([A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*)s?\)")


def acronyms(text: str) -> dict[str, str]:
    """Acronyms defined in a text as "Long Form Words (LFW)", mapped to their long form."""
    found: dict[str, str] = {}
    for match in _DEFINITION.finditer(text):
        acronym = match.group(1)
        letters = sum(c.isupper() for c in acronym)
        words = re.split(r"[\s-]+", text[: match.start()].strip())[-8:]
        for back in range(letters, len(words) + 1):
            if words[-back][:1].lower() == acronym[0].lower():
                found.setdefault(acronym, " ".join(words[-back:]))
                break
    return found


# Words that take no letter of an acronym ("current and past" is no "CAP", "demonstrating the
# effect" no "DTE"); "of" may ("mixture of experts", MoE).
_NOT_INITIALS = frozenset("the a an and or but to is are was were be we our this that it its".split())


def spells_out(source: str, acronym: str) -> bool:
    """Does `source` state the words `acronym` stands for, their initials in order ("maximum
    likelihood estimation" for "MLE")? A writer may shorten what an abstract spells out. Three
    letters at least: two initials in a row occur by chance in most abstracts."""
    if not 3 <= len(acronym) <= 6 or not acronym.isalpha():
        return False
    words = r"\w*[\s-]+".join(re.escape(c) for c in acronym.lower())
    for m in re.finditer(rf"\b(?={words}\w*)", source.lower()):
        phrase = re.findall(r"\w+", source[m.start() :].lower())[: len(acronym)]
        if not _NOT_INITIALS & set(phrase):
            return True
    return False
