"""The default embedder: Chroma's all-MiniLM-L6-v2 (ONNX), loaded from a local folder.

It is Chroma's own `ONNXMiniLM_L6_V2` pointed at a folder, so vectors match what Chroma's default
produces elsewhere. Two changes: it never downloads by itself (`rag.model_fetch` fills Chroma's
cache folder when no folder is configured; a configured folder is used as is, and a missing model
there is an error that says what to set), and it pads each batch to its longest text instead of
always to 256 tokens, which gives the same vectors several times faster for short texts such as
queries.

Throughput: onnxruntime runs one intra-op thread per CPU this process may use (its own default
counts physical cores, one on a 2-vCPU machine) unless `embed_threads` says otherwise, and texts
are embedded in length order in batches of BATCH_SIZE, which wastes little on padding (on this
2-core machine 8 beat 32 and 128).

`embed_device = "cuda"` asks onnxruntime for its CUDA provider. The CPU build of onnxruntime has
none, and the GPU build loses it when the CUDA libraries do not load; either way one warning says
so and the model runs on the CPU, so a config shared between a GPU box and a laptop works on both.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import model_fetch
from rag.embedders import EmbedderIdentity, RecentVectors
from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings

MAX_TOKENS = 256  # the model's window, including [CLS] and [SEP]
DIMENSION = 384
BATCH_SIZE = 8  # texts per onnxruntime call, in length order
MODEL_NAME = "all-MiniLM-L6-v2"
INT8_SUFFIX = "-int8"
UNRECORDED = EmbedderIdentity(MODEL_NAME, DIMENSION)  # what made a store that records no embedder
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
NO_CUDA = (
    "embed_device is cuda, but {why}; embedding on the CPU. For the GPU: pip uninstall onnxruntime && "
    "pip install onnxruntime-gpu (it needs an NVIDIA driver, CUDA 12 and cuDNN 9), or set RAG_EMBED_DEVICE=cpu"
)
_warned: set[str] = set()


class EmbedderError(RagError):
    pass


def providers_for(device: str, available: list[str]) -> list[str]:
    """The onnxruntime providers to ask for, best first; CPU is always the last resort."""
    return [CUDA, CPU] if device == "cuda" and CUDA in available else [CPU]


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"rag: warning: {message}", file=sys.stderr)


def _damaged(path: Path, error: Exception) -> EmbedderError:
    """A model file that is there but cannot be read: an interrupted copy, or another file."""
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return EmbedderError(
        f"the embedding model file {path} is damaged and cannot be loaded ({detail}); copy all-MiniLM-L6-v2's "
        "onnx/ files again, or set RAG_EMBED_MODEL_DIR to a folder holding them"
    )


def _load_tokenizer(tokenizer_class: Any, path: Path) -> Any:
    try:
        return tokenizer_class.from_file(str(path))
    except Exception as e:  # the tokenizers library raises a bare Exception for unreadable JSON
        raise _damaged(path, e) from None


def _embedder_class():
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    class LocalMiniLM(ONNXMiniLM_L6_V2):
        def __init__(
            self, model_dir: Path, threads: int = 0, model_file: Path | None = None, device: str = "cpu"
        ) -> None:
            super().__init__(preferred_providers=[CPU])
            self.device = device
            self.DOWNLOAD_PATH = model_dir
            self.threads = threads or available_cpus()
            self.model_file = model_file or model_dir / "onnx" / "model.onnx"

        @cached_property
        def model(self) -> Any:
            """Chroma's session, with intra-op threads set (see the module docstring)."""
            so = self.ort.SessionOptions()
            so.log_severity_level = 3
            so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            # idle threads sleep rather than spin: on a shared 2-core machine spinning threads
            # halved throughput (10 against 19 chunks/s)
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            available = self.ort.get_available_providers()
            providers = providers_for(self.device, available)
            try:
                session = self.ort.InferenceSession(str(self.model_file), providers=providers, sess_options=so)
            except Exception as e:  # onnxruntime raises its own classes for a file it cannot parse
                raise _damaged(self.model_file, e) from None
            if self.device == "cuda" and CUDA not in session.get_providers():
                why = (
                    "onnxruntime's CUDA provider did not load (are the CUDA 12 and cuDNN 9 libraries installed?)"
                    if CUDA in available
                    else f"this onnxruntime ({self.ort.__version__}) is the CPU build, without CUDAExecutionProvider"
                )
                _warn_once(NO_CUDA.format(why=why))
            return session

        def _download_model_if_not_exists(self) -> None:  # never reach the network
            pass

        @cached_property
        def tokenizer(self) -> Any:
            tok = _load_tokenizer(self.Tokenizer, self.DOWNLOAD_PATH / "onnx" / "tokenizer.json")
            tok.enable_truncation(max_length=MAX_TOKENS)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")
            return tok

        def _forward(self, documents: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
            """Chroma's mean pooling, with each batch padded to its own longest text."""
            out = []
            for i in range(0, len(documents), batch_size):
                encoded = self.tokenizer.encode_batch(documents[i : i + batch_size])
                ids = np.array([e.ids for e in encoded], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
                hidden = self.model.run(
                    None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                )[0]
                if hidden.ndim != 3 or hidden.shape[-1] != DIMENSION:
                    raise EmbedderError(
                        f"the model at {self.model_file} makes {hidden.shape[-1]}-d vectors, not "
                        f"all-MiniLM-L6-v2's {DIMENSION}; set RAG_EMBED_MODEL_DIR to a folder holding all-MiniLM-L6-v2"
                    )
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
                out.append(self._normalize(pooled).astype(np.float32))
            return np.concatenate(out)

    return LocalMiniLM


def embedder_name(quantized: bool) -> str:
    """What the store records as the maker of its vectors."""
    return MODEL_NAME + (INT8_SUFFIX if quantized else "")


def identity(settings: Settings) -> EmbedderIdentity:
    return EmbedderIdentity(embedder_name(settings.embed_quantized), DIMENSION)


def build(settings: Settings) -> MiniLM:
    return MiniLM.from_settings(settings)


def how_to_use(made_by: EmbedderIdentity) -> str:
    """The setting that picks the MiniLM variant (full or int8) that made a store's vectors."""
    for quantized in (False, True):
        if made_by == EmbedderIdentity(embedder_name(quantized), DIMENSION):
            return f"set RAG_EMBED_QUANTIZED={int(quantized)}"
    return ""


def quantized_model(model_dir: Path) -> Path:
    """The int8 copy of the model (onnxruntime's dynamic quantization), made on first use in a
    cache folder beside the model's (`<model folder>-int8/model.onnx`), or in rag's cache
    folder when that one cannot be written."""
    source = model_dir / "onnx" / "model.onnx"
    candidates = [model_dir.parent / f"{model_dir.name}{INT8_SUFFIX}"]
    from platformdirs import user_cache_dir

    digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    candidates.append(Path(user_cache_dir("rag")) / f"{MODEL_NAME}{INT8_SUFFIX}-{digest}")
    for folder in candidates:
        target = folder / "model.onnx"
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            return target
    problem = ""
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _quantize(source, folder / "model.onnx")
            return folder / "model.onnx"
        except OSError as exc:
            problem = exc.strerror or str(exc)
    raise EmbedderError(
        f"cannot write the int8 model beside {model_dir} or in rag's cache ({problem}); unset RAG_EMBED_QUANTIZED"
    )


def _quantize(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise EmbedderError(
            "embed_quantized needs the onnx package: pip install 'rag[int8]', or unset RAG_EMBED_QUANTIZED"
        ) from None
    import logging

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    logging.disable(logging.WARNING)  # its advice to pre-process the model is not for our users
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, target)  # readers see the whole file or none
    finally:
        logging.disable(logging.NOTSET)
        tmp.unlink(missing_ok=True)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class MiniLM:
    """Texts to 384-d unit vectors; also counts tokens in the model's own vocabulary."""

    name = MODEL_NAME
    dimension = DIMENSION
    max_tokens = MAX_TOKENS

    def __init__(
        self,
        model_dir: Path,
        *,
        fetch: bool = False,
        url: str | None = None,
        sha256: str | None = None,
        threads: int = 0,
        quantized: bool = False,
        device: str = "cpu",
    ) -> None:
        """fetch: download the model into model_dir first when it is not complete there (for
        Chroma's cache folder); url and sha256 default to Chroma's own."""
        model_dir = Path(model_dir)
        if fetch and not model_fetch.is_complete(model_dir):
            model_fetch.fetch(model_dir, url=url, sha256=sha256)
        missing = model_fetch.missing_files(model_dir)
        if missing:
            raise EmbedderError(
                f"embedding model not found: {model_dir}/onnx/{missing[0]} is missing; "
                "set RAG_EMBED_MODEL_DIR to a folder holding all-MiniLM-L6-v2's onnx/ files"
            )
        self.model_dir = model_dir
        self._recent = RecentVectors(self.embed)
        self.name = embedder_name(quantized)
        model_file = quantized_model(model_dir) if quantized else None
        self._fn = _embedder_class()(model_dir, threads, model_file, device)

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None = None, sha256: str | None = None) -> MiniLM:
        """A configured folder is used as is and never touches the network; without one, Chroma's
        cache folder is used and fetched on first use, as Chroma does."""
        threads, quantized, device = settings.embed_threads, settings.embed_quantized, settings.embed_device
        if settings.embed_model_dir is not None:
            return cls(settings.embed_model_dir, threads=threads, quantized=quantized, device=device)
        return cls(
            settings.model_dir, fetch=True, url=url, sha256=sha256, threads=threads, quantized=quantized, device=device
        )

    @property
    def device(self) -> str:
        """Where the model runs: cuda when onnxruntime's CUDA provider took it, else cpu."""
        return "cuda" if CUDA in self._fn.model.get_providers() else "cpu"

    @cached_property
    def _counter(self) -> Any:
        """A tokenizer of its own for counting, without truncation or padding: ingest counts
        the next batch's tokens while another thread embeds with the model's tokenizer."""
        tok = _load_tokenizer(self._fn.Tokenizer, self.model_dir / "onnx" / "tokenizer.json")
        tok.no_truncation()
        tok.no_padding()
        return tok

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees, [CLS] and [SEP] included, before any truncation."""
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def embed_cached(self, texts: list[str]) -> np.ndarray:
        return self._recent(texts)

    def warm(self) -> None:
        """Build the onnxruntime session and run it once (its first run allocates)."""
        self._fn._forward(["warm"])

    def embed(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # Batches of similar length waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = self._fn._forward([texts[i] for i in order], batch_size=batch_size)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def describe(settings: Settings) -> str:
    """One line for `rag stats` / `rag config`: the model, its folder and whether it is there."""
    return model_fetch.describe(settings)
