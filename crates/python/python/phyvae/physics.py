"""The physics terms Psi of the phy-VAE paper (its equations 4 and 5), as
``phyvae physics``: on a batch of latent means ``z`` (B x C, B a perfect
square), each listed column reshaped row-major to sqrt(B) x sqrt(B);
computed in float32."""

from __future__ import annotations

from . import _native
from ._arrays import real_2d


def sl1(z, columns=(2, 3)) -> float:
    """SL1, the edge length of the content maps (``phyvae physics sl1``).
    ``columns``: the columns holding the content latents (the authors: 2, 3)."""
    return _native.sl1(real_2d(z, "z", keep64=False), [int(c) for c in columns])


def sl2(z, columns=(2, 3), alpha=1) -> float:
    """SL2, the Fourier-peak term (``phyvae physics sl2``); ``alpha``: the
    half-width of the excluded central Fourier window."""
    return _native.sl2(real_2d(z, "z", keep64=False), [int(c) for c in columns], int(alpha))
