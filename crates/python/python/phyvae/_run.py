"""``Run``: a run folder written by ``phyvae.train``, ``Run.encode`` or the
``phyvae`` command, read as numpy arrays and dicts."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import tempfile
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

from . import _native
from ._arrays import ARRAY_NAME, is_signal, real_2d, signal_calibration

#: The run folder's file names (``phyvae_run::files``).
FILES = _native.run_files()


class Run:
    """A phyvae run folder.

    Made by :func:`phyvae.train` and :meth:`Run.encode`, or reopened from any
    run folder (one the ``phyvae`` command wrote included) with
    :meth:`Run.open`. A run trained without ``out`` lives in a temporary
    folder that this object keeps until it is garbage-collected.
    """

    def __init__(self, path, _keep=None):
        self.path = Path(path)
        """The run folder."""
        self._keep = _keep

    @classmethod
    def open(cls, path) -> "Run":
        """Reopens the run folder ``path`` (raises FileNotFoundError when it
        holds no run: neither metrics.json nor config.toml)."""
        p = Path(path)
        if not (p / FILES["metrics"]).is_file() and not (p / FILES["config"]).is_file():
            raise FileNotFoundError(f"{p} holds no phyvae run (no {FILES['metrics']})")
        return cls(p)

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"<phyvae.Run {str(self.path)!r}: {m.get('method') or 'vae'}, "
            f"grid {m.get('grid')}, latents {m.get('latents')}>"
        )

    def _file(self, key: str) -> Path:
        return self.path / FILES[key]

    @cached_property
    def metrics(self) -> dict:
        """``metrics.json``: throughput, losses, per-map metrics and scores, the
        diagnosis, the result, the settings chosen and why."""
        with open(self._file("metrics"), encoding="utf-8") as f:
            return json.load(f)

    @cached_property
    def config(self) -> dict:
        """``config.toml``, the run's effective settings (``{}`` for a run made
        by encoding, which has none of its own)."""
        p = self._file("config")
        if not p.is_file():
            return {}
        return json.loads(_native.read_config(str(p)))

    @cached_property
    def history(self) -> dict:
        """``history.csv`` as a dict of numpy columns (one row per epoch)."""
        p = self._file("history")
        if not p.is_file():
            return {}
        with open(p, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
        if not rows:
            return {}
        head, body = rows[0], rows[1:]
        out = {}
        for i, name in enumerate(head):
            col = [r[i] if i < len(r) else "" for r in body]
            try:
                out[name] = np.array([float(v) if v != "" else np.nan for v in col])
            except ValueError:
                out[name] = np.array(col)
        return out

    @cached_property
    def latents(self) -> np.ndarray:
        """Encoder means, ``(grid rows, grid cols, L)`` float32, in the order
        of :attr:`latent_names` (special latents first)."""
        return np.load(self._file("latents"))

    @cached_property
    def latents_sd(self) -> np.ndarray:
        """Encoder standard deviations, same shape as :attr:`latents`."""
        return np.load(self._file("latents_sd"))

    @property
    def latent_names(self) -> list:
        """Names of the latents, e.g. ``['dx', 'dy', 'z1', 'z2']``."""
        return list(self.metrics["latents"])

    @property
    def content_latents(self) -> list:
        """Names of the content latents (those segmented), e.g. ``['z1', 'z2']``."""
        return list(self.metrics["content_latents"])

    @cached_property
    def segmentations(self) -> dict:
        """Every segmentation of every map, ``'<latent>/<method>'`` (e.g.
        ``'z1/otsu'``, ``'z2/multiotsu3'``, ``'z1/chanvese'``) to its int32
        label array on the patch grid. The denoised maps are
        ``'<latent>/denoised'`` (float32)."""
        out = {}
        root = self.path / FILES["segmentation_dir"]
        if not root.is_dir():
            return out
        for latent in self.latent_names:
            d = root / latent
            if not d.is_dir():
                continue
            for f in sorted(d.glob("*.npy")):
                out[f"{latent}/{f.stem}"] = np.load(f)
        return out

    @cached_property
    def result(self) -> dict:
        """What the run picked without any truth: ``map`` (the latent's name)
        and ``map_array`` (its map), ``segmentation`` (its name) and ``labels``
        (the label array), plus the pick's facts from metrics.json (criterion,
        classes, silhouette, ...). ``labels`` is None when nothing was picked
        (``reason`` says why)."""
        r = dict(self.metrics.get("result") or {})
        name = r.get("map")
        if name is not None and name in self.latent_names:
            r["map_array"] = self.latents[..., self.latent_names.index(name)]
        p = self.path / FILES["result_dir"] / FILES["result_labels"]
        r["labels"] = np.load(p) if p.is_file() else None
        return r

    @property
    def report_path(self) -> Path:
        """``report.html``: every figure of the run in one page."""
        return self._file("report")

    @property
    def diagnosis(self) -> list:
        """The diagnosis' findings (collapse, flattened maps, ...); empty when
        the latents learned something."""
        d = self.metrics.get("diagnosis") or {}
        return list(d.get("findings") or [])

    @property
    def cautions(self) -> list:
        """What to check in a run that did not fail (a result that disagrees
        with the classical baseline's segmentation); empty when nothing was
        found."""
        d = self.metrics.get("diagnosis") or {}
        return list(d.get("cautions") or [])

    @property
    def _calibration(self):
        """``(x, y, unit)`` of the image's pixel, or None."""
        ps = self.metrics.get("pixel_size")
        if not ps:
            return None
        return (ps["x"], ps["y"], ps["unit"])

    def manifold(self, n: int = 10) -> np.ndarray:
        """Decodes an ``n x n`` grid of the first two content latents at
        standard-normal quantiles (other latents at 0) and tiles the patches
        into one ``(n w, n w)`` image (pyroVED's ``manifold2d``)."""
        return _native.manifold(str(self.path), int(n))

    def decode(self, z) -> np.ndarray:
        """Decodes chosen latents: ``z`` is ``(L,)`` or ``(B, L)`` with every
        latent in the order of :attr:`latent_names`; returns the decoded
        patch(es), ``(w, w)`` or ``(B, w, w)``, in [0, 1]."""
        z = np.asarray(z, dtype=np.float32)
        one = z.ndim == 1
        z2 = np.ascontiguousarray(z.reshape(1, -1) if one else z)
        if z2.ndim != 2:
            raise ValueError(f"z must be (L,) or (B, L), got shape {z.shape}")
        out = _native.decode(str(self.path), z2)
        return out[0] if one else out

    def encode(self, image, out=None, *, frame=None, dataset=None, device=None,
               truth=None, overwrite=False, quiet=False) -> "Run":
        """Encodes another image with this run's model (``phyvae encode``):
        latent maps, segmentations and metrics in a new run folder ``out``
        (a temporary one when None). ``image`` as in :func:`phyvae.train`."""
        keep = None
        if out is None:
            keep = tempfile.TemporaryDirectory(prefix="phyvae-encode-")
            out = keep.name
        name, pixels, calib = prepare_image(image)
        argv = ["phyvae", "encode", name, "--model", str(self.path), "--out", os.fspath(out)]
        for flag, v in (("--frame", frame), ("--dataset", dataset), ("--device", device),
                        ("--truth", truth)):
            if v is not None:
                argv.append(f"{flag}={os.fspath(v) if isinstance(v, os.PathLike) else v}")
        if overwrite:
            argv.append("--overwrite")
        _native.encode(argv, pixels, calib)
        run = Run(out, _keep=keep)
        run._warn()
        return run

    def _warn(self) -> None:
        """Repeats the diagnosis' findings (and cautions) as Python warnings."""
        for f in self.diagnosis:
            warnings.warn(
                f"{f.get('kind')}: {f.get('message')}. Try: {f.get('advice')}.",
                RuntimeWarning,
                stacklevel=3,
            )
        for f in self.cautions:
            warnings.warn(
                f"caution: {f.get('kind')}: {f.get('message')}. Try: {f.get('advice')}.",
                UserWarning,
                stacklevel=3,
            )

    def to_signal(self):
        """The latent maps as one hyperspy ``Signal2D`` (navigation: the
        latents, in the order of :attr:`latent_names`; signal: the patch grid),
        calibrated from the image: one grid cell is ``step`` pixels, the first
        cell's centre is at ``window / 2`` pixels. Needs hyperspy."""
        try:
            import hyperspy.api as hs
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Run.to_signal needs hyperspy (pip install hyperspy)") from e
        lat = np.moveaxis(self.latents, -1, 0)
        s = hs.signals.Signal2D(np.ascontiguousarray(lat))
        s.metadata.General.title = f"phyvae latents ({', '.join(self.latent_names)})"
        nav = s.axes_manager.navigation_axes[0]
        nav.name = "latent"
        m = self.metrics
        step, window = m["step"], m["window"]
        calib = self._calibration
        sx, sy, unit = calib if calib else (1.0, 1.0, "px")
        ax_x, ax_y = s.axes_manager.signal_axes
        for ax, size, name in ((ax_x, sx, "x"), (ax_y, sy, "y")):
            ax.name = name
            ax.scale = step * size
            ax.offset = window / 2 * size
            ax.units = unit
        s.metadata.set_item("phyvae.latent_names", self.latent_names)
        s.metadata.set_item("phyvae.run", str(self.path))
        return s

    def _repr_html_(self) -> str:
        m = self.metrics
        r = m.get("result") or {}
        parts = [
            f"<div><b>phyvae run</b> <code>{html.escape(str(self.path))}</code><br>",
            f"grid {m.get('grid')}, window {m.get('window')} px, step {m.get('step')} px, "
            f"latents {html.escape(', '.join(self.latent_names))}; "
            f"result: map {html.escape(str(r.get('map')))}, "
            f"segmentation {html.escape(str(r.get('segmentation')))}</div>",
        ]
        for f in self.diagnosis:
            parts.append(
                f"<div style='color:#b00'><b>{html.escape(str(f.get('kind')))}</b>: "
                f"{html.escape(str(f.get('message')))}</div>"
            )
        fig_dir = self.path / FILES["figures_dir"]
        candidates = [fig_dir / "input_grid.png"]
        candidates += [fig_dir / f"latent_{n}.png" for n in self.content_latents]
        candidates += sorted((self.path / FILES["result_dir"]).glob("*.png"))
        candidates += [fig_dir / "manifold.png", fig_dir / "loss_curves.png"]
        pngs = [p for p in candidates if p.is_file()]
        for p in pngs:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            parts.append(
                f"<figure style='display:inline-block;margin:4px'>"
                f"<img src='data:image/png;base64,{data}' style='max-width:420px'>"
                f"<figcaption>{html.escape(p.stem)}</figcaption></figure>"
            )
        return "".join(parts)


def prepare_image(image):
    """``(name, pixels, calibration)`` of an image given to train or encode:
    a path (pixels None: the native code reads it as the command does), an
    :class:`phyvae.Image` loaded from a file (its path), a hyperspy signal or a
    2-D array of any real dtype."""
    from ._image import Image

    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image), None, None
    if isinstance(image, Image):
        if image.path is not None and image.frame is None and image.dataset is None:
            return os.fspath(image.path), None, None
        return ARRAY_NAME, real_2d(image.data), image.calibration
    if is_signal(image):
        return ARRAY_NAME, real_2d(image.data), signal_calibration(image)
    return ARRAY_NAME, real_2d(image), None
