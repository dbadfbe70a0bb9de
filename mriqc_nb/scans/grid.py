"""Voxel-grid operations: reorient to RAS+, resample to a voxel size, head mask, crop/pad,
intensity normalisation."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from scipy import ndimage

from .errors import IN_MEMORY, GridSizeError
from .files import MAX_VOXELS, _fmt, load_scan


def reorient(img: Any, orientation: str = "RAS") -> nib.Nifti1Image:
    """Permute and flip voxel axes so that they point along ``orientation``; no interpolation.

    Parameters
    ----------
    img : nibabel.Nifti1Image, path, or other nibabel image
        A ``Nifti1Image`` is used as it is (3-D or more); anything else goes through
        :func:`load_scan` first.
    orientation : str
        Three axis codes, each the direction an axis *increases* towards: ``"RAS"`` (the
        canonical RAS+), ``"LPS"`` (DICOM), ``"LAS"``, ...

    Returns
    -------
    nibabel.Nifti1Image
        Same voxels, reordered (a view where possible), with the affine updated so that every
        voxel keeps its world coordinate. For an oblique scan the closest axes are used
        (as :func:`nibabel.as_closest_canonical` does); the residual rotation stays in the
        affine.
    """
    if not isinstance(img, nib.Nifti1Image):
        img = load_scan(img)
    target = nio.axcodes2ornt(tuple(orientation.upper()))
    transform = nio.ornt_transform(nio.io_orientation(img.affine), target)
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return img
    data = nio.apply_orientation(np.asanyarray(img.dataobj), transform)
    affine = img.affine @ nio.inv_ornt_aff(transform, img.shape)
    return nib.Nifti1Image(data, affine)


def resample_to_spacing(img: nib.Nifti1Image, spacing_mm, order: int = 1, *,
                        name: str = IN_MEMORY) -> nib.Nifti1Image:
    """Resample every axis to the voxel size ``spacing_mm``, keeping millimetres as they are.

    Each axis is scaled by its own ratio (input voxel size / target voxel size), so shapes
    keep their physical aspect ratio. The output grid covers the input field of view (voxel
    edges aligned, the last voxel may overhang by less than one voxel). Where an axis is
    downsampled, the volume is first smoothed with a Gaussian of standard deviation
    ``sqrt(r**2 - 1) / sqrt(12)`` input voxels (``r`` = target / input voxel size): MRI voxels
    are area samples, and this adds exactly the variance that turns a box of the input width
    into one of the target width. Upsampled axes are not smoothed.

    With linear interpolation (``order=1``, the default) both steps are applied together as
    one small matrix per axis (:func:`_resample_linear`), equal to ``ndimage.gaussian_filter``
    followed by ``ndimage.affine_transform`` up to float32 rounding, several times faster.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        3-D image (float32 data, as from :func:`load_scan`).
    spacing_mm : sequence of 3 float
        Target voxel size along the image's axes, in millimetres.
    order : int
        Spline order of the interpolation (0 nearest, 1 linear, 3 cubic).
    name : str
        The file, for error messages.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image with voxel size ``spacing_mm`` and the matching affine.

    Raises
    ------
    GridSizeError
        If the output would hold more than :data:`~mriqc_nb.scans.MAX_VOXELS` voxels (e.g.
        a scan with 50 mm voxels resampled to 1 mm): refused before anything is allocated.
    """
    zooms = nib.affines.voxel_sizes(img.affine)
    ratio = np.asarray(spacing_mm, dtype=np.float64) / zooms   # target voxel in input voxels
    if np.allclose(ratio, 1.0, rtol=0, atol=1e-6):
        return img
    shape = np.maximum(1, np.ceil(np.asarray(img.shape[:3]) / ratio - 1e-3))
    if float(np.prod(shape)) > MAX_VOXELS:
        raise GridSizeError(name, f"resampling voxels of {_fmt(zooms)} mm to {_fmt(spacing_mm)} "
                            f"mm would make a {_fmt(shape)} grid, more than {MAX_VOXELS:,} "
                            "voxels: the voxel size in the header is implausible")
    shape = shape.astype(int)
    data = np.asanyarray(img.dataobj).astype(np.float32, copy=False)
    sigma = np.sqrt(np.clip(ratio**2 - 1.0, 0.0, None) / 12.0)
    offset = (ratio - 1.0) / 2.0        # output voxel j sits at input voxel ratio*j + offset
    if order == 1 and data.ndim == 3:
        out = _resample_linear(data, shape, ratio, offset, sigma)
    else:
        if np.any(sigma > 0):
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
        out = ndimage.affine_transform(data, ratio, offset=offset, output_shape=tuple(shape),
                                       order=order, mode="nearest", prefilter=order > 1)
    step = np.diag(np.r_[ratio, 1.0])
    step[:3, 3] = offset
    return nib.Nifti1Image(out.astype(np.float32, copy=False), img.affine @ step)


def _axis_operator(n_in: int, n_out: int, ratio: float, offset: float,
                   sigma: float) -> np.ndarray:
    """(n_out, n_in) matrix of one axis of :func:`resample_to_spacing` (order 1): the Gaussian
    of ``sigma`` input voxels (edges repeated, as ``ndimage.gaussian_filter(mode="nearest")``),
    then linear interpolation at ``ratio * j + offset`` (clamped to the edge voxels, as
    ``ndimage.affine_transform(order=1, mode="nearest")``)."""
    op = np.eye(n_in)
    if sigma > 0:
        op = ndimage.gaussian_filter1d(op, sigma, axis=0, mode="nearest")
    pos = np.clip(ratio * np.arange(n_out) + offset, 0.0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    w = pos - lo
    interp = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(interp, (rows, lo), 1.0 - w)
    np.add.at(interp, (rows, hi), w)
    return (interp @ op).astype(np.float32)


def _resample_linear(data: np.ndarray, shape, ratio, offset, sigma) -> np.ndarray:
    """Gaussian anti-aliasing then trilinear resampling (order 1), as one matrix per axis.

    Both steps are separable, so the whole resampling is three small matrix products (the
    smaller output first), equal to ``gaussian_filter`` + ``affine_transform`` up to float32
    rounding, in a fraction of the time and without a smoothed full-size copy."""
    mats = [_axis_operator(int(data.shape[a]), int(shape[a]), float(ratio[a]),
                           float(offset[a]), float(sigma[a])) for a in range(3)]
    nx, ny, nz = data.shape
    out = (mats[0] @ data.reshape(nx, ny * nz)).reshape(int(shape[0]), ny, nz)
    out = np.matmul(mats[1], out)                  # (X', Y', Z): a product per X' slice
    out = np.matmul(out, mats[2].T)                # (X', Y', Z')
    return np.ascontiguousarray(out, dtype=np.float32)


def _otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of a histogram."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist, dtype=np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    return float(edges[np.nanargmax(between[:-1]) + 1])


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes(mask)`` (6-connected background) in one labelling pass: the
    background components that touch the array's border stay background, the others (holes)
    are filled. scipy's version dilates from the border until nothing changes, a pass per
    voxel of depth."""
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    outside = np.zeros(n + 1, dtype=bool)
    for ax in range(labels.ndim):
        for side in (0, -1):
            outside[np.take(labels, side, axis=ax)] = True
    outside[0] = False  # label 0: the mask itself
    return ~outside[labels] & (labels > 0) | mask


def head_mask(volume: np.ndarray, sigma_vox: float = 1.0) -> np.ndarray:
    """Rough mask of the head (the bright object) in a 3-D volume.

    The volume is smoothed (Gaussian, ``sigma_vox`` voxels), thresholded with Otsu's method
    (computed on intensities clipped to their 99.9th percentile, so a few very bright voxels
    do not squeeze the histogram), reduced to its largest 6-connected component, and its
    enclosed holes (ventricles, dark CSF) are filled. Good enough to centre a crop and to
    normalise intensities; not a brain extraction.

    Parameters
    ----------
    volume : np.ndarray, shape (X, Y, Z)
        Finite intensities, background near its minimum.
    sigma_vox : float
        Smoothing in voxels (0 to skip).

    Returns
    -------
    np.ndarray of bool, shape (X, Y, Z)
        True inside the head; all False if the volume is constant.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if sigma_vox > 0:
        vol = ndimage.gaussian_filter(vol, sigma_vox, mode="nearest")
    lo, hi = float(vol.min()), float(np.percentile(vol, 99.9))
    if hi <= lo:
        hi = float(vol.max())
        if hi <= lo:
            return np.zeros(vol.shape, dtype=bool)
    mask = vol > _otsu_threshold(np.clip(vol, lo, hi))
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return _fill_holes(mask)


def _window_start(mask: np.ndarray, grid) -> np.ndarray:
    """First voxel of a ``grid``-sized window centred on the head's centre of mass.

    Where the head's bounding box fits in the window along an axis, the window is shifted
    (as little as possible) to contain it all, so no part of a head that fits is cut.
    """
    grid = np.asarray(grid)
    if not mask.any():
        return (np.asarray(mask.shape) - grid) // 2
    centre = np.asarray(ndimage.center_of_mass(mask))
    start = np.round(centre + 0.5 - grid / 2).astype(int)
    for ax in range(3):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        lo, hi = idx[0], idx[-1] + 1
        if hi - lo <= grid[ax]:
            start[ax] = np.clip(start[ax], hi - grid[ax], lo)
    return start


def crop_or_pad(volume: np.ndarray, grid, start=None, fill: float = 0.0) -> np.ndarray:
    """Cut or pad ``volume`` to shape ``grid``, taking the window that begins at ``start``.

    Parameters
    ----------
    volume : np.ndarray, shape (X, Y, Z)
    grid : sequence of 3 int
        Output shape.
    start : sequence of 3 int, optional
        Index in ``volume`` of the output's first voxel; may be negative or run past the end
        (those voxels are padded). Default: the window centred on the array.
    fill : float
        Value of padded voxels (0, the background of an MRI scan).

    Returns
    -------
    np.ndarray, shape ``grid``, same dtype as ``volume``
    """
    shape, grid = np.asarray(volume.shape), np.asarray(grid, dtype=int)
    start = (shape - grid) // 2 if start is None else np.asarray(start, dtype=int)
    out = np.full(tuple(grid), fill, dtype=volume.dtype)
    src_lo, src_hi = np.maximum(start, 0), np.minimum(start + grid, shape)
    if np.all(src_hi > src_lo):
        src = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(src_lo, src_hi, start))
        out[dst] = volume[src]
    return out


def normalise_intensities(volume: np.ndarray, mask: np.ndarray,
                          upper_percentile: float = 99.5) -> np.ndarray:
    """Clip bright outliers, then z-score with the head's mean and standard deviation.

    The choice: voxels above the ``upper_percentile`` of the head's intensities are set to
    it (vessels, fat, spikes would otherwise dominate the scale); then ``(v - mean) / std``
    with mean and std of the clipped head voxels, so the head has mean 0 and std 1 exactly.
    There is no lower clip: the background keeps its structure (noise, motion ghosts, wrap-
    around, all evidence of artifacts) and lands near ``-mean/std`` of the head (about -2 to
    -4 for a T1 scan), well below the head. Zero-padding stays equal to a zero background.
    If the mask is empty the whole volume is used.

    Parameters
    ----------
    volume : np.ndarray, shape (X, Y, Z)
    mask : np.ndarray of bool, shape (X, Y, Z)
        Head mask (:func:`head_mask`).
    upper_percentile : float
        Percentile (0-100) of head intensities above which voxels are clipped.

    Returns
    -------
    np.ndarray of float32, shape (X, Y, Z)
    """
    vol = np.asarray(volume, dtype=np.float32)
    head = vol[mask] if mask.any() else vol.ravel()
    vol = np.minimum(vol, np.percentile(head, upper_percentile))
    head = vol[mask] if mask.any() else vol.ravel()
    mean, std = float(head.mean()), float(head.std())
    return ((vol - mean) / (std if std > 0 else 1.0)).astype(np.float32)

