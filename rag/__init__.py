"""rag: answers questions about research papers from their abstracts, with citations checked."""

__version__ = "0.1.0"
