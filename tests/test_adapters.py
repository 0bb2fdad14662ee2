"""Adapters on real files: round trips, the filter command, and bad input."""

from __future__ import annotations

import os
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
