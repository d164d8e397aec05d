"""load, info, segment, filters, thresholds, physics, score, synth: the same
numbers as the command, for every dtype and memory layout."""

import json

import numpy as np
import pytest

import phyvae
from conftest import AU_PNG


def variants(a):
    """The same values in other dtypes, byte orders and layouts."""
    yield "C", a
    yield "fortran", np.asfortranarray(a)
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 2), dtype=a.dtype)
    big[::2, ::2] = a
    yield "strided", big[::2, ::2]
    yield "big-endian", a.astype(a.dtype.newbyteorder(">"))
    yield "reversed-twice", a[::-1][::-1]


def test_native_float_arrays_are_not_copied():
    from phyvae._arrays import real_2d

    a = np.zeros((8, 10), dtype=np.float32)
    for v in (a, np.asfortranarray(a), a[::2, ::3], a.T, a.astype(np.float64)[1:, :]):
        assert real_2d(v) is v
    assert real_2d(a.astype(">f4")).dtype == np.dtype("=f4")
    assert real_2d(a.astype(np.float64), keep64=False).dtype == np.float32


def test_load_png_and_info():
    img = phyvae.load(AU_PNG)
    assert img.data.dtype == np.float32 and img.data.shape == (512, 512)
    assert img.shape == (512, 512)
    assert np.asarray(img) is img.data
    facts = phyvae.info(AU_PNG)
    assert facts["format"] == img.format
    assert "images" in facts
    assert "Image" in repr(img)


def test_load_npy_stack_frame_and_integers(tmp_path):
    stack = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    p = tmp_path / "stack.npy"
    np.save(p, stack)
    img = phyvae.load(p, frame=1)
    assert img.data.dtype == np.float32
    np.testing.assert_array_equal(img.data, stack[1].astype(np.float32))
    assert phyvae.info(p)["images"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        phyvae.load(tmp_path / "missing.npy")
    bad = tmp_path / "bad.npy"
    bad.write_text("not an image at all")
    with pytest.raises(phyvae.FormatError) as e:
        phyvae.load(bad)
    assert isinstance(e.value, OSError)
    assert "bad.npy" in str(e.value)


def test_filters_keep_precision_and_accept_every_layout():
    rng = np.random.default_rng(0)
    a = rng.random((40, 50)).astype(np.float32)
    ref_b = phyvae.filters.bilateral(a)
    ref_s = phyvae.filters.scharr(a)
    assert ref_b.dtype == np.float32 and ref_s.dtype == np.float32
    for name, v in variants(a):
        np.testing.assert_array_equal(phyvae.filters.bilateral(v), ref_b, err_msg=name)
        np.testing.assert_array_equal(phyvae.filters.scharr(v), ref_s, err_msg=name)
    a64 = a.astype(np.float64)
    assert phyvae.filters.scharr(a64).dtype == np.float64
    assert phyvae.filters.bilateral(a64, sigma_color=0.1, mode="gaussian").dtype == np.float64
    for name, v in variants(a64):
        np.testing.assert_array_equal(phyvae.filters.scharr(v), phyvae.filters.scharr(a64), err_msg=name)
    with pytest.raises(ValueError):
        phyvae.filters.bilateral(a, mode="median")
    with pytest.raises(ValueError):
        phyvae.filters.bilateral(a, sigma_color="wide")


def test_integer_images_are_computed_as_float32():
    rng = np.random.default_rng(1)
    ints = rng.integers(0, 4000, size=(30, 30)).astype(np.uint16)
    as32 = ints.astype(np.float32)
    for dtype in (np.uint16, np.int32, np.int64, np.uint8):
        v = (ints % 250).astype(dtype) if dtype == np.uint8 else ints.astype(dtype)
        ref = (ints % 250).astype(np.float32) if dtype == np.uint8 else as32
        np.testing.assert_array_equal(phyvae.filters.scharr(v), phyvae.filters.scharr(ref))
        assert phyvae.threshold.otsu(v) == phyvae.threshold.otsu(ref)


def test_thresholds():
    rng = np.random.default_rng(2)
    a = np.concatenate([rng.normal(0, 1, 500), rng.normal(5, 1, 500)]).reshape(20, 50)
    t = phyvae.threshold.otsu(a)
    assert 0 < t < 5
    ts = phyvae.threshold.multiotsu(a, classes=3)
    assert len(ts) == 2 and ts[0] < ts[1]
    for name, v in variants(a.astype(np.float32)):
        assert phyvae.threshold.otsu(v) == phyvae.threshold.otsu(a.astype(np.float32)), name
    with pytest.raises(ValueError):
        phyvae.threshold.multiotsu(a, classes=9)
    with pytest.raises(ValueError):
        phyvae.threshold.otsu(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError):
        phyvae.threshold.otsu(np.zeros((3, 3), dtype=complex))


def test_segment_score_synth():
    image, truth = phyvae.synth.two_phase(size=64, seed=2)
    assert image.dtype == np.float32 and truth.dtype == np.int32 and image.shape == (64, 64)
    img2, truth2 = phyvae.synth.domains(size=64, seed=2)
    assert img2.shape == truth2.shape == (64, 64)
    seg = phyvae.segment(image)
    for key in ("denoised", "otsu", "chanvese"):
        assert seg[key].shape == image.shape
    assert seg["otsu"].dtype == np.int32
    assert seg["flat"] is False
    s = phyvae.score(truth, truth)
    assert s["ari"] == pytest.approx(1.0) and s["accuracy"] == pytest.approx(1.0)
    s2 = phyvae.score(seg["otsu"], truth, tolerance=2)
    assert set(s2) == {"ari", "accuracy", "boundary_f1", "tolerance"}
    assert phyvae.score(truth.astype(np.float64), truth)["ari"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        phyvae.score(truth + 0.5, truth)
    with pytest.raises(ValueError):
        phyvae.score(truth[:10], truth)
    with pytest.raises(ValueError):
        phyvae.segment(np.full((20, 20), np.nan))


def test_physics():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(16, 4)).astype(np.float32)
    assert phyvae.physics.sl1(z) > 0
    assert phyvae.physics.sl2(z, alpha=1) >= 0
    np.testing.assert_equal(phyvae.physics.sl1(np.asfortranarray(z)), phyvae.physics.sl1(z))
    with pytest.raises(ValueError):
        phyvae.physics.sl1(z[:15])


def test_same_numbers_as_the_command(tmp_path, cli):
    rng = np.random.default_rng(4)
    a = rng.random((33, 41)).astype(np.float32)
    a64 = a.astype(np.float64) * 3.3
    for arr, tag in ((a, "32"), (a64, "64")):
        src = tmp_path / f"in{tag}.npy"
        np.save(src, arr)
        cli("filter", "scharr", src, tmp_path / f"s{tag}.npy")
        np.testing.assert_array_equal(np.load(tmp_path / f"s{tag}.npy"), phyvae.filters.scharr(arr))
        cli("filter", "bilateral", src, tmp_path / f"b{tag}.npy", "--sigma-color", "0.2", "--sigma-spatial", "1.5")
        np.testing.assert_array_equal(
            np.load(tmp_path / f"b{tag}.npy"), phyvae.filters.bilateral(arr, sigma_color=0.2, sigma_spatial=1.5)
        )
        assert json.loads(cli("threshold", "otsu", src))["thresholds"] == [phyvae.threshold.otsu(arr)]
        assert json.loads(cli("threshold", "multiotsu", src, "--classes", "4"))["thresholds"] == \
            phyvae.threshold.multiotsu(arr, 4)
    cli("segment", tmp_path / "in32.npy", "--out", tmp_path / "seg")
    seg = phyvae.segment(a)
    for name in ("otsu", "multiotsu3", "chanvese"):
        np.testing.assert_array_equal(np.load(tmp_path / "seg" / f"{name}.npy"), seg[name])
    np.testing.assert_array_equal(np.load(tmp_path / "seg" / "denoised.npy"), seg["denoised"])
    cli("segment", tmp_path / "in32.npy", "--out", tmp_path / "seg2", "--lowpass", "1.5")
    seg2 = phyvae.segment(a, lowpass=1.5)
    np.testing.assert_array_equal(np.load(tmp_path / "seg2" / "otsu.npy"), seg2["otsu"])
    np.testing.assert_array_equal(np.load(tmp_path / "seg2" / "denoised.npy"), seg2["denoised"])
    z = rng.normal(size=(25, 4)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    assert json.loads(cli("physics", "sl1", tmp_path / "z.npy"))["psi"] == pytest.approx(
        phyvae.physics.sl1(z), rel=0, abs=0)
    assert json.loads(cli("physics", "sl2", tmp_path / "z.npy", "--alpha", "2"))["psi"] == pytest.approx(
        phyvae.physics.sl2(z, alpha=2), rel=0, abs=0)
    cli("synth", "domains", "--size", "64", "--seed", "5", "--out", tmp_path / "syn")
    img, truth = phyvae.synth.domains(64, 5)
    np.testing.assert_array_equal(np.load(tmp_path / "syn" / "image.npy"), img)
    np.testing.assert_array_equal(np.load(tmp_path / "syn" / "truth.npy"), truth)
    got = json.loads(cli("score", tmp_path / "syn" / "truth.npy", tmp_path / "syn" / "truth.npy"))
    assert got == phyvae.score(truth, truth)
    info = json.loads(cli("info", tmp_path / "in32.npy"))
    assert info == phyvae.info(tmp_path / "in32.npy")
