"""Shared fixtures: a small synthetic image, tiny training settings, the CLI binary."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import phyvae

ROOT = Path(__file__).resolve().parents[3]
AU_PNG = ROOT / "data" / "au_grain_boundary_png" / "Grain_boundry_gold_512px.png"

#: Settings of a training that takes about a second: a 96 px image, 16 px
#: windows every 8 px (11 x 11 patches), a narrow model, two epochs.
TINY = dict(window=16, step=8, hidden=16, epochs=2, batch=16, seed=3, snapshot_every=0)


@pytest.fixture(scope="session")
def small():
    """A 96 x 96 two-phase image (float32) and its truth."""
    return phyvae.synth.two_phase(size=96, seed=1)


@pytest.fixture(scope="session")
def small_npy(tmp_path_factory, small):
    """The small image as an NPY file."""
    p = tmp_path_factory.mktemp("img") / "image.npy"
    np.save(p, small[0])
    return p


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_npy):
    """One tiny training, shared by the tests that only read a run."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return phyvae.train(small_npy, out, quiet=True, **TINY)


def _find_cli():
    env = os.environ.get("PHYVAE_BIN")
    if env:
        return Path(env)
    for base in (os.environ.get("CARGO_TARGET_DIR"), ROOT / "target"):
        if base:
            p = Path(base) / "release" / "phyvae"
            if p.is_file():
                return p
    found = shutil.which("phyvae")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def cli():
    """Runs the `phyvae` binary (PHYVAE_BIN, or the release build): returns
    its stdout. Skips when no binary is found."""
    exe = _find_cli()
    if exe is None or not exe.is_file():
        pytest.skip("the phyvae binary is not built (set PHYVAE_BIN)")

    def run(*args):
        r = subprocess.run([str(exe), "--quiet", *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    return run
