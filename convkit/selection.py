"""Which backend a call runs on, and where that choice came from.

Six levels, most specific first; the first that names a backend wins:

1. the ``backend=`` argument of a call (``"torch"`` or ``"torch:cuda"``);
2. :func:`use_backend`, a context manager local to the thread or asyncio task;
3. :func:`set_backend`, process-wide;
4. the environment variables ``CONVKIT_BACKEND`` and ``CONVKIT_DEVICE``;
5. a config file: the file named by ``CONVKIT_CONFIG``, else the nearest
   ``convkit.toml`` (top-level keys) or ``pyproject.toml`` with a ``[tool.convkit]``
   table, searching upward from the working directory;
6. the default, ``"auto"``: per call, the backend and method expected to be fastest
   among those that can take the input where it lives (see :mod:`convkit.planner`).

Everything is read when a call needs it, so changing an environment variable or a
config file after ``import convkit`` takes effect (a call that repeats an earlier call's
signature sees a changed file within :data:`convkit.plans.FILES_RECHECK_SECONDS`). Options for one backend (such as its
``device``) may also come from a per-backend table of the config file,
``[tool.convkit.torch]``; options given with the winning level take precedence.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

AUTO = "auto"


class ConfigError(ValueError):
    """A config file or environment variable that convkit cannot use."""


class BackendOptions(dict[str, Any]):
    """A backend's options as :func:`for_backend` merged them: a ``dict`` that also
    keeps, in :attr:`from_config`, the keys whose values came from the config file's
    per-backend table rather than from the selection itself, so that a backend can rank
    its own settings (an explicit option, then its environment variables, then the
    file) even where an explicit option equals the file's value.

    >>> opts = BackendOptions({"chunks": 16, "inner": "numpy"}, from_config={"chunks"})
    >>> opts == {"chunks": 16, "inner": "numpy"}, sorted(opts.from_config)
    (True, ['chunks'])
    """

    from_config: frozenset[str]

    def __init__(self, options: Mapping[str, Any], from_config: Iterable[str] = ()) -> None:
        super().__init__(options)
        self.from_config = frozenset(from_config)


@dataclass(frozen=True)
class Selection:
    """A resolved backend choice: its name, its options, and where it came from.

    >>> Selection("torch", {"device": "cuda"}, "argument")
    Selection(name='torch', options={'device': 'cuda'}, source='argument')
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "default"
    config: Any = field(default=None, compare=False, repr=False)
    """The config file read when this selection was resolved (a :class:`Config`, or
    :data:`NO_CONFIG`), so one call reads the file once; ``None``: not read yet."""

    def __str__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.name}{opts} (from {self.source})"


def parse_backend(value: str, source: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name"`` or ``"name:device"`` into a name and options.

    >>> parse_backend("torch:cuda:1", "argument")
    ('torch', {'device': 'cuda:1'})
    """
    if not isinstance(value, str) or not value.strip():
        raise TypeError(
            f"backend from {source} must be a backend name such as 'numpy' or "
            f"'torch:cuda'; got {value!r}"
        )
    name, _, device = value.strip().partition(":")
    return name, ({"device": device} if device else {})


_context: contextvars.ContextVar[Selection | None] = contextvars.ContextVar(
    "convkit_backend", default=None
)
_global: Selection | None = None


@contextlib.contextmanager
def use_backend(name: str, **options: Any) -> Iterator[Selection]:
    """Run the calls inside the ``with`` block on backend ``name``.

    Local to the current thread and asyncio task (a :mod:`contextvars` variable), and
    nestable. ``name`` may carry a device (``"torch:cuda"``); ``options`` are passed to
    the backend.

    >>> import convkit as ck
    >>> with ck.use_backend("numpy"):
    ...     ck.get_backend().source
    'use_backend() context'
    """
    base, opts = parse_backend(name, "use_backend()")
    selection = Selection(base, {**opts, **options}, "use_backend() context")
    token = _context.set(selection)
    try:
        yield selection
    finally:
        _context.reset(token)


def set_backend(name: str | None, **options: Any) -> None:
    """Select backend ``name`` for the whole process; ``None`` clears the choice.

    >>> import convkit as ck
    >>> ck.set_backend("numpy")
    >>> ck.get_backend().source
    'set_backend()'
    >>> ck.set_backend(None)
    """
    global _global
    if name is None:
        _global = None
        return
    base, opts = parse_backend(name, "set_backend()")
    _global = Selection(base, {**opts, **options}, "set_backend()")


NO_CONFIG = "no config file"
"""The :attr:`Selection.config` of a selection resolved where no config file applies."""


def resolve(backend: str | None = None) -> Selection:
    """Resolve the backend a call with argument ``backend=`` would use (the name may be
    ``"auto"``; :func:`for_backend` adds the per-backend options once it is known)."""
    config = load_config()
    found = _resolve_level(backend, config)
    return replace(found, config=NO_CONFIG if config is None else config)


def config_of(selection: Selection) -> Config | None:
    """The config file ``selection`` was resolved with (read now if it was not)."""
    if selection.config is None:
        return load_config()
    return None if selection.config == NO_CONFIG else selection.config


def for_backend(selection: Selection, name: str) -> Selection:
    """``selection`` for the backend ``name`` that will run: the config file's
    ``[tool.convkit.NAME]`` table under the selection's own options (a
    :class:`BackendOptions` that names the keys taken from the table), and a source that
    names both."""
    config = config_of(selection)
    table = config.backend_options.get(name, {}) if config else {}
    if not table or config is None:
        return Selection(name, selection.options, selection.source, selection.config)
    where = f"{config.path}: " + (
        f"[tool.convkit.{name}]" if config and config.table else f"[{name}]"
    )
    source = selection.source if selection.source != "default" else ""
    source = f"{source}; {where}" if source else where
    given = selection.options
    explicit = given.keys() - getattr(given, "from_config", frozenset())
    merged = {**table, **given}
    options = BackendOptions(merged, merged.keys() - explicit)
    return Selection(name, options, source, selection.config)


def _resolve_level(backend: str | None, config: Config | None) -> Selection:
    if backend is not None:
        name, opts = parse_backend(backend, "the backend= argument")
        return Selection(name, opts, "argument")
    ctx = _context.get()
    if ctx is not None:
        return ctx
    if _global is not None:
        return _global
    env_backend = os.environ.get("CONVKIT_BACKEND", "").strip()
    env_device = os.environ.get("CONVKIT_DEVICE", "").strip()
    if env_backend or env_device:
        name, opts = parse_backend(env_backend or AUTO, "env var CONVKIT_BACKEND")
        if env_device:
            opts["device"] = env_device
        source = "env var CONVKIT_BACKEND" if env_backend else "env var CONVKIT_DEVICE"
        if env_backend and env_device:
            source = "env vars CONVKIT_BACKEND, CONVKIT_DEVICE"
        return Selection(name, opts, source)
    if config is not None and (config.backend is not None or config.device is not None):
        name, opts = parse_backend(config.backend or AUTO, config.source("backend"))
        if config.device is not None:
            opts["device"] = config.device
        key = "backend" if config.backend is not None else "device"
        return Selection(name, opts, config.source(key))
    return Selection(AUTO, {}, "default")


# -- config files ----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The convkit settings read from one file."""

    path: Path
    table: str  # "[tool.convkit]" for pyproject.toml, "" for top-level keys
    backend: str | None
    device: str | None
    backend_options: Mapping[str, Mapping[str, Any]]
    threads: int | None = None

    def source(self, key: str) -> str:
        """Where ``key`` came from, for provenance strings."""
        return f"{self.path}: {self.table} {key}" if self.table else f"{self.path}: {key}"


_cache: dict[tuple[str, int, int], Config | None] = {}


def find_config_file(start: Path | None = None) -> tuple[Path, bool] | None:
    """The config file in force: ``(path, is_pyproject)`` or ``None``.

    ``CONVKIT_CONFIG`` wins; otherwise the nearest directory upward from ``start`` (the
    working directory) holding a ``convkit.toml``, or a ``pyproject.toml`` with a
    ``[tool.convkit]`` table. In one directory ``convkit.toml`` comes first.
    """
    named = os.environ.get("CONVKIT_CONFIG", "").strip()
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"env var CONVKIT_CONFIG names {named!r}, which is not a file")
        return path, path.name == "pyproject.toml"
    # os.path rather than pathlib: this runs on every call that reaches level 5
    directory = os.path.abspath(start) if start is not None else os.getcwd()
    while True:
        prefix = directory if directory.endswith(os.sep) else directory + os.sep
        candidate = prefix + "convkit.toml"
        if _is_file(candidate):
            return Path(candidate), False
        candidate = prefix + "pyproject.toml"
        if _is_file(candidate) and "convkit" in _read_toml_cached(Path(candidate)).get("tool", {}):
            return Path(candidate), True
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _is_file(path: str) -> bool:
    """``os.path.isfile`` without its generic path handling (this runs on every call)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


_toml_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def _read_toml_cached(path: Path) -> dict[str, Any]:
    """:func:`_read_toml`, re-read only when the file's mtime or size changes."""
    info = path.stat()
    key = (str(path), info.st_mtime_ns, info.st_size)
    if key not in _toml_cache:
        _toml_cache[key] = _read_toml(path)
    return _toml_cache[key]


def load_config(start: Path | None = None) -> Config | None:
    """Read the config file in force (see :func:`find_config_file`), or ``None``."""
    found = find_config_file(start)
    if found is None:
        return None
    path, is_pyproject = found
    info = path.stat()
    key = (str(path), info.st_mtime_ns, info.st_size)
    if key not in _cache:
        _cache[key] = _parse_config(path, is_pyproject)
    return _cache[key]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _parse_config(path: Path, is_pyproject: bool) -> Config | None:
    data = _read_toml(path)
    table_name = "[tool.convkit]" if is_pyproject else ""
    if is_pyproject:
        data = data.get("tool", {}).get("convkit", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [tool.convkit] must be a table")

    def where(key: str) -> str:
        return f"{path}: {table_name} {key}" if table_name else f"{path}: {key}"

    backend = data.get("backend")
    device = data.get("device")
    for key, value in (("backend", backend), ("device", device)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where(key)} must be a non-empty string; got {value!r}")
    threads = data.get("threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ConfigError(f"{where('threads')} must be a positive integer; got {threads!r}")
    options: dict[str, Mapping[str, Any]] = {}
    for key, value in data.items():
        if key in ("backend", "device", "threads"):
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where(key)} = {value!r} is not a setting; expected 'backend', "
                f"'device', 'threads', or a table of options for one backend such as [{key}]"
            )
        options[key] = MappingProxyType(dict(value))
    return Config(path, table_name, backend, device, MappingProxyType(options), threads)
