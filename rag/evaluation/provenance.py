"""What produced a report, so two reports can be told apart and a figure traced to its code."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def provenance(config: dict) -> dict:
    """What produced a report: configuration, git commit, package versions, time."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions: dict[str, str | None] = {}
    for pkg in ("rag", "chromadb", "bm25s", "llama-index-core", "openai", "ir-measures", "onnxruntime"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "config": config,
        "git_commit": commit or None,
        "versions": versions,
        "python": platform.python_version(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
