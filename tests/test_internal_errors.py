"""No command shows a traceback for an unexpected failure unless RAG_DEBUG is set.

Each case runs `rag` as a real process with one component replaced by one that raises an
exception rag does not know (a bug, or a library failing in a new way)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

_RUNNER = """
import sys
import importlib

module, attribute = sys.argv[1].rsplit(".", 1)
owner, _, name = attribute.partition(":")
target = importlib.import_module(module)
if name:
    target = getattr(target, owner)
else:
    name = owner

def broken(*args, **kwargs):
    raise RuntimeError("component failed\\nwith a second line")

setattr(target, name, broken)
from rag.cli import main
sys.argv = ["rag", *sys.argv[2:]]
main()
"""

CASES = [
    ("rag.retrieval.Retriever:search", ["search", "anything"]),
    ("rag.retrieval.Retriever:search", ["ask", "which papers compare FP8 vs INT8?"]),
    ("rag.ingest.ingest", ["ingest"]),
    ("rag.store.Store:counts", ["stats"]),
    ("rag.config.describe", ["config"]),
    ("rag.evaluation.harness.run_suite", ["eval", "--retrievers", "hybrid", "--answerers", ""]),
]


def _run(target: str, args: list[str], data_dir, debug: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    env.pop("RAG_DEBUG", None)
    if debug:
        env["RAG_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, target, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.parametrize(("target", "args"), CASES, ids=[c[1][0] for c in CASES])
def test_unexpected_failure_is_one_line(target, args, bundled_dir, tmp_path):
    proc = _run(target, [*args, *(["--out", str(tmp_path)] if args[0] == "eval" else [])], bundled_dir)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("rag: error:")]
    assert lines == [
        "rag: error: internal error: RuntimeError: component failed with a second line "
        "(set RAG_DEBUG=1 for the traceback)"
    ]


def test_rag_debug_shows_the_traceback(bundled_dir):
    proc = _run("rag.retrieval.Retriever:search", ["search", "anything"], bundled_dir, debug=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: component failed" in proc.stderr
