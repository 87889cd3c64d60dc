"""Text that reaches the terminal: control characters and escape sequences removed.

Titles and abstracts come from files anyone can write, and replies from whatever server answers
at the endpoint. A terminal obeys what it prints: ESC[2J clears the screen, OSC 0 retitles the
window, OSC 8 hides a link behind text, U+009B is a one-character CSI, and BEL, backspace and
carriage return rewrite what was shown. So text is cleaned once, where it enters: corpus records
when they are read (before hashing, so the store only ever holds clean text), every LLM delta as
it arrives (`StreamCleaner`, since a sequence can be split across deltas), and typed questions.

Escape sequences are removed whole, so no "[2J" residue is left; other control characters
(C0 except newline and tab, DEL, C1) become spaces, CR and CRLF become newlines, bidi overrides
and isolates, zero-width spaces and word joiners are removed, and unpaired surrogates (which
cannot be printed or stored as UTF-8) become U+FFFD.
"""

from __future__ import annotations

import re
import unicodedata

# ECMA-48 sequences, 7-bit (ESC ...) and 8-bit (C1) forms:
#   CSI: ESC [ or U+009B, parameter bytes, intermediate bytes, one final byte
#   string commands (OSC, DCS, SOS, PM, APC): introducer, payload, then BEL, ESC \ or U+009C
#   other escapes: ESC, intermediate bytes, one final byte (ESC c resets the terminal)
# String payloads are bounded so a stray introducer cannot make the scan quadratic.
_PAYLOAD = r"[^\x07\x1b\x9c]{0,4096}"
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    rf"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]){_PAYLOAD}(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
# A sequence that has started but not ended at the end of a delta: held back for the next one.
_PARTIAL = re.compile(
    r"(?:(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*"
    rf"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]){_PAYLOAD}\x1b?"
    r"|\x1b[\x20-\x2f]*|\r)\Z"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Bidi embeddings, overrides and isolates reorder what the terminal shows ("Trojan Source": a title
# "Wombat \u202etxt.exe" is displayed "Wombat exe.txt"); they are removed, and so are zero-width
# spaces, word joiners and a stray byte-order mark, which split a word the terminal shows whole.
# Marks (U+200E/F) and joiners (U+200C/D), which scripts need, are kept.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")
# Every sequence starts with a control character (ESC or a C1 one): text without any, nor CR, a
# surrogate or a bidi control, is already clean. One scan instead of five for nearly every record.
_NEEDS_CLEANING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")


def clean(text: str) -> str:
    """`text` without escape sequences or control characters; newlines and tabs are kept."""
    if not _NEEDS_CLEANING.search(text):
        return text
    text = _SEQUENCE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    text = _BIDI.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def has_surrogate(text: str) -> bool:
    """True when `text` holds an unpaired surrogate (e.g. from a JSON "\\ud800" escape)."""
    return _SURROGATE.search(text) is not None


# Invisible format characters: zero-width spaces and joiners, a byte-order mark, bidi embeddings and
# overrides. A question of nothing else is empty, and none of them is a word of one.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def invisible_removed(text: str) -> str:
    """`text` without invisible format characters (joiners included): for comparing, not showing."""
    return _INVISIBLE.sub("", text)


def normalise_question(text: str) -> str:
    """A typed question or query: cleaned, invisible characters dropped, white space collapsed."""
    return " ".join(invisible_removed(clean(text)).split())


# A question longer than this is a pasted document, not a question: retrieval and the answerability
# check grow faster than its length (a megabyte took minutes), so it is refused at once.
MAX_QUESTION_CHARS = 4000


def too_long(text: str) -> str | None:
    """Why a (normalised) question or query is refused for its length, or None."""
    if len(text) <= MAX_QUESTION_CHARS:
        return None
    return (
        f"it is {len(text):,} characters long; keep it under {MAX_QUESTION_CHARS:,} "
        "(to check a draft against the papers, use rag check)"
    )


class StreamCleaner:
    """`clean` over a stream of deltas: a sequence split across deltas is still removed whole."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text = self._held + delta
        partial = _PARTIAL.search(text)
        cut = partial.start() if partial else len(text)
        self._held = text[cut:]
        return clean(text[:cut])

    def flush(self) -> str:
        """What is left at the end of the stream; an unfinished sequence is dropped."""
        held, self._held = self._held, ""
        return "\n" if held == "\r" else ""


class ReasoningFilter:
    """Drops a reasoning model's `<think>...</think>` from a stream of deltas: DeepSeek-R1, Qwen3 and
    QwQ served by Ollama or llama.cpp open their reply with it, where it would be shown and checked
    as the answer. Only a block before the answer's first word counts (an answer may mention the
    tag); a tag split across deltas is held back until it is whole."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._held = ""
        self._inside = False
        self._answering = False  # the answer has begun: no reasoning block opens after that
        self.saw = False  # whether any reasoning came

    def feed(self, delta: str) -> str:
        text, self._held = self._held + delta, ""
        out = []
        while text and not self._answering:
            tag = self.CLOSE if self._inside else self.OPEN
            if not self._inside:
                lead = len(text) - len(text.lstrip())
                if not self.OPEN.startswith(text[lead:][: len(self.OPEN)]):  # the answer itself begins
                    self._answering = True
                    break
            at = text.find(tag)
            if at >= 0:
                if not self._inside:
                    out.append(text[:at])
                self._inside, self.saw = not self._inside, True
                text = text[at + len(tag) :]
                continue
            keep = next((k for k in range(min(len(tag) - 1, len(text)), 0, -1) if tag.startswith(text[-k:])), 0)
            if not self._inside:
                out.append(text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            text = ""
        out.append(text if self._answering else "")
        return "".join(out)

    def flush(self) -> str:
        """What is left at the end of the stream: a held partial tag is text, unfinished reasoning is not."""
        held, self._held = self._held, ""
        return "" if self._inside else held


class ReplyCleaner:
    """What a model's streamed reply passes through: `StreamCleaner`, then `ReasoningFilter`."""

    def __init__(self) -> None:
        self._clean = StreamCleaner()
        self.reasoning = ReasoningFilter()

    def feed(self, delta: str) -> str:
        return self.reasoning.feed(self._clean.feed(delta))

    def flush(self) -> str:
        return self.reasoning.feed(self._clean.flush()) + self.reasoning.flush()


def unaccented(text: str) -> str:
    """`text` without accents ("Über" is "Uber"): a writer may leave them out."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
