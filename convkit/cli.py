"""The ``convkit`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from convkit import api, plugins
from convkit.backend import Backend, BackendInfo


def _backends(args: argparse.Namespace) -> int:
    infos = api.list_backends()
    registry = plugins.host().registry
    rows = [("backend", "available", "from", "dims", "dtypes", "devices")]
    for info in infos:
        caps = info.capabilities
        origin = info.distribution or info.plugin
        if info.version:
            origin += f" {info.version}"
        rows.append(
            (
                info.name,
                "yes" if info.available else "no",
                origin,
                caps.describe_ndim(),
                ",".join(caps.dtypes),
                _devices(registry.get(info.name), info),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for info in infos:
        if not info.available:
            print(f"\n{info.name}: unavailable: {info.reason}")
    for failure in plugins.failures():
        print(
            f"\nplugin {failure.plugin!r} (distribution {failure.distribution}) failed to "
            f"load: {failure.error}"
        )
        if args.verbose:
            print(failure.traceback)
    selection = api.get_backend()
    print(f"\nactive: {selection}")
    if selection.name == "auto":
        print("  auto: each call runs on the backend that owns its input's array type")
    try:
        api.check_selection(selection)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"  but it cannot be used: {exc}")
        return 1
    return 0


def _devices(backend: Backend | None, info: BackendInfo) -> str:
    """Declared devices, those absent from this machine marked ``(absent)``."""
    declared = info.capabilities.devices
    here = declared
    if backend is not None and info.available:
        try:
            here = backend.devices_here()
        except Exception:  # a broken probe must not break the listing
            here = ()
    return ",".join(d if d in here else f"{d}(absent)" for d in declared)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``convkit`` command."""
    parser = argparse.ArgumentParser(
        prog="convkit", description="N-dimensional convolution with pluggable backends."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backends", help="list the registered backends and the active choice")
    p.add_argument("-v", "--verbose", action="store_true", help="show plugin tracebacks")
    p.set_defaults(func=_backends)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``convkit`` command.

    >>> main(["backends"])  # doctest: +ELLIPSIS
    backend ...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"convkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
