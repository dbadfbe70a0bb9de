"""Training-time data for a detector that detects: artifact redraws, domain randomisation,
class-balanced batches.

The labelled database is 98% clean: on the laptop profile 60 training artifacts against
2,940 clean scans. A network trained on it sees the same 60 artifact volumes every epoch and
learns them by heart. A synthetic benchmark can do what a clinical database cannot: draw
*new* artifacts from the same recipes. This module holds the three pieces of the book's own
training recipe (:mod:`mriqc_nb.model.recipe`); the stored database is never changed.

Redraws
    :func:`redraw_table` gives, for every training artifact, ``k`` new rows with the same
    subject, anatomy and acquisition (so the same clean volume) and fresh parameters of the
    same artifact kind and severity, drawn by the artifact's own sampler. With ``onto_clean``
    it also draws artifacts onto clean *training* scans (kinds cycling evenly), so that the
    network sees each kind on many anatomies. :func:`build_redraws` makes their volumes once,
    through the same path as the database (:func:`mriqc_nb.data.cache.load_volume`), into
    a pool beside the database cache. Only training rows are ever used.
Domain randomisation
    :func:`randomise` changes what a clean scan may look like without making it an artifact:
    a monotone intensity curve (gamma), a small rotation and shift, a little Rician-like
    background noise that fills exact-zero bands (the zero padding of coverage cuts and of
    wrap-around is otherwise a shortcut), then the same z-scoring as
    :func:`mriqc_nb.scans.normalise_intensities`. Every amplitude stays below the *subtle*
    range of the artifact it could imitate (:mod:`mriqc_nb.artifacts`).
Balanced batches
    :func:`balanced_batches` yields index batches with a fixed share of artifacts (half by
    default), clean scans without replacement across the epoch, artifacts from the pool.

Everything is deterministic in its seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from mriqc_nb._workers import Stopped, stop_workers, worker_pool
from mriqc_nb.data.table import split_rows
from mriqc_nb.profiles import Profile, get_profile

__all__ = ["REDRAW_DIR", "redraw_table", "build_redraws", "randomise", "balanced_batches"]

#: Folder of the redraw pool inside a database directory.
REDRAW_DIR = "redraws"
#: Default domain-randomisation ranges (see :func:`randomise`).
GAMMA_RANGE = (0.7, 1.4)
ROTATION_DEG = 8.0
SHIFT_VOX = 2.0
FLOOR_NOISE = 0.01  # x the head's 99th percentile: below subtle noise (0.02-0.04)


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def redraw_table(table: pd.DataFrame, k: int, seed: int = 0, *, onto_clean: int = 0,
                 fine_share: float = 0.0, fine_factor: int = 2,
                 split: str = "train") -> pd.DataFrame:
    """Rows of new artifacts made from the *training* rows of ``table`` (no volumes yet).

    Parameters
    ----------
    table : pandas.DataFrame
        A synthetic scan table (rows with a ``recipe``); only ``split == "train"`` rows are read.
    k : int
        Redraws per training artifact: same anatomy and acquisition, same kind and
        severity, new parameters from :func:`mriqc_nb.artifacts.sample_params`.
    seed : int
        Seed of the draws (row ``i``, redraw ``j``: ``SeedSequence([seed, i, j])``).
    onto_clean : int
        Also this many artifacts drawn onto distinct clean training scans (prominent; kinds
        cycling evenly over the kinds of the training artifacts).
    fine_share : float
        Share of the new rows (a seeded random subset) simulated on a grid ``fine_factor``
        times finer (same field of view), artifact included, and conformed down to the
        profile's grid by :func:`mriqc_nb.scans.conform` (Gaussian anti-aliasing), as an
        artifact of a real 1-mm acquisition reaches the network. 0 simulates every row at
        the profile's grid, as the database does.
    fine_factor : int
        Refinement of the fine grid along each axis.
    split : str
        The split whose rows are redrawn and whose clean scans receive ``onto_clean``
        artifacts; the new rows belong to it. ``"train"`` for training. Another split
        (``"valid"``) gives a per-kind *development set* on that split's anatomy, for
        measuring, never for training (``experiments/pool_size.py`` scores ``onto_clean``
        artifacts of every kind against the validation clean scans).

    Returns
    -------
    pandas.DataFrame
        The columns of ``table``; ``scan_id`` ``<source id>_redraw-<j>`` (or ``_onto-<j>``),
        split ``split``, label ``artifact``, ``prime`` False, ``ramp_rank`` -1, a new
        ``recipe`` and an empty ``cache_file``; ``source_id`` names the row it came from.
    """
    from mriqc_nb import artifacts

    if k < 0 or onto_clean < 0:
        raise ValueError(f"k and onto_clean must be >= 0, got {k}, {onto_clean}")
    train = split_rows(table, split)
    arts = train[train["label"].astype(str) == "artifact"]
    if onto_clean and arts.empty:  # the kinds drawn onto clean scans are those of its artifacts
        raise ValueError(f"onto_clean needs artifact rows in split {split!r}; it has none")
    if (arts["recipe"].fillna("").astype(str) == "").any():
        raise ValueError("redraws need synthetic rows (a recipe); this table has file rows")
    kinds = sorted(arts["artifact_kind"].astype(str).unique())

    pick = np.random.default_rng(_seed(seed, 3_000_017))

    def row_for(src, kind, severity, new_id, draw_seed):
        recipe = json.loads(src["recipe"])
        if fine_share > 0 and pick.random() < fine_share:
            recipe["grid"] = [int(n) * int(fine_factor) for n in recipe["grid"]]
            recipe["spacing_mm"] = [float(s) / int(fine_factor) for s in recipe["spacing_mm"]]
        params = artifacts.sample_params(kind, severity, seed=draw_seed,
                                         shape=tuple(recipe["grid"]),
                                         spacing_mm=tuple(recipe["spacing_mm"]))
        recipe.update(artifact=params, artifact_seed=int(draw_seed))
        row = dict(src)
        row.update(scan_id=new_id, label="artifact", artifact_kind=kind,
                   artifact_class=artifacts.ARTIFACTS[kind].artifact_class, severity=severity, split=split,
                   prime=False, ramp_rank=-1, cache_file="", source_id=str(src["scan_id"]),
                   recipe=json.dumps(recipe, sort_keys=True))
        return row

    rows = []
    for i, src in enumerate(arts.to_dict("records")):
        for j in range(k):
            rows.append(row_for(src, src["artifact_kind"], src["severity"],
                                f"{src['scan_id']}_redraw-{j:02d}", _seed(seed, i, j)))
    if onto_clean:
        clean = train[train["label"].astype(str) == "clean"]
        if onto_clean > len(clean):
            raise ValueError(f"onto_clean={onto_clean} > {len(clean)} clean {split} scans")
        rng = np.random.default_rng(_seed(seed, 1_000_003))
        chosen = clean.iloc[np.sort(rng.choice(len(clean), size=onto_clean, replace=False))]
        for j, src in enumerate(chosen.to_dict("records")):
            rows.append(row_for(src, kinds[j % len(kinds)], "prominent",
                                f"{src['scan_id']}_onto-{j:04d}", _seed(seed, 2_000_003, j)))
    columns = list(table.columns) + (["source_id"] if "source_id" not in table.columns else [])
    return pd.DataFrame(rows, columns=columns)


def _make_one(row: dict, pool: str, grid, spacing) -> str:
    from mriqc_nb.data.cache import cache_file_name, load_volume

    try:
        load_volume(row, pool, grid=grid, spacing_mm=spacing)
    except Stopped as stop:  # SIGTERM in a worker: the pool would wait for more work; exit
        os._exit(stop.code)
    return cache_file_name(row, grid, spacing)


def build_redraws(rows: pd.DataFrame, profile: str | Profile, root, *, workers: int = 1) -> pd.DataFrame:
    """Make (or find) the volumes of redraw ``rows`` in ``root / "redraws" / <grid>``.

    The volumes go through :func:`mriqc_nb.data.cache.load_volume`, the database's own
    path (simulate at the recipe's grid, apply the artifact, conform, float16), so a redraw
    is made exactly as a database artifact would be; files are named by a hash of the
    recipe, so a second call only checks them.

    Parameters
    ----------
    rows : pandas.DataFrame
        From :func:`redraw_table`.
    profile : str or Profile
        Grid and spacing of the volumes.
    root : path-like
        The database directory.
    workers : int
        Processes (1: in this process).

    Returns
    -------
    pandas.DataFrame
        ``rows`` with ``cache_file`` filled (relative to ``root``) and ``attrs["root"]``.
    """
    from mriqc_nb.data.cache import conform_key

    p = get_profile(profile)
    root = Path(root)
    pool = root / REDRAW_DIR / conform_key(p.grid, p.spacing_mm)
    pool.mkdir(parents=True, exist_ok=True)
    grid, spacing = tuple(p.grid), tuple(p.spacing_mm)
    records = rows.to_dict("records")
    if workers > 1 and len(records) > 1:
        ex = worker_pool(workers)  # its workers end with this process
        try:
            names = list(ex.map(_make_one, records, [str(pool)] * len(records),
                                [grid] * len(records), [spacing] * len(records), chunksize=4))
        except BaseException:  # Ctrl-C, a broken pool: stop the workers now
            stop_workers(ex)
            raise
        ex.shutdown(wait=True)
    else:
        names = [_make_one(r, str(pool), grid, spacing) for r in records]
    out = rows.copy()
    out["cache_file"] = [str(Path(REDRAW_DIR) / pool.name / n) for n in names]
    out.attrs["root"] = str(root)
    return out


def randomise(volume: np.ndarray, rng: np.random.Generator, *, gamma=GAMMA_RANGE,
              rotation_deg: float = ROTATION_DEG, shift_vox: float = SHIFT_VOX,
              floor_noise: float = FLOOR_NOISE, pose: str = "linear") -> np.ndarray:
    """A conformed volume as another scanner, pose and background might have made it.

    Steps: map the z-scored volume to [0, 1] (its minimum and 99.5th percentile), raise it
    to a power drawn log-uniformly from ``gamma``, add a Rayleigh floor of standard deviation
    up to ``floor_noise`` (0 to 1% of the bright level: below the *subtle* noise artifact,
    2-4%) that fills exact-zero bands, rotate by up to ``rotation_deg`` degrees about a
    random axis and shift by up to ``shift_vox`` voxels (linear interpolation, nearest edge),
    and z-score again over the voxels above the Otsu-like half-level (the head), as
    :func:`mriqc_nb.scans.normalise_intensities` does.

    Parameters
    ----------
    volume : numpy.ndarray, shape (X, Y, Z)
        A conformed volume (z-scored).
    rng : numpy.random.Generator
    gamma : (float, float)
        Range of the intensity exponent (log-uniform).
    rotation_deg : float
        Largest rotation, degrees.
    shift_vox : float
        Largest shift along each axis, voxels.
    floor_noise : float
        Largest noise floor, a fraction of the bright level.
    pose : {"linear", "exact"}
        ``"linear"``: the rotation and a sub-voxel shift, resampled with linear
        interpolation. Interpolation is a low-pass filter: on the laptop grid it takes about
        a quarter of a clean scan's high-frequency energy (median RMS Laplacian over the head
        3.05 -> 2.25; the *blur* artifact's prominent draws: 1.6), so clean training volumes
        look blurrier than any clean scan that is screened. ``"exact"``: no rotation, a shift
        by whole voxels (``rotation_deg`` is ignored, the shift rounded; edges repeated):
        every voxel value is one of the volume's own, and nothing is smoothed. The synthetic
        subjects already vary in pose (:mod:`mriqc_nb.synth`).

    Returns
    -------
    numpy.ndarray, float32, same shape

    Raises
    ------
    ValueError
        For another ``pose``.
    """
    if pose not in ("linear", "exact"):
        raise ValueError(f"pose must be 'linear' or 'exact', not {pose!r}")
    from mriqc_nb.scans import head_mask, normalise_intensities

    x = np.asarray(volume, dtype=np.float32)
    lo, hi = float(x.min()), float(np.percentile(x, 99.5))
    u = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, None)
    g = float(np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1]))))
    u = u**g
    s = float(rng.uniform(0.0, floor_noise))
    if s > 0:
        re = u + s * rng.standard_normal(u.shape, dtype=np.float32)
        im = s * rng.standard_normal(u.shape, dtype=np.float32)
        u = np.hypot(re, im)
    if pose == "exact":
        if shift_vox >= 1:
            u = _shift_whole(u, rng.integers(-int(shift_vox), int(shift_vox) + 1, size=3))
    elif rotation_deg > 0 or shift_vox > 0:
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        from scipy.spatial.transform import Rotation

        rot = Rotation.from_rotvec(np.deg2rad(rng.uniform(-rotation_deg, rotation_deg)) * axis)
        m = rot.as_matrix()
        centre = (np.asarray(u.shape) - 1) / 2.0
        shift = rng.uniform(-shift_vox, shift_vox, size=3)
        offset = centre - m @ centre - shift
        u = ndimage.affine_transform(u, m, offset=offset, order=1, mode="nearest")
    u = u.astype(np.float32)
    return normalise_intensities(u, head_mask(u))


def _shift_whole(u: np.ndarray, shift) -> np.ndarray:
    """``u`` moved by whole voxels along each axis, the edge values repeated (no resampling)."""
    pad = [(max(int(d), 0), max(-int(d), 0)) for d in shift]
    big = np.pad(u, pad, mode="edge")
    return big[tuple(slice(b, b + n) for (_, b), n in zip(pad, u.shape))]


def balanced_batches(labels, batch_size: int, artifact_share: float = 0.5, *, seed: int = 0,
                     n_batches: int | None = None):
    """Index batches with a fixed number of artifacts each.

    Parameters
    ----------
    labels : array_like of int
        0 (clean) or 1 (artifact) per row of the training set (database rows and redraws).
    batch_size : int
    artifact_share : float
        Artifacts per batch: ``round(artifact_share * batch_size)`` (at least 1).
    seed : int
    n_batches : int, optional
        Batches to yield (default: enough to show every clean row once, the epoch).

    Returns
    -------
    list of numpy.ndarray
        Each of ``batch_size`` row indices (shuffled within the batch). Clean rows are drawn
        without replacement (reshuffled when used up); artifact rows likewise.
    """
    y = np.asarray(labels).astype(int)
    clean, art = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    n_art = min(batch_size - 1, max(1, int(round(artifact_share * batch_size))))
    n_clean = batch_size - n_art
    if not len(art) or not len(clean):
        raise ValueError("balanced batches need both clean and artifact rows")
    if n_batches is None:
        n_batches = max(1, len(clean) // n_clean)
    rng = np.random.default_rng(seed)

    def stream(pool, n):
        order, pos = rng.permutation(pool), 0
        while True:
            if pos + n > len(order):
                order, pos = np.concatenate([order[pos:], rng.permutation(pool)]), 0
            yield order[pos:pos + n]
            pos += n

    cs, as_ = stream(clean, n_clean), stream(art, n_art)
    return [rng.permutation(np.concatenate([next(cs), next(as_)])) for _ in range(n_batches)]
