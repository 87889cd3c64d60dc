"""Chroma's default embedding model on disk: where it is, whether it is there, and fetching it.

With no folder configured, `rag` uses Chroma's own cache folder and, when the model is not there,
downloads it as Chroma does (Chroma's `_download`, URL and SHA-256), so the folder is the same one
Chroma would fill. Unlike Chroma, nothing partial is ever left where it would be loaded: the
archive goes to a temporary file beside the model, is checked, unpacked into a temporary folder
and renamed into place. This module imports nothing heavy until a download starts.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings

MODEL_NAME = "all-MiniLM-L6-v2"
# What Chroma checks before it downloads: with all six present, the cache folder is complete.
MODEL_FILES = (
    "config.json",
    "model.onnx",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)
LOAD_FILES = ("model.onnx", "tokenizer.json")  # what the embedder itself reads


class ModelFetchError(RagError):
    pass


def missing_files(model_dir: Path, names: tuple[str, ...] = LOAD_FILES) -> list[str]:
    """Which of `names` are not under model_dir/onnx/."""
    return [n for n in names if not (Path(model_dir) / "onnx" / n).is_file()]


def is_complete(model_dir: Path) -> bool:
    """True when the folder holds everything Chroma's cache holds (Chroma would not download)."""
    return not missing_files(model_dir, MODEL_FILES)


def describe(settings: Settings) -> str:
    """One line for `rag stats` / `rag config`: the model, its folder and whether it is there."""
    path = settings.model_dir
    if settings.embed_model_dir is not None:
        state = "missing" if missing_files(path) else "present"
    else:
        state = "present" if is_complete(path) else "missing: fetched on first use"
    return f"{MODEL_NAME} (ONNX) at {path} ({state})"


def fetch(model_dir: Path, *, url: str | None = None, sha256: str | None = None) -> None:
    """Download and unpack the model into model_dir/onnx as Chroma does; on any failure raise a
    one-line error naming both ways out, and leave nothing behind.

    `url` and `sha256` default to Chroma's own constants; tests point them at a local server.
    """
    import httpx
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    model_dir = Path(model_dir)
    url = url or ONNXMiniLM_L6_V2.MODEL_DOWNLOAD_URL
    chroma = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
    chroma._MODEL_SHA256 = sha256 or ONNXMiniLM_L6_V2._MODEL_SHA256
    chroma.tqdm = functools.partial(_Bar, model_dir=model_dir, url=url)  # Chroma draws its bar with self.tqdm

    created = [p for p in (model_dir, *model_dir.parents) if not p.exists()]
    archive: Path | None = None
    scratch: Path | None = None
    done = False
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=model_dir, prefix=".onnx.tar.gz.", suffix=".part")
        os.close(fd)
        archive = Path(name)
        chroma._download(url=url, fname=str(archive))  # Chroma's code: streams, then checks SHA-256
        scratch = Path(tempfile.mkdtemp(dir=model_dir, prefix=".onnx.unpack."))
        with tarfile.open(archive, mode="r:gz") as tar:
            tar.extractall(path=scratch, filter="data")
        if not is_complete(scratch):
            missing = ", ".join(missing_files(scratch, MODEL_FILES))
            raise ModelFetchError(_way_out(url, model_dir, f"the archive lacks onnx/{missing}"))
        _move_into_place(scratch / "onnx", model_dir / "onnx")
        done = True
    except (httpx.HTTPError, OSError, ValueError, tarfile.TarError) as exc:
        raise ModelFetchError(_way_out(url, model_dir, _reason(exc))) from None
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if not done:
            for folder in created:  # deepest first; only folders this call made, and only if empty
                try:
                    folder.rmdir()
                except OSError:
                    break


def _move_into_place(unpacked: Path, target: Path) -> None:
    """One rename, so a reader sees either no onnx/ folder or a complete one."""
    try:
        os.rename(unpacked, target)
        return
    except OSError:
        if is_complete(target.parent):  # another process finished first
            return
        if not target.exists() and not target.is_symlink():
            raise
    # An incomplete onnx/ left by an interrupted download: set it aside (removed with the
    # temporary folder), then put the complete one in its place.
    os.rename(target, unpacked.parent / "incomplete")
    os.rename(unpacked, target)


def _reason(exc: BaseException) -> str:
    import httpx

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ValueError) and "SHA256" in text:
        return "the download does not match Chroma's SHA-256 checksum"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {text}"
    if isinstance(exc, httpx.TransportError):
        return f"the connection broke off: {text}"
    return text


def _way_out(url: str, model_dir: Path, reason: str) -> str:
    return (
        f"cannot download the embedding model {MODEL_NAME} from {url} ({reason}); "
        f"connect to the internet once and run the command again (it is saved to {model_dir}), "
        "or set RAG_EMBED_MODEL_DIR to a folder holding onnx/model.onnx and its tokenizer files"
    )


def _stderr_is_terminal() -> bool:
    """A real terminal, not a stand-in that only claims to be one (Textual's output capture)."""
    try:
        return sys.stderr.isatty() and os.isatty(sys.stderr.fileno())
    except (OSError, ValueError):
        return False


class _Bar:
    """The part of tqdm's interface Chroma's `_download` uses: a rich bar on stderr when it is a
    terminal, otherwise one line."""

    def __init__(self, *, model_dir: Path, url: str, total: int = 0, **_: Any) -> None:
        self.model_dir = model_dir
        self.url = url
        self.total = total
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        size = f" ({self.total / 1e6:.1f} MB)" if self.total else ""
        line = f"downloading the embedding model {MODEL_NAME}{size} from {self.url} to {self.model_dir}"
        if not _stderr_is_terminal():
            print(line, file=sys.stderr, flush=True)
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        console.print(line, highlight=False, markup=False, soft_wrap=True)
        self.progress = Progress(
            TextColumn(f"{MODEL_NAME}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("download", total=self.total or None)
        self.progress.start()
        return self

    def update(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
