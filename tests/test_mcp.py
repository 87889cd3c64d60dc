"""`rag mcp` end to end: the MCP SDK's own client spawns `python -m rag mcp` over stdio against
the real bundled store and calls each tool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

mcp = pytest.importorskip("mcp")


async def test_tools_over_stdio(bundled_dir: Path) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = {
        "RAG_DATA_DIR": str(bundled_dir),
        "RAG_EMBED_MODEL_DIR": os.environ["RAG_EMBED_MODEL_DIR"],
        "RAG_CONFIG": os.environ["RAG_CONFIG"],
        "RAG_LLM": "off",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp"], env=env, cwd=str(REPO))
    async with Client(params, read_timeout_seconds=120) as client:
        from rag import __version__

        assert client.server_info.version == __version__
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"search", "ask", "check"}

        found = await client.call_tool("search", {"query": "LitSearch literature search benchmark", "k": 3})
        assert not found.is_error
        top = found.structured_content["results"][0]
        assert top["title"] == "LitSearch: A Retrieval Benchmark for Scientific Literature Search"

        asked = await client.call_tool("ask", {"question": "How many queries does the LitSearch benchmark contain?"})
        answer = asked.structured_content
        assert not asked.is_error and not answer["abstained"]
        assert "597" in answer["answer"]
        assert answer["sentences"][0]["verdict"] == "supported"
        assert answer["citations"][0]["paper_id"] == top["paper_id"]

        checked = await client.call_tool(
            "check",
            {
                "text": "LitSearch has 597 literature search queries [1]. LitSearch has 9000 queries [1]. "
                "It cites nothing given [2].",
                "papers": [top["paper_id"]],
            },
        )
        sentences = checked.structured_content["sentences"]
        assert [s["verdict"] for s in sentences] == ["supported", "unsupported", "bad_citation"]
        assert "597" in sentences[1]["closest"]

        # a refused call says why, in the line the CLI prints, and k is bounded as on the CLI
        empty = await client.call_tool("search", {"query": "   "})
        assert empty.is_error and empty.content[0].text.endswith(": the query is empty; give some words to search for")
        many = await client.call_tool("ask", {"question": "What is LitSearch?", "k": 51})
        assert many.is_error and many.content[0].text.endswith(": k must be a whole number from 1 to 50, not 51")
        huge = await client.call_tool("check", {"text": "LitSearch has 597 queries [1]. " * 4000, "papers": ["x"]})
        assert huge.is_error and "characters long; check at most 100,000 at a time" in huge.content[0].text
        blank = await client.call_tool("check", {"text": "\x1b[2J ", "papers": []})
        assert blank.is_error and blank.content[0].text.endswith(
            ": the text is empty; give a passage whose sentences cite papers as [n]"
        )
        # arguments the schema refuses, or that a tool does not take: one line naming what it takes
        missing = await client.call_tool("search", {})
        assert missing.is_error and missing.content[0].text == "search: query is missing (it takes query, k)"
        wrong = await client.call_tool("check", {"text": "LitSearch [1].", "papers": "litsearch"})
        assert wrong.is_error and "\n" not in wrong.content[0].text and "pydantic" not in wrong.content[0].text
        assert wrong.content[0].text.startswith("check: papers is wrong: input should be a valid list")
        extra = await client.call_tool("search", {"query": "LitSearch", "extra": 1})
        assert extra.is_error and extra.content[0].text == "search takes no argument 'extra'; it takes query, k"
        search_tool = next(t for t in (await client.list_tools()).tools if t.name == "search")
        assert search_tool.input_schema["properties"]["k"]["maximum"] == 100
        assert "\n" not in (search_tool.description or "")


def test_check_reads_citation_ranges_and_no_marker_is_left_in_the_text(workspace) -> None:
    from rag.draft import Checker, CorpusIndex
    from rag.mcp_server import check_passage

    papers = sorted(workspace.store.titles())[:2]
    checker = Checker(CorpusIndex.from_store(workspace.store), workspace.retriever, workspace.verifier)
    text = "Both papers study widget recall [1-2]. A third source is named [1-3]. No source at all [-1]."
    sentences = check_passage(text, papers, checker)["sentences"]
    assert [s["citations"] for s in sentences] == [[1, 2], [1, 2, 3], [0]]
    assert [s["verdict"] for s in sentences][1:] == ["bad_citation", "bad_citation"]
    assert sentences[0]["verdict"] != "uncited"
    assert not any("[" in s["text"] for s in sentences)
