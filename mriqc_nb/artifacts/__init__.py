"""Physically based MRI artifact simulators.

The raters of Pizarro et al. (2023) sorted artifacts into three classes; the paper merges them
into one "artifact" label, and this module simulates each class from its physical cause:

``intensity``
    The signal is right in place but wrong in value: thermal noise (:func:`noise`), a smooth
    receive-coil inhomogeneity (:func:`bias`) and the herringbone of a k-space spike
    (:func:`spike`).
``motion_ringing``
    The image is smeared, ghosted or rings: rigid head motion between k-space lines
    (:func:`motion`), periodic ghosts (:func:`ghosting`), Gibbs ringing from a truncated
    k-space (:func:`ringing`) and the loss of resolution of a blurred or thick-slice scan
    (:func:`blur`).
``coverage``
    The field of view (FOV) is wrong: the head is cut by its edge (:func:`coverage`) or is
    larger than it and folds back in (:func:`wraparound`).

The k-space view
----------------
A scanner measures k-space, the Fourier transform of the object, one phase-encoding (PE) line
after another, and reconstructs the magnitude of the inverse transform. Many artifacts are a
simple edit of k-space: motion mixes lines measured in different head poses, ghosting
modulates lines periodically, a spike adds one bad sample, ringing discards the outer lines,
wraparound samples the lines too coarsely. Each of those simulators is literally
``from_kspace(edit(to_kspace(volume)))`` (:mod:`mriqc_nb.kspace`), which is why they are
easy to test: the edit can be read back from the k-space of the output.

Conventions
-----------
Volumes are 3-D magnitude images (>= 0, any scale) in RAS+ voxel order: axis 0 left-right,
axis 1 posterior-anterior (the default PE axis of an axial scan), axis 2 inferior-superior (the
slice axis). ``spacing_mm`` gives the voxel size along each axis in mm. Every simulator
returns a new float32 array of the same shape, finite and >= 0; the input is never modified.

Drawing parameters is separate from applying them::

    params = sample_params("motion", "prominent", seed=3)   # a JSON-serialisable dict
    corrupted = apply(volume, params, spacing_mm=(4, 4, 6))  # deterministic
    corrupted, params = corrupt(volume, "motion", "prominent", seed=3)  # both at once

so every simulated scan can be regenerated from the row of the scan table that stores its
parameters. The per-kind functions (:func:`motion`, :func:`ghosting`, ...) take the same
parameters as explicit keywords in physical units (degrees, millimetres, fractions of k-space,
of the head or of the signal).

Severities
----------
"prominent" is calibrated to be obvious to a person looking at the middle slices, "subtle" to
be hard to see (checked by eye on the MNI152 template at 2 and 4 mm). The samplers draw
uniformly from these ranges (signal level: the 99th percentile, :func:`signal_level`; head
extent: :func:`head_extent`; PE axis: anterior-posterior 3 times in 4, else left-right):

==========  ==========================================  ====================================
kind        subtle                                      prominent
==========  ==========================================  ====================================
motion      1 event: 0.5-1.5 deg and mm at t 0.3-0.7,   1-2 events at t 0.35-0.65, each
            or 2-4 deg and mm late (t 0.88-0.97)        3-8 deg and 3-8 mm
ghosting    intensity 0.04-0.1, n_ghosts 2-4            intensity 0.35-0.7, n_ghosts 2-4
spike       stripes 0.015-0.03 x signal level           stripes 0.1-0.25 x signal level
noise       sigma 0.02-0.04 x signal level              sigma 0.08-0.15 x signal level
bias        std of log-field 0.03-0.06                  std of log-field 0.15-0.3
blur        FWHM 0.75-1.25 voxels (in- or through-      FWHM 2-3 voxels
            plane)
ringing     keep 0.6-0.75 of k-space (PE or in-plane)   keep 0.25-0.4 of k-space
wraparound  FOV 0.9-0.95 x head extent                  FOV 0.7-0.85 x head extent
coverage    cut 0.04-0.08 x head extent (top 60%,       cut 0.15-0.3 x head extent
            bottom 20%, front 20%)
==========  ==========================================  ====================================
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mriqc_nb.kspace import from_kspace, to_kspace

__all__ = [
    "SEVERITIES",
    "ARTIFACT_CLASSES",
    "Artifact",
    "ARTIFACTS",
    "sample_params",
    "apply",
    "corrupt",
    "class_table",
    "motion",
    "ghosting",
    "spike",
    "noise",
    "bias",
    "blur",
    "ringing",
    "wraparound",
    "coverage",
    "bias_field",
    "signal_level",
    "head_extent",
]

SEVERITIES = ("subtle", "prominent")
ARTIFACT_CLASSES = ("intensity", "motion_ringing", "coverage")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------
def _fail(kind: str, problem: str):
    raise ValueError(f"artifact {kind!r}: {problem}")


def _volume(volume, kind: str) -> np.ndarray:
    """The input as float64 (a copy unless it already is; never written to), 3-D and finite."""
    x = np.asarray(volume, dtype=np.float64)
    if x.ndim != 3:
        _fail(kind, f"expected a 3-D volume, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        _fail(kind, "the volume contains NaN or infinite values")
    return x


def _finish(x: np.ndarray) -> np.ndarray:
    """float32, >= 0: every simulator returns a magnitude image."""
    return np.maximum(x, 0.0).astype(np.float32)


def _axis(axis, kind: str, name: str = "pe_axis") -> int:
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        _fail(kind, f"{name} must be 0, 1 or 2, got {axis!r}")
    return int(axis)


def _along(values: np.ndarray, axis: int) -> np.ndarray:
    """Reshape a 1-D array so that it broadcasts along ``axis`` of a 3-D array."""
    shape = [1, 1, 1]
    shape[axis] = -1
    return values.reshape(shape)


def _frequencies(n: int) -> np.ndarray:
    """Integer spatial frequencies of the centred k-space indices 0..n-1 (zero at n // 2)."""
    return np.arange(n) - n // 2


def _spacing(spacing_mm, kind: str) -> np.ndarray:
    spacing = np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        _fail(kind, f"spacing_mm must be 3 positive voxel sizes in mm, got {spacing_mm!r}")
    return spacing


def signal_level(volume) -> float:
    """Robust signal level of a magnitude image: the 99th percentile of its voxels.

    It sits in the brightest tissue and ignores a few hot voxels; noise and thresholds are
    expressed as fractions of it. Falls back to the maximum when fewer than 1% of the voxels
    are non-zero, and is 0 only for an all-zero volume.
    """
    x = np.asarray(volume, dtype=np.float64)
    level = float(np.percentile(x, 99.0))
    return level if level > 0 else float(x.max(initial=0.0))


def head_extent(volume, axis: int, threshold: float = 0.15) -> tuple[int, int]:
    """First and last voxel index (inclusive) of the head along ``axis``.

    A voxel belongs to the head when both its value and its value after a Gaussian smoothing
    of 1 voxel exceed ``threshold`` x :func:`signal_level`: the smoothing keeps isolated noise
    voxels out, the raw value keeps the edge where it is. Deterministic. Meant for scans with
    a dark background (Rician noise up to about 5% of the signal level).

    Returns
    -------
    (first, last) : tuple of int
        The whole axis ``(0, n - 1)`` when nothing exceeds the threshold.
    """
    x = np.asarray(volume, dtype=np.float64)
    level = threshold * signal_level(x)
    mask = (x > level) & (ndimage.gaussian_filter(x, 1.0, mode="constant") > level)
    planes = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if planes.size == 0:
        return 0, x.shape[axis] - 1
    return int(planes[0]), int(planes[-1])


# --------------------------------------------------------------------------------------------
# The simulators (apply functions), one per physical cause
# --------------------------------------------------------------------------------------------
def _rotate_about_centre(x: np.ndarray, rotation_deg, spacing_mm) -> np.ndarray:
    """Rigid rotation (rotation vector in degrees, in mm space) about the volume centre."""
    rot = Rotation.from_rotvec(np.asarray(rotation_deg, dtype=float), degrees=True).as_matrix()
    scale = np.asarray(spacing_mm, dtype=float)
    # Output voxel o shows the object point R^T o (in mm about the centre).
    matrix = (rot.T * scale[None, :]) / scale[:, None]
    centre = (np.asarray(x.shape) - 1) / 2.0
    return ndimage.affine_transform(
        x, matrix, offset=centre - matrix @ centre, order=3, mode="constant", cval=0.0
    )


def _translation_phase(shape, translation_mm, spacing_mm) -> np.ndarray:
    """k-space phase ramp of a translation (exact, sub-voxel): exp(-2 pi i k . t)."""
    ramp = np.ones(shape, dtype=np.complex128)
    for axis, (n, t, s) in enumerate(zip(shape, translation_mm, spacing_mm)):
        if t:
            ramp = ramp * _along(np.exp(-2j * np.pi * _frequencies(n) * t / (n * s)), axis)
    return ramp


def _posed_kspace(x, original, event, spacing_mm) -> np.ndarray:
    """k-space of the head in the pose of ``event`` (``original`` is the k-space of ``x``)."""
    kspace = original
    if np.any(event["rotation_deg"]):
        kspace = to_kspace(_rotate_about_centre(x, event["rotation_deg"], spacing_mm))
    if np.any(event["translation_mm"]):
        kspace = kspace * _translation_phase(x.shape, event["translation_mm"], spacing_mm)
    return kspace


def _check_events(events, kind="motion") -> list[dict]:
    if not isinstance(events, (list, tuple)):
        _fail(kind, "events must be a list of {'time', 'rotation_deg', 'translation_mm'} dicts")
    checked = []
    for ev in events:
        if not isinstance(ev, Mapping) or set(ev) != {"time", "rotation_deg", "translation_mm"}:
            _fail(kind, f"each event needs exactly time, rotation_deg, translation_mm; got {ev!r}")
        if not 0.0 <= float(ev["time"]) <= 1.0:
            _fail(kind, f"event time must be in [0, 1], got {ev['time']}")
        if len(ev["rotation_deg"]) != 3 or len(ev["translation_mm"]) != 3:
            _fail(kind, "rotation_deg and translation_mm must have 3 components")
        checked.append(ev)
    return sorted(checked, key=lambda ev: float(ev["time"]))


def motion(volume, *, events, pe_axis: int = 1, spacing_mm=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Rigid head motion during the acquisition.

    The k-space lines along ``pe_axis`` are acquired sequentially, from -k_max to +k_max,
    line ``i`` of ``n`` at time ``(i + 0.5) / n``. At each event the head jumps to a new pose
    and keeps it until the next event; every line acquired at or after an event's time comes
    from the k-space of the head in that pose. Mixing inconsistent lines gives ghosts and
    smearing along the PE axis: an event near time 0.5 corrupts the k-space centre (the image
    contrast) and is severe; one near 0 or 1 touches only the periphery (fine edges).

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
        Magnitude image.
    events : list of dict
        Each ``{"time": t, "rotation_deg": [r0, r1, r2], "translation_mm": [t0, t1, t2]}``:
        ``t`` in [0, 1] is the fraction of the acquisition elapsed; the pose is given relative
        to the initial one, as a rotation vector in degrees (axis x angle, about the volume
        centre, in mm space) followed by a translation in mm along the RAS axes.
    pe_axis : int
        Phase-encoding axis (0, 1 or 2); default 1, anterior-posterior.
    spacing_mm : tuple of float
        Voxel size in mm.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "motion")
    pe_axis = _axis(pe_axis, "motion")
    spacing_mm = _spacing(spacing_mm, "motion")
    events = _check_events(events)
    original = to_kspace(x)
    kspace = original.copy()
    line_time = (np.arange(x.shape[pe_axis]) + 0.5) / x.shape[pe_axis]
    for ev in events:
        lines = line_time >= float(ev["time"])
        if lines.any():
            index = [slice(None)] * 3
            index[pe_axis] = lines
            kspace[tuple(index)] = _posed_kspace(x, original, ev, spacing_mm)[tuple(index)]
    return _finish(from_kspace(kspace))


def ghosting(volume, *, n_ghosts: int, intensity: float, pe_axis: int = 1) -> np.ndarray:
    """Periodic ghosts along the phase-encoding axis.

    A signal that changes periodically from line to line (pulsatile flow, respiration)
    modulates k-space: every ``n_ghosts``-th PE line (including the centre line) is scaled by
    ``1 - intensity``. The modulation is a comb in k-space, so the image gets copies of the
    head shifted by multiples of FOV / ``n_ghosts`` along the PE axis (``n_ghosts - 1`` ghosts,
    each of relative amplitude ``intensity / n_ghosts``, wrapping around the FOV), and the head
    itself loses the same fraction.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    n_ghosts : int
        Period of the modulation in k-space lines (>= 2).
    intensity : float
        Fraction of signal lost on the modulated lines, in [0, 1].
    pe_axis : int
        Phase-encoding axis.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "ghosting")
    pe_axis = _axis(pe_axis, "ghosting")
    if isinstance(n_ghosts, bool) or int(n_ghosts) != n_ghosts or n_ghosts < 2:
        _fail("ghosting", f"n_ghosts must be an integer >= 2, got {n_ghosts!r}")
    if not 0.0 <= intensity <= 1.0:
        _fail("ghosting", f"intensity must be in [0, 1], got {intensity}")
    modulated = _frequencies(x.shape[pe_axis]) % int(n_ghosts) == 0
    weights = np.where(modulated, 1.0 - intensity, 1.0)
    return _finish(from_kspace(to_kspace(x) * _along(weights, pe_axis)))


def _k_index(fraction: float, n: int) -> int:
    """Array index of the k-space point at ``fraction`` of the half-width from the centre."""
    return int(np.clip(n // 2 + round(fraction * (n // 2)), 0, n - 1))


def spike(volume, *, spikes) -> np.ndarray:
    """Spike (herringbone) artifact: bad samples in k-space.

    An electrical discharge during readout corrupts single k-space samples. Each spike adds a
    real value to the sample at ``k_position``; its inverse transform is a plane wave, so the
    image is overlaid with stripes whose spatial frequency (cycles across the FOV, per axis)
    equals the spike's distance from the k-space centre in lines. The spike's value is
    ``amplitude * signal_level * sqrt(n_voxels)`` (unitary transform), so that the stripes'
    amplitude in the image is ``amplitude`` x :func:`signal_level` (the 99th percentile),
    whatever the size of the head in the FOV.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    spikes : list of dict
        Each ``{"k_position": [f0, f1, f2], "amplitude": a}``: ``f`` are fractions of the
        k-space half-width from the centre along each axis, in [-1, 1] (index
        ``n // 2 + round(f * (n // 2))``); ``a >= 0`` is the stripe amplitude as a fraction
        of the signal level.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "spike")
    if not isinstance(spikes, (list, tuple)):
        _fail("spike", "spikes must be a list of {'k_position', 'amplitude'} dicts")
    kspace = to_kspace(x)
    unit = signal_level(x) * math.sqrt(x.size)
    for s in spikes:
        if not isinstance(s, Mapping) or set(s) != {"k_position", "amplitude"}:
            _fail("spike", f"each spike needs exactly k_position and amplitude; got {s!r}")
        if len(s["k_position"]) != 3 or not all(-1 <= f <= 1 for f in s["k_position"]):
            _fail("spike", f"k_position must be 3 fractions in [-1, 1], got {s['k_position']}")
        if s["amplitude"] < 0:
            _fail("spike", f"amplitude must be >= 0, got {s['amplitude']}")
        index = tuple(_k_index(f, n) for f, n in zip(s["k_position"], x.shape))
        kspace[index] += s["amplitude"] * unit
    return _finish(from_kspace(kspace))


def noise(volume, *, sigma_fraction: float, noise_seed: int) -> np.ndarray:
    """Rician noise of a magnitude image.

    Thermal noise is Gaussian and independent in the real and imaginary channels; the
    magnitude ``sqrt((x + n1)^2 + n2^2)``, ``n1, n2 ~ N(0, sigma)``, is Rician: Rayleigh
    (mean ``sigma * sqrt(pi / 2)``) in the background, close to Gaussian in bright tissue.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    sigma_fraction : float
        Noise standard deviation as a fraction of :func:`signal_level` (the 99th percentile
        of the volume), >= 0. ``1 / sigma_fraction`` is roughly the SNR of bright tissue.
    noise_seed : int
        Seed of the noise draw, so that the same parameters give the same image.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "noise")
    if sigma_fraction < 0:
        _fail("noise", f"sigma_fraction must be >= 0, got {sigma_fraction}")
    sigma = sigma_fraction * signal_level(x)
    rng = np.random.default_rng(int(noise_seed))
    real = x + sigma * rng.standard_normal(x.shape)
    imag = sigma * rng.standard_normal(x.shape)
    return _finish(np.hypot(real, imag))


def _normalised_coordinates(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def bias_field(shape, terms) -> np.ndarray:
    """Smooth, strictly positive multiplicative field ``exp(f)``.

    ``f = sum(c * x**i * y**j * z**k for i, j, k, c in terms)`` is a polynomial of the
    normalised voxel coordinates ``x, y, z`` in [-1, 1] (first to last voxel).

    Parameters
    ----------
    shape : tuple of int
        Grid (nx, ny, nz).
    terms : list of [i, j, k, c]
        Monomial exponents (non-negative ints, ``i + j + k <= 3``) and coefficients.

    Returns
    -------
    numpy.ndarray, float64, shape ``shape``
    """
    coords = [_normalised_coordinates(n) for n in shape]
    log_field = np.zeros(tuple(shape))
    for term in terms:
        if len(term) != 4:
            _fail("bias", f"each term must be [i, j, k, coefficient], got {term!r}")
        *powers, c = term
        if any(int(p) != p or p < 0 for p in powers) or sum(powers) > 3:
            _fail("bias", f"exponents must be non-negative ints of total degree <= 3, got {term!r}")
        log_field = log_field + c * (
            _along(coords[0] ** powers[0], 0) * _along(coords[1] ** powers[1], 1)
            * _along(coords[2] ** powers[2], 2)
        )
    return np.exp(log_field)


def bias(volume, *, terms) -> np.ndarray:
    """Intensity inhomogeneity (bias field) of the receive coils.

    The coils' sensitivity varies smoothly across the head, so the image is multiplied by a
    slowly varying positive field, :func:`bias_field` (``exp`` of a polynomial of degree
    <= 3 of the normalised coordinates). k-space is blurred by the field's narrow spectrum.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    terms : list of [i, j, k, c]
        Exponents and coefficients of the log-field polynomial (see :func:`bias_field`).

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "bias")
    return _finish(x * bias_field(x.shape, terms))


def blur(volume, *, fwhm_mm, spacing_mm=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Loss of resolution: Gaussian blur with a full width at half maximum per axis.

    A thick slice, a low acquisition matrix or in-plane smearing spreads each point over a
    few millimetres; in k-space the high frequencies are attenuated by a Gaussian. The blur
    uses ``sigma = fwhm / (2 sqrt(2 ln 2)) / spacing`` voxels with mirrored edges, so the total
    signal is preserved.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    fwhm_mm : sequence of 3 float
        FWHM along each axis in mm (>= 0), e.g. ``[2, 2, 8]`` for a thick-slice look.
    spacing_mm : tuple of float
        Voxel size in mm.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "blur")
    fwhm = np.asarray(fwhm_mm, dtype=float)
    if fwhm.shape != (3,) or np.any(fwhm < 0):
        _fail("blur", f"fwhm_mm must be 3 non-negative values in mm, got {fwhm_mm!r}")
    sigma_voxels = fwhm / FWHM_PER_SIGMA / _spacing(spacing_mm, "blur")
    return _finish(ndimage.gaussian_filter(x, sigma_voxels, mode="reflect"))


def _central_band(n: int, keep_fraction: float) -> np.ndarray:
    """Boolean mask of the k-space lines with |k| <= floor(keep_fraction * n / 2)."""
    return np.abs(_frequencies(n)) <= math.floor(keep_fraction * n / 2)


def ringing(volume, *, keep_fraction: float, axes=(1,)) -> np.ndarray:
    """Gibbs ringing: k-space truncated with a hard edge.

    Too few lines are acquired along ``axes`` (a low matrix), and the missing outer k-space is
    zero (no apodising window): the lines with ``|k| <= floor(keep_fraction * n / 2)`` are kept
    exactly, the rest are zero. The sinc point-spread function rings next to sharp edges and
    lowers the resolution.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    keep_fraction : float
        Central fraction of k-space kept along each of ``axes``, in (0, 1]; 1 keeps all.
    axes : sequence of int
        Truncated axes, e.g. ``[1]`` (PE only) or ``[0, 1]`` (in-plane).

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "ringing")
    if not 0.0 < keep_fraction <= 1.0:
        _fail("ringing", f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if not isinstance(axes, (list, tuple)) or len(axes) == 0:
        _fail("ringing", f"axes must be a non-empty list of axes, got {axes!r}")
    kspace = to_kspace(x)
    for axis in sorted({_axis(a, "ringing", "axes") for a in axes}):
        kspace = kspace * _along(_central_band(x.shape[axis], keep_fraction), axis)
    return _finish(from_kspace(kspace))


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
    volume : array_like, shape (nx, ny, nz)
    fov_fraction : float
        Reduced FOV as a fraction of the head's extent along ``pe_axis``, in (0, 1]. With 1
        nothing folds (the FOV just fits the head); 0.8 folds 10% of the head in at each side.
    pe_axis : int
        Phase-encoding axis.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "wraparound")
    pe_axis = _axis(pe_axis, "wraparound")
    if not 0.0 < fov_fraction <= 1.0:
        _fail("wraparound", f"fov_fraction must be in (0, 1], got {fov_fraction}")
    first, last = head_extent(x, pe_axis)
    n = x.shape[pe_axis]
    m = max(1, int(round(fov_fraction * (last - first + 1))))
    start = int(np.clip(math.floor((first + last + 1) / 2 - m / 2), 0, n - m))
    xa = np.moveaxis(x, pe_axis, 0)
    folded = np.zeros((m,) + xa.shape[1:])
    for p in range(n):  # position p lands at (p - start) mod m of the reduced FOV
        folded[(p - start) % m] += xa[p]
    out = np.zeros_like(xa)
    out[start:start + m] = folded
    return _finish(np.moveaxis(out, 0, pe_axis))


def coverage(volume, *, cut_fraction: float, axis: int = 2, side: str = "+") -> np.ndarray:
    """Incomplete coverage: part of the head lies outside the field of view.

    The slab of the FOV was placed too low (or too far back, ...), so the head is cut at one
    edge: along ``axis``, the outermost ``round(cut_fraction * E)`` planes (at least one) of
    the head (``E`` its extent, :func:`head_extent`) and everything beyond them on that
    ``side`` are zero. The rest of the image is unchanged.

    Parameters
    ----------
    volume : array_like, shape (nx, ny, nz)
    cut_fraction : float
        Fraction of the head's extent along ``axis`` that is cut, in [0, 1).
    axis : int
        0 left-right, 1 posterior-anterior, 2 inferior-superior (default).
    side : {"+", "-"}
        The edge that is cut: "+" the high-index end (right, anterior, superior), "-" the low.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x = _volume(volume, "coverage")
    axis = _axis(axis, "coverage", "axis")
    if not 0.0 <= cut_fraction < 1.0:
        _fail("coverage", f"cut_fraction must be in [0, 1), got {cut_fraction}")
    if side not in ("+", "-"):
        _fail("coverage", f"side must be '+' or '-', got {side!r}")
    first, last = head_extent(x, axis)
    n_cut = int(round(cut_fraction * (last - first + 1)))
    n_cut = max(n_cut, 1) if cut_fraction > 0 else 0  # a cut is never empty
    out = np.moveaxis(x.copy(), axis, 0)
    if n_cut:
        if side == "+":
            out[last - n_cut + 1:] = 0.0
        else:
            out[:first + n_cut] = 0.0
    return _finish(np.moveaxis(out, 0, axis))


# --------------------------------------------------------------------------------------------
# Samplers: severity -> parameters (documented ranges; every number is a plain Python type)
# --------------------------------------------------------------------------------------------
def _u(rng, low, high, digits=4) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _unit_vector(rng) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _pe_axis(rng) -> int:
    """Phase encoding of an axial scan: anterior-posterior (3 in 4) or left-right."""
    return 1 if rng.random() < 0.75 else 0


def _event(rng, time, degrees, mm) -> dict:
    return {
        "time": round(float(time), 4),
        "rotation_deg": [round(float(v), 4) for v in _unit_vector(rng) * degrees],
        "translation_mm": [round(float(v), 4) for v in _unit_vector(rng) * mm],
    }


def _sample_motion(rng, severity, shape, spacing_mm) -> dict:
    """prominent: 1-2 events at t in [0.35, 0.65] (the k-space centre), each 3-8 deg and 3-8 mm.
    subtle: one event, either small (0.5-1.5 deg and 0.5-1.5 mm) at t in [0.3, 0.7], or
    moderate (2-4 deg and 2-4 mm) near the end of the scan (t in [0.88, 0.97], the k-space
    periphery)."""
    if severity == "prominent":
        times = sorted(rng.uniform(0.35, 0.65, size=int(rng.integers(1, 3))))
        events = [_event(rng, t, rng.uniform(3, 8), rng.uniform(3, 8)) for t in times]
    elif rng.random() < 0.5:
        events = [_event(rng, rng.uniform(0.3, 0.7), rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5))]
    else:
        events = [_event(rng, rng.uniform(0.88, 0.97), rng.uniform(2, 4), rng.uniform(2, 4))]
    return {"events": events, "pe_axis": _pe_axis(rng)}


def _sample_ghosting(rng, severity, shape, spacing_mm) -> dict:
    """n_ghosts 2-4; intensity prominent 0.35-0.7, subtle 0.04-0.1 (ghost amplitude
    intensity / n_ghosts: prominent 9-35%, subtle 1-5% of the head's)."""
    low, high = (0.35, 0.7) if severity == "prominent" else (0.04, 0.1)
    return {"n_ghosts": int(rng.integers(2, 5)), "intensity": _u(rng, low, high),
            "pe_axis": _pe_axis(rng)}


def _sample_spike(rng, severity, shape, spacing_mm) -> dict:
    """One spike, |k_position| in [0.1, 0.6] of the half-width in-plane and [0, 0.3] across
    slices; stripe amplitude prominent 0.1-0.25, subtle 0.015-0.03 (x the signal level)."""
    low, high = (0.1, 0.25) if severity == "prominent" else (0.015, 0.03)
    signs = rng.choice([-1.0, 1.0], size=2)
    position = [round(float(s * rng.uniform(0.1, 0.6)), 4) for s in signs]
    position.append(_u(rng, -0.3, 0.3))
    return {"spikes": [{"k_position": position, "amplitude": _u(rng, low, high)}]}


def _sample_noise(rng, severity, shape, spacing_mm) -> dict:
    """sigma_fraction prominent 0.08-0.15, subtle 0.02-0.04 (of the 99th percentile)."""
    low, high = (0.08, 0.15) if severity == "prominent" else (0.02, 0.04)
    return {"sigma_fraction": _u(rng, low, high), "noise_seed": int(rng.integers(0, 2**31 - 1))}


def _bias_monomials(degree: int = 3) -> list[tuple[int, int, int]]:
    return [(i, j, k) for d in range(1, degree + 1)
            for i in range(d + 1) for j in range(d + 1 - i) for k in [d - i - j]]


def _sample_bias(rng, severity, shape, spacing_mm) -> dict:
    """Degree-3 log-field with random coefficients, rescaled so that the log-field's standard
    deviation inside the unit ball (where the head is) is prominent 0.15-0.3, subtle
    0.03-0.06 (i.e. the field varies by about +-30-60% vs +-6-12% across the head)."""
    monomials = _bias_monomials(3)
    coeffs = rng.uniform(-1, 1, size=len(monomials)) / np.array([sum(m) for m in monomials])
    g = np.linspace(-1, 1, 17)
    gx, gy, gz = np.meshgrid(g, g, g, indexing="ij")
    ball = gx**2 + gy**2 + gz**2 <= 1
    log_field = sum(c * gx**i * gy**j * gz**k for c, (i, j, k) in zip(coeffs, monomials))
    target = rng.uniform(*((0.15, 0.3) if severity == "prominent" else (0.03, 0.06)))
    coeffs = coeffs * target / log_field[ball].std()
    return {"terms": [[i, j, k, round(float(c), 5)] for (i, j, k), c in zip(monomials, coeffs)]}


def _sample_blur(rng, severity, shape, spacing_mm) -> dict:
    """FWHM in voxels of the grid, converted to mm: either in-plane (axes 0, 1) or through-plane
    (axis 2), prominent 2-3 voxels, subtle 0.75-1.25 voxels; the other axes get 0-0.5 voxel."""
    low, high = (2.0, 3.0) if severity == "prominent" else (0.75, 1.25)
    voxels = rng.uniform(0.0, 0.5, size=3)
    if rng.random() < 0.5:
        voxels[:2] = rng.uniform(low, high)
    else:
        voxels[2] = rng.uniform(low, high)
    return {"fwhm_mm": [round(float(v * s), 4) for v, s in zip(voxels, spacing_mm)]}


def _sample_ringing(rng, severity, shape, spacing_mm) -> dict:
    """keep_fraction prominent 0.25-0.4, subtle 0.6-0.75; axes: the PE axis or in-plane."""
    low, high = (0.25, 0.4) if severity == "prominent" else (0.6, 0.75)
    axes = [_pe_axis(rng)] if rng.random() < 0.5 else [0, 1]
    return {"keep_fraction": _u(rng, low, high), "axes": axes}


def _sample_wraparound(rng, severity, shape, spacing_mm) -> dict:
    """fov_fraction (of the head's extent) prominent 0.7-0.85, subtle 0.9-0.95 (so 7-15% vs
    2.5-5% of the head folds in at each side)."""
    low, high = (0.7, 0.85) if severity == "prominent" else (0.9, 0.95)
    return {"fov_fraction": _u(rng, low, high), "pe_axis": _pe_axis(rng)}


def _sample_coverage(rng, severity, shape, spacing_mm) -> dict:
    """cut_fraction (of the head's extent) prominent 0.15-0.3, subtle 0.04-0.08; the cut is
    superior (60%), inferior (20%) or anterior (20%)."""
    low, high = (0.15, 0.3) if severity == "prominent" else (0.04, 0.08)
    axis, side = [(2, "+"), (2, "-"), (1, "+")][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
    return {"cut_fraction": _u(rng, low, high), "axis": axis, "side": side}


# --------------------------------------------------------------------------------------------
# Registry and the params-dict interface
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Artifact:
    """One simulated artifact: its rater class, its physics and its two functions.

    ``apply(volume, params, spacing_mm=(1, 1, 1))`` applies a parameter dict (keys ``kind`` and
    ``severity`` are ignored, every other key is a keyword of the simulator);
    ``sample(rng, severity, shape, spacing_mm)`` draws such a dict (without ``kind`` and
    ``severity``) from the documented ranges of the severity.
    """

    name: str
    artifact_class: str
    title: str
    physics: str
    apply: Callable
    sample: Callable


def _params_applier(kind: str, simulator: Callable) -> Callable:
    parameters = inspect.signature(simulator).parameters
    keywords = {p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY} - {"spacing_mm"}
    required = {p for p in keywords if parameters[p].default is inspect.Parameter.empty}

    def apply_params(volume, params, spacing_mm=(1.0, 1.0, 1.0)) -> np.ndarray:
        if not isinstance(params, Mapping):
            _fail(kind, f"params must be a dict, got {type(params).__name__}")
        if params.get("kind", kind) != kind:
            _fail(kind, f"params are for kind {params['kind']!r}")
        given = {k: v for k, v in params.items() if k not in ("kind", "severity")}
        if missing := required - given.keys():
            _fail(kind, f"missing parameter(s) {sorted(missing)}")
        if unknown := given.keys() - keywords:
            _fail(kind, f"unknown parameter(s) {sorted(unknown)}; expected {sorted(keywords)}")
        if "spacing_mm" in parameters:
            given["spacing_mm"] = tuple(float(s) for s in spacing_mm)
        return simulator(volume, **given)

    apply_params.__name__ = f"apply_{kind}"
    apply_params.__doc__ = f"Apply a params dict with :func:`{simulator.__name__}`."
    return apply_params


def _artifact(name, artifact_class, title, physics, simulator, sampler) -> Artifact:
    return Artifact(name, artifact_class, title, physics, _params_applier(name, simulator), sampler)


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in [
        _artifact(
            "motion", "motion_ringing", "Rigid motion during the acquisition",
            "The head moves between phase-encoding lines, so k-space mixes lines measured in "
            "different poses; the inconsistency shows as ghosts and smearing along the "
            "phase-encoding axis, worst when the k-space centre is affected.",
            motion, _sample_motion),
        _artifact(
            "ghosting", "motion_ringing", "Periodic ghosting",
            "A periodic signal change (flow, breathing) modulates every n-th phase-encoding "
            "line; the comb in k-space replicates the head at multiples of FOV/n along the "
            "phase-encoding axis.",
            ghosting, _sample_ghosting),
        _artifact(
            "spike", "intensity", "Spike (herringbone)",
            "An electrical discharge corrupts a single k-space sample; its Fourier transform "
            "is a plane wave, so stripes whose frequency is the spike's k-position cross the "
            "image.",
            spike, _sample_spike),
        _artifact(
            "noise", "intensity", "Low signal-to-noise ratio",
            "Thermal noise adds independent Gaussian noise to the real and imaginary channels "
            "(white in k-space); the magnitude image is Rician, Rayleigh in the background.",
            noise, _sample_noise),
        _artifact(
            "bias", "intensity", "Intensity inhomogeneity (bias field)",
            "The receive coils' sensitivity varies smoothly across the head and multiplies "
            "the image by a slowly varying positive field; in k-space it is a narrow blur.",
            bias, _sample_bias),
        _artifact(
            "blur", "motion_ringing", "Blurring (low resolution, thick slices)",
            "Each point is spread over several millimetres (thick slices, low matrix, slow "
            "drift); in k-space the high frequencies are attenuated by a Gaussian.",
            blur, _sample_blur),
        _artifact(
            "ringing", "motion_ringing", "Gibbs ringing (truncated k-space)",
            "Too few k-space lines are acquired and the rest is zero; the sinc point-spread "
            "function of the hard-edged k-space makes parallel lines ring next to sharp edges.",
            ringing, _sample_ringing),
        _artifact(
            "wraparound", "coverage", "Wrap-around (aliasing)",
            "The field of view along the phase-encoding axis is smaller than the head; "
            "k-space lines spaced by 1/FOV make the image periodic, so what lies beyond one "
            "edge folds in at the other.",
            wraparound, _sample_wraparound),
        _artifact(
            "coverage", "coverage", "Incomplete brain coverage",
            "The field of view was placed so that part of the head (usually its top) lies "
            "outside it and is not imaged; in k-space nothing is wrong, the object is.",
            coverage, _sample_coverage),
    ]
}


def _get(kind) -> Artifact:
    if kind not in ARTIFACTS:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {list(ARTIFACTS)}")
    return ARTIFACTS[kind]


def sample_params(kind: str, severity: str = "prominent", seed=0, shape=(64, 64, 32),
                  spacing_mm=(1.0, 1.0, 1.0)) -> dict:
    """Draw the parameters of one artifact at one severity.

    Parameters
    ----------
    kind : str
        A key of :data:`ARTIFACTS`.
    severity : {"subtle", "prominent"}
        "prominent" is meant to be obvious to a rater, "subtle" hard to see (see the
        ``_sample_<kind>`` docstrings for the ranges).
    seed : int or numpy.random.Generator
        Seed (or generator) of the draw.
    shape : tuple of int
        Grid the artifact will be applied on.
    spacing_mm : tuple of float
        Voxel size in mm (the blur's FWHM is drawn in voxels of this grid).

    Returns
    -------
    dict
        JSON-serialisable (plain ints, floats, strings and lists): ``kind``, ``severity`` and
        the keywords of the simulator.
    """
    artifact = _get(kind)
    if severity not in SEVERITIES:
        _fail(kind, f"unknown severity {severity!r}; expected one of {list(SEVERITIES)}")
    rng = np.random.default_rng(seed)
    params = artifact.sample(rng, severity, tuple(int(n) for n in shape),
                             tuple(float(s) for s in spacing_mm))
    return {"kind": kind, "severity": severity, **params}


def apply(volume, params: Mapping, spacing_mm=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Apply a parameter dict (from :func:`sample_params`, or a scan-table row) to a volume.

    Dispatches on ``params["kind"]``; deterministic (same inputs, bit-identical output).

    Returns
    -------
    numpy.ndarray, float32, same shape as ``volume``; finite and >= 0.
    """
    if not isinstance(params, Mapping) or "kind" not in params:
        raise ValueError("params must be a dict with a 'kind' key")
    return _get(params["kind"]).apply(volume, params, spacing_mm)


def corrupt(volume, kind: str, severity: str = "prominent", seed=0,
            spacing_mm=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, dict]:
    """Draw parameters and apply them: ``(corrupted volume, params)``."""
    params = sample_params(kind, severity, seed=seed, shape=np.shape(volume), spacing_mm=spacing_mm)
    return apply(volume, params, spacing_mm=spacing_mm), params


def class_table():
    """The artifacts and their rater classes, as a pandas DataFrame.

    Columns: ``kind``, ``class`` (one of :data:`ARTIFACT_CLASSES`), ``title``, ``physics``.
    """
    import pandas as pd

    return pd.DataFrame(
        [(a.name, a.artifact_class, a.title, a.physics) for a in ARTIFACTS.values()],
        columns=["kind", "class", "title", "physics"],
    )
