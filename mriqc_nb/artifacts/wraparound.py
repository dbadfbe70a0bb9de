"""Wrap-around (aliasing) along the phase-encoding axis."""

from __future__ import annotations

import math

import numpy as np

from mriqc_nb.artifacts._common import PE_AXIS, Range, as_volume, check_axis, choose, fail, finish, \
    head_extent, levels_at, sampler_doc, uniform

CLASS = "coverage"
TITLE = "Wrap-around (aliasing)"
PHYSICS = ("The field of view along the phase-encoding axis is smaller than the head; "
           "k-space lines spaced by 1/FOV make the image periodic, so what lies beyond one "
           "edge folds in at the other.")
RANGES = (
    Range("fov_fraction", "reduced FOV / head extent along the PE axis",
          {"subtle": (0.9, 0.95), "prominent": (0.7, 0.85)}),
    PE_AXIS,
)


def wraparound(volume, *, fov_fraction: float, pe_axis: int = 1) -> np.ndarray:
    """Aliasing (wrap-around) along the phase-encoding axis.

    The FOV along ``pe_axis`` was prescribed smaller than the head: ``m = round(fov_fraction *
    E)`` voxels, where ``E`` is the head's extent along that axis (:func:`head_extent`),
    centred on the head. k-space lines are then spaced by 1 / FOV and the reconstruction is
    periodic with period ``m``: every part of the head beyond one edge of the FOV folds back in
    at the opposite edge (the sum of the periodic copies). The result keeps the input grid:
    the reduced FOV sits where it was prescribed, holding the folded image, and the voxels
    outside it are zero, as after zero-padding the smaller scan back to the grid. The total
    signal is preserved.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    fov_fraction : float
        Reduced FOV as a fraction of the head's extent along ``pe_axis``, in (0, 1]. With 1
        nothing folds (the FOV just fits the head); 0.8 folds 10% of the head in at each side.
    pe_axis : int
        Phase-encoding axis.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, _ = as_volume(volume, "wraparound")
    pe_axis = check_axis(pe_axis, "wraparound")
    if not 0.0 < fov_fraction <= 1.0:
        fail("wraparound", f"fov_fraction must be in (0, 1], got {fov_fraction}")
    first, last = head_extent(x, pe_axis)
    n = x.shape[pe_axis]
    m = max(1, int(round(fov_fraction * (last - first + 1))))
    start = int(np.clip(math.floor((first + last + 1) / 2 - m / 2), 0, n - m))
    xa = np.moveaxis(x, pe_axis, 0)
    folded = np.zeros((m,) + xa.shape[1:], dtype=np.float32)
    for p in range(n):  # position p lands at (p - start) mod m of the reduced FOV
        folded[(p - start) % m] += xa[p]
    out = np.zeros_like(xa)
    out[start:start + m] = folded
    return finish(np.moveaxis(out, 0, pe_axis))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "wraparound")
    return {"fov_fraction": uniform(rng, spans["fov_fraction"]), "pe_axis": choose(rng, PE_AXIS)}


sample.__doc__ = sampler_doc(RANGES, "Reduced FOV of a severity (prominent folds 7-15% of the "
                                     "head in at each side, subtle 2.5-5%).")
