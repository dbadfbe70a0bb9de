"""Helpers shared by the artifact modules: inputs, ranges as data, draws, image statistics.

Every artifact module holds a ``RANGES`` table (a tuple of :class:`Range` and :class:`Choice`
rows): the sampler draws from it, and the docstrings, the CLI help and the book's table are
written from it by :func:`describe` and :func:`table_rows`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import ndimage

#: Levels of the ranges: ``clean`` (the acquisition of a clean scan, :mod:`mriqc_nb.synth`)
#: then the two artifact severities.
LEVELS = ("clean", "subtle", "prominent")


def fail(kind: str, problem: str):
    raise ValueError(f"artifact {kind!r}: {problem}")


# --------------------------------------------------------------------------- inputs
def _spacing(spacing_mm, kind: str) -> tuple[float, float, float]:
    spacing = np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        fail(kind, f"spacing_mm must be 3 positive voxel sizes in mm, got {spacing_mm!r}")
    return tuple(float(s) for s in spacing)


def as_volume(volume, kind: str, spacing_mm=None, needs_spacing: bool = False):
    """The input as a float32 3-D finite array (a copy: never written to), and its spacing.

    ``volume`` is an array, a nibabel image or a path to one. The voxel size comes from the
    image header when there is one (a ``spacing_mm`` that disagrees with it is an error); a
    bare array needs ``spacing_mm`` when ``needs_spacing``, there is no default voxel size.

    Returns
    -------
    (numpy.ndarray of float32, tuple of 3 float or None)
    """
    header_spacing = None
    if isinstance(volume, (str, os.PathLike)):
        import nibabel as nib

        volume = nib.load(str(Path(volume)))
    if hasattr(volume, "header") and hasattr(volume, "dataobj"):
        header_spacing = _spacing(volume.header.get_zooms()[:3], kind)
        volume = np.asanyarray(volume.dataobj)
    x = np.array(volume, dtype=np.float32)
    if x.ndim != 3:
        fail(kind, f"expected a 3-D volume, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        fail(kind, "the volume contains NaN or infinite values")
    if spacing_mm is not None:
        spacing_mm = _spacing(spacing_mm, kind)
        if header_spacing is not None and not np.allclose(spacing_mm, header_spacing, rtol=1e-4):
            fail(kind, f"spacing_mm {spacing_mm} disagrees with the image header {header_spacing}")
    spacing_mm = spacing_mm or header_spacing
    if needs_spacing and spacing_mm is None:
        fail(kind, "spacing_mm (voxel size in mm) is required for a bare array; pass "
                   "spacing_mm=(sx, sy, sz), or a nibabel image or a path, whose header has it")
    return x, spacing_mm


def finish(x: np.ndarray) -> np.ndarray:
    """float32, >= 0: every simulator returns a magnitude image."""
    return np.maximum(x, 0.0, dtype=np.float32)


def check_axis(axis, kind: str, name: str = "pe_axis") -> int:
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        fail(kind, f"{name} must be 0, 1 or 2, got {axis!r}")
    return int(axis)


def along(values: np.ndarray, axis: int, ndim: int = 3) -> np.ndarray:
    """Reshape a 1-D array so that it broadcasts along ``axis`` of an ``ndim``-D array."""
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


def frequencies(n: int) -> np.ndarray:
    """Integer spatial frequencies of the centred k-space indices 0..n-1 (zero at n // 2)."""
    return np.arange(n) - n // 2


# --------------------------------------------------------------------------- image statistics
def signal_level(volume) -> float:
    """Robust signal level of a magnitude image: the 99th percentile of its voxels.

    It sits in the brightest tissue and ignores a few hot voxels; noise and thresholds are
    expressed as fractions of it. Falls back to the maximum when fewer than 1% of the voxels
    are non-zero, and is 0 only for an all-zero volume. Same value as
    ``numpy.percentile(volume, 99)`` (linear interpolation), computed by a partial sort.
    """
    x = np.asarray(volume, dtype=np.float32).ravel()
    position = 0.99 * (x.size - 1)
    low = int(math.floor(position))
    high = min(low + 1, x.size - 1)
    part = np.partition(x, (low, high))
    level = float(part[low]) + (position - low) * (float(part[high]) - float(part[low]))
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
    x = np.asarray(volume, dtype=np.float32)
    level = threshold * signal_level(x)
    mask = (x > level) & (ndimage.gaussian_filter(x, 1.0, mode="constant") > level)
    planes = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if planes.size == 0:
        return 0, x.shape[axis] - 1
    return int(planes[0]), int(planes[-1])


# --------------------------------------------------------------------------- ranges as data
@dataclass(frozen=True)
class Range:
    """A drawn number: uniform in ``(low, high)`` per level.

    ``levels`` maps a level (:data:`LEVELS`) to ``(low, high)``, or to a tuple of such pairs:
    alternatives, one of which is chosen with equal probability (the same one for every
    :class:`Range` of the table).
    """

    name: str
    meaning: str
    levels: Mapping[str, tuple]


@dataclass(frozen=True)
class Choice:
    """A drawn category: ``options[i]`` with probability ``p[i]``, at the given levels."""

    name: str
    meaning: str
    options: tuple
    p: tuple
    levels: tuple = ("subtle", "prominent")


#: Phase encoding of an axial scan: anterior-posterior (axis 1) 3 times in 4, else left-right.
PE_AXIS = Choice("pe_axis", "phase-encoding axis (1 anterior-posterior, 0 left-right, "
                            "2 inferior-superior: the second phase encoding of 3D sequences)",
                 (1, 0, 2), (0.65, 0.2, 0.15))


def levels_of(ranges) -> tuple[str, ...]:
    """Levels at which a table draws something, in :data:`LEVELS` order."""
    present = set()
    for row in ranges:
        present |= set(row.levels)
    return tuple(level for level in LEVELS if level in present)


def _span(value) -> str:
    if isinstance(value[0], tuple):
        return " or ".join(_span(v) for v in value)
    low, high = value
    if low == high:
        return f"{low:g}"
    return f"{low:g} to {high:g}" if low < 0 else f"{low:g}-{high:g}"


def _cell(row, level: str) -> str:
    if isinstance(row, Choice):
        if level not in row.levels:
            return ""
        if len(row.options) == 1:
            return str(row.options[0])
        return ", ".join(f"{o} (p {p:g})" for o, p in zip(row.options, row.p))
    return _span(row.levels[level]) if level in row.levels else ""


def table_rows(ranges) -> list[dict]:
    """One dict per row of a table: ``parameter``, ``meaning`` and one text cell per level."""
    return [{"parameter": r.name, "meaning": r.meaning, **{lv: _cell(r, lv) for lv in LEVELS}}
            for r in ranges]


def describe(ranges) -> str:
    """The table as reStructuredText bullet lines (for docstrings and the CLI help)."""
    lines = []
    for row in table_rows(ranges):
        cells = "; ".join(f"{lv} {row[lv]}" for lv in LEVELS if row[lv])
        lines.append(f"- ``{row['parameter']}``, {row['meaning']}: {cells}")
    return "\n".join(lines)


def sampler_doc(ranges, intro: str) -> str:
    """Docstring of a sampler, with the table it draws from."""
    return f"{intro}\n\nDrawn uniformly from (``p``: probabilities of a category):\n\n{describe(ranges)}\n"


def levels_at(ranges, level: str, kind: str) -> dict:
    """``{name: (low, high) or alternatives}`` of the :class:`Range` rows at one level."""
    if level not in levels_of(ranges):
        fail(kind, f"no parameter ranges for level {level!r}; expected one of {list(levels_of(ranges))}")
    return {r.name: r.levels[level] for r in ranges if isinstance(r, Range) and level in r.levels}


def alternative(rng, spans: dict) -> dict:
    """Resolve alternatives: ``rng.random()`` picks one (only when there are several)."""
    n = max((len(v) for v in spans.values() if isinstance(v[0], tuple)), default=1)
    if n == 1:
        return spans
    i = int(rng.random() * n)
    return {k: (v[i] if isinstance(v[0], tuple) else v) for k, v in spans.items()}


def uniform(rng, span, digits: int = 4) -> float:
    """One uniform draw from ``span = (low, high)``, rounded for tidy JSON."""
    return round(float(rng.uniform(*span)), digits)


def choose(rng, choice: Choice):
    """One category of ``choice``: consumes exactly one ``rng.random()``."""
    cdf = np.cumsum(choice.p) / np.sum(choice.p)
    return choice.options[int(np.searchsorted(cdf, rng.random(), side="right"))]
