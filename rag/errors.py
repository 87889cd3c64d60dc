"""The one exception type the CLI and the chat show as a one-line message instead of a traceback."""


class RagError(Exception):
    """A problem the user can fix; the message says what happened and what to do."""
