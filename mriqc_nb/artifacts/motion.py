"""Rigid head motion during the acquisition, simulated line by line in k-space.

Speed
-----
Only the phase-encoding (PE) axis is sampled in time, so a pose owns a set of PE lines and the
image is the inverse 1-D transform, along the PE axis, of the lines gathered from each pose.
A pose's image is the head resampled by a rigid transform; it is made with five *beam shears*
(each shifts every line along one axis by an amount linear in the other two coordinates): the
transform's matrix in voxels is factored as ``U L U`` (unit upper, lower, upper triangular)
and each factor into beam shears, and the translation rides on the shears as constant shifts.
Each shear is exact band-limited (sinc) interpolation by a phase ramp along its axis, so no
interpolation blurs the moved head; the last shear runs along the PE axis and ends in the
transform the lines are taken from. A translation alone costs the shifts along each axis; a
pose that does not move costs nothing.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.fft
from scipy.spatial.transform import Rotation

from mriqc_nb.artifacts._common import PE_AXIS, Range, alternative, as_volume, check_axis, choose, \
    fail, finish, levels_at, sampler_doc
from mriqc_nb.kspace import FFT_WORKERS

CLASS = "motion_ringing"
TITLE = "Rigid motion during the acquisition"
PHYSICS = ("The head moves between phase-encoding lines, so k-space mixes lines measured in "
           "different poses; the inconsistency shows as ghosts and smearing along the "
           "phase-encoding axis, worst when the k-space centre is affected.")
RANGES = (
    Range("n_events", "number of movements (integer)", {"subtle": (1, 1), "prominent": (1, 2)}),
    Range("time", "time of each movement, fraction of the acquisition (subtle: small and central, "
                  "or larger and late)", {"subtle": ((0.3, 0.7), (0.88, 0.97)), "prominent": (0.35, 0.65)}),
    Range("degrees", "rotation of each movement about a random axis, degrees",
          {"subtle": ((0.5, 1.5), (2.0, 4.0)), "prominent": (3.0, 8.0)}),
    Range("mm", "translation of each movement in a random direction, mm",
          {"subtle": ((0.5, 1.5), (2.0, 4.0)), "prominent": (3.0, 8.0)}),
    PE_AXIS,
)


# --------------------------------------------------------------------------- geometry
def _pull_back(event, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Voxel map of a pose: output voxel ``r`` shows input voxel ``c + A (r - c) + b``.

    The head is rotated by ``rotation_deg`` (a rotation vector, about the volume centre ``c``,
    in mm space) then translated by ``translation_mm``: the output at ``p`` (mm) shows the
    input at ``R^T (p - t)``.
    """
    rot = Rotation.from_rotvec(np.asarray(event["rotation_deg"], dtype=float), degrees=True).as_matrix()
    scale = np.asarray(spacing_mm, dtype=float)
    matrix = (rot.T * scale[None, :]) / scale[:, None]
    offset = -(rot.T @ np.asarray(event["translation_mm"], dtype=float)) / scale
    return matrix, offset


def _ulu(m: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Five beam shears ``[(axis, w)]`` whose product ``prod(I + e_axis w^T)`` is ``m``.

    ``m`` (det 1) is factored as ``U1 L U2``: ``U1^-1`` is chosen (smallest coefficients) so
    that ``U1^-1 m`` has unit leading minors, whose LU factors then have unit diagonals.
    """
    a10, a20 = m[1, 0], m[2, 0]
    norm = a10**2 + a20**2
    ap, bp = ((1.0 - m[0, 0]) * np.array([a10, a20]) / norm) if norm > 1e-14 else (0.0, 0.0)
    row0 = m[0] + ap * m[1] + bp * m[2]
    coef = row0[0] * m[2, 1] - row0[1] * m[2, 0]
    rhs = 1.0 - (row0[0] * m[1, 1] - row0[1] * m[1, 0])
    cp = rhs / coef if abs(coef) > 1e-14 else 0.0
    u1_inv = np.array([[1.0, ap, bp], [0.0, 1.0, cp], [0.0, 0.0, 1.0]])
    n = u1_inv @ m
    u2 = np.eye(3)
    u2[0] = n[0]
    l10, l20 = n[1, 0] / n[0, 0], n[2, 0] / n[0, 0]
    u2[1, 1:] = n[1, 1:] - l10 * u2[0, 1:]
    l21 = (n[2, 1] - l20 * u2[0, 1]) / u2[1, 1]
    u1 = np.linalg.inv(u1_inv)
    a, b, c = u1[0, 1], u1[0, 2], u1[1, 2]
    shears = [(0, np.array([0.0, a, b - a * c])), (1, np.array([l10, 0.0, c])),
              (2, np.array([l20, l21, 0.0])), (1, np.array([0.0, 0.0, u2[1, 2]])),
              (0, np.array([0.0, u2[0, 1], u2[0, 2]]))]
    product = np.eye(3)
    for axis, w in shears:
        product = product @ (np.eye(3) + np.outer(np.eye(3)[axis], w))
    if not np.allclose(product, m, atol=1e-9):
        raise ValueError("motion: this pose cannot be factored into shears (rotation too large)")
    return shears


def _passes(matrix, offset, pe_axis: int) -> list[tuple[int, np.ndarray, float]]:
    """Beam shears ``(axis, w, d)`` of a pose, the last along ``pe_axis``; ``d``: the shift."""
    perm = [pe_axis] + [a for a in range(3) if a != pe_axis]
    p = np.eye(3)[:, perm]  # p e_i = e_perm[i]
    passes = [(perm[a], p @ w) for a, w in _ulu(p.T @ matrix @ p)]
    # Constant shifts on the last shear along each axis: the composed offset must be ``offset``.
    columns, linear = [], np.eye(3)
    for axis, w in passes:
        columns.append(linear[:, axis].copy())
        linear = linear @ (np.eye(3) + np.outer(np.eye(3)[axis], w))
    last = [max(j for j, (axis, _) in enumerate(passes) if axis == a) for a in range(3)]
    shifts = np.zeros(len(passes))
    shifts[last] = np.linalg.solve(np.stack([columns[j] for j in last], axis=1), offset)
    return [(axis, w, float(d)) for (axis, w), d in zip(passes, shifts)]


def _phase(n_freq: int, n: int, axis: int, w, d: float, shape) -> list[np.ndarray]:
    """Factors of ``exp(2 pi i f (w . (r - c) + d) / n)`` for the rfft bins along ``axis``."""
    f = np.arange(n_freq, dtype=np.float64)
    factors = []
    for other in (a for a in range(3) if a != axis):
        coord = np.arange(shape[other]) - (shape[other] - 1) / 2.0
        shift = w[other] * coord + (d if not factors else 0.0)
        table = np.exp(2j * np.pi * np.outer(f, shift) / n).astype(np.complex64)
        index = [1, 1, 1]
        index[axis], index[other] = n_freq, shape[other]
        factors.append(table.reshape(index) if axis < other else table.T.reshape(index))
    return factors


def _spectrum(x: np.ndarray, passes, pe_axis: int) -> np.ndarray:
    """rfft along ``pe_axis`` of ``x`` moved by its shear passes (the last one along PE)."""
    g = x
    for j, (axis, w, d) in enumerate(passes):
        if not (np.any(w) or d) and j < len(passes) - 1:
            continue
        n = g.shape[axis]
        k = scipy.fft.rfft(g, axis=axis, workers=FFT_WORKERS)
        if np.any(w) or d:
            for factor in _phase(k.shape[axis], n, axis, w, d, g.shape):
                k *= factor
        if j == len(passes) - 1:
            return k
        g = scipy.fft.irfft(k, n, axis=axis, workers=FFT_WORKERS)
    return scipy.fft.rfft(g, axis=pe_axis, workers=FFT_WORKERS)


def _check_events(events) -> list[dict]:
    if not isinstance(events, (list, tuple)):
        fail("motion", "events must be a list of {'time', 'rotation_deg', 'translation_mm'} dicts")
    for ev in events:
        if not isinstance(ev, Mapping) or set(ev) != {"time", "rotation_deg", "translation_mm"}:
            fail("motion", f"each event needs exactly time, rotation_deg, translation_mm; got {ev!r}")
        if not 0.0 <= float(ev["time"]) <= 1.0:
            fail("motion", f"event time must be in [0, 1], got {ev['time']}")
        if len(ev["rotation_deg"]) != 3 or len(ev["translation_mm"]) != 3:
            fail("motion", "rotation_deg and translation_mm must have 3 components")
    return sorted(events, key=lambda ev: float(ev["time"]))


def motion(volume, *, events, pe_axis: int = 1, spacing_mm=None) -> np.ndarray:
    """Rigid head motion during the acquisition.

    The k-space lines along ``pe_axis`` are acquired sequentially, from -k_max to +k_max,
    line ``i`` of ``n`` at time ``(i + 0.5) / n``. At each event the head jumps to a new pose
    and keeps it until the next event; every line acquired at or after an event's time comes
    from the k-space of the head in that pose. Mixing inconsistent lines gives ghosts and
    smearing along the PE axis: an event near time 0.5 corrupts the k-space centre (the image
    contrast) and is severe; one near 0 or 1 touches only the periphery (fine edges). The
    moved head is resampled with band-limited (sinc) shears, periodic across the FOV (see the
    module notes).

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
        Magnitude image.
    events : list of dict
        Each ``{"time": t, "rotation_deg": [r0, r1, r2], "translation_mm": [t0, t1, t2]}``:
        ``t`` in [0, 1] is the fraction of the acquisition elapsed; the pose is given relative
        to the initial one, as a rotation vector in degrees (axis x angle, about the volume
        centre, in mm space) followed by a translation in mm along the RAS axes.
    pe_axis : int
        Phase-encoding axis (0, 1 or 2); default 1, anterior-posterior.
    spacing_mm : tuple of float
        Voxel size in mm; required for an array, read from the header of an image or path.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, spacing_mm = as_volume(volume, "motion", spacing_mm, needs_spacing=True)
    pe_axis = check_axis(pe_axis, "motion")
    events = _check_events(events)
    n = x.shape[pe_axis]
    line_time = (np.arange(n) + 0.5) / n  # centred index i: frequency i - n // 2
    times = [float(ev["time"]) for ev in events]
    owner = np.searchsorted(times, line_time, side="right") - 1  # -1: the initial pose
    freq = np.arange(n) - n // 2
    full_shape = list(x.shape)
    spectrum = np.empty(full_shape, dtype=np.complex64)
    half_cache = {}
    for pose in np.unique(owner):
        moved = pose >= 0 and (np.any(events[pose]["rotation_deg"]) or np.any(events[pose]["translation_mm"]))
        key = pose if moved else -1
        if key not in half_cache:
            passes = _passes(*_pull_back(events[pose], spacing_mm), pe_axis) if moved else []
            half_cache[key] = _spectrum(x, passes, pe_axis)
        half = half_cache[key]
        lines = freq[owner == pose]
        positive, negative = lines[lines >= 0], lines[lines < 0]
        dest = [slice(None)] * 3
        dest[pe_axis] = positive
        src = [slice(None)] * 3
        src[pe_axis] = positive
        spectrum[tuple(dest)] = half[tuple(src)]
        dest[pe_axis] = negative % n
        src[pe_axis] = -negative
        spectrum[tuple(dest)] = np.conj(half[tuple(src)])
    image = scipy.fft.ifft(spectrum, axis=pe_axis, workers=FFT_WORKERS, overwrite_x=True)
    return finish(np.abs(image))


def _unit_vector(rng) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _event(rng, time, degrees, mm) -> dict:
    return {
        "time": round(float(time), 4),
        "rotation_deg": [round(float(v), 4) for v in _unit_vector(rng) * degrees],
        "translation_mm": [round(float(v), 4) for v in _unit_vector(rng) * mm],
    }


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "motion")
    low, high = spans["n_events"]
    count = int(rng.integers(low, high + 1)) if high > low else low
    spans = alternative(rng, spans)
    times = rng.uniform(*spans["time"], size=count)
    events = [_event(rng, t, rng.uniform(*spans["degrees"]), rng.uniform(*spans["mm"]))
              for t in sorted(times)]
    return {"events": events, "pe_axis": choose(rng, PE_AXIS)}


sample.__doc__ = sampler_doc(RANGES, "Movements of a severity: each a rotation and a translation "
                                     "of drawn sizes in random directions.")
