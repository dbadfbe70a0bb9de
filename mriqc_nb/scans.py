"""Load brain MRI scans and conform them to one fixed grid, for training and inference alike.

One function, :func:`conform`, turns any NIfTI or MINC scan (a path or a nibabel image) into
the array the network sees. It is the same for training on synthetic scans and for screening
files on disk, so the two can never drift apart. Its steps, each also available on its own:

1. :func:`load_scan` -- read with nibabel, squeeze a single-volume 4-D image, validate (every
   failure is a :class:`ScanError` subclass whose message names the file), cast to float32.
2. :func:`reorient` -- permute/flip voxel axes to RAS+ (axis 0 left->right, axis 1
   posterior->anterior, axis 2 inferior->superior). Exact: no interpolation. An oblique scan
   is brought to its *closest* RAS+ axes; the small residual rotation stays in the affine.
3. :func:`resample_to_spacing` -- resample each axis to the target voxel size in millimetres,
   so that a millimetre stays a millimetre on every axis (the aspect ratio is kept, unlike the
   paper's code, which stretched each axis independently to fit the grid). MRI voxels are area
   samples, so downsampling is preceded by a Gaussian matched to the wider target voxel.
4. :func:`crop_or_pad` -- cut or zero-pad to the exact grid, centred on the head
   (:func:`head_mask`), not on the array corner.
5. :func:`normalise_intensities` -- clip bright outliers and z-score over the head.

:func:`save_scan` writes a volume back to NIfTI (used by the ``mriqc-nb simulate`` command).
"""

from __future__ import annotations

import errno
import os
import pathlib
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from scipy import ndimage

from .profiles import DEFAULT_PROFILE, Profile, get_profile

__all__ = [
    "ScanError",
    "ScanNotFoundError",
    "UnreadableScanError",
    "NotVolumeError",
    "EmptyVolumeError",
    "NonFiniteError",
    "SUPPORTED_SUFFIXES",
    "load_scan",
    "reorient",
    "resample_to_spacing",
    "head_mask",
    "crop_or_pad",
    "normalise_intensities",
    "conform",
    "save_scan",
]

#: File name endings :func:`load_scan` accepts (compared case-insensitively).
SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".mnc")
#: Name used in error messages for images that were not read from a file.
IN_MEMORY = "<in-memory image>"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class ScanError(ValueError):
    """A scan that cannot be used. ``str(e)`` is ``f"{path}: {problem}"``.

    Attributes
    ----------
    path : str or None
        The file (or ``"<in-memory image>"``), or None if unknown.
    problem : str
        What is wrong, in words.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = str(problem)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path is not None else self.problem

    def __reduce__(self):  # picklable, so worker processes can send it back
        return (type(self), (self.path, self.problem))


class ScanNotFoundError(ScanError, FileNotFoundError):
    """The file does not exist (also a :class:`FileNotFoundError`)."""

    def __init__(self, path, problem="file not found"):
        super().__init__(path, problem)
        self.errno, self.strerror, self.filename = errno.ENOENT, self.problem, self.path


class UnreadableScanError(ScanError):
    """Unknown extension, corrupt or truncated file, or nibabel cannot read it."""


class NotVolumeError(ScanError):
    """Not a 3-D volume: a 2-D image or single slice, or 4-D with several volumes."""


class EmptyVolumeError(ScanError):
    """All voxels are zero, or all equal."""


class NonFiniteError(ScanError):
    """Some voxels are NaN or infinite."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _minc_spatial_first(img, data_shape):
    """Axis order that puts a MINC image's spatial axes first (MINC stores time first)."""
    names = getattr(getattr(img.dataobj, "minc_file", None), "_dim_names", None)
    if names is not None and len(names) == len(data_shape):
        spatial = [i for i, n in enumerate(names) if str(n).endswith("space")]
    else:  # MINC convention: non-spatial dimensions (time, vector) are the slowest, i.e. first
        spatial = list(range(len(data_shape) - 3, len(data_shape)))
    return spatial + [i for i in range(len(data_shape)) if i not in spatial]


def load_scan(source: Any) -> nib.Nifti1Image:
    """Read and validate one scan; return it as a float32 3-D NIfTI image.

    Parameters
    ----------
    source : str, os.PathLike or nibabel spatial image
        A NIfTI-1/2 (``.nii``, ``.nii.gz``) or MINC1/MINC2 (``.mnc``) file, or an image
        object (any nibabel ``SpatialImage``, e.g. ``Nifti1Image``, ``Minc2Image``).

    Returns
    -------
    nibabel.Nifti1Image
        float32 data of shape (X, Y, Z), scaling (slope/intercept) applied, with the source's
        voxel-to-world affine (mm). A 4-D image holding a single volume is squeezed to 3-D;
        MINC's leading time axis is moved out of the way first. The data are fully read here,
        so a truncated file fails now, not later.

    Raises
    ------
    ScanNotFoundError
        The path does not exist.
    UnreadableScanError
        Unsupported extension, a directory, a corrupt or truncated file, an affine that is not
        invertible, or anything else nibabel cannot read.
    NotVolumeError
        2-D image, a single slice (an axis of length 1), or several volumes (4-D and up).
    NonFiniteError
        NaN or infinite voxels (the message counts them).
    EmptyVolumeError
        All voxels equal (all zero, or constant).

    Every message starts with the file name (``"<in-memory image>"`` for objects not read
    from a file).
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise ScanNotFoundError(name)
        if os.path.isdir(name):
            raise UnreadableScanError(name, "is a directory, not a scan file")
        if not name.lower().endswith(SUPPORTED_SUFFIXES):
            raise UnreadableScanError(
                name, f"unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
        try:
            img = nib.load(name)
        except MemoryError:
            raise
        except Exception as exc:
            raise UnreadableScanError(name, f"nibabel cannot read it ({type(exc).__name__}: "
                                      f"{exc})") from exc
    elif hasattr(source, "dataobj") and hasattr(source, "affine"):
        img = source
        name = img.get_filename() if hasattr(img, "get_filename") else None
        name = name or IN_MEMORY
    elif isinstance(source, np.ndarray):
        raise TypeError("load_scan needs a file or a nibabel image, not a bare array (its voxel "
                        "size and orientation are unknown): wrap it as "
                        "nibabel.Nifti1Image(array, affine)")
    else:
        raise TypeError(f"cannot load a scan from {type(source).__name__}")

    # Shape first: a 4-D series is rejected before its data are read.
    shape = tuple(int(n) for n in img.shape)
    axes = (_minc_spatial_first(img, shape) if isinstance(img, nib.minc1.Minc1Image)
            else list(range(len(shape))))
    if len(shape) < 3:
        raise NotVolumeError(name, f"{len(shape)}-D image of shape {shape}; a 3-D volume is "
                             "needed")
    spatial, extra = [shape[a] for a in axes[:3]], [shape[a] for a in axes[3:]]
    if int(np.prod(extra)) > 1:
        raise NotVolumeError(name, f"{len(shape)}-D image of shape {shape} holds "
                             f"{int(np.prod(extra))} volumes; one 3-D volume is needed")
    if min(spatial) < 2:
        raise NotVolumeError(name, f"a single slice (shape {shape}); a 3-D volume is needed")

    affine = img.affine if img.affine is not None else img.header.get_best_affine()
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or \
            abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise UnreadableScanError(name, "voxel-to-world affine is missing or not invertible")

    try:
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except MemoryError:
        raise
    except Exception as exc:
        raise UnreadableScanError(name, f"data cannot be read, file corrupt or truncated? "
                                  f"({type(exc).__name__}: {exc})") from exc
    data = np.transpose(data, axes).reshape(spatial)

    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum()) - n_nan
        raise NonFiniteError(name, f"{n_nan + n_inf} of {data.size} voxels are not finite "
                             f"({n_nan} NaN, {n_inf} infinite)")
    lo, hi = float(data.min()), float(data.max())
    if hi - lo <= 1e-6 * max(abs(lo), abs(hi)):
        what = "all zero" if hi == lo == 0 else f"constant (every voxel = {lo:g})"
        raise EmptyVolumeError(name, f"empty volume: {what}")
    return nib.Nifti1Image(data, affine)


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


def resample_to_spacing(img: nib.Nifti1Image, spacing_mm, order: int = 1) -> nib.Nifti1Image:
    """Resample every axis to the voxel size ``spacing_mm``, keeping millimetres as they are.

    Each axis is scaled by its own ratio (input voxel size / target voxel size), so shapes
    keep their physical aspect ratio. The output grid covers the input field of view (voxel
    edges aligned, the last voxel may overhang by less than one voxel). Where an axis is
    downsampled, the volume is first smoothed with a Gaussian of standard deviation
    ``sqrt(r**2 - 1) / sqrt(12)`` input voxels (``r`` = target / input voxel size): MRI voxels
    are area samples, and this adds exactly the variance that turns a box of the input width
    into one of the target width. Upsampled axes are not smoothed.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        3-D image (float32 data, as from :func:`load_scan`).
    spacing_mm : sequence of 3 float
        Target voxel size along the image's axes, in millimetres.
    order : int
        Spline order of the interpolation (0 nearest, 1 linear, 3 cubic).

    Returns
    -------
    nibabel.Nifti1Image
        float32 image with voxel size ``spacing_mm`` and the matching affine.
    """
    zooms = nib.affines.voxel_sizes(img.affine)
    ratio = np.asarray(spacing_mm, dtype=np.float64) / zooms   # target voxel in input voxels
    data = np.asanyarray(img.dataobj).astype(np.float32, copy=False)
    if np.allclose(ratio, 1.0, rtol=0, atol=1e-6):
        return img
    sigma = np.sqrt(np.clip(ratio**2 - 1.0, 0.0, None) / 12.0)
    if np.any(sigma > 0):
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    shape = np.maximum(1, np.ceil(np.asarray(data.shape) / ratio - 1e-3)).astype(int)
    offset = (ratio - 1.0) / 2.0        # output voxel j sits at input voxel ratio*j + offset
    out = ndimage.affine_transform(data, ratio, offset=offset, output_shape=tuple(shape),
                                   order=order, mode="nearest", prefilter=order > 1)
    step = np.diag(np.r_[ratio, 1.0])
    step[:3, 3] = offset
    return nib.Nifti1Image(out.astype(np.float32, copy=False), img.affine @ step)


# --------------------------------------------------------------------------------------------
# Head mask, crop/pad, normalisation
# --------------------------------------------------------------------------------------------
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
    return ndimage.binary_fill_holes(mask)


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


# --------------------------------------------------------------------------------------------
# The one preprocessing function
# --------------------------------------------------------------------------------------------
def conform(source: Any, grid=None, spacing_mm=None, *, normalise: bool = True,
            order: int = 1, return_image: bool = False,
            profile: str | Profile | None = None):
    """Load a scan and bring it to the network's input grid: RAS+, fixed mm spacing, head-
    centred crop/pad, normalised intensities.

    Parameters
    ----------
    source : str, os.PathLike or nibabel spatial image
        NIfTI or MINC file, or image object (see :func:`load_scan`).
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

    img = resample_to_spacing(reorient(load_scan(source), "RAS"), spacing_mm, order=order)
    data = np.asanyarray(img.dataobj)
    mask = head_mask(data)
    start = _window_start(mask, grid)
    out = crop_or_pad(data, grid, start)
    if normalise:
        out = normalise_intensities(out, crop_or_pad(mask, grid, start, fill=False))
    out = out.astype(np.float32, copy=False)
    if not return_image:
        return out
    shift = np.eye(4)
    shift[:3, 3] = start
    return nib.Nifti1Image(out, img.affine @ shift)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def save_scan(volume_or_img, path, affine=None) -> pathlib.Path:
    """Write a volume as float32 NIfTI.

    Parameters
    ----------
    volume_or_img : np.ndarray of shape (X, Y, Z) or (X, Y, Z, T), or nibabel image
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``. nibabel cannot write MINC, so a ``.mnc`` path is written as
        NIfTI with the suffix replaced by ``.nii.gz``; any other suffix gets ``.nii.gz``
        appended. Parent folders are created.
    affine : np.ndarray of shape (4, 4), optional
        Voxel-to-world affine (mm). Default: the image's own, or identity (1 mm voxels,
        RAS+) for a bare array.

    Returns
    -------
    pathlib.Path
        The file actually written.
    """
    if hasattr(volume_or_img, "dataobj"):
        data = volume_or_img.get_fdata(dtype=np.float32)
        affine = volume_or_img.affine if affine is None else affine
    else:
        data = np.asarray(volume_or_img, dtype=np.float32)
    if data.ndim not in (3, 4):
        raise ValueError(f"save_scan writes 3-D or 4-D volumes, got shape {data.shape}")
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    path = pathlib.Path(path)
    name = path.name.lower()
    if name.endswith(".mnc"):
        path = path.with_name(path.name[:-4] + ".nii.gz")
    elif not name.endswith((".nii", ".nii.gz")):
        path = path.with_name(path.name + ".nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data.astype(np.float32, copy=False), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    return path
