"""Replace the recipe rows of ``results/laptop.tsv`` with runs of ``recipe_rounds.py`` (NOTES 18b).

When a rule of NOTES.md adopts a new number of recipe rounds for the laptop profile, the
recipe rows of the results table must be those of the new setting. ``recipe_rounds.py``
trains exactly what ``make experiments`` would train with that setting (``train_stage`` with
the same seed, ``predict_method`` with the same T) and keeps the per-scan predictions, so the
rows are recomputed here from those predictions, with the function ``make experiments`` uses
(:func:`mriqc_nb.comparison.method_row`, same bootstrap seed), rather than trained a second
time. The predictions are copied to ``results/laptop-scans/recipe_seed-<s>.tsv.gz``, the
sidecar gets the profile as it now is, the runs' times and a note naming the change, and the
book's table and figure are written again.

    python experiments/adopt_rounds.py --rounds 60 --seeds 0 1 2
    python experiments/adopt_rounds.py --run-name recipe-r60-pose-exact --scans-from \
        experiments/recipe_pose --why "experiments/NOTES.md 19"
    python experiments/adopt_rounds.py --check   # the committed rows from their predictions

The runs' times are read from ``recipe-r<rounds>_seed-<s>.json`` beside the predictions
(``recipe_rounds.py`` writes it: ``{"train": s, "predict": s, "cpu": "...", "when":
"..."}``), or from ``--times``, ``{"<seed>": {...}}``, for runs that predate it.
``--check`` recomputes every committed row of the table from its per-scan predictions and
reports the largest difference of each; the predictions are stored
at 6 significant digits, so rates may differ by some 1e-5 and a count by one scan (a test
score that lands on the threshold); it fails (exit 1) beyond 1e-3 or one scan.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import experiments as ex  # noqa: E402  (tools/experiments.py)

from mriqc_nb import comparison  # noqa: E402
from mriqc_nb._atomic import write_json, write_text  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402


def row_from_scans(path: Path, seed: int, n_boot: int = 1000) -> dict:
    """The results row of one (method, seed) from its per-scan predictions."""
    scans = pd.read_csv(path, sep="\t")
    parts = {s: scans[scans["split"] == s].reset_index(drop=True)
             for s in ("valid", "test", "subtle")}
    subtle = parts["subtle"] if len(parts["subtle"]) else None
    return comparison.method_row(parts["valid"], parts["test"], subtle, n_boot=n_boot,
                                 seed=int(seed))


#: Columns that count scans (a difference of one scan is rounding, see the docstring).
COUNTS = ("tp", "fp", "fn", "n_test", "n_test_artifacts", "n_subtle", "n_valid",
          "n_valid_artifacts")


def check(results: Path, name: str) -> bool:
    """Whether every committed row is what its predictions give, within rounding."""
    df = pd.read_csv(results / f"{name}.tsv", sep="\t")
    ok = True
    for _, row in df.iterrows():
        again = row_from_scans(results / f"{name}-scans" / f"{row['method']}_seed-{row['seed']}.tsv.gz",
                               row["seed"])
        diff, nan_mismatch = {}, []
        for k, v in again.items():
            if not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            a, b = float(row[k]), float(v)
            if np.isnan(a) != np.isnan(b):
                nan_mismatch.append(k)
            elif np.isfinite(a) and np.isfinite(b):
                diff[k] = abs(a - b)
        rates = max((d for k, d in diff.items() if k not in COUNTS), default=0.0)
        counts = max((d for k, d in diff.items() if k in COUNTS), default=0.0)
        ok &= rates <= 1e-3 and counts <= 1 and not nan_mismatch
        print(f"{row['method']:>16} seed {row['seed']}: largest difference {rates:.2g}, "
              f"counts {counts:.0f}" + (f"; NaN differs in {nan_mismatch}" if nan_mismatch else ""))
    return ok


def _same_as_profile(p, run_name: str, seed: int) -> None:
    """Exit unless the run (when it is on this machine) has the profile's recipe now."""
    from mriqc_nb.model.recipe import _config_diff, recipe_config

    stored = ex.seed_runs_dir(p, seed) / run_name / "recipe.json"
    if not stored.exists():
        return
    diff = _config_diff(json.loads(stored.read_text())["config"],
                        recipe_config(p, seed=seed))
    if diff:
        raise SystemExit(f"{stored}: the run differs from profile {p.name}'s recipe (run, "
                         f"profile): {diff}; change mriqc_nb/profiles.py first, so that the "
                         f"sidecar describes the new rows")


def adopt(rounds: int, seeds, times: dict, scans_from: Path, results: Path, name: str,
          run_name: str | None = None, why: str = "experiments/NOTES.md 18 and 18b") -> None:
    p = get_profile(name)
    have = p.extra["recipe"]["rounds"]
    if have != rounds:
        raise SystemExit(f"profile {name} has recipe rounds {have}; change mriqc_nb/profiles.py "
                         f"to {rounds} first, so that the sidecar describes the new rows")
    run_name = run_name or f"recipe-r{rounds}"
    for seed in seeds:
        _same_as_profile(p, run_name, seed)
    tsv, side = results / f"{name}.tsv", results / f"{name}.json"
    df = pd.read_csv(tsv, sep="\t")
    meta = json.loads(side.read_text())
    wall = meta.setdefault("wall_seconds", {}).setdefault("recipe", {})
    notes = []
    for seed in seeds:
        src = scans_from / f"{run_name}_seed-{seed}.tsv.gz"
        stamp = scans_from / f"{run_name}_seed-{seed}.json"
        t = times[str(seed)] if str(seed) in times else json.loads(stamp.read_text())
        secs = {"train": round(float(t["train"]), 1), "predict": round(float(t["predict"]), 1)}
        row = row_from_scans(src, seed)
        row.update(method="recipe", seed=int(seed), profile=name,
                   seconds_train=secs["train"], seconds_predict=secs["predict"])
        at = df.index[(df["method"] == "recipe") & (df["seed"].astype(int) == int(seed))]
        new = pd.DataFrame([row]).reindex(columns=df.columns)
        if len(at):  # in place: the table keeps the order in which its rows were run
            df.loc[at[0]] = new.iloc[0]
        else:
            df = pd.concat([df, new], ignore_index=True)
        shutil.copyfile(src, results / f"{name}-scans" / f"recipe_seed-{seed}.tsv.gz")
        wall[str(seed)] = secs
        notes.append(f"seed {seed} {t['when']} (CPU {t['cpu']})")
        print(f"recipe seed {seed}: AUC {row['auc']:.3f} [{row['auc_low']:.3f}, "
              f"{row['auc_high']:.3f}], F1 {row['f1']:.3f}, F1 rule {row['f1_f1rule']:.3f}")
    df = df.reindex(columns=comparison.result_columns()).infer_objects()
    write_text(tsv, df.to_csv(sep="\t", index=False, float_format="%.6g"))
    meta["profile"] = json.loads(json.dumps(p.as_dict()))
    meta["recipe_rerun"] = (
        f"recipe rows replaced by runs {run_name} ({why}; "
        f"experiments/recipe_rounds.py, rows recomputed from their per-scan predictions by "
        f"experiments/adopt_rounds.py): " + "; ".join(notes) + ". Before: "
        + meta.get("recipe_rerun", ""))
    meta["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(side, meta, sort_keys=False)
    ex.write_pages(df, meta, results, name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--times", type=Path, help="JSON of runs' times (see the docstring)")
    ap.add_argument("--scans-from", type=Path, default=ROOT / "experiments" / "recipe_rounds")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--run-name", default=None,
                    help="the runs' name (default: recipe-r<rounds>), e.g. recipe-r60-pose-exact")
    ap.add_argument("--why", default="experiments/NOTES.md 18 and 18b",
                    help="the rule that adopted them, for the sidecar's note")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.check:
        ok = check(args.results, args.profile)
        print("every row is what its predictions give" if ok else "some rows differ")
        return 0 if ok else 1
    adopt(args.rounds, args.seeds, json.loads(args.times.read_text()) if args.times else {},
          args.scans_from, args.results, args.profile, args.run_name, args.why)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
