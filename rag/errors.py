"""The one exception type the CLI and the chat show as a one-line message instead of a traceback."""


class RagError(Exception):
    """A problem the user can fix; the message says what happened and what to do."""


def quoted(text: str, limit: int = 60) -> str:
    """`text` in quotes for a one-line message: whitespace collapsed, cut at `limit` characters
    with an ellipsis, and backslashes left as typed (a repr would double those of LaTeX titles)."""
    flat = " ".join(text.split())
    return "'" + (flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…") + "'"
