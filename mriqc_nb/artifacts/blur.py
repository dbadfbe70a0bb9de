"""Loss of resolution: blurred or thick-slice scans."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from mriqc_nb.artifacts._common import Choice, Range, as_volume, choose, fail, finish, levels_at, \
    sampler_doc

CLASS = "motion_ringing"
TITLE = "Blurring (low resolution, thick slices)"
PHYSICS = ("Each point is spread over several millimetres (thick slices, low matrix, slow "
           "drift); in k-space the high frequencies are attenuated by a Gaussian.")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
RANGES = (
    Choice("thick_slices", "clean scans: thick slices (a slice profile along axis 2) or not",
           (False, True), (0.4, 0.6), levels=("clean",)),
    Range("slice_fwhm_mm", "FWHM of the thick slices' profile along axis 2, mm",
          {"clean": (3.0, 5.0)}),
    Range("other_fwhm_voxels", "FWHM along every axis first, voxels of the grid",
          {"subtle": (0.0, 0.5), "prominent": (0.0, 0.5)}),
    Choice("blurred_axes", "axes that get the main FWHM", ("in-plane (0, 1)", "through-plane (2)"),
           (0.5, 0.5)),
    Range("fwhm_voxels", "main FWHM, voxels of the grid", {"subtle": (0.75, 1.25), "prominent": (2.0, 3.0)}),
)


def blur(volume, *, fwhm_mm, spacing_mm=None) -> np.ndarray:
    """Loss of resolution: Gaussian blur with a full width at half maximum per axis.

    A thick slice, a low acquisition matrix or in-plane smearing spreads each point over a
    few millimetres; in k-space the high frequencies are attenuated by a Gaussian. The blur
    uses ``sigma = fwhm / (2 sqrt(2 ln 2)) / spacing`` voxels with mirrored edges, so the total
    signal is preserved.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    fwhm_mm : sequence of 3 float
        FWHM along each axis in mm (>= 0), e.g. ``[2, 2, 8]`` for a thick-slice look.
    spacing_mm : tuple of float
        Voxel size in mm; required for an array, read from the header of an image or path.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, spacing_mm = as_volume(volume, "blur", spacing_mm, needs_spacing=True)
    fwhm = np.asarray(fwhm_mm, dtype=float)
    if fwhm.shape != (3,) or np.any(fwhm < 0):
        fail("blur", f"fwhm_mm must be 3 non-negative values in mm, got {fwhm_mm!r}")
    sigma_voxels = fwhm / FWHM_PER_SIGMA / np.asarray(spacing_mm)
    if not sigma_voxels.any():
        return finish(x)
    return finish(ndimage.gaussian_filter(x, sigma_voxels, mode="reflect", output=np.float32))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "blur")
    if severity == "clean":  # in mm: a clean acquisition does not depend on the grid
        thick = choose(rng, RANGES[0])
        return {"fwhm_mm": [0.0, 0.0, float(round(rng.uniform(*spans["slice_fwhm_mm"]), 4)) if thick else 0.0]}
    if spacing_mm is None:
        fail("blur", "spacing_mm is required to draw a blur (its FWHM is drawn in voxels)")
    voxels = rng.uniform(*spans["other_fwhm_voxels"], size=3)
    if choose(rng, RANGES[3]) == RANGES[3].options[0]:
        voxels[:2] = rng.uniform(*spans["fwhm_voxels"])
    else:
        voxels[2] = rng.uniform(*spans["fwhm_voxels"])
    return {"fwhm_mm": [round(float(v * s), 4) for v, s in zip(voxels, spacing_mm)]}


sample.__doc__ = sampler_doc(RANGES, "FWHM per axis in mm: drawn in voxels of the grid (mm for "
                                     "clean thick slices), then converted with ``spacing_mm``.")
