"""Screening as a lab uses it (the network *and* the checks) on the benchmark's own splits.

    python tools/checks_on_benchmark.py                # laptop profile, seeds 0 1 2
    python tools/checks_on_benchmark.py --seeds 0 --workers 2

``make experiments`` scores the network alone: the database holds each scan conformed to the
grid, and the checks of :mod:`mriqc_nb.native` measure a scan *before* it is conformed. This
script makes every validation, test and subtle scan of the profile's database again from its
recipe, as it was before conforming (the synthetic head at the recipe's grid, its artifact,
its release: :func:`mriqc_nb.data.cache.materialise` without the last step), measures the
checks on it, and joins the measures with the recipe's per-scan predictions of each seed
(``results/<profile>-scans/recipe_seed-<s>.tsv.gz``, written by ``make experiments``).

For each seed it writes two rows of ``results/<profile>-checks.tsv``: ``network`` (the
network alone, as ``results/<profile>.tsv``) and ``network+checks`` (a scan that a check
calls gets ``p_artifact`` 1, as ``mriqc-nb screen`` does). Both use the seed's threshold
chosen on *validation* by the network alone (Youden's J, :func:`mriqc_nb.comparison.method_row`:
the built-in bundle's threshold is chosen the same way), and the checks' thresholds of
:data:`mriqc_nb.native.THRESHOLDS`, chosen on validation anatomy. Nothing is chosen from
the test split. The per-scan measures go to ``results/<profile>-scans/checks.tsv.gz``
(reused when present: ``--remeasure`` measures again), the stamp (package version, CPU,
thresholds, time) to ``results/<profile>-checks.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from mriqc_nb import __version__, native  # noqa: E402
from mriqc_nb._atomic import write_json, write_text  # noqa: E402
from mriqc_nb.machine import cpu_model  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402

SPLITS = ("valid", "test", "subtle")
SCREENS = ("network", "network+checks")


def raw_image(recipe: dict, grid, spacing_mm):
    """The scan of a synthetic recipe as it was before conforming (a float32 NIfTI image).

    The steps of :func:`mriqc_nb.data.cache.materialise` before ``conform`` (that module is
    part of the database's code fingerprint, so it is not refactored for this script; a
    test checks that conforming this image gives the database's volume).
    """
    import nibabel as nib

    from mriqc_nb import artifacts, synth

    g = tuple(recipe.get("grid", grid))
    s = tuple(recipe.get("spacing_mm", spacing_mm))
    img = synth.make_scan(recipe["anatomy"], recipe["acquisition"], g, s)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if recipe.get("artifact"):
        data = artifacts.apply(data, recipe["artifact"], spacing_mm=s)
    data = synth.apply_release(data, recipe["anatomy"], recipe["acquisition"], s)
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine)


def _measure_rows(rows: list[dict], grid, spacing_mm) -> list[dict]:
    from nibabel.affines import voxel_sizes

    out = []
    for row in rows:
        img = raw_image(json.loads(row["recipe"]), grid, spacing_mm)
        m = native.measure(np.asarray(img.dataobj, dtype=np.float32),
                           spacing_mm=voxel_sizes(img.affine))
        out.append({"scan_id": row["scan_id"], "split": row["split"], **m})
    return out


def measure_splits(profile, workers: int, progress: bool = True) -> pd.DataFrame:
    """The checks' measures of every scan of :data:`SPLITS` (one row per scan)."""
    from mriqc_nb._workers import worker_pool
    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows

    p = get_profile(profile)
    table = profile_database(p, progress=progress)
    rows = [dict(r, split=s) for s in SPLITS
            for r in split_rows(table, s)[["scan_id", "recipe"]].to_dict("records")]
    chunks = [rows[i:i + 100] for i in range(0, len(rows), 100)]
    t0, out = time.perf_counter(), []
    if workers > 1:
        with worker_pool(workers) as pool:
            futures = [pool.submit(_measure_rows, c, p.grid, p.spacing_mm) for c in chunks]
            for i, f in enumerate(futures):
                out += f.result()
                if progress and i % 10 == 9:
                    print(f"measured {len(out)} of {len(rows)} scans", flush=True)
    else:
        for c in chunks:
            out += _measure_rows(c, p.grid, p.spacing_mm)
    if progress:
        print(f"measured {len(out)} scans in {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(out)


def measures_stamp(profile) -> dict:
    """What the per-scan measures depend on: the profile database's identity
    (:func:`mriqc_nb.data.cache.database_id`) and the source of :mod:`mriqc_nb.native`."""
    import hashlib

    from mriqc_nb.data import profile_database
    from mriqc_nb.data.cache import database_id

    table = profile_database(get_profile(profile), progress=False)
    source = Path(native.__file__).read_bytes()
    return {"database_id": database_id(table),
            "native_sha256": hashlib.sha256(source).hexdigest()[:16]}


def load_measures(profile, workers: int | None = None, remeasure: bool = False,
                  write: bool = True) -> pd.DataFrame:
    """The per-scan measures of ``results/<profile>-scans/checks.tsv.gz``; measured (and,
    with ``write``, written with the stamp :func:`measures_stamp` beside them in
    ``checks.json``) first when the file is missing, its stamp differs (another database or
    another version of the checks' code), or ``remeasure``."""
    from mriqc_nb._workers import default_workers

    p = get_profile(profile)
    mfile = ROOT / "results" / f"{p.name}-scans" / "checks.tsv.gz"
    sfile = mfile.with_name("checks.json")
    stamp = measures_stamp(p)
    if mfile.exists() and not remeasure:
        stored = json.loads(sfile.read_text()) if sfile.exists() else {}
        if stored == stamp:
            return pd.read_csv(mfile, sep="\t")
        print(f"{mfile.relative_to(ROOT)} was measured on {stored or 'an unknown version'}, "
              f"not {stamp}: measuring again", file=sys.stderr)
    measures = measure_splits(p, default_workers() if workers is None else max(1, workers))
    if write:
        mfile.parent.mkdir(parents=True, exist_ok=True)
        measures.to_csv(mfile, sep="\t", index=False, float_format="%.6g")
        write_json(sfile, stamp)
    return measures


def with_checks(table: pd.DataFrame, measures: pd.DataFrame, thresholds=None) -> pd.DataFrame:
    """``table`` (per-scan predictions with ``scan_id``) as screening with the checks sees
    it: a scan that a check calls gets ``p_artifact`` 1 and ``mutual_information`` 0 (kept,
    not referred: ``mriqc-nb screen`` decides it ``artifact``), and a column ``called``.
    ``ValueError`` when a scan has no measures."""
    thresholds = native.THRESHOLDS if thresholds is None else thresholds
    m = measures.drop_duplicates("scan_id").set_index("scan_id")
    missing = ~table["scan_id"].isin(m.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} scans have no measures "
                         f"(first: {table.loc[missing, 'scan_id'].iloc[0]}); measure again")
    absent = [name for name in thresholds if name not in m.columns]
    if absent:
        raise ValueError(f"the measures have no column {', '.join(absent)} (measured by an "
                         "older version of the checks); measure again")
    rows = m.loc[table["scan_id"], list(thresholds)].to_dict("records")
    called = np.asarray([bool(native.called(r, thresholds)) for r in rows])
    out = table.copy()
    out["called"] = called
    out.loc[called, "p_artifact"] = 1.0
    if "mutual_information" in out:
        out.loc[called, "mutual_information"] = 0.0
    return out


def seed_rows(predictions: pd.DataFrame, measures: pd.DataFrame, seed: int,
              thresholds=None) -> list[dict]:
    """The ``network`` and ``network+checks`` rows of one seed.

    ``predictions``: the per-scan table of ``results/<profile>-scans`` (``scan_id``,
    ``split``, ``artifact_kind``, ``y``, ``p_artifact``, ``mutual_information``);
    ``measures``: :func:`measure_splits`'s; each split is overridden by :func:`with_checks`.
    Raises ``ValueError`` when a scan has no measures.
    """
    from mriqc_nb.comparison import method_row

    d = predictions.assign(kind=predictions["artifact_kind"])
    split = {s: g.reset_index(drop=True) for s, g in d.groupby("split")}
    # as screening sees each split (the MI set to 0 there plays no part: no referral here)
    checked = {s: with_checks(g, measures, thresholds) for s, g in split.items()}
    called = checked["test"]["called"].to_numpy()
    clean = checked["test"]["y"].to_numpy() == 0
    out = []
    for screen in SCREENS:
        parts = checked if screen == "network+checks" else split
        # the threshold: the network's alone on validation, as in the bundle; the checks'
        # calls are 1 and land above it either way
        row = method_row(split["valid"], parts["test"], parts.get("subtle"))
        with_calls = screen != "network"
        out.append({"seed": int(seed), "screen": screen, **row,
                    "test_called": int(called.sum()) if with_calls else 0,
                    "test_clean_called": int((called & clean).sum()) if with_calls else 0})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--remeasure", action="store_true")
    args = ap.parse_args(argv)
    p = get_profile(args.profile)
    scans = ROOT / "results" / f"{p.name}-scans"
    mfile = scans / "checks.tsv.gz"
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    t0 = time.perf_counter()
    measures = load_measures(p, args.workers, args.remeasure)
    print(f"measures from {mfile.relative_to(ROOT)} ({len(measures)} scans)")
    rows = []
    for seed in args.seeds:
        f = scans / f"recipe_seed-{seed}.tsv.gz"
        if not f.exists():
            print(f"{f.relative_to(ROOT)} is missing: run `make experiments` first",
                  file=sys.stderr)
            return 2
        rows += seed_rows(pd.read_csv(f, sep="\t"), measures, seed)
    table = pd.DataFrame(rows)
    out = ROOT / "results" / f"{p.name}-checks.tsv"
    write_text(out, table.to_csv(sep="\t", index=False, float_format="%.6g"))
    write_json(out.with_suffix(".json"), {
        "package_version": __version__, "profile": p.name, "seeds": args.seeds,
        "thresholds": native.THRESHOLDS, "cpu": cpu_model(), "started": started,
        "seconds": round(time.perf_counter() - t0, 1),
        "measures": str(mfile.relative_to(ROOT)),
        "note": "threshold of each seed: the network's alone, Youden's J on validation; a "
                "scan a check calls has p_artifact 1 in the network+checks rows"})
    cols = ["seed", "screen", "auc", "f1", "sensitivity", "specificity", "test_clean_called"]
    print(table[cols].to_string(index=False))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
