"""Settings: the one source of truth for every knob.

Precedence, highest first: command-line flags, environment variables, the TOML config file
(`config.toml` in the platform config directory, or the file named by `RAG_CONFIG`), defaults.
`rag config` prints the effective values and where each came from.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from platformdirs import user_config_dir, user_data_dir
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import RagError
from rag.retrievers import Mode

CHROMA_CACHE_MODEL_DIR = Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2"


class SettingsError(RagError):
    """A setting with a value that cannot be used; the message says which and how to fix it."""


def config_path() -> Path:
    return Path(os.environ.get("RAG_CONFIG") or Path(user_config_dir("rag")) / "config.toml")


_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_SECRET_PARAM = re.compile(r"([?&](?:api[_-]?key|key|token|access_token|password|secret|sig)=)[^&#]*", re.I)


def mask_url(url: str) -> str:
    """`url` (or a message holding URLs) fit to print: credentials (http://user:pass@host) and
    key-like query values masked."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", url))


def _check_url(value: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- parses the port, raising ValueError for a bad one
    except ValueError as exc:
        raise ValueError(f"{mask_url(value)} is not a valid URL ({exc}); write it as http://host:port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{mask_url(value)} is not an http(s)://host:port URL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", extra="ignore", use_attribute_docstrings=True, validate_by_name=True
    )

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("rag")))
    """Where the local Chroma store, the BM25 index and chat history live."""

    chroma_url: str | None = None
    """A Chroma server (http://host:port) to use instead of the local store."""

    collection: str = "papers"
    """Name of the Chroma collection holding the paper chunks."""

    embed_model_dir: Path | None = None
    """Folder holding onnx/model.onnx of all-MiniLM-L6-v2 (Chroma's cache layout)."""

    embed_quantized: bool = False
    """Embed with an int8-quantized MiniLM (made once beside the model): faster, slightly different vectors."""

    embed_threads: int = Field(0, ge=0, le=256)
    """onnxruntime threads for embedding; 0: one per CPU this process may use."""

    retriever: Mode = "hybrid"
    """Which retriever feeds answers: hybrid (dense + BM25), dense or bm25."""

    reranker: Literal["none"] = "none"
    """What reorders the fused papers (rag/reranking.py); none keeps the fused order, the only one for now."""

    top_k: int = Field(5, ge=1, le=50)
    """How many papers an answer draws on."""

    llm: Literal["auto", "off"] = "auto"
    """auto: use an LLM when OPENAI_API_KEY or OPENAI_BASE_URL is set; off: always extractive."""

    llm_model: str = "gpt-4o-mini"
    """Model name sent to the OpenAI-compatible endpoint."""

    llm_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    """Seconds to wait for the LLM endpoint to send anything (each read, each attempt)."""

    llm_deadline: float = Field(120.0, gt=0, allow_inf_nan=False)
    """Seconds one reply may take in all, however steadily the endpoint sends; then it is abandoned."""

    llm_max_tokens: int = Field(400, ge=1, le=32_768)
    """Longest reply in tokens: sent to the endpoint as max_tokens, and what arrives is cut there too."""

    llm_context_tokens: int | None = Field(None, ge=512, le=10_000_000)
    """The model's context window in tokens, which the prompt's sources are packed into; unset: the
    published window of known OpenAI models, else 4096 (llama.cpp's and Ollama's usual size)."""

    verifier: Literal["overlap", "llm"] = "overlap"
    """Grounding check: overlap (deterministic, no model) or llm (judge through the endpoint)."""

    grounding: Literal["strict", "mark"] = "strict"
    """LLM answers: strict fixes wrong or missing citations, removes sentences no source supports and falls
    back to the extractive answer when too little survives; mark shows the model's answer as written, marked."""

    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"))
    """API key for OpenAI or a compatible server; never printed."""

    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"))
    """Base URL of an OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio)."""

    embedder: Literal["minilm", "endpoint"] = "minilm"
    """What turns texts into vectors: minilm (local ONNX, offline) or endpoint (an OpenAI-compatible
    /v1/embeddings server: OpenAI, Ollama, vLLM, TEI, llama.cpp). A store keeps the embedder that built it."""

    embed_endpoint_url: str | None = None
    """Base URL of the embeddings server (embedder=endpoint), e.g. http://localhost:11434/v1 for Ollama;
    unset: OPENAI_BASE_URL, else OpenAI's."""

    embed_endpoint_model: str = "text-embedding-3-small"
    """Embedding model name sent to the endpoint (embedder=endpoint)."""

    embed_endpoint_api_key: SecretStr | None = None
    """API key for the embeddings endpoint; unset: OPENAI_API_KEY; never printed."""

    embed_endpoint_dimension: int | None = Field(None, ge=1, le=65_536)
    """Length of the endpoint's vectors; unset: asked of the endpoint with one short text. Set, a reply of
    another length is an error."""

    embed_endpoint_batch: int = Field(64, ge=1, le=2048)
    """Texts per request to the embeddings endpoint."""

    embed_endpoint_timeout: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False)
    """Seconds one request to the embeddings endpoint may take; a request that times out is tried again
    (5 tries in all), so a server that hangs is given up on after about five times this."""

    embed_endpoint_max_tokens: int = Field(512, ge=32, le=1_000_000)
    """The endpoint model's window in tokens; chunks are kept within it, counted with tiktoken (exact for
    OpenAI's models, within about 10-20% for others: leave a margin, e.g. 448 for a 512-token bge or e5)."""

    agent_steps: int = Field(6, ge=1, le=50)
    """Agent mode (`rag ask --agent`, the chat's "Agent mode"): how many search and read calls the model
    may make before it must answer from what it has found."""

    server_url: str | None = None
    """A running `rag serve` (e.g. http://127.0.0.1:8723): `rag search`, `rag ask`, `rag chat` and the MCP
    server's search and ask send their requests there instead of opening the store; the server's own settings
    choose the store, embedder and LLM, and the flags given travel with each request."""

    embed_device: Literal["cpu", "cuda"] = "cpu"
    """Where the MiniLM embedder runs: cpu, or cuda (onnxruntime's CUDAExecutionProvider, which needs
    `pip install onnxruntime-gpu` in place of onnxruntime, and an NVIDIA GPU); when CUDA is not
    available it says so on stderr and embeds on the CPU. Either way the vectors are the same model's."""

    @field_validator("chroma_url", "openai_base_url", "embed_endpoint_url", "server_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        """A malformed URL fails here, as one settings line, not later inside a client library."""
        if value is None or not value.strip():
            return None
        _check_url(value.strip())
        return value.strip()

    @field_validator("*", mode="before")
    @classmethod
    def _no_truth_for_a_number(cls, value: Any, info: Any) -> Any:
        """`top_k = true` in the config file is a mistake, not 1."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in (int, float, int | None, float | None):
            raise ValueError(f"it is {str(value).lower()}; give a number")
        return value

    @field_validator("retriever", "reranker", "llm", "verifier", "grounding", "embedder", "embed_device", mode="before")
    @classmethod
    def _choice_in_any_case(cls, value: Any) -> Any:
        """RAG_RETRIEVER=BM25 means bm25: a choice's case carries no meaning."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("data_dir", "embed_model_dir", mode="before")
    @classmethod
    def _home_expanded(cls, value: Any) -> Any:
        """ "~/rag-data" is the user's home folder, as in a shell, not a folder named "~"."""
        if not (isinstance(value, str | Path) and str(value).startswith("~")):
            return value
        try:
            return Path(value).expanduser()
        except RuntimeError:  # "~someone" for a user this machine does not have
            raise ValueError(
                f"{str(value).split('/')[0]!r} names no user's home folder here; give the full path"
            ) from None

    @field_validator("llm_model")
    @classmethod
    def _model_named(cls, value: str) -> str:
        """An empty model name would be sent to the endpoint as it is."""
        if not value.strip():
            raise ValueError("it is empty; give the model's name or unset RAG_LLM_MODEL for the default")
        return value.strip()

    @field_validator("collection")
    @classmethod
    def _chroma_name(cls, value: str) -> str:
        """Chroma's own rule for a collection name, as one settings line before the store opens."""
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]", value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a collection name: 3-512 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("embed_model_dir", mode="before")
    @classmethod
    def _model_dir_given(cls, value: Any) -> Any:
        """An empty RAG_EMBED_MODEL_DIR would look for the model in the current directory."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("it is empty; unset RAG_EMBED_MODEL_DIR for the default or give the model's folder")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_given(cls, value: Any) -> Any:
        """An empty RAG_DATA_DIR would put the store in the current directory."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("it is empty; unset RAG_DATA_DIR for the default or give a folder")
        if isinstance(value, str | Path):
            # a file where the folder (or one above it) should be: say so, not "cannot read"
            for place in (Path(value), *Path(value).parents):
                if place.exists() and not place.is_dir():
                    raise ValueError(f"{place} is a file, not a folder; give a folder (it is made if missing)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFile(settings_cls, toml_file=config_path())

    @property
    def llm_enabled(self) -> bool:
        return self.llm == "auto" and bool(self.openai_api_key or self.openai_base_url)

    @property
    def endpoint(self) -> str:
        return self.openai_base_url or "https://api.openai.com/v1"

    @property
    def model_dir(self) -> Path:
        """The embedder's folder: the configured one, else Chroma's own cache folder."""
        return self.embed_model_dir or CHROMA_CACHE_MODEL_DIR


class _ConfigFile(TomlConfigSettingsSource):
    """The config file, whose relative folders (data_dir = "rag-data") are read from the file's own
    folder: the same store whatever directory rag runs in."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        """Read as text: a byte-order mark, which Windows editors write, is no TOML error."""
        return tomllib.loads(file_path.read_text(encoding="utf-8-sig"))

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for name in ("data_dir", "embed_model_dir"):
            value = values.get(name)
            if isinstance(value, str) and value.strip() and not value.startswith("~") and not Path(value).is_absolute():
                values[name] = str(config_path().parent / value)
        return values


_warned: set[str] = set()


def _warn(message: str) -> None:
    """One line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        print(f"rag: warning: {message}", file=sys.stderr)


def known_keys() -> set[str]:
    """Every key a config file may use: setting names and their aliases (OPENAI_API_KEY, ...)."""
    keys = set(Settings.model_fields)
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, AliasChoices):
            keys.update(a for a in info.validation_alias.choices if isinstance(a, str))
    return keys


def check_config_file() -> None:
    """Warn (without stopping) about a RAG_CONFIG that names no file and about unknown keys.

    Unknown keys are warnings, not errors, so a file written for a newer version still works;
    a typo ("top-k") is named on every run until it is fixed."""
    path = config_path()
    if os.environ.get("RAG_CONFIG") and not path.is_file():
        _warn(f"RAG_CONFIG names {path}, which is not a file; no config file is read")
        return
    if path.is_dir():
        _warn(f"{path} is a directory, not a config file; no config file is read (remove it or set RAG_CONFIG)")
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # no file, or one that does not parse (reported when the settings load)
    known = known_keys()
    for key in data:
        if key.lower() in known and key not in known:  # pydantic-settings reads keys in any case
            _warn(f"{path}: setting {key!r} is read as {key.lower()!r}; write it in lower case")
        elif key not in known:
            close = difflib.get_close_matches(key.lower().replace("-", "_"), sorted(known), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; see `rag config` for the {len(Settings.model_fields)} settings"
            )
            _warn(f"{path}: unknown setting {key!r} is ignored{hint}")


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (None means 'not given'), environment and config file."""
    given = {k: v for k, v in flags.items() if v is not None}
    check_config_file()
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(
            f"invalid setting {name}: {message} (check flags, RAG_* variables and {config_path()})"
        ) from None
    except Exception as exc:  # a TOML file that does not parse
        raise SettingsError(
            f"cannot read config file {config_path()}: {exc}; fix its TOML (key = value lines) or set RAG_CONFIG to another file"
        ) from None


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, shown value, source: env, file or default) for every setting; secrets are masked."""
    try:
        toml_keys = set(_ConfigFile(Settings, toml_file=config_path())().keys())
    except Exception:
        toml_keys = set()
    rows = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        env_names = [a for a in choices if isinstance(a, str) and a.isupper()]
        env_names = env_names or [f"RAG_{name.upper()}"]
        if any(os.environ.get(e) for e in env_names):
            source = f"env {next(e for e in env_names if os.environ.get(e))}"
        elif name in toml_keys or any(e in toml_keys for e in env_names):
            source = f"file {config_path()}"
        else:
            source = "default"
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "(set)" if value.get_secret_value() else "(not set)"
        elif name in ("chroma_url", "openai_base_url", "embed_endpoint_url", "server_url") and value:
            shown = mask_url(value)
        else:
            shown = "(not set)" if value is None else str(value)
        rows.append((name, shown, source))
    return rows
