"""Spike (herringbone): bad samples in k-space."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from mriqc_nb.artifacts._common import Range, as_volume, fail, finish, levels_at, sampler_doc, \
    signal_level, uniform

CLASS = "intensity"
TITLE = "Spike (herringbone)"
PHYSICS = ("An electrical discharge corrupts a single k-space sample; its Fourier transform "
           "is a plane wave, so stripes whose frequency is the spike's k-position cross the "
           "image.")
RANGES = (
    Range("in_plane_position", "|k-position| along axes 0 and 1 (random sign), fraction of the half-width",
          {"subtle": (0.1, 0.6), "prominent": (0.1, 0.6)}),
    Range("slice_position", "k-position along axis 2, fraction of the half-width",
          {"subtle": (-0.3, 0.3), "prominent": (-0.3, 0.3)}),
    Range("amplitude", "stripe amplitude / signal level (99th percentile)",
          {"subtle": (0.015, 0.03), "prominent": (0.1, 0.25)}),
)


def _k_index(fraction: float, n: int) -> int:
    """Array index of the k-space point at ``fraction`` of the half-width from the centre."""
    return int(np.clip(n // 2 + round(fraction * (n // 2)), 0, n - 1))


def _plane_wave(shape, index) -> np.ndarray:
    """Image of a unit sample at centred k-space ``index``: ``from_kspace(delta, magnitude=False)``.

    ``prod_a exp(2 pi i f_a (m_a - n_a // 2) / n_a) / sqrt(n_a)``, ``f_a = index_a - n_a // 2``:
    separable, so it costs three 1-D exponentials and two products.
    """
    wave = np.ones((1, 1, 1), dtype=np.complex64)
    for axis, (n, i) in enumerate(zip(shape, index)):
        m = np.arange(n) - n // 2
        factor = (np.exp(2j * np.pi * (i - n // 2) * m / n) / math.sqrt(n)).astype(np.complex64)
        wave = wave * factor.reshape([-1 if a == axis else 1 for a in range(3)])
    return wave


def spike(volume, *, spikes) -> np.ndarray:
    """Spike (herringbone) artifact: bad samples in k-space.

    An electrical discharge during readout corrupts single k-space samples. Each spike adds a
    real value to the sample at ``k_position``; its inverse transform is a plane wave, so the
    image is overlaid with stripes whose spatial frequency (cycles across the FOV, per axis)
    equals the spike's distance from the k-space centre in lines. The spike's value is
    ``amplitude * signal_level * sqrt(n_voxels)`` (unitary transform), so that the stripes'
    amplitude in the image is ``amplitude`` x :func:`signal_level` (the 99th percentile),
    whatever the size of the head in the FOV. The transform is linear, so the image is
    ``|x + sum of the spikes' plane waves|``, computed without a Fourier transform.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    spikes : list of dict
        Each ``{"k_position": [f0, f1, f2], "amplitude": a}``: ``f`` are fractions of the
        k-space half-width from the centre along each axis, in [-1, 1] (index
        ``n // 2 + round(f * (n // 2))``); ``a >= 0`` is the stripe amplitude as a fraction
        of the signal level.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, _ = as_volume(volume, "spike")
    if not isinstance(spikes, (list, tuple)):
        fail("spike", "spikes must be a list of {'k_position', 'amplitude'} dicts")
    unit = signal_level(x) * math.sqrt(x.size)
    waves = np.zeros(x.shape, dtype=np.complex64)
    for s in spikes:
        if not isinstance(s, Mapping) or set(s) != {"k_position", "amplitude"}:
            fail("spike", f"each spike needs exactly k_position and amplitude; got {s!r}")
        if len(s["k_position"]) != 3 or not all(-1 <= f <= 1 for f in s["k_position"]):
            fail("spike", f"k_position must be 3 fractions in [-1, 1], got {s['k_position']}")
        if s["amplitude"] < 0:
            fail("spike", f"amplitude must be >= 0, got {s['amplitude']}")
        index = tuple(_k_index(f, n) for f, n in zip(s["k_position"], x.shape))
        waves += np.complex64(s["amplitude"] * unit) * _plane_wave(x.shape, index)
    x += waves.real
    return finish(np.hypot(x, waves.imag, out=x))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "spike")
    signs = rng.choice([-1.0, 1.0], size=2)
    position = [round(float(s * rng.uniform(*spans["in_plane_position"])), 4) for s in signs]
    position.append(uniform(rng, spans["slice_position"]))
    return {"spikes": [{"k_position": position, "amplitude": uniform(rng, spans["amplitude"])}]}


sample.__doc__ = sampler_doc(RANGES, "One spike of a severity.")
