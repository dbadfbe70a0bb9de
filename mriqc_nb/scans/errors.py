"""Errors of :mod:`mriqc_nb.scans`: one :class:`ScanError` subclass per way a scan is unusable."""

from __future__ import annotations

import errno
import os

#: Name used in error messages for images that were not read from a file.
IN_MEMORY = "<in-memory image>"


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



class InvalidHeaderError(ScanError):
    """The header's voxel size (``pixdim``) is zero, negative or not a number.

    nibabel silently turns zero into 1 and negative into its absolute value when it loads such
    a file; the scan's true geometry is unknown, so it is refused instead.
    """


class ImplausibleGeometryError(ScanError):
    """The header describes a grid that cannot be a head scan (see the subclasses)."""


class GridSizeError(ImplausibleGeometryError):
    """Too few voxels along an axis (a tiny grid), or too many voxels in all (a memory bomb)."""


class VoxelSizeError(ImplausibleGeometryError):
    """A voxel size outside the range of head MRI (e.g. 50 mm, or 0.01 mm)."""


class FieldOfViewError(ImplausibleGeometryError):
    """The field of view (voxels x voxel size, in mm) is too small or too large for a head."""
