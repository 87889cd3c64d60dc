"""Load check: parallel `rag ask` processes and an ingest on one data directory at once.

    python eval/bench_load.py [--asks 4] [--rounds 3]

Builds the bundled store in a temporary folder, then runs ROUNDS rounds; in each, ASKS `rag ask`
processes (extractive) and one `rag ingest` of a small extra file start together. Reports every
process that failed (goal: none) and the p50/p95 latency of the asks. Bounded in count and time;
nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "which papers compare FP8 vs INT8?",
    "How many queries does the LitSearch benchmark contain?",
    "How often does the capacity density of LLMs double?",
    "lossless compression of model weights",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = os.environ.get("RAG_EMBED_MODEL_DIR") or str(REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text("")
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(Path(tmp) / "data"),
            "RAG_EMBED_MODEL_DIR": model,
            "RAG_CONFIG": str(config),
            "RAG_LLM": "off",
        }
        subprocess.run([sys.executable, "-m", "rag", "ingest"], env=env, check=True, capture_output=True)
        latencies: list[float] = []
        failures: list[str] = []
        for round_ in range(args.rounds):
            extra = Path(tmp) / f"extra-{round_}.jsonl"
            extra.write_text(
                "".join(
                    json.dumps(
                        {
                            "title": f"Load check paper {round_}-{i}",
                            "abstract": f"A paper {i} written for the load check.",
                        }
                    )
                    + "\n"
                    for i in range(20)
                )
            )
            started = time.perf_counter()
            procs = [
                (
                    f"ask {q!r}",
                    time.perf_counter(),
                    subprocess.Popen(
                        [sys.executable, "-m", "rag", "ask", q, "--json"],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
                for q in (QUESTIONS * args.asks)[: args.asks]
            ]
            procs.append(
                (
                    "ingest",
                    started,
                    subprocess.Popen(
                        [sys.executable, "-m", "rag", "ingest", str(extra)],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
            for name, t0, proc in procs:
                try:
                    out, err = proc.communicate(timeout=300)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    failures.append(f"round {round_}: {name} timed out")
                    continue
                if proc.returncode != 0 or "Traceback" in err:
                    failures.append(f"round {round_}: {name} exit {proc.returncode}: {err.strip()[-200:]}")
                elif name.startswith("ask"):
                    latencies.append(time.perf_counter() - t0)
                    json.loads(out)  # a whole answer came back
        stats = subprocess.run([sys.executable, "-m", "rag", "stats"], env=env, capture_output=True, text=True)
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(
        f"{args.rounds} rounds of {args.asks} parallel `rag ask` + 1 `rag ingest`: "
        f"{len(failures)} failed; ask latency p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s"
    )
    print(stats.stdout.strip())
    for line in failures:
        print("  " + line)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
