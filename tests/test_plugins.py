"""Plugin loading: lazy imports, isolation of broken plugins, the autoload switch.

The third-party plugins here are real packages, built and installed with pip into a
temporary directory, and exercised in fresh interpreters that see that directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import clean_environ, pip_install, run_python, write_plugin

import convkit as ck

BACKEND = """
import numpy as np
import convkit
from convkit_numpy import NumpyBackend

CONVKIT_PLUGIN_API = 1

class {cls}(NumpyBackend):
    name = "{name}"
"""

SUBCLASS = """
class {cls}(NumpyBackend):
    name = "{name}"
"""

PLUGINS = {
    # a good plugin: a NumPy-based backend under another name, and a named kernel
    "ck-good": (
        "ck_good",
        BACKEND.format(cls="Good", name="good")
        + """
@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Good())

@convkit.hookimpl
def convkit_add_kernels(registry):
    registry.add("cross", "image", lambda size=3: np.eye(size) + np.eye(size)[::-1],
                 "an X: cross:size=5")
""",
    ),
    # declares narrow capabilities: the core must refuse what it cannot do
    "ck-limited": (
        "ck_limited",
        BACKEND.format(cls="Limited", name="limited")
        + """
from convkit import Capabilities

Limited.capabilities = Capabilities(
    dtypes=("float32", "float64"), max_ndim=2, groups=False, dilation=False,
    padding_modes=("zeros", "circular"), options=(),
)

@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Limited())
""",
    ),
    # fails to import
    "ck-broken-import": (
        "ck_broken_import",
        """
raise RuntimeError("this plugin is broken on purpose")
""",
    ),
    # written for a plugin API this convkit does not provide
    "ck-future-api": ("ck_future_api", "CONVKIT_PLUGIN_API = 2\n"),
    # states no plugin API at all
    "ck-no-api": ("ck_no_api", "import convkit\n"),
    # misspelled hook name: caught by check_pending()
    "ck-misspelled": (
        "ck_misspelled",
        """
import convkit
CONVKIT_PLUGIN_API = 1

@convkit.hookimpl
def convkit_add_backend(registry):
    pass
""",
    ),
    # hook with an argument the spec does not have: caught at registration
    "ck-bad-signature": (
        "ck_bad_signature",
        """
import convkit
CONVKIT_PLUGIN_API = 1

@convkit.hookimpl
def convkit_add_backends(registry, extra):
    pass
""",
    ),
    # raises while registering; its first backend must not stay half-registered
    "ck-raises": (
        "ck_raises",
        BACKEND.format(cls="Half", name="half")
        + """
@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Half())
    raise ValueError("failed after adding one backend")
""",
    ),
    # takes a name that is already registered
    "ck-duplicate": (
        "ck_duplicate",
        BACKEND.format(cls="Dup", name="numpy")
        + """
@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Dup())
""",
    ),
    # a backend that raises when called
    "ck-raises-at-call": (
        "ck_raises_at_call",
        BACKEND.format(cls="Crash", name="crash")
        + """
def _conv(self, *args, **kwargs):
    raise ZeroDivisionError("the backend fell over")

Crash.conv = _conv

@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Crash())
""",
    ),
    # backends that return the wrong shape, or the wrong dtype
    "ck-wrong-results": (
        "ck_wrong_results",
        BACKEND.format(cls="Short", name="short")
        + SUBCLASS.format(cls="Single", name="single")
        + """
def _short(self, x, w, b, spec, options):
    return NumpyBackend.conv(self, x, w, b, spec, options)[..., :-1]

def _single(self, x, w, b, spec, options):
    return NumpyBackend.conv(self, x, w, b, spec, options).astype(np.float32)

Short.conv = _short
Single.conv = _single

@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Short())
    registry.add(Single())
""",
    ),
}


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with every plugin above installed by pip, as a user would."""
    root = tmp_path_factory.mktemp("plugins")
    sources = [
        str(write_plugin(root / "src" / dist, dist, module, code))
        for dist, (module, code) in PLUGINS.items()
    ]
    site = root / "site"
    pip_install("--target", str(site), *sources)
    return site


def test_import_convkit_imports_no_backend_library() -> None:
    result = run_python("""
        import sys, numpy as np, convkit as ck
        ck.get_backend()
        ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 2)))   # the numpy backend (auto)
        ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 2)), backend="numpy")
        print(sorted(m for m in ("torch", "scipy", "jax") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_broken_plugins_are_reported_and_isolated(plugin_site: Path) -> None:
    result = run_python(
        """
        import warnings
        import numpy as np
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import convkit as ck
            names = [b.name for b in ck.list_backends()]
        from convkit import plugins
        for f in sorted(plugins.failures(), key=lambda f: f.plugin):
            print("FAIL", f.plugin, f.distribution, "|", f.error)
        print("NAMES", names)
        print("WARNINGS", len([w for w in caught if issubclass(w.category, ck.PluginWarning)]))
        y = ck.conv(np.ones((1, 1, 4)), np.ones((1, 1, 2)), backend="good")
        print("GOOD", y.tolist())
    """,
        plugin_site,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FAIL ck_bad_signature ck-bad-signature | PluginValidationError" in out
    assert (
        "FAIL ck_broken_import ck-broken-import | RuntimeError: this plugin is broken on purpose"
        in out
    )
    assert (
        "FAIL ck_duplicate ck-duplicate | ValueError: backend 'numpy' is already registered by plugin 'numpy'"
        in out
    )
    assert (
        "FAIL ck_misspelled ck-misspelled | PluginValidationError: unknown hook 'convkit_add_backend'"
        in out
    )
    assert "FAIL ck_raises ck-raises | ValueError: failed after adding one backend" in out
    assert (
        "FAIL ck_future_api ck-future-api | PluginAPIError: plugin 'ck_future_api' was written "
        "for convkit plugin API 2; this convkit provides plugin API 1" in out
    )
    assert (
        "FAIL ck_no_api ck-no-api | PluginAPIError: plugin 'ck_no_api' states no "
        "CONVKIT_PLUGIN_API; this convkit provides plugin API 1" in out
    )
    names = eval(out.split("NAMES ")[1].splitlines()[0])
    assert sorted(names) == sorted(
        [
            "array_api",
            "crash",
            "dask",
            "good",
            "limited",
            "numpy",
            "scipy",
            "short",
            "single",
            "torch",
        ]
    )  # no 'half' left behind
    assert "WARNINGS 7" in out
    assert "GOOD [[[2.0, 2.0, 2.0]]]" in out


def test_cli_lists_plugins_and_failures(plugin_site: Path) -> None:
    result = run_python(
        "import sys; from convkit.cli import main; sys.exit(main(['backends']))", plugin_site
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    good = next(line for line in lines if line.startswith("good "))
    assert good.split()[:4] == ["good", "yes", "ck-good", "1.2.3"]
    assert (
        "plugin 'ck_broken_import' (distribution ck-broken-import) failed to load: RuntimeError"
        in result.stdout
    )
    assert 'Error loading convkit plugin "ck_broken_import"' in result.stderr  # the warning


def test_autoload_switch_loads_only_the_builtins(plugin_site: Path) -> None:
    result = run_python(
        "import convkit as ck; from convkit import plugins;"
        "print(sorted(b.name for b in ck.list_backends()), plugins.failures())",
        plugin_site,
        CONVKIT_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['array_api', 'dask', 'numpy', 'scipy', 'torch'] []"


def test_builtins_register_through_entry_points() -> None:
    info = {b.name: b for b in ck.list_backends()}
    for name in ("numpy", "scipy", "torch", "dask", "array_api"):
        assert info[name].plugin == name
        assert info[name].distribution == "convkit"
        assert info[name].version == ck.__version__


def test_registry_refuses_what_is_not_a_backend() -> None:
    from convkit.plugins import BackendRegistry

    registry = BackendRegistry()
    with pytest.raises(TypeError, match=r"expects a convkit\.Backend instance"):
        registry.add(object())  # type: ignore[arg-type]

    class Bad(ck.Backend):
        name = "Bad Name"

    with pytest.raises(ValueError, match="backend name 'Bad Name' is invalid"):
        registry.add(Bad())


def test_core_refuses_what_a_backend_does_not_declare(plugin_site: Path) -> None:
    result = run_python(
        """
        import numpy as np, convkit as ck
        x, w = np.ones((1, 2, 6, 6)), np.ones((2, 2, 3, 3))
        calls = {
            "complex": lambda: ck.conv(x.astype(complex), w, backend="limited"),
            "3d": lambda: ck.conv(np.ones((1, 2, 4, 4, 4)), np.ones((2, 2, 2, 2, 2)), backend="limited"),
            "groups": lambda: ck.conv(x, w[:, :1], groups=2, backend="limited"),
            "dilation": lambda: ck.conv(x, w, dilation=2, backend="limited"),
            "mode": lambda: ck.conv(x, w, padding=1, padding_mode="reflect", backend="limited"),
            "option": lambda: ck.conv(x, w, backend="limited:cpu"),
        }
        for name, call in calls.items():
            try:
                call()
                print(name, "ran")
            except (TypeError, ValueError) as exc:
                print(name, type(exc).__name__, exc)
        print("ok", ck.conv(x, w, padding=1, padding_mode="circular", backend="limited").shape)
        """,
        plugin_site,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "complex TypeError backend 'limited' does not support dtype complex128; it supports float32, float64"
        in out
    )
    assert "3d ValueError backend 'limited' supports 1-2 spatial dimensions; this call has 3" in out
    assert "groups ValueError backend 'limited' does not support groups > 1" in out
    assert "dilation ValueError backend 'limited' does not support dilation > 1" in out
    assert (
        "mode ValueError backend 'limited' does not support padding_mode='reflect'; it supports zeros, circular"
        in out
    )
    assert "option ValueError backend 'limited' does not take option(s) device" in out
    assert "ok (1, 2, 6, 6)" in out


def test_dask_checks_its_inner_backend_before_building_the_graph(plugin_site: Path) -> None:
    """The blocks call the inner backend directly, so the dask backend checks it once,
    as a call to it would be checked: what it does not declare is an error up front,
    never a wrong block."""
    pytest.importorskip("dask.array", reason="the dask backend needs dask")
    result = run_python(
        """
        import numpy as np, convkit as ck
        import dask.array as da
        x = da.ones((1, 2, 4, 4, 4), chunks=2)
        ck.conv(x, np.ones((2, 2, 2, 2, 2)), backend="dask", method="direct")  # auto: fine
        with ck.use_backend("dask", inner="limited"):
            try:
                ck.conv(x, np.ones((2, 2, 2, 2, 2)), method="direct")
            except ck.BackendError as exc:  # names the dask backend, then why
                print("refused:", exc)
            y = ck.conv(da.ones((1, 2, 6, 6), chunks=3), np.ones((2, 2, 3, 3)), method="direct")
            print("ok", y.compute().tolist()[0][0][0])
        """,
        plugin_site,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("refused:") == 1, out
    assert "failed in conv(): ValueError: backend 'limited' supports 1-2 spatial dimensions" in out
    assert "ok [18.0, 18.0, 18.0, 18.0]" in out


def test_conformance_suite_skips_undeclared_cases_with_the_reason(
    plugin_site: Path, tmp_path: Path
) -> None:
    """A third-party backend runs convkit.testing's suite on itself: what its
    capabilities exclude is skipped with that reason, everything else passes."""
    (tmp_path / "test_limited.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from convkit.testing.conformance import BackendConformance

            class TestLimited(BackendConformance):
                @pytest.fixture
                def backend(self):
                    return "limited"
            """
        )
    )
    environ = clean_environ(PYTHONPATH=str(plugin_site))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_limited.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environ,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"\d+ failed", result.stdout)
    assert "backend 'limited' declares 1-2 spatial dims" in result.stdout
    assert "backend 'limited' declares no complex128 support" in result.stdout
    assert "backend 'limited' declares no padding_mode='reflect'" in result.stdout
    assert re.search(r"\d+ passed, \d+ skipped", result.stdout)


def test_a_backend_failing_at_call_time_is_named(plugin_site: Path) -> None:
    result = run_python(
        """
        import numpy as np, convkit as ck
        x, w = np.ones((1, 1, 6)), np.ones((1, 1, 3))
        for name in ("crash", "short", "single"):
            try:
                ck.conv(x, w, backend=name)
                print(name, "no error")
            except ck.BackendError as exc:
                print(name, exc)
        print("numpy still works:", ck.conv(x, w, backend="numpy").tolist())
        """,
        plugin_site,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "crash backend 'crash' from plugin 'ck_raises_at_call' (ck-raises-at-call 1.2.3) failed "
        "in conv(): ZeroDivisionError: the backend fell over" in out
    )
    assert (
        "short backend 'short' from plugin 'ck_wrong_results' (ck-wrong-results 1.2.3) returned "
        "its result with shape (1, 1, 3) and dtype float64; expected shape (1, 1, 4) and dtype "
        "float64" in out
    )
    assert "single backend 'single' from plugin 'ck_wrong_results'" in out
    assert "dtype float32; expected shape (1, 1, 4) and dtype float64" in out
    assert "numpy still works: [[[3.0, 3.0, 3.0, 3.0]]]" in out


def test_disabled_plugins_are_skipped_but_numpy_stays(plugin_site: Path) -> None:
    code = (
        "import sys, warnings; warnings.simplefilter('always')\n"
        "import convkit as ck; from convkit import plugins\n"
        "print('NAMES', sorted(b.name for b in ck.list_backends()))\n"
        "print('DISABLED', sorted(plugins.host().disabled))\n"
    )

    def listed(out: str, key: str) -> list[str]:
        return eval(next(line for line in out.splitlines() if line.startswith(key))[len(key) :])

    result = run_python(code, plugin_site, CONVKIT_DISABLED_PLUGINS="ck_good, scipy, numpy")
    assert result.returncode == 0, result.stderr
    names = listed(result.stdout, "NAMES")
    assert "good" not in names and "scipy" not in names and "numpy" in names
    assert listed(result.stdout, "DISABLED") == ["ck_good", "scipy"]
    assert "the built-in NumPy backend, which cannot be disabled" in result.stderr
    # a distribution name works too
    result = run_python(code, plugin_site, CONVKIT_DISABLED_PLUGINS="ck-limited")
    assert "limited" not in listed(result.stdout, "NAMES")


def test_trace_prints_hook_calls(plugin_site: Path) -> None:
    result = run_python(
        "import convkit as ck; ck.list_backends()", plugin_site, CONVKIT_TRACE_PLUGINS="1"
    )
    assert result.returncode == 0
    assert "convkit_add_backends" in result.stderr and "convkit_add_kernels" in result.stderr


def test_every_hook_has_a_test() -> None:
    """Each hook spec is exercised by name somewhere in the tests."""
    from convkit import hookspecs

    here = Path(__file__).parent
    sources = "".join(p.read_text() for p in here.glob("test_*.py"))
    for hook in (n for n in dir(hookspecs) if n.startswith("convkit_")):
        assert f"def {hook}(" in sources, f"no test plugin implements {hook}"


def test_a_plugin_kernel_reaches_the_filter_command(plugin_site: Path, tmp_path: Path) -> None:
    pytest.importorskip("PIL", reason="the filter command writes images with Pillow")
    from convkit.adapters import image

    image.save(tmp_path / "in.png", np.full((1, 9, 9), 0.5))
    result = run_python(
        "import sys; from convkit.cli import main; sys.exit(main(sys.argv[1:]))",
        plugin_site,
    )
    assert result.returncode == 2  # no arguments: usage
    code = (
        "import sys; from convkit.cli import main\n"
        f"sys.exit(main(['filter', r'{tmp_path / 'in.png'}', r'{tmp_path / 'out.png'}', "
        "'--kernel', 'cross:size=5']))"
    )
    result = run_python(code, plugin_site)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").is_file()
    listed = run_python(
        "from convkit.adapters.kernels import available; print(sorted(available()))", plugin_site
    )
    assert "'cross'" in listed.stdout


def test_generic_algorithms_respect_declared_capabilities(plugin_site: Path) -> None:
    """'limited' declares no dilation, no groups and at most 2-d: it still trains strided
    layers (the weight gradient is a dilated conv, rewritten for it) and still convolves
    3-d data (by FFT), and refuses only what it truly cannot do."""
    result = run_python(
        """
        import numpy as np, convkit as ck
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((2, 2, 9, 8)), rng.standard_normal((3, 2, 3, 2))
        g = rng.standard_normal(ck.conv(x, w, stride=2).shape)
        ours = ck.conv_vjp(x, w, g, stride=2, backend="limited")
        ref = ck.conv_vjp(x, w, g, stride=2, backend="numpy")
        print("vjp", max(float(np.max(np.abs(a - b))) for a, b in zip(ours, ref)))
        a, b = rng.standard_normal((6, 7, 8)), rng.standard_normal((3, 2, 4))
        y = ck.convolve(a, b, backend="limited")
        print("3d", float(np.max(np.abs(y - ck.convolve(a, b, backend="numpy")))))
        print("choice", ck.choose_method(a, b, backend="limited").method)
        try:
            ck.convolve(a, b, method="direct", backend="limited")
        except ValueError as exc:
            print("direct", exc)
        """,
        plugin_site,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert float(lines["vjp"]) < 1e-12 and float(lines["3d"]) < 1e-10
    assert lines["choice"] == "fft"
    assert (
        "method='direct' on backend 'limited' needs a 3-d conv; it supports 1-2" in lines["direct"]
    )
