"""Checks at the scan's own resolution: what the network's grid averages away.

The network sees every scan conformed to its grid (laptop: 4 x 4 x 6 mm, with anti-aliasing),
and some artifacts of a finer acquisition do not survive that trip (``experiments/NOTES.md``
section 13: a spike made at 1 mm is a stripe pattern above the grid's Nyquist limit, and
white noise at 1 mm is averaged over 96 voxels). No training can find what is not in the
input. Three artifacts have a signature at the scan's own voxel size that needs no learning,
and screening measures them on the file as it was read, before it is conformed:

``kspace_peak`` (spikes)
    A spike is one bad k-space sample, so the Fourier transform of the magnitude image has a
    peak far above the k-space around it; anatomy has no such peaks. The measure is
    ``log |F(k)|`` minus the largest ``log |F|`` at Chebyshev distance 2-3 from ``k`` (the
    nearest neighbours are left out: the head's outline spreads a spike over them), maximised
    over ``k`` outside the central tenth of k-space and off the three axis planes (where the
    box edges and any zero padding put their lines). A sharp edge in k-space (truncated or
    zero-filled k-space, ringing) is not a peak: the ring around it holds values as high.
``noise``
    The standard deviation of white noise at the scan's own voxel size, Donoho's estimate from
    the finest 3-D Haar detail (median absolute coefficient / 0.6745) over the head, relative
    to the head's level: its median intensity above the background's (natural log). Anatomy
    adds little to the finest detail's median; blur lowers it. The head mask and the medians
    are taken on every second voxel along each axis (the Haar detail at full resolution).

``kspace_comb`` (periodic ghosting; ``experiments/NOTES.md`` sections 23 and 26)
    A signal that changes periodically from one phase-encoding line to the next (flow,
    breathing) scales every n-th line of k-space: a comb, which the spectrum of the magnitude
    image keeps (the comb is even in k). The measure: per axis, the mean ``log |F|`` of each
    plane of k-space (``+-k`` averaged) minus its running median over 9 planes; for every
    period n = 2..8 and phase, the mean of the other planes minus the mean of every n-th
    plane, over the planes between a tenth and 95% of the way out; the maximum. Clean heads,
    and clean acquisitions reconstructed from zero-filled or partial k-space, have no comb.
    It is measured only in its *scope*: a file whose largest voxel side is at most
    :data:`SCOPE_MM` (at 4 mm the plane profile is too short and rough: section 23) and whose
    non-zero voxels fill at least :data:`SCOPE_LITRES` (a skull-stripped release's hard brain
    mask smears the comb); elsewhere it is NaN and calls nothing.

A check *calls* an artifact when its measure is above its threshold (:data:`THRESHOLDS`, chosen
on validation anatomy before anything else was looked at, and adopted by a rule written
before it was tested: ``experiments/NOTES.md`` sections 20 and 26). A bundle carries the
thresholds it screens with (``bundle.json``: ``checks``); a bundle without them screens with
the network alone.

Motion has no check: at the scan's own resolution it leaves a step in the planes' energy,
but so do partial-Fourier and zero-filled reconstructions of clean scans (section 25).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["THRESHOLDS", "CALLS", "haar_noise", "noise_level", "kspace_peak", "kspace_comb",
           "in_scope", "measure", "called", "validate_thresholds"]

#: Threshold of each check (``experiments/NOTES.md`` section 20): ``kspace_peak`` > 1.0 (a
#: k-space sample e = 2.7 times the largest one 2-3 samples away), ``noise`` > -2.5 (noise SD
#: above 8.2% of the head's level: its median intensity above the background's).
#: ``kspace_comb`` > 0.015 (section 26: about seven times a clean head's value, below the
#: smallest prominent ghosting of the design look), adopted by the rule of section 26.
THRESHOLDS = {"kspace_peak": 1.0, "noise": -2.5, "kspace_comb": 0.015}
#: The artifact each check calls.
CALLS = {"kspace_peak": "spike", "noise": "noise", "kspace_comb": "ghosting"}
#: ``kspace_comb``'s scope: the largest voxel side (mm) at most ...
SCOPE_MM = 2.0
#: ... and the non-zero voxels' volume (litres) at least this (a stripped brain is 1.1-1.8 L).
SCOPE_LITRES = 2.5
_CENTRE = 0.1  # radius (fraction of the k-space half-width) left out around the centre


def _as_array(volume) -> np.ndarray:
    x = np.asarray(volume, dtype=np.float32)
    if x.ndim != 3 or min(x.shape) < 8:
        raise ValueError(f"a check needs a 3-D volume at least 8 voxels a side, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("a check needs finite intensities")
    return x


def _haar_detail(x: np.ndarray) -> np.ndarray:
    """The orthonormal finest 3-D Haar detail (HHH) of ``x``: one coefficient per 2 x 2 x 2
    block, ``floor(n / 2)`` along each axis."""
    n = [s - s % 2 for s in x.shape]
    x = x[:n[0], :n[1], :n[2]]
    d = np.zeros([s // 2 for s in n], dtype=np.float32)
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                if (i + j + k) % 2:
                    d -= x[i::2, j::2, k::2]
                else:
                    d += x[i::2, j::2, k::2]
    d /= np.float32(math.sqrt(8.0))
    return d


def _mad_sd(d: np.ndarray) -> float:
    return float(np.median(np.abs(d)) / 0.6745) if d.size else float("nan")


def haar_noise(volume, mask=None) -> float:
    """Noise standard deviation from the finest 3-D Haar detail (Donoho's MAD estimate).

    Parameters
    ----------
    volume : array_like, shape (X, Y, Z)
    mask : array_like of bool, optional
        Where to estimate (a 2 x 2 x 2 block counts when its first voxel is inside); the
        whole volume when omitted.

    Returns
    -------
    float
        ``median |d| / 0.6745``, ``d`` the orthonormal HHH coefficients: the SD of white
        Gaussian noise, whatever its mean.
    """
    x = _as_array(volume)
    d = _haar_detail(x)
    if mask is not None:
        d = d[_corners(np.asarray(mask, dtype=bool), d.shape)]
    return _mad_sd(d)


def _corners(a: np.ndarray, shape) -> np.ndarray:
    """``a`` at the first voxel of each 2 x 2 x 2 block, cut to ``shape`` (the blocks)."""
    return a[::2, ::2, ::2][:shape[0], :shape[1], :shape[2]]


def noise_level(volume, mask=None) -> float:
    """``log(noise SD / head level)`` at the volume's own voxel size.

    The noise SD is :func:`haar_noise` over the head. The head level is the median intensity
    inside the head above the median outside it (the background: zero for a magnitude image
    without noise, a little above for Rician noise, anywhere for data stored with an offset
    or z-scored); above the minimum when less than 1% of the volume is outside the head. NaN
    when the head is empty or its level is not positive.

    Everything but the Haar detail is taken on every second voxel along each axis (an eighth
    of the voxels, their own values): the head mask (default
    ``head_mask(volume[::2, ::2, ::2], sigma_vox=0.5)``, the same smoothing in millimetres as
    at full resolution; a given ``mask`` is sampled the same way), the two medians, and the
    Haar blocks counted (those whose first voxel is in the head). The estimates are the same
    in distribution, at about a sixth of the cost (``experiments/NOTES.md`` section 21).
    """
    return _noise_level(_as_array(volume), mask)


def _noise_level(x: np.ndarray, mask=None) -> float:
    from mriqc_nb.scans.grid import head_mask

    xc = np.ascontiguousarray(x[::2, ::2, ::2])
    m = head_mask(xc, sigma_vox=0.5) if mask is None else \
        np.asarray(mask, dtype=bool)[::2, ::2, ::2]
    if not m.any():
        return float("nan")
    outside = ~m
    zero = float(np.median(xc[outside])) if outside.mean() >= 0.01 else float(x.min())
    level = float(np.median(xc[m])) - zero
    d = _haar_detail(x)
    sd = _mad_sd(d[m[:d.shape[0], :d.shape[1], :d.shape[2]]])
    if not level > 0:
        return float("nan")
    if not sd > 0:
        return float("-inf")
    return math.log(sd / level)


def _ring_max(values: np.ndarray, inner: int = 1, outer: int = 3) -> np.ndarray:
    """Maximum over the voxels at Chebyshev distance ``inner + 1`` to ``outer`` (periodic).

    That shell is the union, over the three axes, of "offset ``inner + 1`` to ``outer`` along
    this axis, at most ``outer`` along the other two": per axis, a box maximum over the other
    two axes (separable 1-D passes, shared between axes) followed by the maximum of the
    shifts along this one. The maximum is exact, so this is the shell's maximum itself.
    """
    def cut(a, axis, lo, hi):
        return a[(slice(None),) * axis + (slice(lo, hi),)]

    def wrapped(a, axis):  # a with ``outer`` periodic values added on each side along axis
        n = a.shape[axis]
        return np.concatenate([cut(a, axis, n - outer, n), a, cut(a, axis, 0, outer)],
                              axis=axis)

    def box(a, axis):  # max over offsets -outer .. outer along axis
        p = wrapped(a, axis)
        span = 1  # p[i] holds the max of span values from i on; doubled up to 2 * outer + 1
        while span < 2 * outer + 1:
            step = min(span, 2 * outer + 1 - span)
            m = p.shape[axis] - step
            p = np.maximum(cut(p, axis, 0, m), cut(p, axis, step, step + m))
            span += step
        return p

    def shell(a, axis):  # max over offsets +-(inner + 1 .. outer) along axis
        p, n = wrapped(a, axis), a.shape[axis]
        out = None
        for d in range(inner + 1, outer + 1):
            for o in (outer - d, outer + d):
                v = cut(p, axis, o, o + n)
                out = v.copy() if out is None else np.maximum(out, v, out=out)
        return out

    b2 = box(values, 2)
    out = shell(box(b2, 1), 0)
    np.maximum(out, shell(box(b2, 0), 1), out=out)
    del b2
    return np.maximum(out, shell(box(box(values, 0), 1), 2), out=out)


def _negate(a: np.ndarray, axes=(0, 1)) -> np.ndarray:
    """``a`` at the negated frequency along ``axes`` (centred indices, ``n // 2`` is 0)."""
    for axis in axes:
        n = a.shape[axis]
        a = np.take(a, (2 * (n // 2) - np.arange(n)) % n, axis=axis)
    return a


def kspace_peak(volume) -> float:
    """How far the strongest isolated k-space peak stands above the k-space around it.

    Returns
    -------
    float
        ``max_k [log |F(k)| - max log |F|`` at Chebyshev distance 2-3 ``]`` over ``k``
        outside the central tenth of k-space (radius, in fractions of the half-width) and at
        least 2 samples off each axis plane; ``F`` the Fourier transform of the volume minus
        its mean. Around 0.2-0.7 for clean scans (more voxels: a little higher), above 1 for
        a spike.

    Notes
    -----
    The image is real, so ``|F(k)| = |F(-k)|`` and the measure is the same on either half of
    k-space: it is computed on the half that ``rfftn`` returns, extended by the three planes
    on each side that the ring around its points reaches (taken from the other half).
    """
    return _kspace_peak(_as_array(volume))


_PAD = 3  # the ring's reach (kspace_peak)


def _log_spectrum(x: np.ndarray) -> np.ndarray:
    """``log |F|`` of ``x`` minus its mean on the half of k-space that ``rfftn`` returns
    (axes 0 and 1 centred), extended by :data:`_PAD` planes on each side along the last axis
    (taken from the other half); float32."""
    from scipy import fft

    n2 = x.shape[2]
    # one thread: screening measures in several worker processes at once
    half = fft.fftshift(np.abs(fft.rfftn(x - x.mean())), axes=(0, 1))
    m = n2 // 2  # the last axis holds the frequencies 0..m
    floor = np.float32(1e-7 * max(float(half.max()), 1e-30))
    before = [_negate(half[:, :, j]) for j in range(_PAD, 0, -1)]        # -3, -2, -1
    after = [_negate(half[:, :, n2 - m - j]) for j in range(1, _PAD + 1)]  # m+1 .. m+3
    ext = np.concatenate([np.stack(before, axis=2), half, np.stack(after, axis=2)], axis=2)
    del half
    return np.log(ext.astype(np.float32, copy=False) + floor)


def _kspace_peak(x: np.ndarray, logs: np.ndarray | None = None) -> float:
    n0, n1, n2 = x.shape
    m = n2 // 2
    pad = _PAD
    logs = _log_spectrum(x) if logs is None else logs
    inner = (slice(None), slice(None), slice(pad + 2, pad + m + 1))  # frequencies 2..m
    excess = logs[inner] - _ring_max(logs)[inner]
    # left out: within 1 sample of the two centred axes' zero planes (the last axis starts
    # at frequency 2) ...
    c0, c1 = n0 // 2, n1 // 2
    excess[max(c0 - 1, 0):c0 + 2] = -np.inf
    excess[:, max(c1 - 1, 0):c1 + 2] = -np.inf
    # ... and the central tenth of k-space (radius in fractions of each half-width), for
    # which only its bounding box needs the radius
    r0, r1, r2 = (int(_CENTRE * n / 2) + 1 for n in (n0, n1, n2))
    lo0, lo1 = max(c0 - r0, 0), max(c1 - r1, 0)
    box = excess[lo0:c0 + r0 + 1, lo1:c1 + r1 + 1, :max(r2 - 1, 0)]
    g = [np.abs(np.arange(lo0, lo0 + box.shape[0]) - c0) / (n0 / 2),
         np.abs(np.arange(lo1, lo1 + box.shape[1]) - c1) / (n1 / 2),
         np.arange(2, 2 + box.shape[2]) / (n2 / 2)]
    radius = np.zeros(box.shape, dtype=np.float32)
    for axis, ga in enumerate(g):
        radius = radius + ga.astype(np.float32).reshape([-1 if a == axis else 1
                                                          for a in range(3)])**2
    box[radius <= _CENTRE**2] = -np.inf
    top = float(excess.max()) if excess.size else -math.inf
    return top if math.isfinite(top) else float("nan")


def in_scope(volume, spacing_mm) -> bool:
    """Whether ``kspace_comb`` measures a file: its largest voxel side (mm) at most
    :data:`SCOPE_MM` and its non-zero voxels at least :data:`SCOPE_LITRES`."""
    try:
        spacing = [float(v) for v in spacing_mm]
    except (TypeError, ValueError):
        spacing = []
    if len(spacing) != 3 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise ValueError(f"spacing_mm must be three positive voxel sizes, got {spacing_mm!r}")
    litres = np.count_nonzero(np.asarray(volume)) * math.prod(spacing) / 1e6
    return max(spacing) <= SCOPE_MM and litres >= SCOPE_LITRES


def _plane_profiles(logs: np.ndarray, shape) -> list:
    """Per axis, the mean ``log |F|`` of each plane of k-space, ``+-k`` averaged: ``p[k]``
    for ``k = 0 .. n // 2`` (``logs`` from :func:`_log_spectrum`)."""
    m = shape[2] // 2
    half = logs[:, :, _PAD:_PAD + m + 1]  # frequencies 0..m of the last axis
    out = []
    for axis, n in enumerate(shape):
        p = half.mean(axis=tuple(a for a in range(3) if a != axis), dtype=np.float64)
        if axis < 2:  # centred: frequency k at index n // 2 + k
            k = np.arange(n // 2 + 1)
            p = (p[(n // 2 + k) % n] + p[(n // 2 - k) % n]) / 2
        out.append(p)
    return out


def kspace_comb(volume, spacing_mm=None) -> float:
    """How far every n-th k-space plane (n = 2..8) falls below the others (periodic
    ghosting; the module's notes), or NaN for a file out of scope. Without ``spacing_mm``
    the scope is not checked.

    Around 0.0003-0.005 for clean heads at 1-2 mm, 0.01-0.17 for prominent ghosting
    (``experiments/NOTES.md`` section 26).
    """
    x = _as_array(volume)
    if spacing_mm is not None and not in_scope(x, spacing_mm):
        return float("nan")
    return _kspace_comb(x)


def _kspace_comb(x: np.ndarray, logs: np.ndarray | None = None, periods=range(2, 9),
                 window: int = 9, inner: float = 0.1, outer: float = 0.95) -> float:
    from scipy import ndimage

    logs = _log_spectrum(x) if logs is None else logs
    best = -math.inf
    for p in _plane_profiles(logs, x.shape):
        h = len(p) - 1
        r = p - ndimage.median_filter(p, size=window, mode="nearest")
        k = np.arange(len(r))
        keep = (k > inner * h) & (k < outer * h)
        for per in periods:
            for phase in range(per):
                sel = keep & (k % per == phase)
                if sel.sum() >= 3 and (keep & ~sel).any():
                    best = max(best, float(r[keep & ~sel].mean() - r[sel].mean()))
    return best if math.isfinite(best) else float("nan")


def measure(volume, spacing_mm=None) -> dict:
    """Every check's measure of one volume: ``{"kspace_peak", "noise", "kspace_comb"}``
    (floats). ``kspace_comb`` needs the voxel size (``spacing_mm``, for its scope): NaN
    without it or out of scope."""
    x = _as_array(volume)  # validated once
    logs = _log_spectrum(x)
    comb = _kspace_comb(x, logs) if spacing_mm is not None and in_scope(x, spacing_mm) \
        else float("nan")
    return {"kspace_peak": _kspace_peak(x, logs), "noise": _noise_level(x),
            "kspace_comb": comb}


def validate_thresholds(thresholds) -> dict:
    """``thresholds`` as ``{check: float}``; ``ValueError`` naming an unknown check or a value
    that is not a finite number."""
    if not isinstance(thresholds, dict):
        raise ValueError(f"checks must be a JSON object of thresholds, got {thresholds!r}")
    out = {}
    for name, value in thresholds.items():
        if name not in CALLS:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(CALLS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError(f"the threshold of check {name!r} must be a finite number, "
                             f"got {value!r}")
        out[name] = float(value)
    return out


def called(measures: dict, thresholds=None) -> list[str]:
    """The artifacts that the checks call (``CALLS`` of each measure above its threshold), in
    the order of ``thresholds``; a NaN measure calls nothing."""
    thresholds = THRESHOLDS if thresholds is None else thresholds
    return [CALLS[name] for name, cut in thresholds.items()
            if measures.get(name) is not None and measures[name] > cut]
