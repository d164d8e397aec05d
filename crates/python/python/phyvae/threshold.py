"""Thresholds, as ``phyvae threshold``: 256-bin histograms over [min, max]
as scikit-image, computed in the input's precision."""

from __future__ import annotations

from . import _native
from ._arrays import real_2d


def otsu(image) -> float:
    """Otsu's threshold (``phyvae threshold otsu``)."""
    x = real_2d(image)
    return (_native.otsu_f64 if x.dtype.itemsize == 8 else _native.otsu_f32)(x)


def multiotsu(image, classes=3) -> list:
    """Multi-Otsu thresholds for ``classes`` classes, 2 to 5
    (``phyvae threshold multiotsu``); ``classes - 1`` values, ascending."""
    x = real_2d(image)
    f = _native.multiotsu_f64 if x.dtype.itemsize == 8 else _native.multiotsu_f32
    return f(x, int(classes))
