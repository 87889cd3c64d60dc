"""The Textual chat (`rag chat`): widgets and the app, a thin layer over rag.answer."""
