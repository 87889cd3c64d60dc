"""Transitional: `rag eval` (rag/cli.py) imports `open_llm` from here until it takes `Workspace.llm`;
delete this module then."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.llm import LLM


def open_llm(settings: Settings) -> LLM | None:
    from rag.workspace import Workspace

    return Workspace(settings).llm
