"""`rag eval --beir DIR`: a BEIR-format dataset through the same ingest and retrieval, scored
with nDCG@10 and Recall@100 so the figures compare with published BEIR tables."""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.evaluation.metrics import retrieval_metrics
from rag.ingest import ingest
from rag.jsonl import read_jsonl
from rag.retrievers import Mode
from rag.workspace import Workspace


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is not None and not {"query-id", "corpus-id", "score"} <= set(reader.fieldnames):
            raise RagError(f"{path}: the first line must be the header query-id, corpus-id, score (tab-separated)")
        for row in reader:
            try:
                score = int(row["score"])
            except (KeyError, TypeError, ValueError):
                raise RagError(f"{path}: rows need query-id, corpus-id and an integer score") from None
            if score > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = score
    return qrels


def _rows(path: Path, *keys: str) -> Iterator[dict[str, Any]]:
    """The objects of a BEIR JSON Lines file, each checked for the keys the evaluation reads."""
    for number, row in read_jsonl(path):
        for key in keys:
            if key not in row:
                raise RagError(f"{path}:{number}: no {key!r} field")
        yield row


def evaluate_beir(folder: Path, ws: Workspace, retrievers: list[Mode]) -> dict:
    """Ingest the dataset into a collection of its own beside `ws`'s, then score each retriever."""
    paths = {name: folder / name for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}
    for path in paths.values():
        if not path.is_file():
            raise RagError(f"{folder} is not a BEIR dataset: {path} is missing")
    qrels = _qrels(paths["qrels/test.tsv"])
    if not qrels:
        raise RagError(f"{paths['qrels/test.tsv']}: no relevance judgment with a score above 0; nothing to measure")
    queries = {str(q["_id"]): q["text"] for q in _rows(paths["queries.jsonl"], "_id", "text") if str(q["_id"]) in qrels}
    if not queries:
        raise RagError(f"{paths['queries.jsonl']}: none of the judged queries is in it; nothing to measure")
    collection = "beir-" + re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    with Workspace(ws.settings.model_copy(update={"collection": collection})) as own:
        with tempfile.TemporaryDirectory() as tmp:
            converted = Path(tmp) / "corpus.jsonl"
            with converted.open("w", encoding="utf-8") as out:
                for doc in _rows(paths["corpus.jsonl"], "_id"):
                    text = " ".join(str(doc.get("text", "")).split())
                    if not text:
                        continue
                    title = " ".join(str(doc.get("title") or "").split()) or " ".join(text.split()[:12])
                    out.write(json.dumps({"id": str(doc["_id"]), "title": title, "abstract": text}) + "\n")
            report = ingest(own.store, own.embedder, [converted], prune=True)
        results = {}
        for mode in retrievers:
            ranked = {
                qid: [h.paper_id for h in own.retriever.search(text, k=100, mode=mode).results]
                for qid, text in queries.items()
            }
            figures = retrieval_metrics({q: qrels[q] for q in queries}, ranked, ["nDCG@10", "R@100"])
            results[mode] = {m: round(v, 4) for m, v in figures.items()}
    return {"dataset": str(folder), "documents": report.papers, "queries": len(queries), "retrieval": results}
