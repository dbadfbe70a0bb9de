"""Incomplete brain coverage: part of the head outside the field of view."""

from __future__ import annotations

import numpy as np

from mriqc_nb.artifacts._common import Choice, Range, as_volume, check_axis, choose, fail, finish, \
    head_extent, levels_at, sampler_doc, uniform

CLASS = "coverage"
TITLE = "Incomplete brain coverage"
PHYSICS = ("The field of view was placed so that part of the head (usually its top) lies "
           "outside it and is not imaged; in k-space nothing is wrong, the object is.")
EDGE = Choice("edge", "the cut edge: (axis, side)", ((2, "+"), (2, "-"), (1, "+")), (0.6, 0.2, 0.2))
RANGES = (
    Range("cut_fraction", "cut / head extent along the axis",
          {"subtle": (0.04, 0.08), "prominent": (0.15, 0.3)}),
    EDGE,
)


def coverage(volume, *, cut_fraction: float, axis: int = 2, side: str = "+") -> np.ndarray:
    """Incomplete coverage: part of the head lies outside the field of view.

    The slab of the FOV was placed too low (or too far back, ...), so the head is cut at one
    edge: along ``axis``, the outermost ``round(cut_fraction * E)`` planes (at least one) of
    the head (``E`` its extent, :func:`head_extent`) and everything beyond them on that
    ``side`` are zero. The rest of the image is unchanged.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
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
    x, _ = as_volume(volume, "coverage")
    axis = check_axis(axis, "coverage", "axis")
    if not 0.0 <= cut_fraction < 1.0:
        fail("coverage", f"cut_fraction must be in [0, 1), got {cut_fraction}")
    if side not in ("+", "-"):
        fail("coverage", f"side must be '+' or '-', got {side!r}")
    first, last = head_extent(x, axis)
    n_cut = int(round(cut_fraction * (last - first + 1)))
    n_cut = max(n_cut, 1) if cut_fraction > 0 else 0  # a cut is never empty
    out = np.moveaxis(x, axis, 0)
    if n_cut:
        if side == "+":
            out[last - n_cut + 1:] = 0.0
        else:
            out[:first + n_cut] = 0.0
    return finish(x)


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "coverage")
    axis, side = choose(rng, EDGE)
    return {"cut_fraction": uniform(rng, spans["cut_fraction"]), "axis": axis, "side": side}


sample.__doc__ = sampler_doc(RANGES, "Cut of a severity.")
