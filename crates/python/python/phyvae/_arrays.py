"""Arrays and images coming from Python: dtypes, byte order, hyperspy signals.

numpy arrays of any real dtype, byte order and memory layout are taken as
they are where the native code can read them (native-endian float32 and
float64, any strides: no copy); any other real dtype (integers, bool,
float16, big-endian floats) is converted once, to float32 (float64 stays
float64 where a function computes in the input's precision, as the command
does for a float64 NPY file).
"""

from __future__ import annotations

import numpy as np

#: What an image given as an array is called in a run's records.
ARRAY_NAME = "(numpy array)"


def real_2d(a, name="image", keep64=True):
    """``a`` as a 2-D native-endian float32 array (float64 kept when ``keep64``).

    No copy is made for a native float32 (or, with ``keep64``, float64) array of
    any layout. Raises ValueError for a non-2-D or non-real array.
    """
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if keep64 and arr.dtype.kind == "f" and arr.dtype.itemsize == 8:
        return arr.astype(np.dtype("=f8"), copy=False)
    return arr.astype(np.dtype("=f4"), copy=False)


def labels_2d(a, name="labels"):
    """``a`` as a 2-D int32 label map; integral floats are accepted."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: a label map holds integer labels")
    elif arr.dtype.kind not in "biu":
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.dtype("=i4"), copy=False)


def is_signal(obj) -> bool:
    """Whether ``obj`` looks like a hyperspy signal (``.data`` and ``.axes_manager``)."""
    return hasattr(obj, "data") and hasattr(obj, "axes_manager")


def signal_calibration(sig):
    """``(pixel_size_x, pixel_size_y, unit)`` of a 2-D hyperspy signal, or None.

    Read from its two signal axes (x = the second numpy axis); None when the
    axes carry no unit or unit scale.
    """
    try:
        axes = sig.axes_manager.signal_axes
        ax_x, ax_y = axes[0], axes[1]
        unit = ax_x.units
        if unit is None or str(unit) in ("", "<undefined>"):
            return None
        return (float(ax_x.scale), float(ax_y.scale), str(unit))
    except (AttributeError, IndexError, TypeError):
        return None
