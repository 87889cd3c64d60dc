"""`embed_device = "cuda"` on a machine without CUDA (this one: the CPU build of onnxruntime, no
GPU): one warning that says what to install, then the same vectors from the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embedders import minilm
from rag.embedders.minilm import CPU, CUDA, MiniLM, providers_for
from tests.conftest import MODEL_DIR, make_settings, run_rag

TEXTS = ["FP8 formats outperform INT8 in accuracy.", "A retrieval benchmark of 597 queries."]


def test_providers_ask_for_cuda_only_when_asked_and_present() -> None:
    assert providers_for("cuda", [CUDA, CPU]) == [CUDA, CPU]
    assert providers_for("cuda", ["AzureExecutionProvider", CPU]) == [CPU]
    assert providers_for("cpu", [CUDA, CPU]) == [CPU]


@pytest.fixture
def fresh_warnings(monkeypatch) -> None:
    monkeypatch.setattr(minilm, "_warned", set())


def test_cuda_without_a_gpu_build_warns_once_and_embeds_on_the_cpu(capsys, fresh_warnings) -> None:
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    gpu = MiniLM.from_settings(make_settings(MODEL_DIR.parent, embed_device="cuda"))
    vectors = gpu.embed(TEXTS)
    gpu.embed(TEXTS)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rag: warning: embed_device is cuda, but this onnxruntime")
    assert "CPU build" in err[0] and "pip install onnxruntime-gpu" in err[0] and "RAG_EMBED_DEVICE=cpu" in err[0]
    assert gpu.device == "cpu"
    np.testing.assert_allclose(vectors, MiniLM(MODEL_DIR).embed(TEXTS), atol=1e-6)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_a_cuda_provider_that_does_not_load_is_said_too(capsys, monkeypatch, fresh_warnings) -> None:
    """The GPU build lists CUDAExecutionProvider but falls back to the CPU when the CUDA libraries
    are missing; pretending the provider is listed reproduces that here."""
    import onnxruntime

    listed = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, *listed])
    gpu = MiniLM(MODEL_DIR, device="cuda")
    assert gpu.embed(TEXTS).shape == (2, 384)
    err = capsys.readouterr().err
    assert "CUDA provider did not load" in err and "cuDNN" in err
    assert gpu.device == "cpu"


def test_the_setting_reaches_the_command(bundled_dir) -> None:
    proc = run_rag(
        "search", "FP8 vs INT8", "-k", "1", env={"RAG_EMBED_DEVICE": "cuda", "RAG_DATA_DIR": str(bundled_dir)}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("embed_device is cuda") == 1


def test_an_unknown_device_is_a_settings_error() -> None:
    proc = run_rag("search", "x", env={"RAG_EMBED_DEVICE": "tpu"})
    assert proc.returncode == 1 and "invalid setting embed_device" in proc.stderr
