"""train, Run, the settings, errors, Ctrl-C, the GIL, hyperspy, and bit
identity with the command."""

import _thread
import ast
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import phyvae
from conftest import TINY


def test_run_contents(tiny_run):
    r = tiny_run
    gh, gw, L = r.latents.shape
    assert (gh, gw) == (11, 11)
    assert r.latent_names == ["dx", "dy", "z1", "z2"] and L == 4
    assert r.content_latents == ["z1", "z2"]
    assert r.latents.dtype == np.float32 and r.latents_sd.shape == r.latents.shape
    assert "z1/otsu" in r.segmentations and r.segmentations["z1/otsu"].shape == (11, 11)
    res = r.result
    assert "labels" in res and "map" in res
    if res["labels"] is not None:
        assert res["labels"].shape == (11, 11)
    assert r.metrics["grid"] == [11, 11]
    assert len(r.history["epoch"]) == 2 and "total" in r.history
    assert r.config["train"]["epochs"] == 2 and r.config["data"]["window"] == 16
    assert r.report_path.is_file()
    m = r.manifold(n=4)
    assert m.shape == (64, 64) and 0 <= m.min() and m.max() <= 1
    z = np.zeros((3, L), dtype=np.float32)
    p = r.decode(z)
    assert p.shape == (3, 16, 16)
    assert r.decode(z[0]).shape == (16, 16)
    with pytest.raises(ValueError):
        r.decode(np.zeros((2, L + 1)))
    html = r._repr_html_()
    assert "<img" in html and "phyvae run" in html
    assert "phyvae.Run" in repr(r)


def test_manifold_is_decoding_of_its_grid(tiny_run):
    # The manifold's top-left patch decodes z1 = q(0.95), z2 = q(0.05).
    m = tiny_run.manifold(n=2)
    from statistics import NormalDist

    q = NormalDist().inv_cdf
    z = np.array([[0, 0, q(0.95), q(0.05)]], dtype=np.float32)
    np.testing.assert_allclose(tiny_run.decode(z)[0], m[:16, :16], atol=1e-6)


def test_open_and_encode(tiny_run, small, tmp_path):
    again = phyvae.Run.open(tiny_run.path)
    np.testing.assert_array_equal(again.latents, tiny_run.latents)
    with pytest.raises(FileNotFoundError):
        phyvae.Run.open(tmp_path)
    enc = tiny_run.encode(small[0], quiet=True)
    np.testing.assert_array_equal(enc.latents, tiny_run.latents)
    assert enc.config == {}
    enc2 = tiny_run.encode(small[0], tmp_path / "enc")
    assert (tmp_path / "enc" / "latents.npy").is_file() and enc2.latents.shape == enc.latents.shape


def test_temporary_folder_lives_with_the_run(small):
    r = phyvae.train(small[0], quiet=True, **TINY)
    path = r.path
    assert (path / "latents.npy").is_file()
    del r
    import gc

    gc.collect()
    assert not path.exists()


def test_bit_identical_to_the_command(tmp_path, small_npy, small, cli):
    flags = ["--window", "16", "--step", "8", "--hidden", "16", "--epochs", "2", "--batch", "16",
             "--seed", "3", "--snapshot-every", "0"]
    cli("train", small_npy, "--out", tmp_path / "cli", *flags)
    cli_latents = np.load(tmp_path / "cli" / "latents.npy")
    from_path = phyvae.train(small_npy, tmp_path / "py", quiet=True, **TINY)
    from_array = phyvae.train(small[0], quiet=True, **TINY)
    assert cli_latents.tobytes() == from_path.latents.tobytes()
    assert cli_latents.tobytes() == from_array.latents.tobytes()
    # A run folder the command wrote reopens as a Run.
    from_cli = phyvae.Run.open(tmp_path / "cli")
    assert from_cli.latents.tobytes() == cli_latents.tobytes()
    assert from_cli.config["train"]["seed"] == 3 and from_cli.metrics["commands"][0][0].endswith("phyvae")
    # The run records the command that reproduces it.
    cmd = from_path.metrics["commands"][0]
    assert cmd[:2] == ["phyvae", "train"] and "--window=16" in cmd


def test_settings_and_preset(small, tmp_path):
    r = phyvae.train(small[0], quiet=True, preset="paper", window=16, step=8, hidden=16, epochs=1,
                     beta=(0.1, 1), latents=["z1", "z2"], lr=2e-3, per_patch_norm=True)
    assert r.config["train"]["epochs"] == 1
    assert r.config["data"]["per_patch_norm"] is True
    assert r.config["train"]["lr"] == 2e-3
    # Resuming with more epochs continues the recorded run.
    out = tmp_path / "res"
    phyvae.train(small[0], out, quiet=True, **TINY)
    r2 = phyvae.train(small[0], out, quiet=True, resume=True, epochs=3)
    assert len(r2.history["epoch"]) == 3


def test_help_lists_every_setting():
    doc = phyvae.train.__doc__
    for s in phyvae.SETTINGS:
        assert f"\n    {s.name}=" in doc, s.name
    assert "lr=None" in doc and "device='auto'" in doc and "(default: 5e-3)" in doc


def test_stub_lists_every_setting():
    stub = Path(phyvae.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    names = [a.arg for a in fn.args.kwonlyargs]
    assert names == ["quiet"] + [s.name for s in phyvae.SETTINGS], (
        "the settings of phyvae train changed: run crates/python/tools/write_stub.py "
        "with the package built, and rebuild it"
    )


def test_errors(small, tmp_path):
    img = small[0]
    with pytest.raises(ValueError, match="lr"):
        phyvae.train(img, quiet=True, lr=-1.0, **{k: v for k, v in TINY.items()})
    with pytest.raises(ValueError, match="model"):
        phyvae.train(img, quiet=True, model="nope")
    with pytest.raises(TypeError, match="bogus"):
        phyvae.train(img, quiet=True, bogus=1)
    with pytest.raises(ValueError):
        phyvae.train(img, quiet=True, multiply="yes")
    with pytest.raises(ValueError, match="smaller"):
        phyvae.train(img[:10, :10], quiet=True, window=16)
    with pytest.raises(ValueError):
        phyvae.train(np.ones((64, 64)), quiet=True, **TINY)
    with pytest.raises(ValueError):
        phyvae.train(np.full((64, 64), 1e300), quiet=True, **TINY)
    with pytest.raises(FileNotFoundError):
        phyvae.train(tmp_path / "missing.png", quiet=True)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(phyvae.FormatError):
        phyvae.train(tmp_path / "bad.png", quiet=True)
    out = tmp_path / "taken"
    phyvae.train(img, out, quiet=True, **TINY)
    with pytest.raises(ValueError, match="overwrite"):
        phyvae.train(img, out, quiet=True, **TINY)
    phyvae.train(img, out, quiet=True, overwrite=True, **TINY)


def test_dtype_and_layout_variants_train_identically(small):
    img = small[0]
    ref = phyvae.train(img, quiet=True, **TINY).latents
    scaled = np.round(img * 1000).astype(np.int32)
    ints = phyvae.train(scaled, quiet=True, **TINY).latents
    ints_f = phyvae.train(scaled.astype(np.float32), quiet=True, **TINY).latents
    assert ints.tobytes() == ints_f.tobytes()
    for v in (np.asfortranarray(img), img.astype(">f4"), img.astype(np.float64),
              np.pad(img, 3)[3:-3, 3:-3]):
        assert phyvae.train(v, quiet=True, **TINY).latents.tobytes() == ref.tobytes()


def test_progress_and_quiet(small, capfd):
    phyvae.train(small[0], quiet=True, **TINY)
    err = capfd.readouterr().err
    assert "epoch" not in err and "training" not in err
    phyvae.train(small[0], **TINY)
    err = capfd.readouterr().err
    assert "training" in err


@pytest.fixture
def python_handles_sigint():
    """SIGINT handled by Python while the test runs. A shell starts a
    background job with SIGINT ignored, and `_thread.interrupt_main` then
    does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_training_and_keeps_the_checkpoint(small, tmp_path, python_handles_sigint):
    out = tmp_path / "stopped"
    timer = threading.Timer(2.0, _thread.interrupt_main)
    settings = {**TINY, "epochs": 2000}
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt) as e:
        phyvae.train(small[0], out, quiet=True, **settings)
    stopped = time.monotonic() - t0
    timer.cancel()
    assert stopped < 2.0 + 1.5, stopped
    assert "checkpoint" in str(e.value) or "no epoch" in str(e.value)
    assert (out / "checkpoint" / "checkpoint.safetensors").is_file()
    r = phyvae.train(small[0], out, quiet=True, resume=True, epochs=int(str(e.value).split("epoch ")[1].split()[0]) + 1)
    assert r.latents.shape == (11, 11, 4)


def test_python_threads_run_while_training(small):
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        t0 = time.monotonic()
        phyvae.train(small[0], quiet=True, **{**TINY, "epochs": 30})
        t1 = time.monotonic()
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if t0 <= x <= t1]
    # One tick per 10 ms when the GIL is free; allow for a slow machine.
    assert len(during) > 0.3 * (t1 - t0) / 0.01, (len(during), t1 - t0)


def test_hyperspy_round_trip(small):
    hs = pytest.importorskip("hyperspy.api")
    s = hs.signals.Signal2D(small[0])
    for ax in s.axes_manager.signal_axes:
        ax.scale = 0.02
        ax.units = "nm"
    r = phyvae.train(s, quiet=True, **TINY)
    assert r.metrics["pixel_size"] == {"x": 0.02, "y": 0.02, "unit": "nm"}
    lat = r.to_signal()
    assert isinstance(lat, hs.signals.Signal2D)
    assert lat.data.shape == (4, 11, 11)
    ax_x, ax_y = lat.axes_manager.signal_axes
    assert ax_x.scale == pytest.approx(8 * 0.02) and ax_x.units == "nm"
    assert ax_y.scale == pytest.approx(8 * 0.02) and ax_x.offset == pytest.approx(8 * 0.02)
    np.testing.assert_array_equal(lat.inav[2].data, r.latents[..., 2])
    img = phyvae.Image(small[0], (0.02, 0.02), "nm").to_signal()
    assert img.axes_manager.signal_axes[0].scale == 0.02
