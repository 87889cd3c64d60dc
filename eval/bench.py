"""Speed benchmarks for the README: prints one line per figure, with its target.

    python eval/bench.py            # needs RAG_EMBED_MODEL_DIR (or ../shared/models/all-MiniLM-L6-v2)

Each fresh-process figure is the median of several runs of a real `rag` process; the store is
built in a temporary folder, so nothing of yours is touched.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 5


def timed_process(args: list[str], env: dict, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def request_leaves_after(env: dict) -> float:
    """Seconds from starting `rag ask` with an LLM until its request reaches the endpoint."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    arrived: list[float] = []

    def accept() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        arrived.append(time.perf_counter())
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rag", "ask", "which papers compare FP8 vs INT8?"],
        env={**env, "OPENAI_BASE_URL": url, "RAG_LLM_TIMEOUT": "2"},
        capture_output=True,
    )
    thread.join(timeout=1)
    server.close()
    return arrived[0] - start if arrived else float("nan")


FIRST_SENTENCE = "FP8 formats outperform INT8 in workload coverage, model accuracy and suitability"


def first_text_after(env: dict) -> float:
    """Seconds from starting `rag ask` on a terminal until the answer's first sentence is on it,
    with an OpenAI-compatible server (tests/fakes.py) that streams a JSON-schema answer at once:
    the app's own share of the time to first token (start-up, retrieval, the request, partial JSON
    parsing, a sentence shown when the next begins), whatever the model adds."""
    import json
    import pty

    sys.path.insert(0, str(REPO))
    from tests.fakes import serve

    reply = json.dumps(
        {
            "sentences": [
                {"text": f"{FIRST_SENTENCE}.", "citations": [1]},
                {
                    "text": "For LLMs, FP8 activation consistently outshines its integer (INT8) equivalent.",
                    "citations": [2],
                },
            ]
        }
    )
    with serve([reply]) as server:
        master, slave = pty.openpty()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "ask", "which papers compare FP8 vs INT8?"],
            env={**env, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x", "RAG_LLM_MODEL": "m", "COLUMNS": "400"},
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.DEVNULL,
        )
        os.close(slave)
        seen, shown = b"", float("nan")
        while proc.poll() is None or seen == b"":
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            seen += data
            if FIRST_SENTENCE[:40].encode() in seen:
                shown = time.perf_counter() - start
                break
        proc.wait(timeout=60)
        os.close(master)
    return shown


def served_search(env: dict, query: str) -> float:
    """`timed_process` of `rag search` sent to a `rag serve` over the same store (started first,
    not timed, and stopped after)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert server.stderr is not None
    try:
        for line in server.stderr:
            if found := re.search(r"RAG_SERVER_URL=(\S+);", line):
                break
        else:
            raise RuntimeError("rag serve did not start")
        drain = threading.Thread(target=server.stderr.read, daemon=True)  # its request log
        drain.start()
        served_env = {**env, "RAG_SERVER_URL": found.group(1)}
        return timed_process([sys.executable, "-m", "rag", "search", query, "--json"], served_env)
    finally:
        server.terminate()
        server.wait(timeout=30)


CHAT_STARTUP = """
import time
t0 = time.perf_counter()
from rag.config import load_settings
from rag.tui.app import create_app
import asyncio

async def main():
    app = create_app(load_settings(llm="off"))
    async with app.run_test(size=(120, 40)) as pilot:
        first_frame = time.perf_counter() - t0
        while not app._store_ready.is_set():
            await pilot.pause(0.01)
        print(f"{first_frame:.3f} {time.perf_counter() - t0:.3f}")

asyncio.run(main())
"""


def chat_startup(env: dict) -> tuple[float, float]:
    """(seconds to the first frame with the question box, seconds until the store is loaded)."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", CHAT_STARTUP], env=env, check=True, capture_output=True, text=True)
        runs.append(tuple(float(x) for x in out.stdout.split()[-2:]))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    model_dir = os.environ.get("RAG_EMBED_MODEL_DIR") or str(REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2")
    data = tempfile.mkdtemp(prefix="rag-bench-")
    env = {**os.environ, "RAG_DATA_DIR": data, "RAG_EMBED_MODEL_DIR": model_dir, "RAG_CONFIG": f"{data}/none.toml"}
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(key, None)
    rag = [sys.executable, "-m", "rag"]

    t = time.perf_counter()
    subprocess.run([*rag, "ingest"], env=env, check=True, capture_output=True)
    first_ingest = time.perf_counter() - t
    noop = timed_process([*rag, "ingest"], env, runs=3)
    help_s = timed_process([*rag, "--help"], env)
    imports = timed_process([sys.executable, "-c", "import chromadb, onnxruntime"], env)
    search = timed_process([*rag, "search", "which papers compare FP8 vs INT8?", "--json"], env)
    served = served_search(env, "which papers compare FP8 vs INT8?")
    ask = timed_process([*rag, "ask", "which papers compare FP8 vs INT8?", "--json"], env)
    leaves = statistics.median(request_leaves_after(env) for _ in range(3))
    first_text = statistics.median(first_text_after(env) for _ in range(3))
    frame, loaded = chat_startup(env)

    sys.path.insert(0, str(REPO))
    os.environ.update({"RAG_DATA_DIR": data, "RAG_EMBED_MODEL_DIR": model_dir})
    from rag.config import load_settings
    from rag.evaluation.suite import load_suite
    from rag.workspace import Workspace

    ws = Workspace(load_settings())
    questions = [q.question for q in load_suite(REPO / "eval" / "suites" / "tune.jsonl", ws.store.titles()).questions]
    ws.retriever.search("warm up", k=10)
    latencies = []
    for q in questions:
        t = time.perf_counter()
        ws.retriever.search(q, k=10)
        latencies.append((time.perf_counter() - t) * 1000)

    rows = [
        ("rag --help", f"{help_s:.2f} s", "<= 0.5 s"),
        ("import chromadb, onnxruntime", f"{imports:.2f} s", "reference"),
        ("rag search, fresh process", f"{search:.2f} s ({search / imports:.2f}x the imports)", "<= 2x the imports"),
        ("rag search, fresh process via rag serve", f"{served:.2f} s ({served / search:.2f}x the local one)", "-"),
        (
            "retrieval in process, p50",
            f"{statistics.median(latencies):.1f} ms (p95 {sorted(latencies)[int(0.95 * len(latencies))]:.1f} ms)",
            "<= 30 ms",
        ),
        ("first ingest, bundled corpus", f"{first_ingest:.1f} s", "<= 30 s"),
        ("no-op re-ingest", f"{noop:.2f} s", "<= 3 s"),
        ("rag ask (extractive), fresh process", f"{ask:.2f} s", "<= 2.5 s"),
        ("rag ask with an LLM: request leaves after", f"{leaves:.2f} s", "<= 2.5 s"),
        ("rag ask with an LLM: first sentence shown after", f"{first_text:.2f} s (server answering at once)", "-"),
        ("rag chat: first frame, question box ready", f"{frame:.2f} s (store loaded at {loaded:.2f} s)", "<= 1.5 s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<34} target {target}")


if __name__ == "__main__":
    main()
