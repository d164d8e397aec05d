"""phyvae: phases, ferroic domains and boundaries in atomic-resolution
microscopy images, found by shift-invariant VAEs with a physics-driven loss.

A thin layer over the phyvae Rust workspace: training and encoding run the
``phyvae`` command's own code with the same settings, and the functions give
the same numbers as the command.

- :func:`load`, :func:`info`: read an image (every format the command reads);
- :func:`train`: train on an image (path, numpy array, hyperspy signal) and get a :class:`Run`;
- :class:`Run`: latent maps, segmentations, result, metrics, history, manifold, decoding, hyperspy;
- :func:`segment`, :func:`score`, and the modules :mod:`phyvae.filters`,
  :mod:`phyvae.threshold`, :mod:`phyvae.physics`, :mod:`phyvae.synth`.

Errors: ``ValueError`` for a bad setting or input, ``TypeError`` for an
unknown keyword, :class:`FormatError` (a subclass of ``OSError``) for a file
that cannot be read as an image (``FileNotFoundError`` when it is missing),
``OSError`` for an output that cannot be written, ``KeyboardInterrupt`` when
Ctrl-C stops a training (the last whole epoch's checkpoint is kept).
"""

from __future__ import annotations

import json
import os
import tempfile

# Candle's element-wise operations on the calling thread, as the command
# does (see its main.rs): candle's own pool of spinning workers competes
# with the decoder kernel's rayon pool for the same cores. Set before the
# native module starts candle; a value already set is kept.
os.environ.setdefault("CANDLE_NUM_THREADS", "1")

from . import _native
from ._arrays import labels_2d, real_2d
from ._image import Image
from ._progress import TrainBar
from ._run import Run, prepare_image
from ._settings import SETTINGS, command_line, settings_doc
from . import filters, physics, synth, threshold

FormatError = _native.FormatError
__version__ = _native.VERSION

__all__ = [
    "FormatError",
    "Image",
    "Run",
    "SETTINGS",
    "filters",
    "info",
    "load",
    "physics",
    "score",
    "segment",
    "synth",
    "threshold",
    "train",
]


def load(path, frame=None, dataset=None) -> Image:
    """Reads an image as the ``phyvae`` command does.

    Every format the command reads (NPY, TIFF, PNG, SPIEPy .dat, DM3/DM4, TIA
    .ser, Velox and Berkeley EMD, hyperspy .hspy), recognised by its magic
    bytes. ``frame``: the frame or page of a multi-image file (0-based);
    ``dataset``: the HDF5 entry (as :func:`info` lists them).

    Returns an :class:`Image` (float32 pixels, pixel size and unit, the file's
    facts). Raises FileNotFoundError, :class:`FormatError` (not an image
    phyvae reads) or ValueError (e.g. a float64 value beyond float32).
    """
    p = os.fspath(path)
    pixels, calib = _native.load(p, frame, dataset)
    facts = info(p)
    size, unit = (None, None) if calib is None else ((calib[0], calib[1]), calib[2])
    return Image(pixels, size, unit, p, frame, dataset, facts)


def info(path) -> dict:
    """What ``phyvae info FILE`` prints, as a dict: the file's format, its
    images (shape, element type, pixel size) and which one is used by default."""
    return json.loads(_native.info(os.fspath(path)))


def train(image, out=None, *, quiet=False, **settings) -> Run:
    """Trains a VAE on the patches of one image, as ``phyvae train`` does.

    ``image``: a path (any format :func:`load` reads), an :class:`Image`, a
    2-D numpy array of any real dtype (float64 is rounded to float32, a value
    beyond its range refused), or a hyperspy ``Signal2D`` (its ``.data`` and
    its signal axes' scale and units; hyperspy itself is not needed).

    ``out``: the run folder (created; must not hold a run unless
    ``overwrite=True`` or ``resume=True``). Without it the run goes to a
    temporary folder that the returned :class:`Run` keeps alive.

    ``quiet``: no progress bar (the bar is tqdm's when tqdm is installed,
    otherwise a text bar on stderr).

    The settings are those of ``phyvae train`` (``phyvae train --help``), with
    the same names (``--n-latent`` is ``n_latent``) and defaults; a setting
    left at None is chosen as the command chooses it (``preset="auto"``:
    measured on the image; ``preset="paper"``: the paper's settings). Switches
    take True or False; ``latents`` may be a list (``["z1", "z2"]``) and
    ``beta`` a tuple (``(0.1, 1)`` for the ramp ``0.1:1``). Same settings and
    seed give bit-identical latents to the command.

    The GIL is released while training; Ctrl-C stops the training within
    about a second and raises KeyboardInterrupt (the last whole epoch's
    checkpoint is kept: ``resume=True`` continues it). Diagnosis findings
    (e.g. a collapsed run) are issued as RuntimeWarning.

    Raises ValueError for a bad setting, TypeError for an unknown one,
    :class:`FormatError` / FileNotFoundError for an unreadable image, OSError
    for an output that cannot be written.

    Settings (``name=default``; None: chosen by the preset or the image, as
    the text says)
    ----------------------------------------------------------------------
    """
    keep = []
    if out is None:
        keep.append(tempfile.TemporaryDirectory(prefix="phyvae-run-"))
        out = keep[-1].name
    out = os.fspath(out)
    name, pixels, calib = prepare_image(image)
    extra = {}
    truth = settings.get("truth")
    if truth is not None and not isinstance(truth, (str, os.PathLike)):
        # A label array: written as an NPY file in a folder of its own.
        import numpy as np

        keep.append(tempfile.TemporaryDirectory(prefix="phyvae-truth-"))
        extra["truth"] = os.path.join(keep[-1].name, "truth.npy")
        np.save(extra["truth"], labels_2d(truth, "truth"))
    argv = command_line("train", name, out, {**settings, **extra})
    bar = None if quiet else TrainBar()
    try:
        _native.train(argv, pixels, calib, bar)
    finally:
        if bar is not None:
            bar.close()
    run = Run(out, _keep=keep or None)
    run._warn()
    return run


train.__doc__ = (train.__doc__ or "") + settings_doc().replace("\n", "\n    ") + "\n"


def segment(map, sigma_color=_native.SIGMA_COLOR, lowpass=0.0) -> dict:
    """The paper's segmentation pipeline on one map, as ``phyvae segment``:
    an optional Gaussian low-pass (``lowpass``: its standard deviation in map
    cells; 0, the default: none, the paper's pipeline), min-max
    normalisation, bilateral denoising (``sigma_color``), then Otsu,
    multi-Otsu (3 and 4 classes) and Chan-Vese labels.

    Returns a dict: ``denoised`` (float32), ``otsu``, ``multiotsu3``,
    ``multiotsu4``, ``chanvese`` (int32 label arrays; a multi-Otsu count the
    map has too few levels for is left out and named in ``skipped`` with the
    reason), ``flat`` (True for a map without structure). Computed in float32.
    """
    return _native.segment(real_2d(map, "map", keep64=False), float(sigma_color), float(lowpass))


def score(labels, truth, tolerance=1) -> dict:
    """Scores of a label map against the truth, as ``phyvae score``:
    ``ari`` (adjusted Rand index), ``accuracy`` (under the best one-to-one
    relabelling), ``boundary_f1`` (boundaries matched within ``tolerance``
    cells), and ``tolerance``."""
    ari, acc, f1 = _native.score(labels_2d(labels, "labels"), labels_2d(truth, "truth"), int(tolerance))
    return {"ari": ari, "accuracy": acc, "boundary_f1": f1, "tolerance": int(tolerance)}
