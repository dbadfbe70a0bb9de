"""Intensity inhomogeneity: the smooth multiplicative field of the receive coils."""

from __future__ import annotations

import functools

import numpy as np

from mriqc_nb.artifacts._common import Range, as_volume, fail, finish, levels_at, sampler_doc

CLASS = "intensity"
TITLE = "Intensity inhomogeneity (bias field)"
PHYSICS = ("The receive coils' sensitivity varies smoothly across the head and multiplies "
           "the image by a slowly varying positive field; in k-space it is a narrow blur.")
RANGES = (
    Range("log_field_std", "standard deviation of the log-field inside the unit ball",
          {"clean": (0.005, 0.02), "subtle": (0.03, 0.06), "prominent": (0.15, 0.3)}),
)
DEGREE = 3


def _coordinates(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def _monomials(degree: int = DEGREE) -> list[tuple[int, int, int]]:
    return [(i, j, k) for d in range(1, degree + 1)
            for i in range(d + 1) for j in range(d + 1 - i) for k in [d - i - j]]


def bias_field(shape, terms) -> np.ndarray:
    """Smooth, strictly positive multiplicative field ``exp(f)``.

    ``f = sum(c * x**i * y**j * z**k for i, j, k, c in terms)`` is a polynomial of the
    normalised voxel coordinates ``x, y, z`` in [-1, 1] (first to last voxel). It is evaluated
    separably: the terms are summed over ``k`` on the z axis, over ``j`` on (y, z) planes, and
    only then over ``i`` on the grid.

    Parameters
    ----------
    shape : tuple of int
        Grid (nx, ny, nz).
    terms : list of [i, j, k, c]
        Monomial exponents (non-negative ints, ``i + j + k <= 3``) and coefficients.

    Returns
    -------
    numpy.ndarray, float32, shape ``shape``
    """
    x, y, z = (_coordinates(int(n)) for n in shape)
    coef = np.zeros((DEGREE + 1,) * 3)
    for term in terms:
        if len(term) != 4:
            fail("bias", f"each term must be [i, j, k, coefficient], got {term!r}")
        *powers, c = term
        if any(int(p) != p or p < 0 for p in powers) or sum(powers) > DEGREE:
            fail("bias", f"exponents must be non-negative ints of total degree <= {DEGREE}, got {term!r}")
        coef[tuple(int(p) for p in powers)] += c
    zpow = z[None, :] ** np.arange(DEGREE + 1)[:, None]                 # (k, nz)
    per_ij = np.einsum("ijk,kz->ijz", coef, zpow)                        # (i, j, nz)
    ypow = y[None, :] ** np.arange(DEGREE + 1)[:, None]                 # (j, ny)
    per_i = np.einsum("ijz,jy->iyz", per_ij, ypow).astype(np.float32)   # (i, ny, nz)
    log_field = np.zeros(tuple(int(n) for n in shape), dtype=np.float32)
    for i in range(DEGREE + 1):
        if np.any(per_i[i]):
            log_field += (x.astype(np.float32) ** i)[:, None, None] * per_i[i][None]
    return np.exp(log_field, out=log_field)


def bias(volume, *, terms) -> np.ndarray:
    """Intensity inhomogeneity (bias field) of the receive coils.

    The coils' sensitivity varies smoothly across the head, so the image is multiplied by a
    slowly varying positive field, :func:`bias_field` (``exp`` of a polynomial of degree
    <= 3 of the normalised coordinates). k-space is blurred by the field's narrow spectrum.

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    terms : list of [i, j, k, c]
        Exponents and coefficients of the log-field polynomial (see :func:`bias_field`).

    Returns
    -------
    numpy.ndarray, float32, shape (nx, ny, nz)
    """
    x, _ = as_volume(volume, "bias")
    x *= bias_field(x.shape, terms)
    return finish(x)


@functools.lru_cache(maxsize=1)
def _ball_powers(n: int = 17):
    """Powers 0..DEGREE of x, y and z at the points of an ``n``**3 grid on [-1, 1]**3 that lie in
    the unit ball (C order): where :func:`sample` measures the spread of a drawn field."""
    g = np.linspace(-1, 1, n)
    gx, gy, gz = np.meshgrid(g, g, g, indexing="ij")
    ball = gx**2 + gy**2 + gz**2 <= 1
    return tuple(tuple(a[ball] ** d for d in range(DEGREE + 1)) for a in (gx, gy, gz))


def sample(rng, severity: str, shape, spacing_mm) -> dict:
    target_span = levels_at(RANGES, severity, "bias")["log_field_std"]
    monomials = _monomials()
    coeffs = rng.uniform(-1, 1, size=len(monomials)) / np.array([sum(m) for m in monomials])
    px, py, pz = _ball_powers()
    # the field inside the ball only, term by term in the order (and the association) of
    # c * x**i * y**j * z**k on the whole grid: the same floats, without the powers per call
    log_field = sum(c * px[i] * py[j] * pz[k] for c, (i, j, k) in zip(coeffs, monomials))
    coeffs = coeffs * rng.uniform(*target_span) / log_field.std()
    return {"terms": [[i, j, k, round(float(c), 5)] for (i, j, k), c in zip(monomials, coeffs)]}


sample.__doc__ = sampler_doc(
    RANGES, f"A degree-{DEGREE} log-field with random coefficients (each uniform in [-1, 1] over its "
    "degree), rescaled to a drawn standard deviation inside the unit ball (where the head is): "
    "0.3 is a field of about +-60% across the head, 0.02 about +-4%.")
