"""Run the JAX backend in 64-bit mode, so the conformance suite's float64 cases run too
(set before JAX is imported)."""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
