"""Candidate checks at the scan's own resolution from the k-space energy of each plane: the
step at a pose boundary (motion, ``experiments/NOTES.md`` section 22; **not adopted**: it
failed both rules written for it) and the comb of periodic ghosting (section 23: a first
look, no rule yet).

    python experiments/motion_step.py grid valid         # every validation scan at the grid
    python experiments/motion_step.py own 10 1.5         # own heads at 1.5 mm, every kind
    python experiments/motion_step.py train 40 1.5       # training anatomies: clean, late motion
    python experiments/motion_step.py fresh 40 1.5       # NOTES 25's rule (unused subjects)
    python experiments/motion_step.py comb 40 1.5        # NOTES 26's rule (unused subjects)

Physics: rigid motion between phase-encoding lines fills one part of k-space from one pose
and the rest from another. The spectrum of a magnitude (or real-part) image is, to first
order, the average of ``F(k)`` and its mirror ``F(-k)``; beyond a boundary plane the two come
from different poses, their phases disagree, and the average loses energy (for fully
disagreeing phases the mean log-magnitude drops by log 2). Anatomy's spectrum falls smoothly.

Measure: for each axis, the mean ``log |F|`` over each plane of k-space (``+-k`` averaged),
the drop from each plane to the next one out minus the running median of the drops over 9
planes, maximum over the planes between a tenth and 95% of the way out, maximum over axes.
Writes ``/tmp/motion_step_<what>.tsv`` (measurements, not results of the book).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

THRESHOLD = 0.15  # fixed before the rule was applied (NOTES 22)


def plane_profiles(volume) -> list[np.ndarray]:
    """Per axis, the mean ``log |F|`` over each plane of k-space, ``+-k`` averaged:
    ``p[k]`` for ``k = 0 .. n // 2`` (the package's, :mod:`mriqc_nb.native`)."""
    from mriqc_nb import native

    x = np.asarray(volume, dtype=np.float32)
    return native._plane_profiles(native._log_spectrum(x), x.shape)


CLIFF = 1.0  # NOTES 25: a larger excess drop is truncated or zero-filled k-space, not motion
SCOPE_MM = 2.0  # NOTES 25: measured only on files whose largest voxel side is at most this
SCOPE_LITRES = 2.5  # ... and whose non-zero voxels fill at least this (not skull-stripped)


def in_scope(volume, spacing_mm) -> bool:
    """NOTES 25's scope: fine voxels and more than a stripped brain's volume of non-zero."""
    v = float(np.prod(spacing_mm)) / 1e6
    return max(spacing_mm) <= SCOPE_MM and np.count_nonzero(volume) * v >= SCOPE_LITRES


def kspace_step(volume, window: int = 9, inner: float = 0.1, outer: float = 0.95,
                cliff: float | None = None) -> float:
    """The largest sudden drop of mean log |F| from one k-space plane to the next (with
    ``cliff``, drops whose excess is above it are left out: NOTES 25)."""
    best = float("nan")
    for p in plane_profiles(volume):
        h = len(p) - 1
        drops = p[:-1] - p[1:]
        excess = drops - ndimage.median_filter(drops, size=window, mode="nearest")
        between = np.arange(len(drops)) + 0.5
        keep = (between > inner * h) & (between < outer * h)
        if cliff is not None:
            keep &= excess <= cliff
        if keep.any():
            top = float(excess[keep].max())
            if math.isnan(best) or top > best:
                best = top
    return best


def kspace_comb(volume, periods=range(2, 9), window: int = 9, inner: float = 0.1,
                outer: float = 0.95) -> float:
    """Periodic ghosting (NOTES 23 and 26): the largest mean deficit of every n-th plane's
    detrended ``log |F|`` (n = 2..8, any phase) against the other planes. Since its adoption
    (NOTES 26) the package's own :func:`mriqc_nb.native.kspace_comb`, without the scope."""
    from mriqc_nb import native

    x = np.asarray(volume, dtype=np.float32)
    return native._kspace_comb(x, None, periods, window, inner, outer)


def _grid(split: str) -> pd.DataFrame:
    from checks_on_benchmark import raw_image

    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows
    from mriqc_nb.profiles import get_profile

    prof = get_profile("laptop")
    rows = []
    for rec in split_rows(profile_database(prof, progress=False), split).to_dict("records"):
        img = raw_image(json.loads(rec["recipe"]), prof.grid, prof.spacing_mm)
        x = np.asarray(img.dataobj, np.float32)
        rows.append(dict(scan_id=rec["scan_id"], label=rec["label"], kind=rec["artifact_kind"],
                         step=kspace_step(x), comb=kspace_comb(x)))
    return pd.DataFrame(rows)


def _late_event(lr, data, s):
    """One movement early or late in the acquisition (NOTES 22), prominent amplitude."""
    from mriqc_nb import artifacts

    late = lr.random() < 0.5
    t0 = float(lr.uniform(0.7, 0.95) if late else lr.uniform(0.05, 0.3))
    ev = [{"time": t0,
           "rotation_deg": (lr.normal(size=3) / np.sqrt(3) * lr.uniform(3, 8)).tolist(),
           "translation_mm": (lr.normal(size=3) / np.sqrt(3) * lr.uniform(3, 8)).tolist()}]
    p = {"kind": "motion", "events": ev, "pe_axis": int(lr.integers(0, 3))}
    return artifacts.apply(data, p, spacing_mm=s)


def _zero_filled(x: np.ndarray, pf_axis: int | None = None) -> np.ndarray:
    """A clean acquisition reconstructed with zero-filled k-space (NOTES 25): with
    ``pf_axis`` None a 2x interpolated matrix (k-space beyond half the Nyquist frequency of
    axes 0 and 1 set to zero), else partial Fourier (the first 2/8 of the lines along
    ``pf_axis`` set to zero); the magnitude image."""
    from scipy import fft

    k = fft.fftn(x)
    for axis in ((0, 1) if pf_axis is None else (pf_axis,)):
        n = x.shape[axis]
        f = fft.fftfreq(n)  # cycles per voxel, -0.5 .. 0.5
        cut = np.abs(f) > 0.25 if pf_axis is None else f < -0.25
        shape = [1, 1, 1]
        shape[axis] = n
        k = k * (~cut).reshape(shape)
    return np.abs(fft.ifftn(k)).astype(np.float32)


def _used_subjects() -> set:
    """Subjects whose anatomies sections 22 and 22b drew (excluded by NOTES 25's rule)."""
    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows
    from mriqc_nb.profiles import get_profile

    table = profile_database(get_profile("laptop"), progress=False)
    used = set()
    for split in ("valid", "train"):
        rows_in = split_rows(table, split)
        clean = rows_in[rows_in["label"].astype(str) == "clean"]
        for n in ((6, 10) if split == "valid" else (40, 20, 10)):
            idx = np.random.default_rng(5).choice(len(clean), size=n, replace=False)
            used |= {str(s).split("_")[0] for s in clean.iloc[idx]["scan_id"]}
    return used


COMB_THRESHOLD = 0.015  # NOTES 26, fixed before its rule


def _fresh_subjects(clean: pd.DataFrame, n: int, seed: int) -> list:
    subjects = sorted(clean["subject"].unique())
    return [subjects[j] for j in np.random.default_rng(seed).choice(len(subjects), size=n,
                                                                     replace=False)]


def _fresh(n: int, mm: float, rule: int = 25) -> pd.DataFrame:
    """NOTES 25's rule set (``rule=25``): ``n`` training-split clean anatomies of subjects
    not used before, one scan per subject (seed 6), with the release the database drew; or
    NOTES 26's (``rule=26``: seed 7, the subjects of rule 25 excluded too, ghosting copies)."""
    from mriqc_nb import artifacts, synth
    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows
    from mriqc_nb.profiles import get_profile

    table = profile_database(get_profile("laptop"), progress=False)
    rows_in = split_rows(table, "train")
    clean = rows_in[rows_in["label"].astype(str) == "clean"].copy()
    clean["subject"] = [str(s).split("_")[0] for s in clean["scan_id"]]
    used = _used_subjects()
    if rule == 26:
        for n25 in (40, 20, 10):
            used |= set(_fresh_subjects(clean[~clean["subject"].isin(_used_subjects())], n25, 6))
    clean = clean[~clean["subject"].isin(used)]
    subjects = sorted(clean["subject"].unique())
    seed = 6 if rule == 25 else 7
    pick = np.random.default_rng(seed).choice(len(subjects), size=n, replace=False)
    g = tuple(int(round(f / mm)) for f in (256, 256, 192))
    s = (mm,) * 3
    rows = []
    for i, j in enumerate(np.sort(pick)):
        cand = clean[clean["subject"] == subjects[j]]
        src = cand.iloc[int(np.random.default_rng([seed, int(j)]).integers(len(cand)))]
        r = json.loads(src["recipe"])
        release = r["acquisition"].get("release", "full")
        data = np.asarray(synth.make_scan(r["anatomy"], r["acquisition"], g, s).dataobj,
                          np.float32)

        def add(kind, vol):
            vol = synth.apply_release(vol, r["anatomy"], r["acquisition"], s)
            rows.append(dict(head=i, scan_id=src["scan_id"], release=release, kind=kind,
                             in_scope=in_scope(vol, s), step=kspace_step(vol, cliff=CLIFF),
                             step_nocliff=kspace_step(vol), comb=kspace_comb(vol)))

        add("clean", data)
        add("zero_filled", _zero_filled(data))
        add("partial_fourier", _zero_filled(data, pf_axis=int(i % 3)))
        if rule == 26:
            for j, sev in enumerate(("prominent", "prominent", "subtle")):
                p = artifacts.sample_params("ghosting", sev, seed=[26, i, j], shape=g,
                                            spacing_mm=s)
                add(f"ghosting_{sev}", artifacts.apply(data, p, spacing_mm=s))
        lr = np.random.default_rng([11 if rule == 25 else 26, i])
        for _ in range(2 if rule == 25 else 1):
            add("late_motion", _late_event(lr, data, s))
        print(i, release, flush=True)
    return pd.DataFrame(rows)


def _own(n: int, mm: float, split: str = "valid", every_kind: bool = True) -> pd.DataFrame:
    """``n`` clean anatomies of ``split`` made at ``mm``: clean, two late movements of
    prominent amplitude (the design set) and, with ``every_kind``, every kind at both
    severities."""
    from mriqc_nb import artifacts, synth
    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows
    from mriqc_nb.profiles import get_profile

    table = profile_database(get_profile("laptop"), progress=False)
    g = tuple(int(round(f / mm)) for f in (256, 256, 192))
    s = (mm,) * 3
    rows_in = split_rows(table, split)
    clean = rows_in[rows_in["label"].astype(str) == "clean"]
    chosen = clean.iloc[np.sort(np.random.default_rng(5).choice(len(clean), size=n,
                                                                  replace=False))]
    rows = []
    for i, src in enumerate(chosen.to_dict("records")):
        r = json.loads(src["recipe"])
        data = np.asarray(synth.make_scan(r["anatomy"], r["acquisition"], g, s).dataobj,
                          np.float32)

        def add(kind, sev, vol):
            vol = synth.apply_release(vol, r["anatomy"], r["acquisition"], s)
            rows.append(dict(head=i, kind=kind, severity=sev, step=kspace_step(vol),
                             comb=kspace_comb(vol)))

        add("clean", "", data)
        for sev in ("subtle", "prominent") if every_kind else ():
            p = artifacts.sample_params("motion", sev, seed=[7, i, len(sev)], shape=g,
                                        spacing_mm=s)
            add("motion", sev, artifacts.apply(data, p, spacing_mm=s))
        lr = np.random.default_rng([11, i])
        for j in range(2):
            add("motion", f"late{j}", _late_event(lr, data, s))
        for kind in sorted(artifacts.ARTIFACTS) if every_kind else ():
            if kind == "motion":
                continue
            for sev in ("subtle", "prominent"):
                p = artifacts.sample_params(kind, sev, seed=[8, i, len(kind), len(sev)],
                                            shape=g, spacing_mm=s)
                add(kind, sev, artifacts.apply(data, p, spacing_mm=s))
        print(i, flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("grid", "own", "train", "fresh", "comb"):
        sys.exit(__doc__.split("\n\n")[1])
    what = sys.argv[1]
    if what == "grid":
        df = _grid(sys.argv[2])
    elif what == "own":
        df = _own(int(sys.argv[2]), float(sys.argv[3]))
    elif what == "fresh":  # NOTES 25's rule
        df = _fresh(int(sys.argv[2]), float(sys.argv[3]))
    elif what == "comb":  # NOTES 26's rule
        df = _fresh(int(sys.argv[2]), float(sys.argv[3]), rule=26)
    else:  # "train": the amendment's fresh anatomies (NOTES 22b)
        df = _own(int(sys.argv[2]), float(sys.argv[3]), split="train", every_kind=False)
    out = Path("/tmp") / f"motion_step_{'_'.join(sys.argv[1:])}.tsv"
    df.to_csv(out, sep="\t", index=False)
    print(f"wrote {out}")
