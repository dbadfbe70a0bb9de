"""Periodic ghosting along the phase-encoding axis."""

from __future__ import annotations

import numpy as np

from mriqc_nb.artifacts._common import PE_AXIS, Range, as_volume, check_axis, choose, fail, finish, \
    frequencies, levels_at, sampler_doc, uniform
from mriqc_nb.kspace import filter_kspace

CLASS = "motion_ringing"
TITLE = "Periodic ghosting"
PHYSICS = ("A periodic signal change (flow, breathing) modulates every n-th phase-encoding "
           "line; the comb in k-space replicates the head at multiples of FOV/n along the "
           "phase-encoding axis.")
RANGES = (
    Range("n_ghosts", "period of the modulation, k-space lines (integer)",
          {"subtle": (2, 4), "prominent": (2, 4)}),
    Range("intensity", "signal lost on the modulated lines (ghost amplitude: intensity / n_ghosts)",
          {"subtle": (0.04, 0.1), "prominent": (0.35, 0.7)}),
    PE_AXIS,
)


def ghosting(volume, *, n_ghosts: int, intensity: float, pe_axis: int = 1) -> np.ndarray:
    """Periodic ghosts along the phase-encoding axis.

    A signal that changes periodically from line to line (pulsatile flow, respiration)
    modulates k-space: every ``n_ghosts``-th PE line (including the centre line) is scaled by
    ``1 - intensity``. The modulation is a comb in k-space, so the image gets copies of the
    head shifted by multiples of FOV / ``n_ghosts`` along the PE axis (``n_ghosts - 1`` ghosts,
    each of relative amplitude ``intensity / n_ghosts``, wrapping around the FOV), and the head
    itself loses the same fraction. The comb is even in k, so only the PE axis is transformed
    (:func:`mriqc_nb.kspace.filter_kspace`).

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
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
    x, _ = as_volume(volume, "ghosting")
    pe_axis = check_axis(pe_axis, "ghosting")
    if isinstance(n_ghosts, bool) or int(n_ghosts) != n_ghosts or n_ghosts < 2:
        fail("ghosting", f"n_ghosts must be an integer >= 2, got {n_ghosts!r}")
    if not 0.0 <= intensity <= 1.0:
        fail("ghosting", f"intensity must be in [0, 1], got {intensity}")
    modulated = frequencies(x.shape[pe_axis]) % int(n_ghosts) == 0
    return finish(np.abs(filter_kspace(x, {pe_axis: np.where(modulated, 1.0 - intensity, 1.0)})))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "ghosting")
    low, high = spans["n_ghosts"]
    return {"n_ghosts": int(rng.integers(low, high + 1)), "intensity": uniform(rng, spans["intensity"]),
            "pe_axis": choose(rng, PE_AXIS)}


sample.__doc__ = sampler_doc(RANGES, "Ghosting of a severity.")
