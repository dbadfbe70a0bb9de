"""The MNI152 tissue maps (bundled with nilearn) that every synthetic head starts from.

:func:`tissue_maps` gives the six tissue probability maps on the template's 1 mm grid; the
private helpers rebuild the shells (CSF rim, skull, scalp) and the analytic neck at any voxel
size, with a partial-volume ramp (see :mod:`mriqc_nb.synth` for the generative model).
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

__all__ = ["TISSUES", "DEFAULT_ANATOMY", "tissue_maps"]

TISSUES = ("background", "csf", "gm", "wm", "skull", "scalp")
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.355
#: Anatomy defaults, used for keys a hand-written parameter dict leaves out.
DEFAULT_ANATOMY = {
    "rotation_deg": [0.0, 0.0, 0.0],
    "translation_mm": [0.0, 0.0, 0.0],
    "scale": [1.0, 1.0, 1.0],
    "elastic_mm": 0.0,
    "elastic_smooth_mm": 25.0,
    "texture_mm": 2.0,
    "csf_rim_mm": 2.0,
    "skull_mm": 5.5,
    "scalp_mm": 6.0,
}
#: Neck (template world mm): elliptic cylinder below ``z0`` with an ellipsoidal dome on top.
_NECK = {"centre": (0.0, -25.0), "semi_axes": (55.0, 58.0), "z0": -50.0, "dome": 40.0,
         "fillet": 15.0}

@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """Base maps on the MNI152 1 mm grid: ``gm``, ``wm``, signed distance ``sd`` (mm)."""
    from nilearn import datasets

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    affine = np.asarray(gm_img.affine, dtype=float)
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        raise RuntimeError("expected an axis-aligned MNI152 template")
    gm = np.asarray(gm_img.get_fdata(dtype=np.float32))
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32))
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0.5
    # The medulla tapers to a point at the inferior edge: continue it as a cord of constant
    # section (slice 3, ~14 mm across); sampling beyond the grid repeats the edge slice.
    for a in (gm, wm, mask):
        a[:, :, :3] = a[:, :, 3:4]
    brain = gm + wm
    over = brain > 1.0
    gm[over] /= brain[over]
    wm[over] /= brain[over]
    # Signed distance to the mask boundary (mm; template voxels are 1 mm), negative inside.
    d_out = ndi.distance_transform_edt(~mask)
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(mask))
    d_in = np.zeros(mask.shape, dtype=np.float32)
    d_in[box] = ndi.distance_transform_edt(mask[box])
    sd = np.where(mask, 0.5 - d_in, d_out - 0.5)
    sd = np.clip(sd, -10.0, 80.0).astype(np.float32)
    # Head centre (template world mm): centre of the brain's bounding box in x and y; in z,
    # 60 mm below the top of the brain, which leaves ~20 mm above the scalp in a 192 mm FOV.
    idx = np.nonzero(mask[:, :, 3:])
    lo = np.array([i.min() for i in idx]) + [0, 0, 3]
    hi = np.array([i.max() for i in idx]) + [0, 0, 3]
    top = nib.affines.apply_affine(affine, hi)
    mid = nib.affines.apply_affine(affine, (lo + hi) / 2.0)
    centre = np.array([mid[0], mid[1], top[2] - 60.0])
    return {"gm": gm, "wm": wm, "sd": sd, "affine": affine, "centre": centre}


@functools.lru_cache(maxsize=4)
def _smoothed(spacing_mm: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``gm``, ``wm``, ``sd`` anti-aliased for a target voxel size, and decimated.

    Each map is smoothed with a Gaussian of FWHM ``sqrt(s**2 - 1)`` mm along each axis (so the
    1 mm template voxel plus the smoothing match a target voxel of ``s`` mm), then kept every
    ``floor(s / 2)`` voxels. Returns the stack ``(3, X, Y, Z)`` and the 4x4 affine from its
    voxel indices to template world mm.
    """
    t = _template()
    vox = np.abs(np.diag(t["affine"])[:3])
    s = np.asarray(spacing_mm, dtype=float) / vox
    sigma = np.sqrt(np.maximum(s**2 - 1.0, 0.0)) / _FWHM_PER_SIGMA
    q = np.maximum(np.floor(s / 2.0), 1).astype(int)
    out = []
    for name in ("gm", "wm", "sd"):
        a = ndi.gaussian_filter(t[name], sigma, mode="nearest") if sigma.any() else t[name]
        out.append(np.ascontiguousarray(a[:: q[0], :: q[1], :: q[2]]))
    return np.stack(out), t["affine"] @ np.diag([*q, 1.0])


def _ramp(x):
    """Partial-volume ramp: 0 below -0.5, 1 above 0.5, linear in between."""
    return np.clip(x + 0.5, 0.0, 1.0)


def _neck(x, y, z):
    """Approximate signed distance (mm) to the neck (elliptic cylinder + dome), template mm."""
    (cx, cy), (ax, ay), z0, az = _NECK["centre"], _NECK["semi_axes"], _NECK["z0"], _NECK["dome"]
    rho = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
                  + (np.maximum(z - z0, 0.0) / az) ** 2)
    return ((rho - 1.0) * min(ax, ay)).astype(np.float32)


def _smooth_min(a, b, k):
    """Smooth union of two signed distances: a fillet of about ``k`` mm in concave corners."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * (k / 4.0)


def _fractions(gm, wm, sd, neck_sd, width_mm, anatomy) -> dict:
    """Six tissue fractions (summing to 1) from sampled base maps and shell thicknesses."""
    b_csf = anatomy["csf_rim_mm"]
    b_skull = b_csf + anatomy["skull_mm"]
    b_scalp = b_skull + anatomy["scalp_mm"]
    env = _ramp((b_csf - sd) / width_mm)  # brain + CSF envelope
    brain = gm + wm
    f = np.where(brain > env, env / np.maximum(brain, 1e-6), 1.0)
    gm, wm = gm * f, wm * f
    skull_cum = _ramp((b_skull - sd) / width_mm)
    head = _ramp(-_smooth_min(sd - b_scalp, neck_sd, _NECK["fillet"]) / width_mm)
    out = {
        "csf": env - gm - wm,
        "gm": gm,
        "wm": wm,
        "skull": skull_cum - env,
        "scalp": np.maximum(head - skull_cum, 0.0),
        "background": 1.0 - np.maximum(head, skull_cum),
    }
    return {k: np.clip(out[k], 0.0, 1.0).astype(np.float32) for k in TISSUES}


@functools.lru_cache(maxsize=1)
def tissue_maps() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Soft tissue probability maps on the MNI152 1 mm grid (cached).

    Shells use the default thicknesses of :data:`DEFAULT_ANATOMY` (CSF rim 2 mm, skull
    5.5 mm, scalp 6 mm) and a 1 mm partial-volume ramp; the neck and the spinal cord reach the
    grid's inferior edge (:func:`make_scan` continues them below it).

    Returns
    -------
    maps : dict of str to ndarray
        One float32 array per name in :data:`TISSUES`, shape (197, 233, 189), values in
        [0, 1], summing to 1 voxel-wise.
    affine : ndarray, shape (4, 4)
        Voxel-to-world (MNI, mm) affine of the template grid.
    """
    t = _template()
    ijk = np.indices(t["gm"].shape, sparse=True)
    xyz = [np.float32(t["affine"][c, c] * ijk[c] + t["affine"][c, 3]) for c in range(3)]
    maps = _fractions(t["gm"], t["wm"], t["sd"], _neck(*xyz), 1.0, DEFAULT_ANATOMY)
    return maps, t["affine"].copy()
