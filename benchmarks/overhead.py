"""Per-call overhead: a tiny ``conv`` and ``convolve``, with and without a calibration file.

Each case runs in a fresh interpreter whose cache directory either holds no
``costs.json`` (built-in rates) or one written by ``convkit calibrate``'s store, so the
two columns differ only in that file. Peers (``torch.nn.functional.conv1d``,
``scipy.signal.convolve``) are timed in the same processes; the table gives medians of
``--rounds`` rounds of ``--calls`` calls each, in microseconds per call.

    python benchmarks/overhead.py [--rounds 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    import numpy as np
    import convkit as ck

    rounds, calls = int(sys.argv[1]), int(sys.argv[2])
    x, w = np.ones((1, 1, 16), np.float32), np.ones((1, 1, 3), np.float32)
    a, b = np.ones(16), np.ones(3)
    cases = {
        "conv (auto)": lambda: ck.conv(x, w),
        "conv (numpy)": lambda: ck.conv(x, w, backend="numpy"),
        "convolve (auto)": lambda: ck.convolve(a, b),
        "convolve (numpy)": lambda: ck.convolve(a, b, backend="numpy"),
    }
    try:
        import scipy.signal
        cases["scipy.signal.convolve (peer)"] = lambda: scipy.signal.convolve(a, b)
    except ImportError:
        pass
    try:
        import torch
        import torch.nn.functional as F
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        cases["F.conv1d (peer)"] = lambda: F.conv1d(tx, tw)
    except ImportError:
        pass
    for f in cases.values():  # warm up: imports, plugin loading, caches
        for _ in range(50):
            f()
    out = {}
    for name, f in cases.items():
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(calls):
                f()
            times.append((time.perf_counter() - t) / calls)
        out[name] = statistics.median(times) * 1e6
    print(json.dumps(out))
    """
)


def run(rounds: int, calls: int, calibrated: bool) -> dict[str, float]:
    cache = tempfile.mkdtemp(prefix="convkit-overhead-")
    env = {**os.environ, "CONVKIT_CACHE_DIR": cache}
    if calibrated:
        # the store as `convkit calibrate` leaves it, with the built-in rates as values
        store = textwrap.dedent(
            """
            import convkit as ck
            from convkit import calibration, plugins
            models, versions = {}, {}
            for info in ck.list_backends():
                if info.available:
                    b = plugins.host().registry.get(info.name)
                    key = calibration.model_key(b, {})
                    models[key] = b.cost_model({})
                    versions[key] = calibration._version(b)
            calibration.save(models, versions)
            """
        )
        subprocess.run([sys.executable, "-c", store], env=env, check=True)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(rounds), str(calls)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    plain = run(args.rounds, args.calls, calibrated=False)
    stored = run(args.rounds, args.calls, calibrated=True)
    print(f"{'case':32} {'no costs.json':>14} {'with costs.json':>16}   (µs per call)")
    for name in plain:
        print(f"{name:32} {plain[name]:14.1f} {stored.get(name, float('nan')):16.1f}")


if __name__ == "__main__":
    main()
