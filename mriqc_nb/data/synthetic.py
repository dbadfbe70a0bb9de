"""The synthetic benchmark: a scan table of recipes, with the paper's imbalance and exact splits.

:func:`make_table` writes, for a profile, one row per scan with a JSON *recipe* (the seeds and
drawn parameters of the subject's anatomy, the acquisition and the artifact) from which
:func:`mriqc_nb.data.cache.materialise` makes the volume again, bit for bit. No volume is made
here. Subjects are split first (:func:`mriqc_nb.data.splits.split_counts`); labels are then
decided within each split, so split ``k`` gets exactly ``floor(n_artifact * f_k)`` artifacts
(the last split the remainder; the paper's 696: 417 / 139 / 140). Artifact kinds cycle evenly
through the simulators within each split, at *prominent* severity; the *subtle* set is drawn
from subjects of its own (split ``"subtle"``). Every draw of a row has its own seed
(:func:`mriqc_nb.data.splits.scan_seed`), so the table is deterministic in ``profile.seed``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from mriqc_nb.artifacts import ARTIFACTS, sample_params
from mriqc_nb.data.ramp import add_ramp_order
from mriqc_nb.data.splits import (
    ACQUISITION,
    ANATOMY,
    ARTIFACT,
    KIND,
    LABEL,
    MODALITY,
    SPLIT,
    rng,
    scan_seed,
    split_counts,
)
from mriqc_nb.data.table import COLUMNS, SPLITS, SUBTLE_SPLIT, json_default
from mriqc_nb.profiles import Profile, get_profile
from mriqc_nb.synth import MODALITIES, sample_acquisition, sample_anatomy

__all__ = ["make_table"]


def _jsonable(obj):
    """Round-trip through JSON so the table holds exactly what its TSV will hold."""
    return json.loads(json.dumps(obj, default=json_default))


#: Tables already made in this process, by profile (see :func:`make_table`).
_MADE: dict[str, pd.DataFrame] = {}


def make_table(profile: str | Profile) -> pd.DataFrame:
    """The synthetic scan table of a profile (no volumes are made).

    A table is a pure function of the profile, and drawing the laptop profile's 8,100
    recipes takes seconds, while a chapter asks for it many times (every prediction of
    chapter 8 does): the table is made once per profile and process, and every call
    returns a copy of its own (all its columns hold strings, numbers or booleans).

    ``profile.n_scans`` labelled scans (``scans_per_subject`` per subject, modalities cycling
    from a random start, repeats numbered ``run-2``, ...), ``round(n_scans * (1 -
    clean_share))`` of them with a *prominent* artifact, split by subject with exact class
    counts per split (see :mod:`mriqc_nb.data.splits`), plus ``profile.n_subtle`` scans with a *subtle*
    artifact from subjects of their own (split ``"subtle"``). Deterministic in
    ``profile.seed``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~mriqc_nb.data.table.COLUMNS` (``path`` and ``cache_file`` empty).
    """
    p = get_profile(profile)
    key = json.dumps(p.as_dict(), sort_keys=True, default=str)
    if key not in _MADE:
        if len(_MADE) >= 4:  # a few profiles per process at most; keep memory bounded
            _MADE.pop(next(iter(_MADE)))
        _MADE[key] = _make_table(p)
    return _MADE[key].copy()


def _make_table(p: Profile) -> pd.DataFrame:
    kinds = tuple(ARTIFACTS)
    seed, spp = int(p.seed), int(p.scans_per_subject)
    if spp < 1 or p.n_scans < 1:
        raise ValueError(f"profile {p.name}: need n_scans >= 1 and scans_per_subject >= 1")
    grid = [int(g) for g in p.grid]
    spacing = [float(s) for s in p.spacing_mm]

    n_subj = math.ceil(p.n_scans / spp)
    n_subj_subtle = math.ceil(p.n_subtle / spp) if p.n_subtle else 0
    width = max(5, len(str(n_subj + n_subj_subtle)))

    # 1. subjects -> splits (a seeded permutation cut by split_counts)
    subj_split = np.empty(n_subj, dtype=object)
    perm = rng(seed, SPLIT).permutation(n_subj)
    start = 0
    for name, k in zip(SPLITS, split_counts(n_subj, p.split_fractions)):
        subj_split[perm[start : start + k]] = name
        start += k

    # 2. scans of each subject (labelled subjects first, then the subtle set's)
    rows = []
    scan_index = 0
    for s in range(n_subj + n_subj_subtle):
        subtle = s >= n_subj
        if subtle:
            n_here = min(spp, p.n_subtle - (s - n_subj) * spp)
        else:
            n_here = min(spp, p.n_scans - s * spp)
        anat_seed = scan_seed(seed, ANATOMY, s)
        anatomy = _jsonable(sample_anatomy(anat_seed))
        offset = int(rng(seed, MODALITY, s).integers(len(MODALITIES)))
        subject_id = f"sub-{s:0{width}d}"
        for j in range(n_here):
            modality = MODALITIES[(offset + j) % len(MODALITIES)]
            run = j // len(MODALITIES) + 1
            acq_seed = scan_seed(seed, ACQUISITION, scan_index)
            acquisition = _jsonable(sample_acquisition(acq_seed, modality))
            rows.append(
                dict(
                    scan_id=f"{subject_id}_run-{run}_{modality}",
                    subject_id=subject_id,
                    site="synthetic",
                    modality=modality,
                    label="clean",
                    artifact_class="",
                    artifact_kind="",
                    severity="none",
                    split=SUBTLE_SPLIT if subtle else subj_split[s],
                    _index=scan_index,
                    _recipe=dict(
                        generator="mriqc_nb.synth",
                        grid=grid,
                        spacing_mm=spacing,
                        anatomy_seed=anat_seed,
                        anatomy=anatomy,
                        acquisition_seed=acq_seed,
                        acquisition=acquisition,
                        artifact=None,
                    ),
                )
            )
            scan_index += 1

    # 3. labels: exact artifact counts per split, kinds cycling evenly within a split
    def corrupt(idx: np.ndarray, severity: str, kind_rng: np.random.Generator) -> None:
        order = kind_rng.permutation(len(idx))
        offset = int(kind_rng.integers(len(kinds)))
        for r, i in enumerate(idx[order]):
            row = rows[int(i)]
            kind = kinds[(offset + r) % len(kinds)]
            art_seed = scan_seed(seed, ARTIFACT, row["_index"])
            params = sample_params(kind, severity, seed=art_seed, shape=tuple(grid), spacing_mm=tuple(spacing))
            row.update(label="artifact", artifact_class=ARTIFACTS[kind].artifact_class, artifact_kind=kind, severity=severity)
            row["_recipe"]["artifact_seed"] = art_seed
            row["_recipe"]["artifact"] = _jsonable(params)

    split_of = np.array([r["split"] for r in rows], dtype=object)
    for k, (name, n_art) in enumerate(zip(SPLITS, split_counts(p.n_artifact, p.split_fractions))):
        members = np.flatnonzero(split_of == name)
        if n_art > len(members):
            raise ValueError(f"profile {p.name}: split {name} has {len(members)} scans, fewer than its {n_art} artifacts")
        chosen = np.sort(rng(seed, LABEL, k).choice(members, size=n_art, replace=False))
        corrupt(chosen, "prominent", rng(seed, KIND, k))
    subtle_idx = np.flatnonzero(split_of == SUBTLE_SPLIT)
    if len(subtle_idx):
        corrupt(subtle_idx, "subtle", rng(seed, KIND, len(SPLITS)))

    for row in rows:
        row["recipe"] = json.dumps(row.pop("_recipe"), sort_keys=True, default=json_default)
        row["path"] = ""
        row["cache_file"] = ""
        del row["_index"]
    df = pd.DataFrame(rows)
    df = add_ramp_order(df, seed)
    return df[list(COLUMNS)]
