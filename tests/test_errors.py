"""Bad input gets a clear error from the core, naming the argument and the values."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support import clean_environ

import convkit as ck

X = np.ones((2, 4, 8, 8))
W = np.ones((6, 4, 3, 3))


@pytest.mark.parametrize(
    ("x", "w", "kwargs", "error", "match"),
    [
        (
            np.ones((2, 4, 8, 8, 8)),
            W,
            {},
            ValueError,
            r"x has 5 dimensions.*weight.shape=\(6, 4, 3, 3\).*4 dimensions or unbatched \(C_in, \*S\) with 3",
        ),
        (
            np.ones((2, 8, 8)),
            W,
            {},
            ValueError,
            r"C_in // groups = 4 .*x.shape=\(2, 8, 8\) has C_in=2",
        ),
        (X, np.ones((6, 4)), {}, ValueError, r"weight must have shape .*got weight.shape=\(6, 4\)"),
        (X, np.ones((6, 3, 3, 3)), {}, ValueError, r"C_in // groups = 3 .*C_in=4"),
        (
            X,
            np.ones((6, 2, 3, 3)),
            dict(groups=3),
            ValueError,
            r"groups=3 must divide both C_in=4 and C_out=6",
        ),
        (
            X,
            np.ones((6, 4, 9, 3)),
            {},
            ValueError,
            r"kernel is larger than the padded input in spatial dimension 0.*9 exceeds padded size 8",
        ),
        (X, W, dict(dilation=(1, 4)), ValueError, r"kernel extent .* = 9 exceeds padded size 8"),
        (X, W, dict(stride=0), ValueError, r"stride must be >= 1 .*stride=0"),
        (X, W, dict(stride=(1, -2)), ValueError, r"stride must be >= 1 .*stride=\(1, -2\)"),
        (X, W, dict(dilation=0), ValueError, r"dilation must be >= 1"),
        (
            X,
            W,
            dict(stride=(1, 1, 1)),
            ValueError,
            r"stride=\(1, 1, 1\) has 3 entries; expected an int or 2",
        ),
        (X, W, dict(stride=1.5), TypeError, r"stride must be an int or a tuple of 2 ints; got 1.5"),
        (X, W, dict(groups=0), ValueError, r"groups=0 must be a positive integer"),
        (
            X,
            W,
            dict(padding="full"),
            ValueError,
            r"padding='full' is not a padding; expected .*'valid' or 'same'",
        ),
        (X, W, dict(padding=-1), ValueError, r"padding must be >= 0"),
        (X, W, dict(padding=(1, 2, 3)), ValueError, r"padding=\(1, 2, 3\) has 3 entries"),
        (
            X,
            W,
            dict(padding_mode="refelct"),
            ValueError,
            r"padding_mode='refelct' .*'zeros', 'reflect', 'symmetric', 'replicate', 'circular'",
        ),
        (X.astype(np.int64), W, {}, TypeError, r"x has dtype int64"),
        (X, W.astype(bool), {}, TypeError, r"weight has dtype bool"),
        (
            X,
            W,
            dict(bias=np.ones(5)),
            ValueError,
            r"bias must have shape \(C_out,\) = \(6,\); got bias.shape=\(5,\)",
        ),
        (
            X,
            W,
            dict(bias=np.ones(6, dtype=complex)),
            TypeError,
            r"bias has dtype complex128.*float64",
        ),
        (np.ones((2, 4, 0, 8)), W, {}, ValueError, r"spatial sizes >= 1"),
        (
            X,
            W,
            dict(method="fast"),
            ValueError,
            r"method='fast' is not a method; expected one of 'auto', 'direct', 'fft'",
        ),
    ],
)
def test_bad_arguments(x, w, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        ck.conv(x, w, **kwargs)


def test_unknown_backend_lists_registered_and_suggests() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown backend 'nmupy' \(from argument\); registered backends: array_api, dask, numpy, scipy.*did you mean 'numpy'\?",
    ):
        ck.conv(X, W, backend="nmupy")


def test_unknown_backend_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVKIT_BACKEND", "scipyy")
    with pytest.raises(
        ValueError, match=r"'scipyy' \(from env var CONVKIT_BACKEND\).*did you mean 'scipy'"
    ):
        ck.conv(X, W)


def test_unknown_option_is_named() -> None:
    with (
        ck.use_backend("numpy", threads=4),
        pytest.raises(ValueError, match=r"backend 'numpy' does not take option\(s\) threads"),
    ):
        ck.conv(X, W)


def test_numpy_backend_refuses_a_gpu_device() -> None:
    with pytest.raises(
        ValueError, match=r"backend 'numpy' cannot run on device='cuda'; it supports cpu"
    ):
        ck.conv(X, W, backend="numpy:cuda")


def test_array_type_nobody_handles() -> None:
    class Fake:
        shape = (1, 1, 3)
        dtype = np.dtype("float64")

    with pytest.raises(TypeError, match=r"x is a .*Fake, which no registered backend handles"):
        ck.conv(Fake(), np.ones((1, 1, 2)))


def test_missing_dependency_says_what_to_install() -> None:
    """A machine without torch: torch is made unfindable in a fresh interpreter
    (``sys.modules['torch'] = None`` is how the import system spells "not installed")."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        import numpy as np, convkit as ck
        info = {b.name: b for b in ck.list_backends()}
        print("available:", info["torch"].available)
        print("reason:", info["torch"].reason)
        try:
            ck.conv(np.ones((1, 1, 4)), np.ones((1, 1, 2)), backend="torch")
        except ck.BackendUnavailableError as exc:
            print("error:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "available: False" in out
    assert (
        "reason: missing module(s) torch; install it with pip install -e '.[torch]' in the convkit checkout"
        in out
    )
    assert (
        "error: backend 'torch' (selected by argument) is not available: missing module(s) torch; install it with pip install -e '.[torch]' in the convkit checkout"
        in out
    )


def test_torch_cuda_without_a_gpu_is_a_clear_error() -> None:
    torch = pytest.importorskip("torch", reason="the torch backend needs torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(
        ValueError, match=r"device='cuda' was requested but torch .* sees no CUDA device"
    ):
        ck.conv(X, W, backend="torch:cuda")
    with pytest.raises(
        ValueError, match=r"device='tpu' is not a torch device|runs on 'cpu' or 'cuda'"
    ):
        ck.conv(X, W, backend="torch:tpu")


def test_a_convolve_result_in_the_wrong_dtype_is_a_backend_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend that answers a float64 ``convolve`` in float32 is caught, not cast."""
    numpy_backend = ck.checks.registered_backend("numpy")
    real = type(numpy_backend).convolve

    def lossy(self, in1, in2, spec, method, options):  # type: ignore[no-untyped-def]
        return real(self, in1, in2, spec, method, options).astype(np.float32)

    monkeypatch.setattr(type(numpy_backend), "convolve", lossy)
    with pytest.raises(ck.BackendError, match=r"dtype float32; expected shape .* float64"):
        ck.convolve(np.ones(8), np.ones(3), backend="numpy")


@pytest.mark.parametrize("groups", [np.int64(1), 1.0, 0])
def test_conv_transpose_names_a_bad_groups(groups: object) -> None:
    with pytest.raises(ValueError, match=r"groups=.* must be a positive divisor of C_in=2"):
        ck.conv_transpose(np.ones((1, 2, 4)), np.ones((2, 1, 3)), groups=groups)  # type: ignore[arg-type]


def test_the_built_in_kernels_cannot_be_disabled() -> None:
    code = "from convkit.adapters import kernels; print(sorted(kernels.available())[:2])"
    for disabled in ("kernels", "convkit"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=clean_environ(CONVKIT_DISABLED_PLUGINS=disabled),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['bandpass', 'box']"
        assert "the built-in named kernels, which cannot be disabled" in result.stderr
