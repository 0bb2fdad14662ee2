"""convkit leaves the caller's process as it found it: thread counts, memory, warnings,
and per-call work that does not grow with the files on disk.

Each test runs a fresh interpreter, so what it measures is that process's own state."""

from __future__ import annotations

import json
import sys

import pytest
from support import pip_install, run_python, write_plugin

HAS_TORCH = True
try:
    import torch  # noqa: F401
except ImportError:
    HAS_TORCH = False

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc_trim"
)

THREADS_PROBE = """
    import json
    import numpy as np
    from threadpoolctl import threadpool_info
    import convkit as ck

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    x = np.ones((2, 3, 16, 16), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    dw = np.ones((3, 1, 3, 3), np.float32)
    state = {}
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    state["blas_before"] = blas()
    for backend in ("numpy", "scipy", None):  # None: auto
        ck.conv(x, w, padding=1, backend=backend)
        ck.conv(x, dw, groups=3, backend=backend)  # the numpy backend's depthwise path
        ck.conv_vjp(x, w, np.ones((2, 4, 14, 14), np.float32), backend=backend)
        ck.convolve(np.ones(4096), np.ones(257), method="fft", backend=backend)
    if torch is not None:
        ck.conv(x, w, backend="torch")
        ck.conv(torch.from_numpy(x), torch.from_numpy(w))
        ck.convolve(np.ones(4096), np.ones(257), backend="torch")
        state["torch_after"] = torch.get_num_threads()
    state["blas_after"] = blas()
    print(json.dumps(state))
"""


def test_without_a_threads_setting_no_library_thread_count_changes() -> None:
    """A process started with ``OPENBLAS_NUM_THREADS=1`` and ``torch.set_num_threads(1)``
    keeps both after calls on every built-in backend."""
    result = run_python(THREADS_PROBE, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.splitlines()[-1])
    assert state["blas_before"] and set(state["blas_before"]) == {1}
    assert set(state["blas_after"]) == {1}  # also the BLAS libraries loaded since
    if HAS_TORCH:
        assert state["torch_after"] == 1


SCOPED_PROBE = """
    import json
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    import convkit as ck
    from convkit import threads

    def blas():
        return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

    threadpool_limits(limits=2)  # the caller's own setting
    seen = {}
    numpy_backend = type(ck.checks.registered_backend("numpy"))
    real_conv = numpy_backend.conv

    def spy(self, *args, **kwargs):  # records the counts while the backend computes
        seen["blas_during"] = blas()
        seen["current_during"] = threads.current()
        return real_conv(self, *args, **kwargs)

    numpy_backend.conv = spy
    ck.set_threads(1)
    x, w = np.ones((1, 2, 8, 8)), np.ones((2, 2, 3, 3))
    ck.conv(x, w, backend="numpy")
    seen["blas_after"] = blas()
    seen["current_after"] = threads.current()
    try:
        import torch
        torch.set_num_threads(2)
        backend = ck.checks.registered_backend("torch")
        with threads.limited(backend):
            seen["torch_during"] = torch.get_num_threads()
        ck.conv(x, w, backend="torch")
        seen["torch_after"] = torch.get_num_threads()
    except ImportError:
        pass
    print(json.dumps(seen))
"""


def test_a_threads_setting_applies_within_the_call_only() -> None:
    result = run_python(SCOPED_PROBE)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["blas_during"] == 1 and seen["current_during"] == 1
    assert seen["blas_after"] == 2 and seen["current_after"] is None
    if HAS_TORCH:
        assert seen["torch_during"] == 1 and seen["torch_after"] == 2


@linux_only
def test_scratch_memory_is_bounded_after_a_thread_pool_finishes() -> None:
    """Eight threads each convolve a ~30 MiB padded input at once; once they are idle
    (the pool still alive), the memory convkit keeps is the pool's bound, not eight
    threads' worth. glibc's free lists are trimmed first, so only live arrays count."""
    code = """
        import ctypes, gc, threading
        from concurrent.futures import ThreadPoolExecutor
        import numpy as np
        import convkit as ck
        from convkit_numpy import ops

        def rss_mib():
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

        x = np.ones((1, 16, 700, 700), np.float32)
        w = np.ones((4, 16, 3, 3), np.float32)
        ck.conv(x, w, padding=1, backend="numpy", method="direct")  # the pooled scratch
        gc.collect()
        before = rss_mib()
        barrier = threading.Barrier(8)

        def job(_):
            barrier.wait()  # all eight calls in flight together
            return float(ck.conv(x, w, padding=1, backend="numpy", method="direct").sum())

        pool = ThreadPoolExecutor(8)
        assert len(set(pool.map(job, range(8)))) == 1
        gc.collect()
        print(rss_mib() - before, ops.POOL_BYTES / 2**20)
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    growth, bound = map(float, result.stdout.split())
    assert growth < bound + 24, f"resident memory grew by {growth:.0f} MiB"


@pytest.fixture(scope="module")
def broken_plugin_site(tmp_path_factory: pytest.TempPathFactory):
    """A real plugin package, installed with pip, whose import fails."""
    root = tmp_path_factory.mktemp("broken")
    src = write_plugin(root / "src", "ck-fails", "ck_fails", 'raise RuntimeError("broken")\n')
    site = root / "site"
    pip_install("--target", str(site), str(src))
    return site


def test_a_plugin_warning_is_shown_once_per_process(broken_plugin_site) -> None:
    code = """
        import warnings
        warnings.simplefilter("always")  # show every emission, not the default once
        import numpy as np
        import convkit as ck
        from convkit import plugins
        ck.conv(np.ones((1, 1, 4)), np.ones((1, 1, 2)))
        ck.list_backends()
        ck.convolve(np.ones(4), np.ones(2))
        plugins.reload()
        ck.conv(np.ones((1, 1, 4)), np.ones((1, 1, 2)))
    """
    result = run_python(code, site=broken_plugin_site)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count('Error loading convkit plugin "ck_fails"') == 1, result.stderr


def test_calls_do_not_search_for_modules_once_a_calibration_file_exists(tmp_path) -> None:
    """With ``costs.json`` present, the backend versions it is checked against are read
    once, at plugin loading: a call searches the file system for no module."""
    code = """
        import importlib.util, json
        import numpy as np
        import convkit as ck
        from convkit import calibration, checks

        models, versions = {}, {}
        for info in ck.list_backends():
            if info.available:
                b = checks.registered_backend(info.name)
                key = calibration.model_key(b, {})
                models[key], versions[key] = b.cost_model({}), calibration._version(b)
        calibration.save(models, versions)
        x, w = np.ones((1, 1, 16)), np.ones((1, 1, 3))
        ck.conv(x, w)
        searches = []
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda *a, **k: searches.append(a[0]) or real(*a, **k)
        for _ in range(20):
            ck.conv(x, w)
            ck.convolve(np.ones(16), np.ones(3))
        print(json.dumps({"searches": searches}))
    """
    result = run_python(code, CONVKIT_CACHE_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "costs.json").exists()
    assert json.loads(result.stdout.splitlines()[-1])["searches"] == []
