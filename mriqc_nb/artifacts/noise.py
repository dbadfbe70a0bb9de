"""Low signal-to-noise ratio: Rician noise of a magnitude image."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mriqc_nb.artifacts._common import Range, as_volume, fail, finish, sampler_doc, signal_level, \
    levels_at, uniform

CLASS = "intensity"
TITLE = "Low signal-to-noise ratio"
PHYSICS = ("Thermal noise adds independent Gaussian noise to the real and imaginary channels "
           "(white in k-space); the magnitude image is Rician, Rayleigh in the background.")
#: Slabs of the volume with their own noise stream (fixed: results do not depend on the cores).
CHUNKS = 4
RANGES = (
    Range("sigma_fraction", "noise standard deviation / signal level (99th percentile)",
          {"clean": (0.005, 0.02), "subtle": (0.02, 0.04), "prominent": (0.08, 0.15)}),
)


def noise(volume, *, sigma_fraction: float, noise_seed: int) -> np.ndarray:
    """Rician noise of a magnitude image.

    Thermal noise is Gaussian and independent in the real and imaginary channels; the
    magnitude ``sqrt((x + n1)^2 + n2^2)``, ``n1, n2 ~ N(0, sigma)``, is Rician: Rayleigh
    (mean ``sigma * sqrt(pi / 2)``) in the background, close to Gaussian in bright tissue.
    The pair of channels is drawn by the Box-Muller transform (a Rayleigh radius and a uniform
    phase: exactly Gaussian channels, from two uniform draws). The volume is cut into
    :data:`CHUNKS` slabs along axis 0, each with its own stream of ``noise_seed`` (float32),
    processed in parallel: the result does not depend on the number of cores.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
        Magnitude image.
    sigma_fraction : float
        Noise standard deviation as a fraction of :func:`signal_level` (the 99th percentile
        of the volume), >= 0. ``1 / sigma_fraction`` is roughly the SNR of bright tissue.
    noise_seed : int
        Seed of the noise draw, so that the same parameters give the same image.

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, _ = as_volume(volume, "noise")
    if sigma_fraction < 0:
        fail("noise", f"sigma_fraction must be >= 0, got {sigma_fraction}")
    sigma = np.float32(sigma_fraction * signal_level(x))
    seeds = np.random.SeedSequence(int(noise_seed)).spawn(CHUNKS)
    slabs = np.array_split(np.arange(x.shape[0]), CHUNKS)

    def rician(chunk: int) -> None:  # in place on one slab; numpy releases the GIL here
        slab = x[slabs[chunk][0]:slabs[chunk][-1] + 1] if slabs[chunk].size else x[:0]
        rng = np.random.default_rng(seeds[chunk])
        # Box-Muller: the complex noise is sigma * r * exp(i theta), r^2 = -2 ln(u), theta = 2 pi v
        # (exactly Gaussian in each channel), and |x + noise|^2 = x^2 + 2 x sigma r cos(theta)
        # + sigma^2 r^2: uniform draws and one cosine instead of two Gaussian draws.
        power = rng.random(slab.shape, dtype=np.float32)
        cosine = rng.random(slab.shape, dtype=np.float32)
        np.subtract(np.float32(1.0), power, out=power)  # in (0, 1]
        np.log(power, out=power)
        power *= np.float32(-2.0) * sigma * sigma  # (sigma r)^2
        cosine *= np.float32(2.0 * np.pi)
        np.cos(cosine, out=cosine)
        cosine *= np.sqrt(power)
        cosine *= slab
        cosine *= np.float32(2.0)  # 2 x sigma r cos(theta)
        power += cosine
        np.multiply(slab, slab, out=cosine)
        power += cosine
        np.maximum(power, 0.0, out=power)  # rounding
        np.sqrt(power, out=slab)

    with ThreadPoolExecutor(min(CHUNKS, os.cpu_count() or 1)) as pool:
        list(pool.map(rician, range(CHUNKS)))
    return finish(x)


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    spans = levels_at(RANGES, severity, "noise")
    return {"sigma_fraction": uniform(rng, spans["sigma_fraction"]),
            "noise_seed": int(rng.integers(0, 2**31 - 1))}


sample.__doc__ = sampler_doc(RANGES, "Noise level of a severity; ``noise_seed`` is drawn too.")
