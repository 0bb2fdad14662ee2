"""Adapters on real files: round trips, the filter command, and bad input."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    noise = np.clip(0.3 * rng.standard_normal((2, 16000)), -1, 1)  # 16-bit PCM holds [-1, 1]
    audio.save(tmp_path / "in.wav", noise, 16000)
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


def test_filter_clips_audio_beyond_full_scale_and_says_how_much(tmp_path: Path) -> None:
    # a full-scale square wave: the low-pass filter's ripple overshoots [-1, 1]
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(16000) / 16000))[None]
    audio.save(tmp_path / "in.wav", square, 16000)
    result = convkit(
        "filter",
        str(tmp_path / "in.wav"),
        str(tmp_path / "out.wav"),
        "--kernel",
        "lowpass:cutoff=1000",
    )
    assert result.returncode == 0, result.stderr
    x, _ = audio.load(tmp_path / "in.wav")
    expected = scipy.signal.lfilter(kernels.lowpass(1000, 16000), 1.0, x, axis=-1)
    over = int(np.count_nonzero(np.abs(expected) > 1))
    assert over > 0
    assert f"; {over} samples beyond full scale clipped to [-1, 1]" in result.stdout
    out, _ = audio.load(tmp_path / "out.wav")
    np.testing.assert_allclose(out, np.clip(expected, -1, 1), atol=1e-4)


def test_filter_refuses_to_overwrite_its_input_unless_asked(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    image.save(src, np.full((1, 8, 8), 0.5))
    before = src.read_bytes()
    result = convkit("filter", str(src), str(src), "--kernel", "box")
    assert result.returncode == 1 and "is the input; pass --overwrite" in result.stderr
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
    assert result.returncode == 1 and "not a readable image" in result.stderr
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
    assert result.returncode == 1 and result.stderr.startswith("convkit: error:")
    assert "Traceback" not in result.stderr


# -- existing outputs, links, and scaling to 8 bits -------------------------------------


def _existing_output(tmp_path: Path, ext: str) -> tuple[Path, Path, list[str]]:
    """An input of the kind ``ext`` names, and an existing output beside it."""
    if ext == ".png":
        image.save(tmp_path / "in.png", skdata.camera()[:32, :32][None] / 255)
        kernel = "box"
    elif ext == ".wav":
        audio.save(tmp_path / "in.wav", np.zeros((1, 800)), 8000)
        kernel = "lowpass:cutoff=1000"
    else:
        np.save(tmp_path / "in.npy", np.ones((8, 8), dtype=np.float32))
        kernel = "box"
    out = tmp_path / f"out{ext}"
    out.write_bytes(b"precious")
    return tmp_path / f"in{ext}", out, ["--kernel", kernel]


@pytest.mark.parametrize("ext", [".png", ".wav", ".npy"])
def test_filter_refuses_an_existing_output_unless_asked(tmp_path: Path, ext: str) -> None:
    src, out, args = _existing_output(tmp_path, ext)
    result = convkit("filter", str(src), str(out), *args)
    assert result.returncode == 1
    assert f"OUTPUT {out} already exists; pass --overwrite to replace it" in result.stderr
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name, out.name]
    result = convkit("filter", str(src), str(out), *args, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() != b"precious"


def test_filter_refuses_an_existing_zarr_store_unless_asked(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    np.save(tmp_path / "in.npy", np.ones((8, 8), dtype=np.float32))
    old = zarr.create_array(str(tmp_path / "out.zarr"), shape=(2,), dtype="float32")
    old[...] = 7.0
    result = convkit(
        "filter", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "box"
    )
    assert result.returncode == 1 and "out.zarr already exists" in result.stderr
    assert zarr.open_array(str(tmp_path / "out.zarr"))[...].tolist() == [7.0, 7.0]
    args = ["--kernel", "box", "--overwrite"]
    result = convkit("filter", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), *args)
    assert result.returncode == 0, result.stderr
    assert zarr.open_array(str(tmp_path / "out.zarr")).shape == (8, 8)


@pytest.mark.parametrize("ext", [".png", ".wav", ".npy", ".zarr"])
def test_filter_writes_through_a_symlinked_output(tmp_path: Path, ext: str) -> None:
    if ext == ".zarr":
        pytest.importorskip("zarr")
        np.save(tmp_path / "in.npy", np.ones((8, 8), dtype=np.float32))
        src, args = tmp_path / "in.npy", ["--kernel", "box"]
    else:
        src, _, args = _existing_output(tmp_path, ext)
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / f"data{ext}"
    link = tmp_path / f"link{ext}"
    link.symlink_to(Path("real") / real.name)  # dangling until the first write
    assert convkit("filter", str(src), str(link), *args).returncode == 1  # a name in the way
    result = convkit("filter", str(src), str(link), *args, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and real.exists()
    first = sorted(p.name for p in (tmp_path / "real").iterdir())
    result = convkit("filter", str(src), str(link), *args, "--overwrite")  # replace through it
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", real.name)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == first == [real.name]


def _sobel_x(tmp_path: Path) -> tuple[Path, np.ndarray]:
    src = tmp_path / "in.png"
    image.save(src, skdata.camera()[None] / 255)
    result = image.filter(image.load(src), kernels.kernel("sobel_x"), padding_mode="reflect")
    return src, result


def test_filter_into_png_says_how_a_signed_result_was_scaled(tmp_path: Path) -> None:
    src, result = _sobel_x(tmp_path)
    clipped = int(np.count_nonzero((result < 0) | (result > 1)))
    out = tmp_path / "clip.png"
    run = convkit("filter", str(src), str(out), "--kernel", "sobel_x")
    assert run.returncode == 0, run.stderr
    share = 100 * clipped / result.size
    assert clipped > result.size // 3  # a derivative: about half its values are negative
    assert (
        f"; scale=clip: {clipped} of {result.size} pixels ({share:.1f}%) clipped to [0, 1] "
        "(the result is signed: --scale minmax or --scale abs keeps it)" in run.stdout
    )
    expected = np.round(np.clip(result, 0, 1) * 255) / 255
    np.testing.assert_allclose(image.load(out), expected, atol=1e-6)

    run = convkit(
        "filter", str(src), str(tmp_path / "mm.png"), "--kernel", "sobel_x", "--scale", "minmax"
    )
    assert run.returncode == 0, run.stderr
    lo, hi = float(result.min()), float(result.max())
    assert f"scale=minmax: [{lo:.4g}, {hi:.4g}] stretched to [0, 1]" in run.stdout
    loaded = image.load(tmp_path / "mm.png")
    np.testing.assert_allclose(loaded, np.round((result - lo) / (hi - lo) * 255) / 255, atol=1e-6)
    assert loaded.min() == 0.0 and loaded.max() == 1.0

    run = convkit(
        "filter", str(src), str(tmp_path / "abs.png"), "--kernel", "sobel_x", "--scale", "abs"
    )
    assert run.returncode == 0, run.stderr
    over = int(np.count_nonzero(np.abs(result) > 1))
    assert f"scale=abs: absolute values (range [{lo:.4g}, {hi:.4g}]): {over} of" in run.stdout
    expected = np.round(np.clip(np.abs(result), 0, 1) * 255) / 255
    np.testing.assert_allclose(image.load(tmp_path / "abs.png"), expected, atol=1e-6)


def test_filter_of_a_blur_clips_nothing_and_says_so(tmp_path: Path) -> None:
    image.save(tmp_path / "in.png", skdata.camera()[None] / 255)
    run = convkit(
        "filter", str(tmp_path / "in.png"), str(tmp_path / "o.png"), "--kernel", "gaussian:sigma=1"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("; scale=clip, no pixel clipped")


def test_image_save_scales_and_reports(tmp_path: Path) -> None:
    values = np.array([[[-0.5, 0.0, 0.5], [1.0, 1.5, np.nan]]])
    how = image.save(tmp_path / "c.png", values)
    assert (how.scale, how.clipped, how.pixels, how.low, how.high) == ("clip", 3, 6, -0.5, 1.5)
    assert (image.load(tmp_path / "c.png") * 255).round().tolist() == [[[0, 0, 128], [255, 255, 0]]]
    how = image.save(tmp_path / "m.png", values, scale="minmax")
    assert (
        str(how)
        == "scale=minmax: [-0.5, 1.5] stretched to [0, 1]: 1 of 6 pixels (16.7%) clipped to [0, 1]"
    )
    m = (image.load(tmp_path / "m.png") * 255).round().tolist()
    assert m == [[[0, 64, 128], [191, 255, 0]]]
    colour = np.zeros((3, 2, 2))
    colour[1, 0, 0], colour[2, 0, 0] = -1.0, 2.0  # one pixel, two channels out
    assert image.save(tmp_path / "rgb.png", colour).clipped == 1
    with pytest.raises(
        ValueError, match=r"scale='log' is not a scaling; expected one of clip, minmax, abs"
    ):
        image.save(tmp_path / "x.png", values, scale="log")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(FileExistsError, match=r"c.png already exists"):
        image.save(tmp_path / "c.png", values, overwrite=False)


# -- bad input gets a clear error, good input the right answer ----------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint8])
def test_fir_filter_of_integer_audio_computes_in_float64(dtype: type) -> None:
    np.testing.assert_array_equal(
        audio.fir_filter(np.ones((1, 5), dtype), [0.5, 0.5]), [[0.5, 1.0, 1.0, 1.0, 1.0]]
    )
    rng = np.random.default_rng(1)
    x: np.ndarray = rng.integers(0, 120, size=(2, 64)).astype(dtype)
    taps = kernels.lowpass(1000, rate=8000, numtaps=15)
    got = audio.fir_filter(x, taps)
    assert got.dtype == np.float64 and got.shape == x.shape
    # SciPy filters integer samples in float64 too, values as they are (not rescaled)
    np.testing.assert_allclose(got, scipy.signal.lfilter(taps, 1.0, x, axis=-1), atol=1e-12)
    # integer taps as well: still float64, exactly NumPy's integer convolution
    exact = np.stack([np.convolve(row.astype(np.int64), [1, -2, 1])[:64] for row in x])
    got = audio.fir_filter(x, np.array([1, -2, 1]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, exact)


def test_fir_filter_of_boolean_audio_computes_in_float64() -> None:
    x = np.array([[True, False, True, True, False]])
    got = audio.fir_filter(x, [0.5, 0.25])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, scipy.signal.lfilter([0.5, 0.25], 1.0, x.astype(float)))


@pytest.mark.parametrize("kind", ["16-bit PNG", "32-bit float TIFF"])
def test_deep_greyscale_loads_as_rgb_with_the_greyscale_scaling(tmp_path: Path, kind: str) -> None:
    from PIL import Image

    if kind == "16-bit PNG":
        values = np.array([[0, 999, 20000], [32768, 50000, 65535]], dtype=np.uint16)
        path, expected = tmp_path / "deep.png", values / 65535
    else:
        values = np.array([[0.0, 0.25, 0.5], [0.75, 0.9, 1.0]], dtype=np.float32)
        path, expected = tmp_path / "deep.tiff", values.astype(np.float64)
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode in ("I", "I;16", "F"), img.mode  # what Pillow made of it
    rgb = image.load(path, mode="rgb")
    assert rgb.shape == (3, 2, 3) and rgb.dtype == np.float32
    for channel in rgb:
        np.testing.assert_allclose(channel, expected, atol=1e-7)
    np.testing.assert_array_equal(rgb[0], image.load(path, mode="grey")[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, bool])
def test_filter_of_an_integer_image_computes_in_float32(dtype: type) -> None:
    photo = skdata.camera()[:64, :64]
    img = photo > 128 if dtype is bool else photo.astype(dtype)
    k = kernels.gaussian(sigma=1.0)
    got = image.filter(img[None], k, padding_mode="reflect")
    assert got.dtype == np.float32 and got.shape == (1, 64, 64)
    # values as they are, not divided by 255 (as arrays.filter_file does)
    expected = scipy.ndimage.convolve(img.astype(np.float64), k, mode="mirror")
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bad", [-1, -3, 3, 10])
def test_ids_outside_the_vocabulary_are_refused_alike(bad: int) -> None:
    vocab = text.Vocabulary(["dog", "man"])  # ids 0, 1, 2
    table = np.arange(6.0).reshape(3, 2)
    message = rf"ids must lie in \[0, 3\); got {bad} at position 1"
    with pytest.raises(ValueError, match=message):
        vocab.decode([1, bad, 2])
    with pytest.raises(ValueError, match=message):
        text.one_hot([1, bad, 2], len(vocab))
    with pytest.raises(ValueError, match=message):
        text.embed(np.array([1, bad, 2]), table)


def test_ids_inside_the_vocabulary_decode_and_embed_as_indexing_does() -> None:
    vocab = text.Vocabulary(["dog", "man"])
    table = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    ids = np.array([2, 0, 1, 2], dtype=np.int32)
    assert (
        vocab.decode(ids) == [vocab.tokens[int(i)] for i in ids] == ["man", "<unk>", "dog", "man"]
    )
    np.testing.assert_array_equal(text.embed(ids, table), table[ids.astype(np.intp)].T)
    np.testing.assert_array_equal(text.one_hot(ids, 3), np.eye(3, dtype=np.float32)[:, ids])
    assert vocab.decode([]) == [] and text.embed([], table).shape == (4, 0)
    assert text.one_hot([], 3).shape == (3, 0)
    not_ids: list[list[Any]] = [[1.5], [True]]
    for bad in not_ids:  # refused rather than truncated or counted as 1
        with pytest.raises(TypeError, match=r"ids must be integers; got"):
            text.one_hot(bad, 3)
        with pytest.raises(TypeError, match=r"ids must be integers; got"):
            text.embed(bad, table)
        with pytest.raises(TypeError, match=r"ids must be integers; got"):
            vocab.decode(bad)


def test_kernel_sizes_take_any_integral_number_but_not_a_bool() -> None:
    np.testing.assert_array_equal(kernels.box(np.int64(3)), np.full((3, 3), 1 / 9))
    assert kernels.gaussian(sigma=1.0, size=np.int32(5)).shape == (5, 5)
    np.testing.assert_allclose(
        kernels.lowpass(1000, rate=8000, numtaps=np.int64(51)),
        scipy.signal.firwin(51, 1000, fs=8000),
    )
    bools: list[Any] = [True, False, np.True_]
    for bad in bools:
        with pytest.raises(
            ValueError, match=rf"size={bad!r} must be a positive integer, not a bool"
        ):
            kernels.box(bad)
    with pytest.raises(ValueError, match=r"numtaps=True must be a positive integer, not a bool"):
        kernels.lowpass(1000, rate=8000, numtaps=True)
    not_integers: list[Any] = [2.5, 3.0, "3", None]
    for bad in not_integers:
        with pytest.raises(
            ValueError, match=rf"size={re.escape(repr(bad))} must be a positive integer; got"
        ):
            kernels.box(bad)
    with pytest.raises(ValueError, match=r"size=np.int64\(0\) must be a positive integer"):
        kernels.box(np.int64(0))
    with pytest.raises(ValueError, match=r"size=2\.5 must be a positive integer; got float"):
        kernels.kernel("box:size=2.5")  # as the command line passes it


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_pcm_audio_save_refuses_values_it_would_clip(tmp_path: Path, ext: str) -> None:
    import soundfile

    path = tmp_path / f"x{ext}"
    loud = np.array([[0.5, -1.5, 0.25], [1.25, 0.0, -0.5]])
    with pytest.raises(
        ValueError, match=r"data: peak 1\.5 lies outside \[-1, 1\].*scale .* or clip .* first"
    ):
        audio.save(path, loud, 8000)
    with pytest.raises(ValueError, match=r"data holds 1 value that is not finite"):
        audio.save(path, np.array([[0.0, np.nan, 0.5]]), 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    audio.save(path, np.array([[1.0, -1.0, 0.5, 0.0]]), 8000)  # full scale fits
    pcm, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000 and pcm.tolist() == [32767, -32768, 16384, 0]


def test_ogg_audio_save_keeps_values_beyond_full_scale(tmp_path: Path) -> None:
    import soundfile

    t = np.arange(8000) / 8000
    loud = 1.5 * np.sin(2 * np.pi * 440 * t)[None]
    audio.save(tmp_path / "loud.ogg", loud, 8000)
    back, _ = soundfile.read(tmp_path / "loud.ogg", dtype="float32")
    assert np.abs(back).max() > 1.3  # Vorbis stores them; nothing clipped


def test_resample_refuses_non_integer_rates_and_1d_signals() -> None:
    x = np.sin(np.arange(400) / 5)[None]
    np.testing.assert_allclose(
        audio.resample(x, np.int64(8000), np.int32(12000)),
        scipy.signal.resample_poly(x, 3, 2, axis=-1),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(TypeError, match=r"rate=8000\.5 must be an integer number of Hz; got float"):
        audio.resample(x, 8000.5, 16000)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"new_rate=16000\.0 must be an integer number of Hz"):
        audio.resample(x, 8000, 16000.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"new_rate=True must be an integer number of Hz"):
        audio.resample(x, 8000, True)
    with pytest.raises(ValueError, match=r"rate=0 must be positive"):
        audio.resample(x, 0, 16000)
    with pytest.raises(
        ValueError, match=r"data must be \(channels, time\); got shape \(400,\).*x\[None\]"
    ):
        audio.resample(x[0], 8000, 16000)


def test_missing_files_raise_file_not_found_naming_the_path(tmp_path: Path) -> None:
    from convkit.adapters import arrays

    loaders: list[tuple[Callable[[Path], Any], str]] = [
        (audio.load, "none.wav"),
        (image.load, "none.png"),
    ]
    for load, name in loaders:
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / name))) as info:
            load(tmp_path / name)
        assert info.value.filename == str(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'none.npy'}: no such")):
        arrays.open_array(tmp_path / "none.npy")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'none.zarr'}: no such")):
        arrays.open_array(tmp_path / "none.zarr")


def test_filter_refuses_a_padding_mode_for_audio(tmp_path: Path) -> None:
    audio.save(tmp_path / "in.wav", np.zeros((1, 800)), 8000)
    args = ["--kernel", "lowpass:cutoff=1000", "--padding-mode", "zeros"]
    result = convkit("filter", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), *args)
    assert result.returncode == 2, result.stderr
    assert (
        "convkit: error: --padding-mode zeros: padding modes apply to images and arrays only"
        in result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
