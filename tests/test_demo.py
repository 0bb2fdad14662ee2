"""examples/demo.py filters a real photograph and writes PNG files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="the demo writes PNG files with Pillow")
data = pytest.importorskip("skimage.data", reason="the demo reads scikit-image's photograph")
ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is the reference here")

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_writes_the_filtered_photograph(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "active: auto (from default)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "camera-gaussian.png",
        "camera-sobel.png",
        "camera.png",
    ]
    blurred = np.asarray(Image.open(out / "camera-gaussian.png"), dtype=np.float64) / 255
    # independent reference: scipy.ndimage with the same kernel; 'mirror' is convkit's reflect
    sys.path.insert(0, str(DEMO.parent))
    try:
        from demo import filter_bank
    finally:
        sys.path.pop(0)
    image = data.camera().astype(np.float64) / 255
    expected = ndimage.correlate(image, filter_bank()[0, 0].astype(np.float64), mode="mirror")
    assert np.max(np.abs(blurred - expected)) <= 0.5 / 255 + 1e-6  # PNG rounding only
