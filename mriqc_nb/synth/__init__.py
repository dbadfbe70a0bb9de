"""Synthetic heads from nilearn's bundled MNI152 tissue maps (no download).

Generative model
----------------
**Tissue maps** (:func:`tissue_maps`). The grey- and white-matter probability maps and the brain
mask of the MNI152 2009 template (1 mm, bundled with nilearn) give ``gm`` and ``wm``. A signed
distance ``sd`` (mm, negative inside) to the brain mask defines every other tissue as a shell:
cerebrospinal fluid fills the brain mask plus an outer rim (``sd < csf_rim_mm``) wherever grey
and white matter do not (sulci, ventricles, subarachnoid rim); the skull is the next shell
(``skull_mm`` thick, cortical bone, dark on every contrast) and the scalp (fat and skin) the
next (``scalp_mm`` thick). Below the skull base an analytic soft-tissue *neck* (an elliptic
cylinder with a dome on top, counted as ``scalp``) continues the head downwards and the
medulla continues as a spinal cord in a bony canal, so the head has no flat cut at the
template's inferior edge. Everything else is ``background``. The six maps sum to 1.

**Subject** (:func:`sample_anatomy`, one per subject, shared by its scans). A random affine
(rotation, translation, anisotropic scale, about the head centre), a smooth elastic
displacement, random shell thicknesses (CSF rim, skull, scalp) and a texture seed.

**Scan** (:func:`sample_acquisition`, one per scan). A modality, jittered tissue intensities
(per-modality clinical ordering, contrast ratio varied by a power law), within-tissue texture,
a small repositioning of the head (a subject rescanned is never at the exact same pose), and
the artifact physics at clean strength (:data:`CLEAN_ARTIFACTS`): a bias field, an isotropic
or a thick-slice resolution (a blur along the slice axis) and Rician noise, each a parameter
dict of :mod:`mriqc_nb.artifacts` drawn from its ``"clean"`` range. A clean scan and an
artifact are the same physics at different strengths.

**Rendering** (:func:`make_scan`). For every target voxel, its world coordinate is pulled back
through the inverse of (affine + elastic) into template space, where the (anti-aliased,
cached per voxel size) ``gm``, ``wm`` and ``sd`` maps are sampled with linear interpolation;
the shells are rebuilt there with the subject's thicknesses and a partial-volume ramp one
target voxel wide. Then

    image = sum_t p_t * I_t * (1 + texture_fraction * texture)

is multiplied by the head coil's fall-off below the skull base, then goes through
:func:`mriqc_nb.artifacts.apply` with the acquisition's ``bias``, ``blur`` and ``noise``
parameters, in that order (the coils' sensitivity multiplies the object, the slice profile
blurs what was received, noise is added at reconstruction). Target grids are RAS+,
axis-aligned, and centred on the head: the world origin is the grid centre and the template
head centre is placed there (plus the subject's translation).

The elastic displacement is a smooth Gaussian random field in *world* millimetres (a sum of
Gaussian bumps on a fixed world lattice, drawn from the subject's seed), evaluated separably on
the target grid: cheap, exact, and the same function of world position on every grid, so grids
that share a field of view (all profiles do) see the same anatomy. A scan's repositioning moves
the head by a few mm relative to this 20-30 mm smooth field, which changes it negligibly. The
texture (smoothed white noise, from the subject's texture seed) and the noise are drawn on the
target grid: scans with the same parameters *and* grid are bit-identical.

Everything is deterministic given the parameter dicts, which are JSON-serialisable: a scan can
be regenerated from its row in a scan table.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from mriqc_nb import artifacts
from mriqc_nb.synth.release import RELEASES, apply_release, sample_release
from mriqc_nb.synth.template import DEFAULT_ANATOMY, TISSUES, _fractions, _neck, _smoothed, _template, tissue_maps

__all__ = [
    "MODALITIES",
    "TISSUES",
    "BASE_INTENSITIES",
    "CONTRAST_ORDER",
    "DEFAULT_ANATOMY",
    "tissue_maps",
    "sample_anatomy",
    "sample_acquisition",
    "scan_affine",
    "tissue_probabilities",
    "template_fields",
    "tissue_labels",
    "make_scan",
    "make_subject_scans",
    "CLEAN_ARTIFACTS",
    "RELEASES",
    "sample_release",
    "apply_release",
]

MODALITIES = ("T1w", "T2w", "PDw", "FLAIR")

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.355

#: Typical tissue mean intensities (arbitrary units) before per-scan jitter.
BASE_INTENSITIES = {
    "T1w": {"background": 0.0, "csf": 0.25, "gm": 0.62, "wm": 1.0, "skull": 0.08, "scalp": 0.9},
    "T2w": {"background": 0.0, "csf": 1.0, "gm": 0.6, "wm": 0.44, "skull": 0.06, "scalp": 0.55},
    "PDw": {"background": 0.0, "csf": 1.0, "gm": 0.88, "wm": 0.7, "skull": 0.1, "scalp": 0.85},
    "FLAIR": {"background": 0.0, "csf": 0.12, "gm": 1.0, "wm": 0.74, "skull": 0.05, "scalp": 0.65},
}
#: Brain tissues from brightest to darkest, and the largest ratio allowed between neighbours:
#: the ordering that defines each contrast, kept through the jitter.
CONTRAST_ORDER = {
    "T1w": (("wm", "gm", "csf"), (0.9, 0.8)),
    "T2w": (("csf", "gm", "wm"), (0.85, 0.92)),
    "PDw": (("csf", "gm", "wm"), (1.0, 0.92)),
    "FLAIR": (("gm", "wm", "csf"), (0.92, 0.5)),
}
#: Artifact physics of every acquisition at clean strength, in the order it is applied.
CLEAN_ARTIFACTS = ("bias", "blur", "noise")
#: World z (mm) below which a head coil's sensitivity falls off (about the skull base).
_COIL_EDGE_MM = -60.0
#: Half-extents (mm) of the fixed world lattice of the elastic field, about the grid centre.
_ELASTIC_EXTENT_MM = (200.0, 200.0, 200.0)


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), salt])


def _r(x, nd: int = 4):
    """Round floats for tidy, exactly JSON-round-trippable parameter dicts."""
    return [round(float(v), nd) for v in x] if np.ndim(x) else round(float(x), nd)


# --------------------------------------------------------------------------- parameters
def sample_anatomy(seed: int) -> dict:
    """Draw the subject-level parameters (shared by all scans of one subject).

    Parameters
    ----------
    seed : int
        Non-negative subject seed; the same seed gives the same dict.

    Returns
    -------
    dict
        JSON-serialisable: ``seed``; ``rotation_deg`` (3, about x, y, z, each in [-8, 8]);
        ``translation_mm`` (3, each in [-5, 5]); ``scale`` (3: a global factor in
        [0.85, 1.0], MNI152 heads being larger than average, times a per-axis factor in
        [0.96, 1.04]); ``elastic_mm`` (RMS displacement per axis, [0, 4] mm);
        ``elastic_smooth_mm`` (Gaussian width of the displacement field, [20, 30] mm);
        ``texture_seed`` (int); ``texture_mm`` (Gaussian width of the texture, [2, 3] mm);
        ``csf_rim_mm`` ([1, 3.5]), ``skull_mm`` ([4, 7]), ``scalp_mm`` ([4, 8]) shell
        thicknesses in template mm.
    """
    rng = _rng(seed, 1)
    g = rng.uniform(0.85, 1.0)
    return {
        "seed": int(seed),
        "rotation_deg": _r(rng.uniform(-8.0, 8.0, 3)),
        "translation_mm": _r(rng.uniform(-5.0, 5.0, 3)),
        "scale": _r(g * rng.uniform(0.96, 1.04, 3)),
        "elastic_mm": _r(rng.uniform(0.0, 4.0)),
        "elastic_smooth_mm": _r(rng.uniform(20.0, 30.0)),
        "texture_seed": int(rng.integers(2**31 - 1)),
        "texture_mm": _r(rng.uniform(2.0, 3.0)),
        "csf_rim_mm": _r(rng.uniform(1.0, 3.5)),
        "skull_mm": _r(rng.uniform(4.0, 7.0)),
        "scalp_mm": _r(rng.uniform(4.0, 8.0)),
    }


def sample_acquisition(seed: int, modality: str | None = None) -> dict:
    """Draw the scan-level parameters of one clean acquisition.

    Parameters
    ----------
    seed : int
        Non-negative scan seed; the same seed (and modality) gives the same dict.
    modality : str, optional
        One of :data:`MODALITIES`; drawn uniformly when None.

    Returns
    -------
    dict
        JSON-serialisable: ``seed``, ``modality``; ``contrast_gamma`` (in [0.75, 1.3]: tissue
        ratios to the brightest brain tissue are raised to this power); ``intensities`` (mean
        intensity per tissue, arbitrary units, each jittered by a factor in [0.87, 1.13], brain
        tissues kept in the modality's order of :data:`CONTRAST_ORDER`, background 0);
        ``texture_fraction`` ([0.02, 0.05]); ``coil_falloff_mm`` ([30, 60]: the head coil's
        sensitivity falls as ``exp(-(d / coil_falloff_mm)**2)`` at ``d`` mm below world
        z = -60 mm, so the neck fades as on real scans); ``pose_jitter_deg`` and
        ``pose_jitter_mm`` (3 each, in [-2, 2]); and one parameter dict of
        :func:`mriqc_nb.artifacts.sample_params` at severity ``"clean"`` per name in
        :data:`CLEAN_ARTIFACTS`: ``bias`` (log-field standard deviation 0.005-0.02),
        ``blur`` (thick slices with probability 0.6: a slice profile of FWHM 3-5 mm along
        axis 2, else none) and ``noise`` (sigma 0.005-0.02 of the signal level, and its seed).
        The ranges are those of ``mriqc_nb.artifacts.severity_table()``, column ``clean``.
        Last, ``release``: what the dataset did to the image after the scanner (``"full"``,
        ``"defaced"`` or ``"skull_stripped"``; :mod:`mriqc_nb.synth.release`), applied by
        :func:`mriqc_nb.data.cache.materialise` after any artifact.
    """
    rng = _rng(seed, 2)
    m = rng.integers(len(MODALITIES))  # drawn even when given, so the stream does not shift
    modality = MODALITIES[m] if modality is None else str(modality)
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    base = BASE_INTENSITIES[modality]
    gamma = rng.uniform(0.75, 1.3)
    ref = max(base.values())
    inten = {t: ref * (base[t] / ref) ** gamma * rng.uniform(0.87, 1.13) for t in TISSUES}
    inten["background"] = 0.0
    order, ratios = CONTRAST_ORDER[modality]
    vals = sorted((inten[t] for t in order), reverse=True)
    for i, t in enumerate(order):
        inten[t] = vals[i] if i == 0 else min(vals[i], inten[order[i - 1]] * ratios[i - 1])
    texture = _r(rng.uniform(0.02, 0.05))
    noise = artifacts.sample_params("noise", "clean", seed=rng)  # the acquisition's stream
    bias = artifacts.sample_params("bias", "clean", seed=rng)
    falloff = _r(rng.uniform(30.0, 60.0))
    blur = artifacts.sample_params("blur", "clean", seed=rng)
    return {
        "seed": int(seed),
        "modality": modality,
        "contrast_gamma": _r(gamma),
        "intensities": {t: _r(v) for t, v in inten.items()},
        "texture_fraction": texture,
        "coil_falloff_mm": falloff,
        "pose_jitter_deg": _r(rng.uniform(-2.0, 2.0, 3)),
        "pose_jitter_mm": _r(rng.uniform(-2.0, 2.0, 3)),
        "bias": bias,
        "blur": blur,
        "noise": noise,
        "release": sample_release(seed),
    }


# --------------------------------------------------------------------------- geometry
def scan_affine(grid, spacing_mm) -> np.ndarray:
    """RAS+ voxel-to-world affine of a target grid, world origin at the grid centre.

    Parameters
    ----------
    grid : tuple of 3 int
        Grid shape (x, y, z).
    spacing_mm : tuple of 3 float
        Voxel size in mm.

    Returns
    -------
    ndarray, shape (4, 4)
    """
    n, s = np.asarray(grid, dtype=float), np.asarray(spacing_mm, dtype=float)
    aff = np.diag([*s, 1.0])
    aff[:3, 3] = -(n - 1.0) / 2.0 * s
    return aff


def _rotation(deg) -> np.ndarray:
    """Rotation matrix ``Rz @ Ry @ Rx`` from angles (degrees) about x, y, z."""
    a = np.deg2rad(np.asarray(deg, dtype=float))
    c, s = np.cos(a), np.sin(a)
    rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    return rz @ ry @ rx


def _world_axes(grid, spacing_mm) -> list[np.ndarray]:
    """World coordinates (mm) of the voxel centres along each axis of a target grid."""
    return [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(grid, spacing_mm)]


def _elastic_field(rng, sigma_mm, axes_mm) -> np.ndarray:
    """Smooth Gaussian random field (unit variance) in world mm, evaluated on a target grid.

    A sum of Gaussian bumps (width ``sigma_mm``) with standard-normal weights on a fixed world
    lattice of step ``sigma_mm`` over :data:`_ELASTIC_EXTENT_MM`: the same function of world
    position whatever grid it is evaluated on. The sum is separable, so it is evaluated with
    three small contractions (plain ``einsum`` loops: no BLAS threads, which stall on a busy
    machine).
    """
    nodes = [np.arange(-e, e + sigma_mm / 2.0, sigma_mm) for e in _ELASTIC_EXTENT_MM]
    coef = rng.standard_normal([len(n) for n in nodes])
    # Unit variance: sum over nodes of g**2 is sqrt(pi) per axis when the step equals sigma.
    w = [np.exp(-0.5 * ((p[:, None] - n[None, :]) / sigma_mm) ** 2) / np.pi**0.25
         for n, p in zip(nodes, axes_mm)]
    f = np.einsum("abc,kc->abk", coef, w[2])
    f = np.einsum("abk,jb->ajk", f, w[1])
    return np.einsum("ajk,ia->ijk", f, w[0])


def _texture_field(rng, texture_mm, grid, spacing_mm) -> np.ndarray:
    """Within-tissue texture on the target grid: smoothed white noise, float32.

    White noise smoothed by a Gaussian of width ``texture_mm`` widened by the voxel (FWHM =
    voxel size), scaled to the standard deviation that a unit-variance texture of width
    ``texture_mm`` keeps after averaging over a voxel: ``prod(texture_mm / width)**0.5``.
    """
    width = np.hypot(texture_mm, np.asarray(spacing_mm) / _FWHM_PER_SIGMA)  # mm, per axis
    f = ndi.gaussian_filter(rng.standard_normal(grid, dtype=np.float32),
                            width / np.asarray(spacing_mm), mode="wrap")
    return f * np.float32(np.sqrt(np.prod(texture_mm / width)) / max(f.std(), 1e-12))


def _pullback(anatomy, acquisition, grid, spacing_mm) -> np.ndarray:
    """Template world coordinates (mm), shape (3, *grid), of every target voxel centre."""
    t = _template()
    acq = acquisition or {}
    rot = _rotation(acq.get("pose_jitter_deg", (0, 0, 0))) @ _rotation(anatomy["rotation_deg"])
    shift = np.add(anatomy["translation_mm"], acq.get("pose_jitter_mm", (0, 0, 0)))
    back = np.diag(1.0 / np.asarray(anatomy["scale"], dtype=float)) @ rot.T
    axes = _world_axes(grid, spacing_mm)
    y = [a - s for a, s in zip(axes, shift)]
    xyz = np.empty((3, *grid))
    for c in range(3):
        xyz[c] = (t["centre"][c] + back[c, 0] * y[0][:, None, None]
                  + back[c, 1] * y[1][None, :, None] + back[c, 2] * y[2][None, None, :])
    if anatomy["elastic_mm"] > 0:
        rng = _rng(anatomy["seed"], 3)
        for c in range(3):
            xyz[c] += anatomy["elastic_mm"] * _elastic_field(
                rng, anatomy["elastic_smooth_mm"], axes)
    return xyz


def _anatomy(anatomy: dict) -> dict:
    out = {**DEFAULT_ANATOMY, **anatomy}
    out.setdefault("seed", 0)
    out.setdefault("texture_seed", out["seed"])
    return out


def template_fields(anatomy, grid, spacing_mm, acquisition=None):
    """Template coordinates and maps seen by every voxel of a target grid.

    Returns
    -------
    xyz : ndarray, shape (3, *grid)
        Template (MNI) world coordinates, mm, of each voxel centre (pose and elastic field).
    gm, wm, sd : ndarray of float32, shape ``grid``
        The anti-aliased grey- and white-matter maps and the signed distance to the brain
        mask (mm, negative inside), sampled there.
    """
    anatomy = _anatomy(anatomy)
    grid = tuple(int(n) for n in grid)
    spacing_mm = tuple(float(s) for s in spacing_mm)
    maps, aff = _smoothed(spacing_mm)
    xyz = _pullback(anatomy, acquisition, grid, spacing_mm)
    ijk = np.empty_like(xyz)
    for c in range(3):
        ijk[c] = (xyz[c] - aff[c, 3]) / aff[c, c]
    gm, wm, sd = (ndi.map_coordinates(m, ijk, order=1, mode="nearest", output=np.float32)
                  for m in maps)
    return xyz, gm, wm, sd


def tissue_probabilities(anatomy, grid=(64, 64, 32), spacing_mm=(4.0, 4.0, 6.0),
                         acquisition=None) -> dict[str, np.ndarray]:
    """Tissue fractions of one subject on a target grid (partial-volume, summing to 1).

    Parameters
    ----------
    anatomy : dict
        From :func:`sample_anatomy` (missing keys take :data:`DEFAULT_ANATOMY`).
    grid, spacing_mm : tuple of 3
        Target grid shape and voxel size (mm).
    acquisition : dict, optional
        Only its ``pose_jitter_deg`` / ``pose_jitter_mm`` are used (none when omitted).

    Returns
    -------
    dict of str to ndarray
        One float32 array of shape ``grid`` per name in :data:`TISSUES`.
    """
    anatomy = _anatomy(anatomy)
    xyz, gm, wm, sd = template_fields(anatomy, grid, spacing_mm, acquisition)
    # Partial-volume ramp one target voxel wide along the shell normal: |grad sd| per voxel.
    width = np.sqrt(sum(g**2 for g in np.gradient(sd))).clip(0.5, None)
    return _fractions(gm, wm, sd, _neck(*xyz), width, anatomy)


def tissue_labels(anatomy, grid=(64, 64, 32), spacing_mm=(4.0, 4.0, 6.0),
                  acquisition=None) -> np.ndarray:
    """Most probable tissue per voxel: uint8 indices into :data:`TISSUES`, shape ``grid``."""
    p = tissue_probabilities(anatomy, grid, spacing_mm, acquisition)
    return np.argmax(np.stack([p[t] for t in TISSUES]), axis=0).astype(np.uint8)


# --------------------------------------------------------------------------- rendering
def make_scan(anatomy: dict, acquisition: dict, grid=(64, 64, 32), spacing_mm=(4.0, 4.0, 6.0),
              return_labels: bool = False):
    """Render one clean scan.

    Parameters
    ----------
    anatomy : dict
        Subject parameters (:func:`sample_anatomy`).
    acquisition : dict
        Scan parameters (:func:`sample_acquisition`). Missing ``intensities`` take the
        modality's :data:`BASE_INTENSITIES`; missing texture, coil falloff, jitter, or any of
        :data:`CLEAN_ARTIFACTS` (``bias``, ``blur``, ``noise``) mean none.
    grid : tuple of 3 int
        Output shape (x, y, z); axis 2 is the slice axis.
    spacing_mm : tuple of 3 float
        Voxel size in mm.
    return_labels : bool
        Also return :func:`tissue_labels` for the same pose.

    Returns
    -------
    nibabel.Nifti1Image
        float32, shape ``grid``, values >= 0, RAS+ affine from :func:`scan_affine`.
    labels : ndarray of uint8, optional
        Only with ``return_labels``.
    """
    anatomy = _anatomy(anatomy)
    acq = acquisition
    grid = tuple(int(n) for n in grid)
    spacing_mm = tuple(float(s) for s in spacing_mm)
    p = tissue_probabilities(anatomy, grid, spacing_mm, acq)
    inten = acq.get("intensities") or BASE_INTENSITIES[acq["modality"]]
    img = sum(np.float32(inten[t]) * p[t] for t in TISSUES if inten.get(t, 0.0))
    axes = _world_axes(grid, spacing_mm)
    if acq.get("texture_fraction", 0.0) > 0:
        tex = _texture_field(_rng(anatomy["texture_seed"], 4), anatomy["texture_mm"],
                             grid, spacing_mm)
        img *= np.clip(1.0 + np.float32(acq["texture_fraction"]) * tex, 0.0, None)
    falloff = acq.get("coil_falloff_mm")
    if falloff:
        below = np.clip(_COIL_EDGE_MM - axes[2], 0.0, None) / falloff
        img *= np.exp(-(below**2)).astype(np.float32)[None, None, :]
    for kind in CLEAN_ARTIFACTS:
        if acq.get(kind):
            img = artifacts.apply(img, acq[kind], spacing_mm=spacing_mm)
    img = np.maximum(img, 0.0).astype(np.float32)
    out = nib.Nifti1Image(img, scan_affine(grid, spacing_mm))
    out.header.set_xyzt_units("mm", "sec")
    out.set_qform(out.affine, code=1)
    out.set_sform(out.affine, code=1)
    if return_labels:
        labels = np.argmax(np.stack([p[t] for t in TISSUES]), axis=0).astype(np.uint8)
        return out, labels
    return out


def make_subject_scans(subject_seed: int, n_scans: int, grid=(64, 64, 32),
                       spacing_mm=(4.0, 4.0, 6.0), modalities=None) -> list[tuple]:
    """Several scans of one subject: one anatomy, ``n_scans`` acquisitions.

    Parameters
    ----------
    subject_seed : int
        Seed of :func:`sample_anatomy`; the acquisition seeds derive from it.
    n_scans : int
        Number of scans.
    grid, spacing_mm : tuple of 3
        Target grid and voxel size (mm).
    modalities : sequence of str, optional
        Modality of scan ``i`` is ``modalities[i % len(modalities)]``; drawn at random when
        None.

    Returns
    -------
    list of (anatomy, acquisition, Nifti1Image)
    """
    anatomy = sample_anatomy(subject_seed)
    seeds = _rng(subject_seed, 6).integers(2**31 - 1, size=n_scans)
    out = []
    for i, s in enumerate(seeds):
        mod = None if not modalities else modalities[i % len(modalities)]
        acq = sample_acquisition(int(s), mod)
        out.append((anatomy, acq, make_scan(anatomy, acq, grid, spacing_mm)))
    return out
