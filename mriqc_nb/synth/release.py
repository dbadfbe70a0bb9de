"""What happens to an image after the scanner: defacing and skull-stripping (the *release*).

Public datasets seldom publish heads as the scanner reconstructed them. Most are *defaced*
(face and ears-forward soft tissue removed so that a face cannot be rendered: OpenNeuro's
default), some are *skull-stripped* (only the brain is kept). A detector that has seen only
whole heads meets a different object in them: measured on this project's first built-in
model, half of the skull-stripped *clean* images of ``benchmarks/bench_cross_simulator.py``
were flagged. So every synthetic scan carries a release, drawn with its acquisition
(:func:`sample_release`), and :func:`mriqc_nb.data.cache.materialise` applies it *after* the
artifact (the artifact happened in the scanner; the release is done to the reconstructed image),
to clean and artifact scans alike, so the release is no cue to the label.

Geometry (template, i.e. MNI, millimetres, so it follows each subject's pose and shape):

- ``"defaced"``: voxels in front of and below a plane through (y, z) = (10, -60) and (80, 0)
  are set to zero, except within :data:`DEFACE_KEEP_MM` of the brain mask: the eyes, nose,
  mouth and chin go, the brain and the skull over it stay.
- ``"skull_stripped"``: voxels farther than :data:`STRIP_MARGIN_MM` outside the brain mask, or
  below the cerebellum (:data:`STRIP_FLOOR_MM`), are set to zero: a hard mask, as the usual
  tools write it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RELEASES", "RELEASE_P", "sample_release", "release_mask", "apply_release"]

#: The releases and how often each is drawn (whole head, defaced, skull-stripped).
RELEASES = ("full", "defaced", "skull_stripped")
RELEASE_P = (0.6, 0.2, 0.2)
#: Defacing keeps every voxel within this distance (mm) of the brain mask.
DEFACE_KEEP_MM = 8.0
#: Skull-stripping keeps the brain mask dilated by this margin (mm) ...
STRIP_MARGIN_MM = 1.0
#: ... above this template z (mm): the brainstem is cut below the cerebellum.
STRIP_FLOOR_MM = -70.0


def sample_release(seed: int) -> str:
    """The release of one acquisition (a stream of its own: other draws do not shift)."""
    rng = np.random.default_rng([int(seed), 7])
    return RELEASES[int(rng.choice(len(RELEASES), p=RELEASE_P))]


def _check(release) -> str:
    release = "full" if release is None else str(release)
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; expected one of {RELEASES}")
    return release


def release_mask(anatomy: dict, acquisition: dict, grid, spacing_mm) -> np.ndarray | None:
    """Voxels that the acquisition's release keeps (bool, shape ``grid``); None for ``"full"``.

    Parameters
    ----------
    anatomy, acquisition : dict
        The scan's parameters (:func:`mriqc_nb.synth.sample_anatomy`,
        :func:`mriqc_nb.synth.sample_acquisition`); ``acquisition["release"]`` (default
        ``"full"``) names the release.
    grid, spacing_mm : tuple of 3
        The grid the scan was rendered on.
    """
    from mriqc_nb.synth import template_fields

    release = _check(acquisition.get("release"))
    if release == "full":
        return None
    xyz, _, _, sd = template_fields(anatomy, grid, spacing_mm, acquisition)
    if release == "skull_stripped":
        return (sd < STRIP_MARGIN_MM) & (xyz[2] > STRIP_FLOOR_MM)
    y, z = xyz[1], xyz[2]
    face = (y > 10.0) & (z < -60.0 + (60.0 / 70.0) * (y - 10.0))
    return ~(face & (sd > DEFACE_KEEP_MM))


def apply_release(data: np.ndarray, anatomy: dict, acquisition: dict, spacing_mm) -> np.ndarray:
    """``data`` (rendered on its own grid with ``spacing_mm``) after the acquisition's release.

    Returns ``data`` itself for ``"full"``, else a float32 copy with the removed voxels at 0.
    """
    data = np.asarray(data)
    keep = release_mask(anatomy, acquisition, data.shape, spacing_mm)
    if keep is None:
        return data
    return np.where(keep, data, 0).astype(np.float32)
