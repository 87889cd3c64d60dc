"""The retriever names, written once: the CLI, the settings, the evaluation and the chat read them
here (a module with no imports, so `rag --help` stays fast)."""

from typing import Literal, get_args

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = get_args(Mode)
