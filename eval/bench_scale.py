"""Scale benchmark: how ingest and search costs grow with the store, for the README.

    python eval/bench_scale.py                        # 1k and 10k papers, real embeddings
    python eval/bench_scale.py --sizes 1000 --pool-vectors 100000
    python eval/bench_scale.py --sizes 1000 --chroma-url http://127.0.0.1:8131   # through a `chroma run`

Each size gets a synthetic corpus recombined from the bundled abstracts (sentences drawn across
abstracts, unique titles), ingested into a fresh data folder in a temporary directory, then:
ingest papers/s and its ratio to the embedder alone on the same chunk texts, a no-op re-ingest,
an incremental re-ingest of the whole grown file (100 papers added and 10 changed) beside the same
110 papers ingested into an empty store, 100 new papers ingested from a file of their own beside the
same file into an empty store, peak RSS of each child process (os.wait4), disk, a fresh-process
`rag search`, in-process search p50/p95, `rag stats`, and a `rag serve` on the store: search p50/p95
through it and a fresh-process `rag search` that uses it. Last, 1,000 new papers are ingested with
real embeddings into the store at its full size, beside the embedder alone on the same texts: the
ingest's speed at that store size, even when the first ingest used pooled vectors. It prints a
Markdown table with an extrapolation to 1M and 2.7M papers. The fresh-process `rag search` figure
is taken once every size is built, FRESH_ROUNDS times per size in turns across the sizes, so the
ratio between sizes is not the machine's drift between their runs.

`--pool-vectors N` ingests N papers with the project's own ingest but vectors drawn from a pool of
real MiniLM vectors of the bundled chunks plus noise (this machine embeds about 20 papers/s, so
100k real embeddings take hours); the table marks those rows. Everything after the first ingest
(re-ingests, search, stats) is real.

`--chroma-url URL` runs every step against that Chroma server (`chroma run --path DIR --port
8131`) instead of the embedded store, each size in collections of its own that are deleted at the
end; the disk figure then counts only the data folder (the BM25 index), not the server's. To put
the two side by side: run once with `--json local.json`, once with `--chroma-url URL --json
server.json`, then `--table local.json server.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 14

# Timed in a child process: the embedder alone on the chunk texts of a corpus file.
EMBED_ONLY = """
import json, sys, time
from rag.chunking import chunk_paper
from rag.config import load_settings
from rag.corpus import iter_papers
from rag.embedders import get_embedder
from pathlib import Path
emb = get_embedder(load_settings())
limit = int(sys.argv[2])
papers = [p for _, p in zip(range(limit), iter_papers(Path(sys.argv[1])))]
texts = [c.text for p in papers for c in chunk_paper(p, emb)]
emb.embed(texts[:32])
t = time.perf_counter()
for i in range(0, len(texts), 1024):
    emb.embed(texts[i : i + 1024])
print(json.dumps({"papers": len(papers), "chunks": len(texts), "seconds": time.perf_counter() - t}))
"""

# The project's ingest with vectors from a pool of real ones plus noise (--pool-vectors).
POOL_INGEST = """
import sys, zlib, time
import numpy as np
from pathlib import Path
from rag.config import load_settings
from rag.ingest import ingest
from rag.workspace import Workspace
ws = Workspace(load_settings())
pool = np.load(sys.argv[2])

class PoolEmbedder:
    def __init__(self, real):
        self.name, self.dimension, self.max_tokens = real.name, real.dimension, real.max_tokens
        self.count_tokens = real.count_tokens
    def warm(self):
        pass
    def embed(self, texts):
        rows = [pool[zlib.crc32(t.encode()) % len(pool)] for t in texts]
        noise = np.random.default_rng(len(texts)).normal(0, 0.02, (len(texts), pool.shape[1]))
        v = np.asarray(rows) + noise
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

t = time.perf_counter()
report = ingest(ws.store, PoolEmbedder(ws.embedder), [Path(sys.argv[1])])
print(report.added, time.perf_counter() - t)
"""

MAKE_POOL = """
import sys, numpy as np
from rag.chunking import chunk_paper
from rag.config import load_settings
from rag.corpus import bundled_corpus_path, iter_papers
from rag.embedders import get_embedder
emb = get_embedder(load_settings())
texts = [c.text for p in iter_papers(bundled_corpus_path()) for c in chunk_paper(p, emb)]
np.save(sys.argv[1], emb.embed(texts))
"""

SEARCH_LATENCY = """
import json, statistics, sys, time
from rag.config import load_settings
from rag.workspace import Workspace
ws = Workspace(load_settings())
queries = [json.loads(l)["question"] for l in open(sys.argv[1]) if l.strip()]
ws.retriever.search("warm up", k=10)
ms = []
for q in queries:
    t = time.perf_counter()
    ws.retriever.search(q, k=10)
    ms.append((time.perf_counter() - t) * 1000)
ms.sort()
print(json.dumps({"p50": statistics.median(ms), "p95": ms[int(0.95 * len(ms))], "n": len(ms)}))
"""

# Timed in a child process: searches sent to a running `rag serve`, as `rag search` sends them.
SERVE_LATENCY = """
import json, statistics, sys, time
from rag.serve import client
url = sys.argv[2]
queries = [json.loads(l)["question"] for l in open(sys.argv[1]) if l.strip()]
client.request(url, "/search", {"query": "warm up", "k": 10})
ms = []
for q in queries:
    t = time.perf_counter()
    client.request(url, "/search", {"query": q, "k": 10})
    ms.append((time.perf_counter() - t) * 1000)
ms.sort()
print(json.dumps({"serve_p50": statistics.median(ms), "serve_p95": ms[int(0.95 * len(ms))]}))
"""

EXTRA_REAL = 1000  # papers ingested with real embeddings into the full store
SEARCH_QUERY = "quantization of large language models"
FRESH_ROUNDS = 7  # fresh-process searches per size (see `fresh_searches`)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_figures(env: dict, rag: list[str], queries: Path) -> dict:
    """Search p50/p95 through a `rag serve` on the store, and a fresh `rag search` that uses it."""
    import urllib.request

    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [*rag, "serve", "--port", url.rsplit(":", 1)[1]],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("rag serve did not start") from None
                time.sleep(0.5)
        _, _, out = child([sys.executable, "-c", SERVE_LATENCY, str(queries), url], env)
        row = json.loads(out)
        served = {**env, "RAG_SERVER_URL": url}
        query = [*rag, "search", "quantization of large language models", "--json"]
        row["served_search_s"] = statistics.median(child(query, served)[0] for _ in range(3))
        return row
    finally:
        proc.terminate()
        proc.wait(30)


def sentences() -> tuple[list[str], list[str]]:
    sys.path.insert(0, str(REPO))
    from rag.corpus import bundled_corpus_path, iter_papers

    papers = list(iter_papers(bundled_corpus_path()))
    sents = [s for p in papers for s in re.split(r"(?<=[.!?])\s+", p.abstract) if len(s) > 30]
    words = [w for p in papers for w in p.title.split() if w.isalpha()]
    return sents, words


def make_corpus(path: Path, n: int, start: int = 0, changed: int = 0) -> None:
    """Papers start..start+n; the first `changed` get a different abstract than usual."""
    sents, words = sentences()
    with path.open("w", encoding="utf-8") as out:
        for i in range(start, start + n):
            rng = random.Random(SEED * 1_000_003 + i + (7_777_777 if i < changed else 0))
            title = " ".join(rng.choice(words) for _ in range(rng.randint(5, 9))) + f" (study {i})"
            abstract = " ".join(rng.choice(sents) for _ in range(rng.randint(4, 8)))
            out.write(json.dumps({"id": f"syn{i:07d}", "title": title, "abstract": abstract}) + "\n")


def child(args: list[str], env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(args[:4])} failed: {err.read().decode()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run_size(n: int, pool: Path | None, root: Path, base_env: dict, chroma_url: str | None = None) -> dict:
    folder = root / f"n{n}"
    folder.mkdir()
    data = folder / "data"
    env = {**base_env, "RAG_DATA_DIR": str(data)}
    small_env = {**env, "RAG_DATA_DIR": str(folder / "small")}
    if chroma_url:
        collections = [f"scale-{n}-{os.getpid()}{end}" for end in ("", "-small", "-empty")]
        env.update(RAG_CHROMA_URL=chroma_url, RAG_COLLECTION=collections[0])
        small_env.update(RAG_CHROMA_URL=chroma_url, RAG_COLLECTION=collections[1])
    try:
        return _run_size(n, pool, folder, env, small_env, chroma_url)
    finally:
        if chroma_url:
            drop_collections(chroma_url, collections)


def drop_collections(url: str, names: list[str]) -> None:
    from urllib.parse import urlsplit

    import chromadb

    parts = urlsplit(url)
    client = chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1", port=parts.port or 8000, ssl=parts.scheme == "https"
    )
    for name in names:
        try:
            client.delete_collection(name)
        except Exception:  # never made (a failed run)
            pass


def _run_size(n: int, pool: Path | None, folder: Path, env: dict, small_env: dict, chroma_url: str | None) -> dict:
    data = Path(env["RAG_DATA_DIR"])
    corpus = folder / "corpus.jsonl"
    make_corpus(corpus, n)
    rag = [sys.executable, "-m", "rag"]
    row: dict = {"papers": n, "vectors": "pool+noise" if pool else "real"}
    if chroma_url:
        row["vectors"] += ", Chroma server"

    if pool:
        secs, rss, out = child([sys.executable, "-c", POOL_INGEST, str(corpus), str(pool)], env)
    else:
        secs, rss, _ = child([*rag, "ingest", str(corpus)], env)
    row["ingest_s"], row["ingest_rss_mb"] = secs, rss
    row["ingest_pps"] = n / secs
    sample = min(n, 1000)
    _, _, out = child([sys.executable, "-c", EMBED_ONLY, str(corpus), str(sample)], env)
    alone = json.loads(out)
    row["embed_pps"] = alone["papers"] / alone["seconds"]
    row["embed_sample"] = alone["papers"]
    row["chunks_per_paper"] = alone["chunks"] / alone["papers"]
    row["ratio"] = row["ingest_pps"] / row["embed_pps"] if not pool else float("nan")

    row["noop_s"] = statistics.median(child([*rag, "ingest", str(corpus)], env)[0] for _ in range(3))
    more = folder / "more.jsonl"
    make_corpus(more, n + 100, changed=10)
    row["incr_s"], row["incr_rss_mb"], _ = child([*rag, "ingest", str(more)], env)
    added = folder / "added.jsonl"  # 100 new papers in a file of their own, into the store and into an empty one
    make_corpus(added, 100, start=n + 100 + EXTRA_REAL)
    row["add100_s"] = child([*rag, "ingest", str(added)], env)[0]
    empty_env = {**env, "RAG_DATA_DIR": str(folder / "empty")}
    if chroma_url:  # a collection of its own on the server too
        empty_env["RAG_COLLECTION"] = f"{env['RAG_COLLECTION']}-empty"
    row["add100_empty_s"] = child([*rag, "ingest", str(added)], empty_env)[0]
    shutil.rmtree(folder / "empty")
    small = folder / "small.jsonl"
    with small.open("w") as out_f:  # the same 110 papers: 10 changed, 100 new
        lines = more.read_text().splitlines()
        out_f.write("\n".join(lines[:10] + lines[n:]) + "\n")
    row["small_s"] = child([*rag, "ingest", str(small)], small_env)[0]
    shutil.rmtree(folder / "small")
    row["disk_mb"] = du(data)
    searches = [child([*rag, "search", SEARCH_QUERY, "--json"], env) for _ in range(3)]
    row["search_s"] = statistics.median(s[0] for s in searches)
    row["search_rss_mb"] = max(s[1] for s in searches)
    _, _, out = child([sys.executable, "-c", SEARCH_LATENCY, str(REPO / "eval" / "suites" / "tune.jsonl")], env)
    row.update(json.loads(out))
    row.update(serve_figures(env, rag, REPO / "eval" / "suites" / "tune.jsonl"))
    row["stats_s"] = statistics.median(child([*rag, "stats"], env)[0] for _ in range(3))
    row["bm25_segments"] = next(
        (line.rsplit(", ", 1)[-1] for line in child([*rag, "stats"], env)[2].splitlines() if "bm25" in line),
        "",
    )
    extra = folder / "extra.jsonl"
    make_corpus(extra, EXTRA_REAL, start=n + 100)
    row["extra_s"] = child([*rag, "ingest", str(extra)], env)[0]
    _, _, out = child([sys.executable, "-c", EMBED_ONLY, str(extra), str(EXTRA_REAL)], env)
    row["extra_ratio"] = json.loads(out)["seconds"] / row["extra_s"]
    if chroma_url:  # its collections are dropped after this
        shutil.rmtree(data)
    else:
        row["env"] = env  # for `fresh_searches`
    return row


def fresh_searches(rows: list[dict]) -> None:
    """Fresh-process `rag search` at every size kept, in turns (A, B, A, B, ...): the median
    of FRESH_ROUNDS replaces the figure each size's run took."""
    kept = [row for row in rows if "env" in row]
    times: list[list[float]] = [[] for _ in kept]
    for _ in range(FRESH_ROUNDS):
        for row, seen in zip(kept, times):
            seen.append(child([sys.executable, "-m", "rag", "search", SEARCH_QUERY, "--json"], row["env"])[0])
    for row, seen in zip(kept, times):
        row["search_s"] = statistics.median(seen)
        shutil.rmtree(row.pop("env")["RAG_DATA_DIR"])


def table(rows: list[dict]) -> str:
    def fmt(r: dict, key: str, spec: str) -> str:
        v = r.get(key)
        return "–" if v is None or v != v else format(v, spec)

    cols = [f"{r['papers']:,} ({r['vectors']})" for r in rows]
    local = [r for r in rows if "server" not in r["vectors"]] or rows  # what the extrapolations use
    big = local[-1]
    lines = ["| figure | " + " | ".join(cols) + " | 1M (extrapolated) | 2.7M (extrapolated) |"]
    lines.append("|---" * (len(rows) + 3) + "|")

    def add(name: str, key: str, spec: str, scale: str | None = None) -> None:
        cells = [fmt(r, key, spec) for r in rows]
        extra = ["–", "–"]
        sizes = sorted({r["papers"] for r in local})
        if scale == "linear" and len(sizes) >= 2:  # a fixed cost plus a cost per paper, through the two largest
            lo, hi = (next(r for r in local if r["papers"] == m) for m in sizes[-2:])
            slope = (hi[key] - lo[key]) / (hi["papers"] - lo["papers"])
            extra = [format(hi[key] + slope * (m - hi["papers"]), spec) for m in (1e6, 2.7e6)]
        elif scale == "linear":
            extra = [format(big[key] * m / big["papers"], spec) for m in (1e6, 2.7e6)]
        elif scale == "flat":
            extra = [f"~{format(big[key], spec)}"] * 2
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(extra) + " |")

    add("ingest papers/s", "ingest_pps", ".1f")
    add("embedder alone, papers/s (sample)", "embed_pps", ".1f")
    add("ingest / embedder alone", "ratio", ".2f")
    real = [r for r in rows if r["vectors"] == "real"] or rows
    hours = [m / real[-1]["ingest_pps"] / 3600 for m in (1e6, 2.7e6)]
    lines.append(
        "| first ingest (h; extrapolated at the largest real run's rate) | "
        + " | ".join(fmt({"h": r["ingest_s"] / 3600}, "h", ".2f") for r in rows)
        + f" | {hours[0]:.0f} | {hours[1]:.0f} |"
    )
    add("no-op re-ingest (s)", "noop_s", ".1f", "linear")
    add("add 100 papers from a file of their own (s)", "add100_s", ".1f")
    add("the same 100 into an empty store (s)", "add100_empty_s", ".1f")
    add("re-ingest the whole file, 100 added + 10 changed (s)", "incr_s", ".1f")
    add("those 110 into an empty store (s)", "small_s", ".1f")
    add("peak RSS, ingest (MB)", "ingest_rss_mb", ".0f", "flat")
    add("peak RSS, incremental ingest (MB)", "incr_rss_mb", ".0f")
    add("disk (MB)", "disk_mb", ".0f", "linear")
    add("fresh-process rag search (s)", "search_s", ".2f")
    add("peak RSS, rag search (MB)", "search_rss_mb", ".0f")
    add("in-process search p50 (ms)", "p50", ".1f")
    add("in-process search p95 (ms)", "p95", ".1f")
    add("rag stats (s)", "stats_s", ".2f", "flat")
    add("search through rag serve p50 (ms)", "serve_p50", ".1f")
    add("search through rag serve p95 (ms)", "serve_p95", ".1f")
    add("fresh-process rag search via rag serve (s)", "served_search_s", ".2f")
    add(f"{EXTRA_REAL} more papers, real vectors, into the full store: ingest / embedder alone", "extra_ratio", ".2f")
    lines.append("| BM25 segments | " + " | ".join(r.get("bm25_segments", "") for r in rows) + " | – | – |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="papers, comma-separated, real embeddings")
    parser.add_argument("--pool-vectors", default="", help="papers, comma-separated, pooled real vectors + noise")
    parser.add_argument("--chroma-url", help="a Chroma server to run against instead of the embedded store")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--table", type=Path, nargs="+", help="only print the table of figures saved by --json")
    args = parser.parse_args()
    if args.table:
        saved = [row for path in args.table for row in json.loads(path.read_text())]
        print(table(sorted(saved, key=lambda r: r["papers"])))
        return
    model_dir = os.environ.get("RAG_EMBED_MODEL_DIR") or str(REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2")
    root = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    env = {**os.environ, "RAG_EMBED_MODEL_DIR": model_dir, "RAG_CONFIG": str(root / "none.toml")}
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_CHROMA_URL"):
        env.pop(key, None)
    rows = []
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            rows.append(run_size(n, None, root, env, args.chroma_url))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "env"}), file=sys.stderr, flush=True)
        pooled = [int(x) for x in args.pool_vectors.split(",") if x]
        if pooled:
            pool = root / "pool.npy"
            child([sys.executable, "-c", MAKE_POOL, str(pool)], env)
            for n in pooled:
                rows.append(run_size(n, pool, root, env, args.chroma_url))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "env"}), file=sys.stderr, flush=True)
        fresh_searches(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
