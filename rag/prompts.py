"""Prompt templates, read from the files in prompts/ (str.format placeholders)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

ABSTAIN_PHRASE = "The sources do not answer this question."


def _folder() -> Path:
    packaged = Path(str(resources.files("rag") / "_prompts"))  # inside an installed wheel
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "prompts"


@cache
def template(name: str) -> str:
    return (_folder() / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    return template(name).format(abstain_phrase=ABSTAIN_PHRASE, **values).strip()


# `<source`, `</SOURCE>`, `< / Sources` ...: any spelling a model might read as a delimiter.
_TAG = re.compile(r"<(?=\s*/?\s*sources?\b)", re.IGNORECASE)


def escape_tags(text: str) -> str:
    """Source text cannot close or open the tags that delimit it, in any letter case or spacing."""
    return _TAG.sub("&lt;", text)


def sources_block(sources: list[tuple[str, str]], numbers: list[int] | None = None) -> str:
    """The sources as delimited data, numbered 1.. or by `numbers` (a packed prompt may skip some)."""
    numbers = numbers or list(range(1, len(sources) + 1))
    return "\n".join(
        render("source", n=n, title=escape_tags(title), abstract=escape_tags(abstract))
        for n, (title, abstract) in zip(numbers, sources, strict=True)
    )
