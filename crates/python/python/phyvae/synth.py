"""Synthetic images with a known per-pixel truth, as ``phyvae synth``."""

from __future__ import annotations

from . import _native


def two_phase(size=512, seed=0):
    """Two phases with different lattices and a curved boundary:
    ``(image, truth)``, a float32 image and its int32 labels, ``size x size``."""
    return _native.synth("two_phase", int(size), int(seed))


def domains(size=512, seed=0):
    """A substrate and a film with two slightly different domain variants:
    ``(image, truth)``, a float32 image and its int32 labels, ``size x size``."""
    return _native.synth("domains", int(size), int(seed))
