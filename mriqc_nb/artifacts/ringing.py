"""Gibbs ringing: k-space truncated with a hard edge."""

from __future__ import annotations

import math

import numpy as np

from mriqc_nb.artifacts._common import PE_AXIS, Choice, Range, as_volume, check_axis, choose, fail, \
    finish, frequencies, levels_at, sampler_doc, uniform
from mriqc_nb.kspace import filter_kspace

CLASS = "motion_ringing"
TITLE = "Gibbs ringing (truncated k-space)"
PHYSICS = ("Too few k-space lines are acquired and the rest is zero; the sinc point-spread "
           "function of the hard-edged k-space makes parallel lines ring next to sharp edges.")
AXES = Choice("axes", "truncated axes: the phase-encoding axis alone, or in-plane",
              ("pe_axis", "in-plane (0, 1)"), (0.5, 0.5))
RANGES = (
    AXES,
    PE_AXIS,
    Range("keep_fraction", "central fraction of k-space kept along each truncated axis",
          {"subtle": (0.6, 0.75), "prominent": (0.25, 0.4)}),
)


def _central_band(n: int, keep_fraction: float) -> np.ndarray:
    """Boolean mask of the k-space lines with |k| <= floor(keep_fraction * n / 2)."""
    return np.abs(frequencies(n)) <= math.floor(keep_fraction * n / 2)


def ringing(volume, *, keep_fraction: float, axes=(1,)) -> np.ndarray:
    """Gibbs ringing: k-space truncated with a hard edge.

    Too few lines are acquired along ``axes`` (a low matrix), and the missing outer k-space is
    zero (no apodising window): the lines with ``|k| <= floor(keep_fraction * n / 2)`` are kept
    exactly, the rest are zero. The sinc point-spread function rings next to sharp edges and
    lowers the resolution. The band is even in k, so only ``axes`` are transformed.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    keep_fraction : float
        Central fraction of k-space kept along each of ``axes``, in (0, 1]; 1 keeps all.
    axes : sequence of int
        Truncated axes, e.g. ``[1]`` (PE only) or ``[0, 1]`` (in-plane).

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, _ = as_volume(volume, "ringing")
    if not 0.0 < keep_fraction <= 1.0:
        fail("ringing", f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if not isinstance(axes, (list, tuple)) or len(axes) == 0:
        fail("ringing", f"axes must be a non-empty list of axes, got {axes!r}")
    bands = {check_axis(a, "ringing", "axes"): _central_band(x.shape[a], keep_fraction) for a in axes}
    if all(band.all() for band in bands.values()):
        return finish(x)
    return finish(np.abs(filter_kspace(x, {a: band.astype(np.float32) for a, band in bands.items()})))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "ringing")
    axes = [choose(rng, PE_AXIS)] if choose(rng, AXES) == "pe_axis" else [0, 1]
    return {"keep_fraction": uniform(rng, spans["keep_fraction"]), "axes": axes}


sample.__doc__ = sampler_doc(RANGES, "Truncation of a severity (``pe_axis`` only when the PE axis alone is truncated).")
