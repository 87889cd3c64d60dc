"""Prompt templates, read from the files in prompts/ (str.format placeholders)."""

from __future__ import annotations

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


def _data(text: str) -> str:
    """Source text cannot close or open the tags that delimit it."""
    return text.replace("<source", "&lt;source").replace("</source", "&lt;/source").replace("</sources", "&lt;/sources")


def sources_block(sources: list[tuple[str, str]]) -> str:
    return "\n".join(
        render("source", n=n, title=_data(title), abstract=_data(abstract))
        for n, (title, abstract) in enumerate(sources, start=1)
    )
