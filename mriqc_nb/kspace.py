"""Centred Fourier transforms between an image and its k-space.

An MR scanner measures the Fourier transform of the object (k-space) and reconstructs the
image by an inverse transform. These two functions are that pair, with the conventions that
make k-space pictures read naturally:

- *centred*: the k-space centre (k = 0, the mean signal) sits at index ``n // 2`` of every
  transformed axis, and the image origin sits at the voxel ``n // 2`` as well, so that
  ``ifftshift -> fftn -> fftshift`` maps a volume centred in its array to a spectrum centred
  in its array. Index ``i`` holds the spatial frequency ``(i - n // 2) / FOV`` cycles per mm.
- *unitary*: ``norm="ortho"``, so energy is the same in both domains (Parseval) and the pair
  round-trips to float precision.

Every k-space artifact in :mod:`mriqc_nb.artifacts` is ``from_kspace(edit(to_kspace(x)))``.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["to_kspace", "from_kspace"]


def to_kspace(volume, axes=None) -> np.ndarray:
    """Centred, unitary Fourier transform of an image.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz) (any number of dimensions)
        Real or complex image.
    axes : sequence of int, optional
        Axes to transform (default: all), e.g. ``(0, 1)`` for the in-plane k-space of each
        slice.

    Returns
    -------
    numpy.ndarray of complex, same shape
        k-space, zero frequency at index ``n // 2`` of each transformed axis. Complex128 for
        float64 input, complex64 for float32 input.
    """
    x = np.asarray(volume)
    shifted = scipy.fft.ifftshift(x, axes=axes)
    return scipy.fft.fftshift(scipy.fft.fftn(shifted, axes=axes, norm="ortho"), axes=axes)


def from_kspace(kspace, axes=None, magnitude: bool = True) -> np.ndarray:
    """Inverse of :func:`to_kspace`: reconstruct the image from centred k-space.

    Parameters
    ----------
    kspace : array_like of complex, shape (nx, ny, nz)
        Centred k-space (zero frequency at index ``n // 2``).
    axes : sequence of int, optional
        Axes to transform (default: all).
    magnitude : bool
        If True (default), return the magnitude image ``abs(image)`` as float32, as a scanner
        does; if False return the complex image unchanged.

    Returns
    -------
    numpy.ndarray, same shape
        float32 magnitude image, or the complex image when ``magnitude=False``.
    """
    k = np.asarray(kspace)
    image = scipy.fft.fftshift(
        scipy.fft.ifftn(scipy.fft.ifftshift(k, axes=axes), axes=axes, norm="ortho"), axes=axes
    )
    return np.abs(image).astype(np.float32) if magnitude else image
