"""`rag eval --beir DIR`: a BEIR-format dataset through the same ingest and retrieval, scored
with nDCG@10 and Recall@100 so the figures compare with published BEIR tables."""

from __future__ import annotations

import csv
import json
import re
import tempfile
from pathlib import Path

from rag.config import Settings
from rag.errors import RagError
from rag.ingest import ingest
from rag.metrics import retrieval_metrics
from rag.retrieval import Mode
from rag.workspace import Workspace


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RagError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
    return rows


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            try:
                score = int(row["score"])
            except (KeyError, TypeError, ValueError):
                raise RagError(f"{path}: rows need query-id, corpus-id and an integer score") from None
            if score > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = score
    return qrels


def evaluate_beir(folder: Path, settings: Settings, retrievers: list[Mode]) -> dict:
    paths = {name: folder / name for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}
    for path in paths.values():
        if not path.is_file():
            raise RagError(f"{folder} is not a BEIR dataset: {path} is missing")
    qrels = _qrels(paths["qrels/test.tsv"])
    queries = {str(q["_id"]): q["text"] for q in _read_jsonl(paths["queries.jsonl"]) if str(q["_id"]) in qrels}
    collection = "beir-" + re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    ws = Workspace(settings.model_copy(update={"collection": collection}))
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "corpus.jsonl"
        with converted.open("w", encoding="utf-8") as out:
            for doc in _read_jsonl(paths["corpus.jsonl"]):
                text = " ".join(str(doc.get("text", "")).split())
                if not text:
                    continue
                title = " ".join(str(doc.get("title") or "").split()) or " ".join(text.split()[:12])
                out.write(json.dumps({"id": str(doc["_id"]), "title": title, "abstract": text}) + "\n")
        report = ingest(ws.store, ws.embedder, [converted], prune=True)
    results = {}
    for mode in retrievers:
        ranked = {
            qid: [h.paper_id for h in ws.retriever.search(text, k=100, mode=mode).results]
            for qid, text in queries.items()
        }
        figures = retrieval_metrics({q: qrels[q] for q in queries}, ranked, ["nDCG@10", "R@100"])
        results[mode] = {m: round(v, 4) for m, v in figures.items()}
    return {"dataset": str(folder), "documents": report.papers, "queries": len(queries), "retrieval": results}
