"""convolve with method="auto" against SciPy, NumPy and torchaudio on the CPU.

Workloads ("valid", float32): audio, a 2**20-sample signal with a 1025-tap kernel;
image, 2048 x 2048 with 31 x 31; volume, 128**3 with 5**3. Every candidate is timed
in the same run; the table gives each median and its ratio to the fastest peer.

    python benchmarks/signal_cpu.py [--only audio] [--rounds 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.signal

import convkit as ck
from convkit.bench import measure, ratio_table

WORKLOADS = {
    "audio": ((2**20,), (1025,)),
    "image": ((2048, 2048), (31, 31)),
    "volume": ((128, 128, 128), (5, 5, 5)),
}


def peers(a: np.ndarray, b: np.ndarray) -> dict:
    out = {
        "scipy.signal.fftconvolve (peer)": lambda: scipy.signal.fftconvolve(a, b, "valid"),
        "scipy.signal.oaconvolve (peer)": lambda: scipy.signal.oaconvolve(a, b, "valid"),
    }
    if a.ndim == 1:
        out["numpy.convolve (peer)"] = lambda: np.convolve(a, b, "valid")
        try:
            import torch
            import torchaudio.functional as AF

            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            out["torchaudio fftconvolve (peer)"] = lambda: AF.fftconvolve(ta, tb, "valid")
        except ImportError:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for name, (s1, s2) in WORKLOADS.items():
        if args.only and name != args.only:
            continue
        a = rng.standard_normal(s1).astype(np.float32)
        b = rng.standard_normal(s2).astype(np.float32)
        candidates = peers(a, b)
        peer_names = list(candidates)
        backends = [i.name for i in ck.list_backends() if i.available]
        for backend in backends:
            choice = ck.choose_method(a, b, "valid", backend=backend)
            candidates[f"convkit {backend} auto -> {choice.method}"] = (
                lambda backend=backend, a=a, b=b: ck.convolve(a, b, "valid", backend=backend)
            )
        expected = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), "valid")
        for cname, fn in candidates.items():
            y = np.asarray(fn())
            err = np.max(np.abs(y - expected)) / np.max(np.abs(expected))
            assert err < 1e-3, f"{cname}: relative error {err:.2e}"
        rounds = 1 if name == "audio" and "numpy.convolve (peer)" in candidates else args.rounds
        medians = measure(candidates, max(rounds, args.rounds if name != "audio" else 3))
        print(f"\n{name}: in1 {s1}, in2 {s2}, 'valid', float32")
        print(ratio_table(medians, peer_names))


if __name__ == "__main__":
    main()
