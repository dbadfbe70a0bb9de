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
When the edit is a real, even filter along a few axes (ghosting, ringing),
:func:`filter_kspace` computes the same image with real transforms along those axes only.
The transforms use every core (scipy.fft ``workers``).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft

__all__ = ["to_kspace", "from_kspace", "filter_kspace"]

#: Threads of every transform (scipy.fft ``workers``).
FFT_WORKERS = os.cpu_count() or 1


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
    return scipy.fft.fftshift(scipy.fft.fftn(shifted, axes=axes, norm="ortho", workers=FFT_WORKERS), axes=axes)


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
        scipy.fft.ifftn(scipy.fft.ifftshift(k, axes=axes), axes=axes, norm="ortho", workers=FFT_WORKERS), axes=axes
    )
    return np.abs(image).astype(np.float32) if magnitude else image


def filter_kspace(volume, weights) -> np.ndarray:
    """Multiply the k-space of a real image by real, even weights along some axes.

    Equal to ``from_kspace(to_kspace(volume) * w0 * w1 ..., magnitude=False).real`` where each
    ``w`` broadcasts along its axis, but only the weighted axes are transformed, with real
    FFTs: a filter commutes with the centring shifts, and an even, real filter keeps a real
    image real.

    Parameters
    ----------
    volume : array_like, real, shape (nx, ny, nz)
    weights : dict of int to array_like
        ``{axis: w}``: ``w`` has one weight per centred k-space index of that axis (zero
        frequency at ``n // 2``) and is even (``w[n//2 + f] == w[n//2 - f]``).

    Returns
    -------
    numpy.ndarray, real, same shape (float32 for float32 input)
        The filtered image (not its magnitude: it can be negative).
    """
    x = np.asarray(volume)
    axes = sorted(weights)
    if not axes:
        return x.copy()
    k = scipy.fft.rfftn(x, axes=axes, workers=FFT_WORKERS)
    for axis in axes:
        n = x.shape[axis]
        w = np.asarray(weights[axis], dtype=x.real.dtype if np.issubdtype(x.dtype, np.floating) else float)
        half = np.arange(1, (n - 1) // 2 + 1)
        if w.shape != (n,) or not np.array_equal(w[n // 2 + half], w[n // 2 - half]):
            raise ValueError(f"weights of axis {axis} must be even, with one weight per k-space index ({n})")
        w = scipy.fft.ifftshift(w)  # standard FFT order: frequency f at index f mod n
        if axis == axes[-1]:
            w = w[: n // 2 + 1]  # the halved axis of the real transform
        shape = [1] * x.ndim
        shape[axis] = -1
        k *= w.reshape(shape)
    return scipy.fft.irfftn(k, s=[x.shape[a] for a in axes], axes=axes, workers=FFT_WORKERS)
