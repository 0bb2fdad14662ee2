"""Every workload of ``convkit bench``: convkit's backends and methods and the peers,
timed in one run. The same as ``convkit bench``; arguments pass through.

    python benchmarks/workloads.py --json bench.json --plot bench.png
    python benchmarks/workloads.py --only cnn3x3 text5 --quick
"""

from __future__ import annotations

import sys

from convkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
