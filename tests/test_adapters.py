"""Adapters on real files: round trips, the filter command, and bad input."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

pytest.importorskip("PIL", reason="images are read and written with Pillow")
pytest.importorskip("soundfile", reason="audio is read and written with soundfile")

from convkit.adapters import audio, image, kernels, text

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the photographs")


# -- images ----------------------------------------------------------------------------


@pytest.mark.parametrize("grey", [True, False])
def test_png_round_trip_is_exact(tmp_path: Path, grey: bool) -> None:
    photo = skdata.camera() if grey else skdata.astronaut()
    arr = photo.astype(np.float32) / 255
    arr = arr[None] if grey else arr.transpose(2, 0, 1)
    image.save(tmp_path / "x.png", arr)
    back = image.load(tmp_path / "x.png")
    assert back.dtype == np.float32 and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    arr = skdata.coffee().astype(np.float32).transpose(2, 0, 1) / 255
    image.save(tmp_path / "x.jpg", arr)
    back = image.load(tmp_path / "x.jpg")
    assert back.shape == arr.shape and np.mean(np.abs(back - arr)) < 0.03


def test_forced_modes(tmp_path: Path) -> None:
    image.save(tmp_path / "c.png", skdata.astronaut().transpose(2, 0, 1) / 255)
    assert image.load(tmp_path / "c.png", mode="grey").shape == (1, 512, 512)
    image.save(tmp_path / "g.png", skdata.camera()[None] / 255)
    assert image.load(tmp_path / "g.png", mode="rgb").shape == (3, 512, 512)


@pytest.mark.parametrize(
    "name", ["box:size=5", "gaussian:sigma=2", "sobel_x", "sobel_y", "laplacian", "sharpen"]
)
def test_named_kernels_filter_like_scipy_ndimage(name: str) -> None:
    img = skdata.camera()[:128, :128].astype(np.float64) / 255
    k = kernels.kernel(name)
    got = image.filter(img[None], k, padding_mode="reflect")[0]
    # ndimage.convolve flips the kernel too; its 'mirror' is convkit's 'reflect'. Even
    # sizes centre differently (ndimage shifts left, 'same' puts the extra on the right).
    expected = scipy.ndimage.convolve(
        img, k, mode="mirror", origin=[-1 if s % 2 == 0 else 0 for s in k.shape]
    )
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_gaussian_kernel_sums_to_one_and_is_symmetric() -> None:
    k = kernels.kernel("gaussian:sigma=1.5,size=11")
    assert k.shape == (11, 11) and np.isclose(k.sum(), 1) and np.allclose(k, k.T)


# -- audio ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_audio_round_trip(tmp_path: Path, ext: str) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)])
    audio.save(tmp_path / f"a{ext}", stereo, 8000)
    back, rate = audio.load(tmp_path / f"a{ext}")
    assert rate == 8000 and back.shape == stereo.shape and back.dtype == np.float32
    tolerance = {".wav": 1e-4, ".flac": 1e-4, ".ogg": 0.05}[ext]  # 16-bit PCM; Vorbis is lossy
    assert np.max(np.abs(back - stereo)) < tolerance


def test_resample_and_fir() -> None:
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 100 * t)[None].astype(np.float32)
    y = audio.resample(x, 16000, 8000)
    assert y.shape == (1, 8000)
    taps = kernels.kernel("lowpass:cutoff=1000", rate=16000)
    np.testing.assert_allclose(
        audio.fir_filter(x, taps), scipy.signal.lfilter(taps, 1.0, x, axis=-1), atol=1e-5
    )


# -- text -------------------------------------------------------------------------------


def test_vocabulary_encodings_and_unknown_tokens() -> None:
    vocab = text.Vocabulary.build([text.tokenize("the dog bites the man")])
    ids = vocab.encode(text.tokenize("the cat bites"))
    assert vocab.decode(ids) == ["the", "<unk>", "bites"]
    assert vocab.unknown_count == 1
    onehot = text.one_hot(ids, len(vocab))
    assert onehot.shape == (len(vocab), 3) and onehot.sum(axis=0).tolist() == [1, 1, 1]
    table = np.arange(len(vocab) * 2, dtype=np.float32).reshape(-1, 2)
    np.testing.assert_array_equal(text.embed(ids, table), table[ids].T)
    assert text.tokenize("Hé!", level="char") == ["H", "é", "!"]


# -- the filter command -------------------------------------------------------------------


def convkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "convkit", *args], capture_output=True, text=True)


def test_filter_an_image(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    image.save(src, skdata.camera()[None] / 255)
    result = convkit(
        "filter",
        str(src),
        str(tmp_path / "out.png"),
        "--kernel",
        "gaussian:sigma=2",
        "--padding-mode",
        "reflect",
    )
    assert result.returncode == 0, result.stderr
    out = image.load(tmp_path / "out.png")
    expected = image.filter(image.load(src), kernels.gaussian(2.0), padding_mode="reflect")
    assert np.max(np.abs(out - expected)) <= 0.5 / 255 + 1e-6


def test_filter_audio(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audio.save(tmp_path / "in.wav", 0.3 * rng.standard_normal((2, 16000)), 16000)
    result = convkit(
        "filter",
        str(tmp_path / "in.wav"),
        str(tmp_path / "out.wav"),
        "--kernel",
        "lowpass:cutoff=1000",
    )
    assert result.returncode == 0, result.stderr
    out, _ = audio.load(tmp_path / "out.wav")
    x, _ = audio.load(tmp_path / "in.wav")
    taps = kernels.lowpass(1000, 16000)
    np.testing.assert_allclose(out, scipy.signal.lfilter(taps, 1.0, x, axis=-1), atol=1e-4)


def test_filter_refuses_to_overwrite_its_input_unless_asked(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    image.save(src, np.full((1, 8, 8), 0.5))
    before = src.read_bytes()
    result = convkit("filter", str(src), str(src), "--kernel", "box")
    assert result.returncode == 2 and "pass --overwrite" in result.stderr
    assert src.read_bytes() == before
    assert convkit("filter", str(src), str(src), "--kernel", "box", "--overwrite").returncode == 0


@pytest.mark.parametrize(
    ("kernel", "match"),
    [
        ("gausian", r"unknown kernel 'gausian'; valid kernels: bandpass, box, gaussian"),
        ("gaussian:radius=2", r"kernel 'gaussian' takes sigma, size; got radius"),
        ("gaussian:sigma=two", r"sigma='two' is not a number"),
        ("lowpass:cutoff=1000", r"kernel 'lowpass' is for audio, not image"),
    ],
)
def test_filter_bad_kernels_leave_no_file(tmp_path: Path, kernel: str, match: str) -> None:
    src = tmp_path / "in.png"
    image.save(src, np.full((1, 8, 8), 0.5))
    result = convkit("filter", str(src), str(tmp_path / "out.png"), "--kernel", kernel)
    assert result.returncode == 2
    assert re.search(match, result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


# -- bad files ----------------------------------------------------------------------------


def _huge_png(path: Path, side: int) -> None:
    """A PNG header announcing side x side pixels, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def test_bad_image_files(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"text.png: not a readable image"):
        image.load(tmp_path / "text.png")
    image.save(tmp_path / "ok.png", skdata.camera()[None] / 255)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.png: not a readable image"):
        image.load(tmp_path / "cut.png")
    _huge_png(tmp_path / "bomb.png", 60_000)
    with pytest.raises(ValueError, match=r"decompression-bomb guard"):
        image.load(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"unsupported image format; use one of .jpeg, .jpg, .png"):
        image.save(tmp_path / "x.bmp", np.zeros((1, 4, 4)))


def test_bad_audio_files(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(ValueError, match=r"text.wav: not a readable audio file"):
        audio.load(tmp_path / "text.wav")
    audio.save(tmp_path / "ok.wav", np.zeros((1, 4000)), 8000)
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:30])
    with pytest.raises(ValueError, match=r"cut.wav: not a readable audio file"):
        audio.load(tmp_path / "cut.wav")
    with pytest.raises(ValueError, match=r"audio must be \(channels, time\) with samples"):
        audio.save(tmp_path / "empty.wav", np.zeros((1, 0)), 8000)
    import soundfile

    soundfile.write(tmp_path / "silent.wav", np.zeros((0, 1)), 8000)
    with pytest.raises(ValueError, match=r"silent.wav: the audio file holds no samples"):
        audio.load(tmp_path / "silent.wav")
    with pytest.raises(ValueError, match=r"unsupported audio format"):
        audio.save(tmp_path / "x.mp3", np.zeros((1, 10)), 8000)
    assert not (tmp_path / "empty.wav").exists() and not (tmp_path / "x.mp3").exists()


def test_filter_of_an_unreadable_file_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_text("garbage")
    result = convkit(
        "filter", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--kernel", "box"
    )
    assert result.returncode == 2 and "not a readable image" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_16_bit_png_scales_by_its_bit_depth(tmp_path: Path) -> None:
    from PIL import Image

    values = np.array([[0, 999], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = image.load(tmp_path / "deep.png")
    np.testing.assert_allclose(loaded[0], values / 65535, atol=1e-7)


def test_filter_into_a_missing_directory_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    image.save(tmp_path / "in.png", np.full((1, 8, 8), 0.5))
    result = convkit(
        "filter", str(tmp_path / "in.png"), str(tmp_path / "nodir" / "out.png"), "--kernel", "box"
    )
    assert result.returncode == 2 and result.stderr.startswith("convkit: error:")
    assert "Traceback" not in result.stderr
