"""Read scans (NIfTI, Analyze, MINC) and write NIfTI; refuse implausible headers before reading data."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import nibabel as nib
import numpy as np

from .errors import (IN_MEMORY, EmptyVolumeError, FieldOfViewError, GridSizeError,
                     InvalidHeaderError, NonFiniteError, NotVolumeError, ScanNotFoundError,
                     UnreadableScanError, VoxelSizeError)

#: File name endings :func:`load_scan` accepts (compared case-insensitively): NIfTI-1/2,
#: Analyze 7.5 or NIfTI pairs (``.img`` data + ``.hdr`` header; either name opens the pair),
#: MINC1/MINC2.
SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".img", ".hdr", ".mnc")

# Limits of a plausible head scan, applied by :func:`check_header` (header only, before any
# voxel is read) and, for :data:`MAX_VOXELS`, by ``resample_to_spacing`` before it allocates.
#: Fewest voxels along any spatial axis. A head needs at least this many slices even at the
#: thickest clinical slices; a 5 x 5 x 5 grid is noise or a localiser, not a head.
MIN_AXIS_VOXELS = 12
#: Most voxels in one 3-D grid: 2**28 (268 million, 1 GiB as float32; conforming needs a few
#: times that). A 0.4 mm isotropic 7 T head (600 x 600 x 450) holds 162 million.
MAX_VOXELS = 2**28
#: Smallest and largest voxel size along any axis, in millimetres: 0.1 mm is beyond the finest
#: in-vivo head MRI (about 0.2 mm at 7 T); 12 mm is above the thickest clinical slices (about
#: 10 mm including the gap).
MIN_VOXEL_MM, MAX_VOXEL_MM = 0.1, 12.0
#: Smallest and largest field of view (voxels x voxel size) along any axis, in millimetres. A
#: head is about 140 x 180 x 200 mm (with the neck); 80 mm still holds a head cut by a small
#: coverage, and no head coil images more than 500 mm.
MIN_FOV_MM, MAX_FOV_MM = 80.0, 500.0


def _minc_spatial_first(img, data_shape):
    """Axis order that puts a MINC image's spatial axes first (MINC stores time first)."""
    names = getattr(getattr(img.dataobj, "minc_file", None), "_dim_names", None)
    if names is not None and len(names) == len(data_shape):
        spatial = [i for i, n in enumerate(names) if str(n).endswith("space")]
    else:  # MINC convention: non-spatial dimensions (time, vector) are the slowest, i.e. first
        spatial = list(range(len(data_shape) - 3, len(data_shape)))
    return spatial + [i for i in range(len(data_shape)) if i not in spatial]


def _name_of(source: Any) -> str:
    """The file name of a path or image, for messages (``"<in-memory image>"`` if none)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = source.get_filename() if hasattr(source, "get_filename") else None
    return name or IN_MEMORY


def _open(source: Any):
    """The (lazily loaded: header only) nibabel image of ``source`` and the name for messages."""
    if isinstance(source, (str, os.PathLike)):
        name = _name_of(source)
        if not os.path.exists(name):
            raise ScanNotFoundError(name)
        if os.path.isdir(name):
            raise UnreadableScanError(name, "is a directory, not a scan file")
        if not name.lower().endswith(SUPPORTED_SUFFIXES):
            raise UnreadableScanError(
                name, f"unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
        try:
            return nib.load(name), name
        except MemoryError:
            raise
        except Exception as exc:
            raise UnreadableScanError(name, f"nibabel cannot read it ({type(exc).__name__}: "
                                      f"{exc})") from exc
    if hasattr(source, "dataobj") and hasattr(source, "affine"):
        return source, _name_of(source)
    if isinstance(source, np.ndarray):
        raise TypeError("load_scan needs a file or a nibabel image, not a bare array (its voxel "
                        "size and orientation are unknown): wrap it as "
                        "nibabel.Nifti1Image(array, affine)")
    raise TypeError(f"cannot load a scan from {type(source).__name__}")


def _spatial_axes(img, name: str) -> tuple[list[int], list[int]]:
    """(axis order putting the 3 spatial axes first, the spatial shape); header only.

    Raises NotVolumeError for a 2-D image, a single slice, or several volumes.
    """
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
    return axes, spatial


def _affine(img, name: str) -> np.ndarray:
    """The voxel-to-world affine (mm), checked to be finite and invertible."""
    affine = img.affine if img.affine is not None else img.header.get_best_affine()
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or \
            abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise UnreadableScanError(name, "voxel-to-world affine is missing or not invertible")
    return affine


def _stored_pixdim(img) -> np.ndarray | None:
    """``pixdim[1:4]`` as stored on disk (nibabel fixes zero and negative values on load), or
    None for formats without ``pixdim`` (MINC)."""
    header = img.header
    if "pixdim" not in getattr(header, "keys", lambda: ())():
        return None
    file_map = getattr(img, "file_map", {})
    holder = file_map.get("header", file_map.get("image"))  # a .nii has the one holder
    fname = getattr(holder, "filename", None)
    if fname is None or not os.path.isfile(fname):
        return np.asarray(header["pixdim"][1:4], dtype=np.float64)
    with nib.openers.ImageOpener(fname) as fh:  # reads the 348 (NIfTI-2: 540) header bytes
        raw = type(header).from_fileobj(fh, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=np.float64)


def check_header(source: Any):
    """Refuse a scan whose header cannot describe a head, reading the header only.

    Nothing of the voxel data is read or allocated, so a 100-byte file claiming 1200^3 voxels
    fails in milliseconds. Screening calls it before :func:`mriqc_nb.scans.conform`; the
    returned image is the lazily loaded one, so ``conform(check_header(path))`` reads the file
    once.

    Parameters
    ----------
    source : str, os.PathLike or nibabel spatial image
        As for :func:`load_scan`.

    Returns
    -------
    nibabel spatial image
        The image, its data not yet read.

    Raises
    ------
    ScanNotFoundError, UnreadableScanError, NotVolumeError
        As :func:`load_scan` (missing, unsupported, unreadable header, not a 3-D volume,
        non-invertible affine).
    InvalidHeaderError
        A stored ``pixdim[1:4]`` (voxel size) that is zero, negative or not a number.
    GridSizeError
        Fewer than :data:`MIN_AXIS_VOXELS` voxels along an axis, or more than
        :data:`MAX_VOXELS` in all.
    VoxelSizeError
        A voxel size (from the affine) outside [:data:`MIN_VOXEL_MM`, :data:`MAX_VOXEL_MM`].
    FieldOfViewError
        A field of view outside [:data:`MIN_FOV_MM`, :data:`MAX_FOV_MM`] along an axis.

    All are :class:`ScanError` subclasses whose message starts with the file name and gives
    the offending numbers.
    """
    img, name = _open(source)
    _, spatial = _spatial_axes(img, name)
    pixdim = _stored_pixdim(img)
    if pixdim is not None and not np.all(pixdim > 0):  # False for NaN too
        raise InvalidHeaderError(name, f"voxel size in the header (pixdim) is "
                                 f"{_fmt(pixdim)}: zero, negative or NaN")
    affine = _affine(img, name)
    if min(spatial) < MIN_AXIS_VOXELS:
        raise GridSizeError(name, f"grid {_fmt(spatial)} has fewer than {MIN_AXIS_VOXELS} "
                            "voxels along an axis: too small for a head")
    n_vox = int(np.prod(np.asarray(spatial, dtype=np.int64)))
    if n_vox > MAX_VOXELS:
        raise GridSizeError(name, f"grid {_fmt(spatial)} has {n_vox:,} voxels, more than the "
                            f"{MAX_VOXELS:,} of any head scan: refused before reading it")
    zooms = nib.affines.voxel_sizes(affine)
    if zooms.min() < MIN_VOXEL_MM or zooms.max() > MAX_VOXEL_MM:
        raise VoxelSizeError(name, f"voxel size {_fmt(zooms)} mm is outside the "
                             f"{MIN_VOXEL_MM:g}-{MAX_VOXEL_MM:g} mm of head MRI")
    fov = zooms * np.asarray(spatial)
    if fov.min() < MIN_FOV_MM or fov.max() > MAX_FOV_MM:
        raise FieldOfViewError(name, f"field of view {_fmt(fov)} mm (grid {_fmt(spatial)} x "
                               f"voxel {_fmt(zooms)} mm) is outside the {MIN_FOV_MM:g}-"
                               f"{MAX_FOV_MM:g} mm of a head")
    return img


def _fmt(values) -> str:
    """``"256 x 256 x 1.5"``: numbers joined with x, at most 4 significant digits."""
    return " x ".join(f"{float(v):.4g}" for v in values)


def load_scan(source: Any) -> nib.Nifti1Image:
    """Read and validate one scan; return it as a float32 3-D NIfTI image.

    Parameters
    ----------
    source : str, os.PathLike or nibabel spatial image
        A NIfTI-1/2 (``.nii``, ``.nii.gz``), Analyze/NIfTI pair (``.img`` + ``.hdr``) or
        MINC1/MINC2 (``.mnc``) file, or an image
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
    img, name = _open(source)
    # Shape first: a 4-D series is rejected before its data are read.
    axes, spatial = _spatial_axes(img, name)
    affine = _affine(img, name)

    try:
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except MemoryError:
        raise
    except Exception as exc:
        raise UnreadableScanError(name, f"data cannot be read, file corrupt or truncated? "
                                  f"({type(exc).__name__}: {exc})") from exc
    data = np.transpose(data, axes).reshape(spatial)

    lo, hi = float(data.min()), float(data.max())  # NaN or infinite if any voxel is
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = np.isfinite(data)
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum()) - n_nan
        raise NonFiniteError(name, f"{n_nan + n_inf} of {data.size} voxels are not finite "
                             f"({n_nan} NaN, {n_inf} infinite)")
    if hi - lo <= 1e-6 * max(abs(lo), abs(hi)):
        what = "all zero" if hi == lo == 0 else f"constant (every voxel = {lo:g})"
        raise EmptyVolumeError(name, f"empty volume: {what}")
    return nib.Nifti1Image(data, affine)


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
