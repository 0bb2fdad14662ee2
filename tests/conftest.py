"""Shared fixtures: one parameter per available backend, narrowed by an env var.

``CONVKIT_TEST_BACKENDS=numpy,torch`` limits the backend-parametrised tests to those
backends. ``torch:cuda`` is added when torch is installed; it is marked ``cuda`` and
skipped with a reason on machines without a CUDA device.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

import convkit as ck
from convkit import plans, selection

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _cuda_available() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


def backend_params() -> list:
    wanted = {
        s.strip() for s in os.environ.get("CONVKIT_TEST_BACKENDS", "").split(",") if s.strip()
    }
    params = []
    for info in ck.list_backends():
        if wanted and info.name not in wanted:
            continue
        if not info.available:
            params.append(
                pytest.param(
                    info.name, id=info.name, marks=pytest.mark.skip(reason=info.reason or "")
                )
            )
            continue
        params.append(pytest.param(info.name, id=info.name))
        if info.name == "torch" and (not wanted or "torch:cuda" in wanted or "torch" in wanted):
            params.append(
                pytest.param(
                    "torch:cuda",
                    id="torch-cuda",
                    marks=[
                        pytest.mark.cuda,
                        pytest.mark.skipif(not _cuda_available(), reason="no CUDA device here"),
                    ],
                )
            )
    return params


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """The selection string of one available backend (``numpy``, ``torch:cuda``, ...)."""
    return request.param


@pytest.fixture(autouse=True)
def clean_selection(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Each test starts with no backend selected at any level, outside any config
    file's reach, with the built-in cost models (an empty cache directory) and the
    default thread count."""
    for var in ("CONVKIT_BACKEND", "CONVKIT_DEVICE", "CONVKIT_CONFIG", "CONVKIT_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    selection.set_backend(None)
    ck.set_threads(None)
    plans.clear()  # tests patch backends in place, which signatures do not see
    yield
    selection.set_backend(None)
    ck.set_threads(None)
