"""Image filters, as ``phyvae filter``: computed in the input's precision
(float64 stays float64, every other real dtype is computed in float32)."""

from __future__ import annotations

from . import _native
from ._arrays import real_2d


def bilateral(image, sigma_color="std", sigma_spatial=1.0, mode="skimage"):
    """Bilateral denoising (``phyvae filter bilateral``).

    ``sigma_color``: the colour (range) sigma, or ``"std"`` for the image's
    standard deviation; ``sigma_spatial``: the spatial sigma in px;
    ``mode``: ``"skimage"`` (exactly scikit-image 0.26's
    ``denoise_bilateral``) or ``"gaussian"`` (the textbook filter).
    Returns an array of the input's float type.
    """
    x = real_2d(image)
    if isinstance(sigma_color, str):
        if sigma_color.lower() != "std":
            raise ValueError(f"sigma_color must be a number or 'std', got {sigma_color!r}")
        sc = None
    else:
        sc = float(sigma_color)
    f = _native.bilateral_f64 if x.dtype.itemsize == 8 else _native.bilateral_f32
    return f(x, sc, float(sigma_spatial), str(mode))


def scharr(image):
    """Scharr edge magnitude (``phyvae filter scharr``; scikit-image's
    ``filters.scharr`` conventions). Returns an array of the input's float type."""
    x = real_2d(image)
    f = _native.scharr_f64 if x.dtype.itemsize == 8 else _native.scharr_f32
    return f(x)
