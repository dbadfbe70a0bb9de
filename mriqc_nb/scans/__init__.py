"""Load brain MRI scans and conform them to one fixed grid, for training and inference alike.

One function, :func:`conform`, turns any NIfTI, Analyze or MINC scan (a path or a nibabel
image) into the array the network sees. It is the same for training on synthetic scans and for
screening files on disk, so the two can never drift apart. Its steps, each also available on
its own:

1. :func:`load_scan` -- read with nibabel, squeeze a single-volume 4-D image, validate (every
   failure is a :class:`ScanError` subclass whose message names the file), cast to float32.
2. :func:`reorient` -- permute/flip voxel axes to RAS+ (axis 0 left->right, axis 1
   posterior->anterior, axis 2 inferior->superior). Exact: no interpolation. An oblique scan
   is brought to its *closest* RAS+ axes; the small residual rotation stays in the affine.
3. :func:`resample_to_spacing` -- resample each axis to the target voxel size in millimetres,
   so that a millimetre stays a millimetre on every axis (the aspect ratio is kept, unlike the
   paper's code, which stretched each axis independently to fit the grid). MRI voxels are area
   samples, so downsampling is preceded by a Gaussian matched to the wider target voxel. A
   resampled grid of more than :data:`MAX_VOXELS` voxels is refused before it is allocated.
4. :func:`crop_or_pad` -- cut or zero-pad to the exact grid, centred on the head
   (:func:`head_mask`), not on the array corner.
5. :func:`normalise_intensities` -- clip bright outliers and z-score over the head.

:func:`conform_copies` conforms several copies of one head alike (the first copy's mask and
window for all), so that what differs between them is only what differs between the copies.

Files of unknown origin (screening) first go through :func:`check_header`, which reads the
header only and refuses geometry that cannot be a head (grid, voxel size, field of view, zero
or negative ``pixdim``) before any voxel is read: ``conform(check_header(path))``.

:func:`save_scan` writes a volume back to NIfTI (used by the ``mriqc-nb simulate`` command).

The code lives in three submodules: :mod:`~mriqc_nb.scans.errors`,
:mod:`~mriqc_nb.scans.files` (reading, header checks, writing) and
:mod:`~mriqc_nb.scans.grid` (voxel-grid operations); everything public is importable from
``mriqc_nb.scans``.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np

from ..profiles import DEFAULT_PROFILE, Profile, get_profile
from .errors import IN_MEMORY  # noqa: F401 - kept importable from mriqc_nb.scans
from .errors import (EmptyVolumeError, FieldOfViewError, GridSizeError,
                     ImplausibleGeometryError, InvalidHeaderError, NonFiniteError,
                     NotVolumeError, ScanError, ScanNotFoundError, UnreadableScanError,
                     VoxelSizeError)
from .files import (MAX_FOV_MM, MAX_VOXEL_MM, MAX_VOXELS, MIN_AXIS_VOXELS, MIN_FOV_MM,
                    MIN_VOXEL_MM, SUPPORTED_SUFFIXES, _name_of, check_header, load_scan,
                    save_scan)
from .grid import (_window_start, crop_or_pad, head_mask, normalise_intensities, reorient,
                   resample_to_spacing)

__all__ = [
    "ScanError",
    "ScanNotFoundError",
    "UnreadableScanError",
    "NotVolumeError",
    "EmptyVolumeError",
    "NonFiniteError",
    "InvalidHeaderError",
    "ImplausibleGeometryError",
    "GridSizeError",
    "VoxelSizeError",
    "FieldOfViewError",
    "SUPPORTED_SUFFIXES",
    "MIN_AXIS_VOXELS",
    "MAX_VOXELS",
    "MIN_VOXEL_MM",
    "MAX_VOXEL_MM",
    "MIN_FOV_MM",
    "MAX_FOV_MM",
    "check_header",
    "load_scan",
    "reorient",
    "resample_to_spacing",
    "head_mask",
    "crop_or_pad",
    "normalise_intensities",
    "conform",
    "conform_copies",
    "save_scan",
]


def conform(source: Any, grid=None, spacing_mm=None, *, normalise: bool = True,
            order: int = 1, return_image: bool = False,
            profile: str | Profile | None = None):
    """Load a scan and bring it to the network's input grid: RAS+, fixed mm spacing, head-
    centred crop/pad, normalised intensities.

    Parameters
    ----------
    source : str, os.PathLike or nibabel spatial image
        NIfTI, Analyze or MINC file, or image object (see :func:`load_scan`).
    grid : sequence of 3 int, optional
        Output shape (X, Y, Z) in RAS+ order. Default: the profile's (laptop: 64 x 64 x 32).
    spacing_mm : sequence of 3 float, optional
        Output voxel size in mm. Default: the profile's (laptop: 4 x 4 x 6 mm, a
        256 x 256 x 192 mm field of view).
    normalise : bool
        Apply :func:`normalise_intensities` over the head mask (clip above the head's 99.5th
        percentile, then z-score: head mean 0, std 1, background about -2 to -4). False
        keeps the scan's own intensity units (after interpolation).
    order : int
        Spline order of the resampling (1: linear).
    return_image : bool
        Return a ``Nifti1Image`` with the output's affine instead of the bare array.
    profile : str or Profile, optional
        Profile whose ``grid`` and ``spacing_mm`` are used where those are not given
        (default ``"laptop"``; explicit ``grid``/``spacing_mm`` win).

    Returns
    -------
    np.ndarray of float32, shape ``grid``; or nibabel.Nifti1Image if ``return_image``.

    Raises
    ------
    ScanError
        A subclass for each way a scan can be unusable (see :func:`load_scan`).

    Notes
    -----
    Steps: :func:`load_scan` -> :func:`reorient` to RAS+ -> :func:`resample_to_spacing`
    (Gaussian anti-aliasing where downsampling; aspect ratio kept) -> :func:`head_mask` ->
    :func:`crop_or_pad` to ``grid`` centred on the head's centre of mass (shifted to keep a
    head that fits whole), zero-padded -> :func:`normalise_intensities`.
    """
    prof = get_profile(profile if profile is not None else DEFAULT_PROFILE)
    grid = tuple(int(n) for n in (prof.grid if grid is None else grid))
    spacing_mm = tuple(float(s) for s in (prof.spacing_mm if spacing_mm is None else spacing_mm))
    if len(grid) != 3 or len(spacing_mm) != 3 or min(grid) < 1 or min(spacing_mm) <= 0:
        raise ValueError(f"grid {grid} / spacing_mm {spacing_mm}: need 3 positive values each")

    (out,), affine, start = _conform_copies([source], grid, spacing_mm, normalise=normalise,
                                             order=order)
    if not return_image:
        return out
    shift = np.eye(4)
    shift[:3, 3] = start
    return nib.Nifti1Image(out, affine @ shift)


def conform_copies(sources, grid=None, spacing_mm=None, *, normalise: bool = True,
                   order: int = 1) -> list[np.ndarray]:
    """Conform several copies of one head alike, with the **first** copy's head mask and window.

    The steps of :func:`conform`, run on each copy, except that the head mask, the window of
    ``grid`` and the mask that normalises intensities are the first copy's for all of them:
    the copies stay voxel-aligned, so their differences are what differs between the copies
    (an artifact), not a shifted window or another mask. :func:`conform` is this function on
    one copy.

    Parameters
    ----------
    sources : sequence of str, os.PathLike or nibabel spatial image
        Copies of one head on one voxel grid (e.g. clean, then corrupted).
    grid : sequence of 3 int, optional
        Output shape; ``None`` keeps the whole (resampled) volume (no crop, no pad).
    spacing_mm : sequence of 3 float, optional
        Output voxel size; ``None`` keeps the native voxel size (no resampling).
    normalise, order
        As in :func:`conform`.

    Returns
    -------
    list of float32 arrays of one shape, in the order of ``sources``

    Raises
    ------
    ScanError
        For an unusable copy (message names its file).
    ValueError
        If the copies do not have one shape after resampling.
    """
    return _conform_copies(sources, grid, spacing_mm, normalise=normalise, order=order)[0]


def _conform_copies(sources, grid, spacing_mm, *, normalise: bool, order: int):
    """:func:`conform_copies`, plus the RAS+ resampled affine and the window's first voxel."""
    sources = list(sources)
    arrays, affine = [], None
    for source in sources:
        img = reorient(load_scan(source), "RAS")
        if spacing_mm is not None:
            img = resample_to_spacing(img, spacing_mm, order=order, name=_name_of(source))
        arrays.append(np.asanyarray(img.dataobj))
        affine = img.affine if affine is None else affine
    if not arrays:
        raise ValueError("conform_copies: no source given")
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = ", ".join(f"{_name_of(s)} {a.shape}" for s, a in zip(sources, arrays))
        raise ValueError(f"copies of one head differ in shape after resampling: {shapes}")
    mask = head_mask(arrays[0])
    start = np.zeros(3, dtype=int)
    if grid is not None:
        start = _window_start(mask, grid)
        arrays = [crop_or_pad(a, grid, start) for a in arrays]
        mask = crop_or_pad(mask, grid, start, fill=False)
    if normalise:
        arrays = [normalise_intensities(a, mask) for a in arrays]
    return [a.astype(np.float32, copy=False) for a in arrays], affine, start

