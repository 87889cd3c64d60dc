"""`rag serve`: one long-lived process keeps the store, the BM25 index, the embedder and the LLM
client loaded and answers search and ask over a small local HTTP API (server.py); with
`server_url` set, `rag search`, `rag ask`, `rag chat` and the MCP tools send their requests there
(client.py) instead of paying for those imports and loads in every process.

This module stays import-free: the CLI reads DEFAULT_PORT at start-up."""

DEFAULT_PORT = 8723
ENV = "RAG_SERVER_URL"
STREAM_TYPE = "application/x-ndjson"  # the content type of a streamed /ask reply
