"""The same question gets the same retrieval, the same abstention decision and the same figures in
every process: approximate vector search and hash-ordered sets once made `rag eval` figures move
by 0.02 between two runs of the same code, which a baseline gate cannot tell from a regression."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import run_rag, write_jsonl

QUERIES = [
    "Which papers use dense connections between layers?",
    "FP8 versus INT8 quantization",
    "robot grasping with diffusion",
    "mixture of experts routing",
]

DENSE = """
import json, sys
from rag.config import Settings
from rag.workspace import Workspace
ws = Workspace(Settings())
out = []
for q in json.loads(sys.argv[1]):
    vector = ws.embedder.embed([q])[0].tolist()
    out.append([[h.chunk_id, round(h.similarity, 6)] for h in ws.store.dense(vector, 60)])
print(json.dumps(out))
"""


def test_dense_search_returns_the_same_chunks_in_every_process(bundled_dir, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(bundled_dir))
    runs = []
    for _ in range(3):  # each process builds its own vector index graph
        proc = subprocess.run(
            [sys.executable, "-c", DENSE, json.dumps(QUERIES)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    assert all(len(hits) == 60 for hits in runs[0])
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_counterfactual_decisions_do_not_depend_on_the_hash_seed(bundled_dir, tmp_path):
    """Questions whose rarest words tie in IDF: the words kept must not follow set order."""
    suite = write_jsonl(
        tmp_path / "suite.jsonl",
        [
            {
                "id": "a",
                "question": "teaching a student network that copies the teacher's architecture and ends up better",
                "type": "single",
                "gold": ["Born Again Neural Networks"],
            },
            {
                "id": "b",
                "question": "How much does density-aware post-training weight-only quantization reduce "
                "perplexity loss relative to the best baseline on LLaMA and on LLaMA-2?",
                "type": "detail",
                "gold": ["DAQ: Density-Aware Post-Training Weight-Only Quantization For LLMs"],
                "key_facts": ["22.8%", "19.6%"],
            },
        ],
    )
    decisions = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"out{seed}"
        proc = run_rag(
            "eval", str(suite), "--retrievers", "hybrid", "--counterfactual", "--out", str(out),
            env={"RAG_DATA_DIR": str(bundled_dir), "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads((out / "report.json").read_text())
        decisions.append(
            [
                (q["id"], q["ranked"]["hybrid"], q["answers"]["extractive"], q["counterfactual"]["extractive"])
                for q in report["per_question"]
            ]
        )
    assert len(decisions[0]) == 2
    assert decisions[1] == decisions[0] and decisions[2] == decisions[0]
