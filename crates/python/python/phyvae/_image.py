"""``Image``: an image read from a file as the ``phyvae`` command reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np


class Image:
    """An image as the ``phyvae`` command reads it: float32 pixels (raw
    values, no normalisation), the pixel size and unit when the file records
    one, and the facts ``phyvae info`` gives about the file.

    ``np.asarray(image)`` gives :attr:`data`.
    """

    def __init__(self, data, pixel_size=None, unit=None, path=None, frame=None,
                 dataset=None, info=None):
        self.data: np.ndarray = data
        """Pixels, ``(rows, cols)`` float32."""
        self.pixel_size: Optional[Tuple[float, float]] = pixel_size
        """``(x, y)``: the size of one pixel along columns and rows, in :attr:`unit`; None when the file has none."""
        self.unit: Optional[str] = unit
        """Unit of :attr:`pixel_size` (e.g. ``'nm'``), or None."""
        self.path: Optional[Path] = Path(path) if path is not None else None
        """File it was read from."""
        self.frame: Optional[int] = frame
        """Frame or page read (None: the file's default image)."""
        self.dataset: Optional[str] = dataset
        """HDF5 entry read (None: the file's default)."""
        self.info: dict = info or {}
        """What ``phyvae info`` says about the file: format, images, default."""

    @property
    def format(self) -> Optional[str]:
        """The file's format, as ``phyvae info`` names it."""
        return self.info.get("format")

    @property
    def shape(self) -> tuple:
        """``(rows, cols)``."""
        return self.data.shape

    @property
    def calibration(self):
        """``(x, y, unit)``, or None without a pixel size."""
        if self.pixel_size is None:
            return None
        return (self.pixel_size[0], self.pixel_size[1], self.unit)

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    def __repr__(self) -> str:
        ps = f", pixel {self.pixel_size[0]:g} x {self.pixel_size[1]:g} {self.unit}" if self.pixel_size else ""
        src = f" from {str(self.path)!r}" if self.path else ""
        return f"<phyvae.Image {self.data.shape[0]} x {self.data.shape[1]}{ps}{src}>"

    def to_signal(self):
        """The image as a hyperspy ``Signal2D`` with its calibration (needs hyperspy)."""
        import hyperspy.api as hs

        s = hs.signals.Signal2D(self.data)
        if self.pixel_size is not None:
            for ax, size in zip(s.axes_manager.signal_axes, self.pixel_size):
                ax.scale = size
                ax.units = self.unit
        if self.path is not None:
            s.metadata.General.title = self.path.name
        return s
