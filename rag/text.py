"""Small text tools shared by answering, abstention and grounding: sentences, terms, key tokens."""

from __future__ import annotations

import re
from functools import lru_cache

from rag.lexical import analyse

# A sentence ends at . ! or ? (optionally followed by citations) before white space and a capital,
# digit, quote or bracket; common abbreviations do not end sentences.
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|et al|vs|cf|Fig|Eq|approx|resp|Mr|Dr|No)\.$", re.I)
_SPLIT = re.compile(r"(?<=[.!?])((?:\s*\[[\d,;\s]+\])*)\s+(?=[A-Z0-9\"'(*]|\[(?!\d))")
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")

_NEGATIONS = frozenset(
    "not no never none neither nor cannot can't don't doesn't didn't isn't aren't wasn't weren't "
    "won't fails fail failed without unable lack lacks".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph; a citation after the full stop stays with its sentence."""
    out: list[str] = []
    for line in text.splitlines():
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
                if _ABBREV.search(current.rstrip()):
                    current += " "
                    continue
                out.append(current.strip())
                current = ""
        if current.strip():
            out.append(current.strip())
    return out


def citations_of(sentence: str) -> list[int]:
    nums: list[int] = []
    for group in CITATION.findall(sentence):
        for n in re.split(r"[,;]", group):
            if n.strip().isdigit() and int(n) not in nums:
                nums.append(int(n))
    return nums


def strip_citations(sentence: str) -> str:
    return CITATION.sub("", sentence).replace("**", "").strip()


def terms(text: str) -> set[str]:
    """Stemmed content words (the same analysis BM25 uses)."""
    return set(analyse(text))


_KEY_TOKEN = re.compile(r"[A-Za-z0-9](?:[\w.%+-]|,(?=\d{3}))*[\w%]|\d")  # "500,000" is one token


def _is_key(token: str) -> bool:
    """Numbers, acronyms and named methods: tokens with a digit or an inner capital."""
    core = token.strip(".-")
    if not core:
        return False
    if any(c.isdigit() for c in core):
        return True
    return sum(c.isupper() for c in core) >= 2 or (core[0].islower() and any(c.isupper() for c in core))


def normalise_key(token: str) -> str:
    token = token.lower().rstrip(".")
    token = token.replace(",", "")
    return re.sub(r"[-‐–—\s]", "", token)


_MODIFIER = re.compile(r"(?<=[A-Z0-9])-[a-z]{3,}$")


def key_tokens(text: str) -> set[str]:
    """Tokens that must appear in a source for a sentence to be supported by it."""
    out = set()
    for tok in _KEY_TOKEN.findall(strip_citations(text).replace("×", "x")):
        tok = _MODIFIER.sub("", tok)  # "GPT-4-generated" states GPT-4; "BERT-based", BERT
        if _is_key(tok):
            # a bare list number like "1" or "(2)" carries no claim
            if tok.isdigit() and len(tok) == 1:
                continue
            out.add(normalise_key(tok))
    return out


_KEY_SEPARATORS = r"[\s,\-‐–—]*"


@lru_cache(maxsize=8192)
def _key_pattern(key: str) -> re.Pattern[str]:
    """A normalised key as a whole token of a source: spacing and hyphens may differ ("Llama 2",
    "Llama-2", "llama2"), a plural "s" may follow, but it never matches inside another token:
    "BERT" is not in "RoBERTa", "T5" not in "mT5", 2 not in 12 or 1.2."""
    body = _KEY_SEPARATORS.join(re.escape(c) for c in key)
    suffix = "(?:x|×)?" if key[-1].isdigit() else "s?"  # "1.5" is stated by "1.5x"
    return re.compile(rf"(?<![a-z0-9])(?<![0-9][.,]){body}{suffix}(?![a-z0-9])(?![.,][0-9])")


@lru_cache(maxsize=4096)
def _lowered(text: str) -> str:
    return text.lower().replace("×", "x")


def contains_key(source: str, key: str) -> bool:
    """Does `source` state the key token `key` (from `key_tokens` or `normalise_key`) as a whole?"""
    return bool(key) and _key_pattern(key).search(_lowered(source)) is not None


def negated(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    return any(w in _NEGATIONS for w in words) or "n't" in text.lower()


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
