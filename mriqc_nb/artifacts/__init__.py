"""Physically based MRI artifact simulators.

The raters of Pizarro et al. (2023) sorted artifacts into three classes; the paper merges them
into one "artifact" label, and this module simulates each class from its physical cause:

``intensity``
    The signal is right in place but wrong in value: thermal noise (:func:`noise`), a smooth
    receive-coil inhomogeneity (:func:`bias`) and the herringbone of a k-space spike
    (:func:`spike`).
``motion_ringing``
    The image is smeared, ghosted or rings: rigid head motion between k-space lines
    (:func:`motion`), periodic ghosts (:func:`ghosting`), Gibbs ringing from a truncated
    k-space (:func:`ringing`) and the loss of resolution of a blurred or thick-slice scan
    (:func:`blur`).
``coverage``
    The field of view (FOV) is wrong: the head is cut by its edge (:func:`coverage`) or is
    larger than it and folds back in (:func:`wraparound`).

The k-space view
----------------
A scanner measures k-space, the Fourier transform of the object, one phase-encoding (PE) line
after another, and reconstructs the magnitude of the inverse transform. Many artifacts are a
simple edit of k-space: motion mixes lines measured in different head poses, ghosting
modulates lines periodically, a spike adds one bad sample, ringing discards the outer lines,
wraparound samples the lines too coarsely. Each of those simulators is literally
``from_kspace(edit(to_kspace(volume)))`` (:mod:`mriqc_nb.kspace`), which is why they are
easy to test: the edit can be read back from the k-space of the output. They compute that
same image with fewer transforms: ghosting and ringing transform only the edited axes, a
spike is added as its plane wave, motion transforms only along the PE axis (module notes).

Layout
------
One module per kind (``artifacts/motion.py``, ...) holds its rater class, its physics text,
its ranges as data (``RANGES``), its simulator and its sampler; this module is the registry
(:data:`ARTIFACTS`) and the params-dict interface.

Conventions
-----------
Volumes are 3-D magnitude images (>= 0, any scale) in RAS+ voxel order: axis 0 left-right,
axis 1 posterior-anterior (the default PE axis of an axial scan), axis 2 inferior-superior (the
slice axis). ``spacing_mm`` gives the voxel size along each axis in mm. Every simulator
returns a new float32 array of the same shape, finite and >= 0; the input is never modified.

Drawing parameters is separate from applying them::

    params = sample_params("motion", "prominent", seed=3, shape=volume.shape,
                           spacing_mm=(4, 4, 6))  # a JSON-serialisable dict
    corrupted = apply(volume, params, spacing_mm=(4, 4, 6))  # deterministic
    corrupted, params = corrupt(image, "motion", "prominent", seed=3)  # a nibabel image

so every simulated scan can be regenerated from the row of the scan table that stores its
parameters. The per-kind functions (:func:`motion`, :func:`ghosting`, ...) take the same
parameters as explicit keywords in physical units (degrees, millimetres, fractions of k-space,
of the head or of the signal).

Severities
----------
"prominent" is calibrated to be obvious to a person looking at the middle slices, "subtle" to
be hard to see (checked by eye on the MNI152 template at 2 and 4 mm); "clean" (noise, bias,
blur only) is the strength of a clean acquisition (:mod:`mriqc_nb.synth`). Each kind's module
holds its ranges as data (``RANGES``); the samplers draw uniformly from them, and
:func:`severity_table` (the book's table), the samplers' docstrings and ``mriqc-nb simulate
--help`` are written from them. Signal level: the 99th percentile (:func:`signal_level`);
head extent: :func:`head_extent`.

Voxel size
----------
``spacing_mm`` is never assumed: a nibabel image or a path carries it in its header, a bare
array needs it (``apply``, ``corrupt`` and the simulators that use it raise otherwise).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Mapping

import numpy as np

from mriqc_nb.artifacts import bias as _bias
from mriqc_nb.artifacts import blur as _blur
from mriqc_nb.artifacts import coverage as _coverage
from mriqc_nb.artifacts import ghosting as _ghosting
from mriqc_nb.artifacts import motion as _motion
from mriqc_nb.artifacts import noise as _noise
from mriqc_nb.artifacts import ringing as _ringing
from mriqc_nb.artifacts import spike as _spike
from mriqc_nb.artifacts import wraparound as _wraparound
from mriqc_nb.artifacts._common import LEVELS, as_volume, describe, fail, head_extent, \
    levels_of, signal_level, table_rows
from mriqc_nb.artifacts.bias import bias, bias_field
from mriqc_nb.artifacts.blur import blur
from mriqc_nb.artifacts.coverage import coverage
from mriqc_nb.artifacts.ghosting import ghosting
from mriqc_nb.artifacts.motion import motion
from mriqc_nb.artifacts.noise import noise
from mriqc_nb.artifacts.ringing import ringing
from mriqc_nb.artifacts.spike import spike
from mriqc_nb.artifacts.wraparound import wraparound

__all__ = [
    "SEVERITIES",
    "ARTIFACT_CLASSES",
    "Artifact",
    "ARTIFACTS",
    "sample_params",
    "apply",
    "corrupt",
    "class_table",
    "severity_table",
    "motion",
    "ghosting",
    "spike",
    "noise",
    "bias",
    "blur",
    "ringing",
    "wraparound",
    "coverage",
    "bias_field",
    "signal_level",
    "head_extent",
]

SEVERITIES = ("subtle", "prominent")
ARTIFACT_CLASSES = ("intensity", "motion_ringing", "coverage")


@dataclass(frozen=True)
class Artifact:
    """One simulated artifact: its rater class, its physics, its ranges and its functions.

    ``simulate`` is the per-kind function (:func:`motion`, ...); ``ranges`` the table its
    sampler draws from (``module.RANGES``); ``sample(rng, severity, shape, spacing_mm)`` draws
    the simulator's keywords for a level (``"clean"`` too for noise, bias and blur).
    """

    name: str
    artifact_class: str
    title: str
    physics: str
    ranges: tuple
    simulate: Callable
    sample: Callable

    @property
    def levels(self) -> tuple[str, ...]:
        """Levels with parameter ranges: the severities, and "clean" where a clean scan has it."""
        return levels_of(self.ranges)

    def ranges_text(self) -> str:
        """The ranges as text lines, one per drawn parameter (for help texts and docstrings)."""
        return describe(self.ranges)

    def keywords(self) -> tuple[set, set]:
        """(all keywords of the simulator but ``spacing_mm``, the required ones)."""
        parameters = inspect.signature(self.simulate).parameters
        keywords = {p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY} - {"spacing_mm"}
        return keywords, {p for p in keywords if parameters[p].default is inspect.Parameter.empty}


def _artifact(module: ModuleType) -> Artifact:
    name = module.__name__.rsplit(".", 1)[-1]
    return Artifact(name, module.CLASS, module.TITLE, module.PHYSICS, module.RANGES,
                    getattr(module, name), module.sample)


ARTIFACTS: dict[str, Artifact] = {
    a.name: a for a in map(_artifact, [_motion, _ghosting, _spike, _noise, _bias, _blur, _ringing,
                                       _wraparound, _coverage])
}


def _get(kind) -> Artifact:
    if kind not in ARTIFACTS:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {list(ARTIFACTS)}")
    return ARTIFACTS[kind]


def sample_params(kind: str, severity: str = "prominent", seed=0, shape=None,
                  spacing_mm=None) -> dict:
    """Draw the parameters of one artifact at one severity.

    Parameters
    ----------
    kind : str
        A key of :data:`ARTIFACTS`.
    severity : {"subtle", "prominent"} or "clean"
        "prominent" is meant to be obvious to a rater, "subtle" hard to see; "clean" (noise,
        bias and blur) is the strength of a clean acquisition. The ranges:
        :func:`severity_table`.
    seed : int or numpy.random.Generator
        Seed (or generator) of the draw.
    shape : tuple of int, optional
        Grid the artifact will be applied on.
    spacing_mm : tuple of float, optional
        Voxel size in mm; required by the kinds whose ranges are in voxels (blur).

    Returns
    -------
    dict
        JSON-serialisable (plain ints, floats, strings and lists): ``kind``, ``severity`` and
        the keywords of the simulator.
    """
    artifact = _get(kind)
    if severity not in artifact.levels:
        fail(kind, f"unknown severity {severity!r}; expected one of {list(artifact.levels)}")
    rng = np.random.default_rng(seed)
    shape = None if shape is None else tuple(int(n) for n in shape)
    spacing_mm = None if spacing_mm is None else tuple(float(s) for s in spacing_mm)
    return {"kind": kind, "severity": severity, **artifact.sample(rng, severity, shape, spacing_mm)}


def apply(volume, params: Mapping, spacing_mm=None) -> np.ndarray:
    """Apply a parameter dict (from :func:`sample_params`, or a scan-table row) to a volume.

    Dispatches on ``params["kind"]``; deterministic (same inputs, bit-identical output).

    Parameters
    ----------
    volume : array_like, nibabel image or path, shape (nx, ny, nz)
    params : dict
        ``kind``, optionally ``severity`` (ignored), and the simulator's keywords.
    spacing_mm : tuple of float
        Voxel size in mm: required for an array, read from the header of an image or path.

    Returns
    -------
    numpy.ndarray, float32, same shape as ``volume``; finite and >= 0.
    """
    if not isinstance(params, Mapping) or "kind" not in params:
        raise ValueError("params must be a dict with a 'kind' key")
    artifact = _get(params["kind"])
    kind = artifact.name
    keywords, required = artifact.keywords()
    given = {k: v for k, v in params.items() if k not in ("kind", "severity")}
    if missing := required - given.keys():
        fail(kind, f"missing parameter(s) {sorted(missing)}")
    if unknown := given.keys() - keywords:
        fail(kind, f"unknown parameter(s) {sorted(unknown)}; expected {sorted(keywords)}")
    x, spacing_mm = as_volume(volume, kind, spacing_mm, needs_spacing=True)
    if "spacing_mm" in inspect.signature(artifact.simulate).parameters:
        given["spacing_mm"] = spacing_mm
    return artifact.simulate(x, **given)


def corrupt(volume, kind: str, severity: str = "prominent", seed=0,
            spacing_mm=None) -> tuple[np.ndarray, dict]:
    """Draw parameters and apply them: ``(corrupted volume, params)``.

    ``volume`` is an array (then ``spacing_mm`` is required), a nibabel image or a path.
    """
    x, spacing_mm = as_volume(volume, kind if kind in ARTIFACTS else "?", spacing_mm)
    params = sample_params(kind, severity, seed=seed, shape=x.shape, spacing_mm=spacing_mm)
    return apply(x, params, spacing_mm=spacing_mm), params


def class_table():
    """The artifacts and their rater classes, as a pandas DataFrame.

    Columns: ``kind``, ``class`` (one of :data:`ARTIFACT_CLASSES`), ``title``, ``physics``.
    """
    import pandas as pd

    return pd.DataFrame(
        [(a.name, a.artifact_class, a.title, a.physics) for a in ARTIFACTS.values()],
        columns=["kind", "class", "title", "physics"],
    )


def severity_table():
    """Every drawn parameter of every kind with its range per level, as a pandas DataFrame.

    Written from the modules' ``RANGES`` (the data the samplers draw from). Columns: ``kind``,
    ``parameter``, ``meaning``, then ``clean``, ``subtle``, ``prominent`` (text: ``low-high``,
    ``a or b`` for alternatives drawn together, ``option (p ...)`` for categories; empty where
    the level draws nothing).
    """
    import pandas as pd

    rows = [{"kind": a.name, **row} for a in ARTIFACTS.values() for row in table_rows(a.ranges)]
    return pd.DataFrame(rows, columns=["kind", "parameter", "meaning", *LEVELS])
