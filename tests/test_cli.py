import json
import os
import re
import subprocess
import sys

from tests.conftest import rag_json, run_rag, write_jsonl


def test_search_json_contract(bundled_dir):
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    out = rag_json("search", "which papers compare FP8 vs INT8?", "-k", "3", "--json", env=env)
    assert set(out) == {"query", "results", "timings_ms"}
    assert out["query"] == "which papers compare FP8 vs INT8?"
    assert len(out["results"]) == 3
    for rank, r in enumerate(out["results"], start=1):
        assert set(r) == {"rank", "paper_id", "title", "score", "evidence"}
        assert r["rank"] == rank and isinstance(r["score"], float) and r["evidence"]
    assert out["results"][0]["title"] == "Efficient Post-training Quantization with FP8 Formats"
    assert out["timings_ms"]["total"] > 0


def test_usage_errors_exit_2_and_runtime_errors_exit_1(bundled_dir, tmp_path):
    env = {"RAG_DATA_DIR": str(bundled_dir)}
    empty = run_rag("search", "   ", env=env)
    assert empty.returncode == 2 and empty.stdout == "" and "empty" in empty.stderr
    # with --json a script reading stdout gets the error as an object as well
    empty = run_rag("search", "   ", "--json", env=env)
    assert empty.returncode == 2 and json.loads(empty.stdout) == {
        "error": "the query is empty; give some words to search for"
    }
    # a usage error is one line naming the fix, exit 2, not click's box
    for args, message in [
        (("search", "x", "-k", "0"), "rag: error: Invalid value for '-k': Input should be greater than or equal to 1"),
        (("ask", "x", "-k", "abc"), "rag: error: Invalid value for '-k': Input should be a valid integer"),
        (("ask",), "rag: error: Missing argument 'QUESTION'."),
        (("nosuch",), "rag: error: No such command 'nosuch'."),
    ]:
        proc = run_rag(*args, env=env)
        (line,) = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and line.startswith(message) and line.endswith(" -h')"), proc.stderr
        # with --json, the usage error is on stdout as an object too (the command never ran)
        proc = run_rag(*args, "--json", env=env)
        assert proc.returncode == 2 and json.loads(proc.stdout)["error"].startswith(
            message.removeprefix("rag: error: ")
        )
    # a pasted document is refused at once, not searched for minutes
    pasted = run_rag("ask", "-", env=env, input="which papers compare FP8 vs INT8? " * 200, timeout=30)
    (line,) = pasted.stderr.strip().splitlines()
    assert pasted.returncode == 2 and line.startswith("rag: error: the question is too long: it is 6,799 characters")
    # an endless stdin is not read to its end (it once grew to gigabytes); binary data is named
    endless = subprocess.Popen(
        [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('FP8 ' * 1000)"], stdout=subprocess.PIPE
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rag", "ask", "-"], stdin=endless.stdout, capture_output=True, text=True,
            env={**os.environ, **env}, timeout=60,
        )  # fmt: skip
    finally:
        endless.kill()
    assert proc.returncode == 2 and "the question on stdin is too long: over 8,000 characters" in proc.stderr
    nul = run_rag("ask", "-", env=env, input="\x00" * 100)
    assert nul.returncode == 2 and "stdin holds binary data" in nul.stderr
    nul = run_rag("search", "-", env=env, input="\x00" * 100)  # search reads "-" from stdin too
    assert nul.returncode == 2 and "stdin holds binary data (NUL bytes), not a query" in nul.stderr
    missing_model = run_rag("search", "x", env={**env, "RAG_EMBED_MODEL_DIR": str(tmp_path / "nowhere")})
    assert missing_model.returncode == 1
    assert "RAG_EMBED_MODEL_DIR" in missing_model.stderr and "Traceback" not in missing_model.stderr
    bad_setting = run_rag("search", "x", env={**env, "RAG_TOP_K": "lots"})
    assert bad_setting.returncode == 1 and "top_k" in bad_setting.stderr and "Traceback" not in bad_setting.stderr
    # --prune with no file would delete every paper not in the bundled corpus: refused, nothing touched
    prune = run_rag("ingest", "--prune", env=env)
    (line,) = prune.stderr.strip().splitlines()
    assert prune.returncode == 2 and line.startswith("rag: error: --prune deletes every stored paper that is not in")


def test_first_command_ingests_the_bundled_corpus(tmp_path):
    env = {"RAG_DATA_DIR": str(tmp_path / "fresh")}
    out = rag_json("search", "lossless compression of model weights", "--json", env=env)
    assert out["results"][0]["title"] == "ZipNN: Lossless Compression for AI Models"
    stats = run_rag("stats", env=env)
    assert stats.returncode == 0
    assert "papers      223" in stats.stdout and "bm25        fresh" in stats.stdout
    assert "vectors     made by all-MiniLM-L6-v2 (384-d)\n" in stats.stdout
    # set to embed with another model: stats says the store's vectors are not that model's
    other = run_rag("stats", env={**env, "RAG_EMBEDDER": "endpoint", "RAG_EMBED_ENDPOINT_URL": "http://127.0.0.1:9/v1"})
    assert "made by all-MiniLM-L6-v2 (384-d); not the configured embedder" in other.stdout, other.stdout
    # the user's own files after a first search filled the store: said once, with the way out
    mine = write_jsonl(tmp_path / "mine.jsonl", [{"title": "Wombat burrow acoustics", "abstract": "We record."}])
    first = run_rag("ingest", str(mine), env=env)
    assert first.returncode == 0 and "the store also holds the bundled corpus" in first.stderr
    more = write_jsonl(tmp_path / "more.jsonl", [{"title": "Koala nap lengths", "abstract": "We time naps."}])
    again = run_rag("ingest", str(more), env=env)
    assert again.returncode == 0 and "bundled corpus" not in again.stderr


def test_config_shows_sources_and_hides_secrets(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('llm_model = "from-file"\ntop_k = 7\n')
    proc = run_rag("config", env={"RAG_CONFIG": str(config), "RAG_TOP_K": "9", "OPENAI_API_KEY": "sk-secret-value"})
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "from-file" in lines["llm_model"] and "[file" in lines["llm_model"]
    assert " 9 " in lines["top_k"] and "[env RAG_TOP_K]" in lines["top_k"]
    assert "(set)" in lines["openai_api_key"] and "sk-secret-value" not in proc.stdout


def test_help_lists_the_commands():
    for proc in (run_rag("--help"), run_rag()):  # `rag` alone shows the help too, with exit 2
        assert proc.returncode == (0 if proc.args[-1] == "--help" else 2)
        for command in ("ask", "search", "ingest", "stats", "config"):
            assert command in proc.stdout


def test_broken_config_file_is_one_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("top_k = [unclosed\n")
    proc = run_rag("config", env={"RAG_CONFIG": str(config)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"rag: error: cannot read config file {config}")


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    config = tmp_path / "config.toml"
    config.write_bytes("\ufefftop_k = 3\n".encode())
    proc = run_rag("config", env={"RAG_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^top_k +3 +\[file {re.escape(str(config))}\]$", proc.stdout, re.M)


def test_a_full_disk_under_stdout_is_one_line_even_with_json(bundled_dir):
    """The --json error object could not be written either: it once ended in two tracebacks."""
    env = {**os.environ, "RAG_DATA_DIR": str(bundled_dir)}
    for args in (["search", "FP8", "--json"], ["search", "FP8"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "rag", *args],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                timeout=120,
            )
        (line,) = proc.stderr.strip().splitlines()
        assert (
            proc.returncode == 1 and line == "rag: error: no space left on the device; free some space and run it again"
        )


def test_agent_without_an_llm_and_an_empty_model_are_usage_errors():
    both = run_rag("ask", "what is FP8?", "--no-llm", "--agent")
    assert both.returncode == 2 and "--agent needs the LLM that --no-llm turns off" in both.stderr
    empty = run_rag("ask", "what is FP8?", "--model", " ")
    assert empty.returncode == 2 and "--model is empty" in empty.stderr
