"""Two recipe runs of one training seed, compared on validation anatomy only (NOTES 19).

    python experiments/dev_compare.py --seed 0 --a recipe-r60-pose-exact --b recipe-r60

Both runs live in the seed's folder (``tools/experiments.py:seed_runs_dir``). Each run's
validation-selected model scores, with MC dropout (T = 100, seed 0):

* every validation scan (1,600 on the laptop profile, 32 artifacts);
* the *development set*: ``--per-kind`` prominent artifacts of every kind drawn onto clean
  **validation** scans (:func:`mriqc_nb.diagnostics.development_set`, the draws of
  ``development_sensitivity`` and of ``pool_size.py``), each against every clean
  validation scan.

It prints the paired bootstrap interval of A - B for the validation AUC, the development-set
AUC (all kinds) and each kind's development-set AUC, and writes them as JSON to ``--out``.
No test row is read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import experiments as ex  # noqa: E402  (tools/experiments.py)

from mriqc_nb._atomic import write_json  # noqa: E402
from mriqc_nb.data import profile_database  # noqa: E402
from mriqc_nb.data.cache import load_arrays  # noqa: E402
from mriqc_nb.data.table import split_rows  # noqa: E402
from mriqc_nb.diagnostics import development_set  # noqa: E402
from mriqc_nb.labels import to_y  # noqa: E402
from mriqc_nb.machine import cpu_model  # noqa: E402
from mriqc_nb.metrics import paired_bootstrap_diff, safe_auc  # noqa: E402
from mriqc_nb.model.recipe import recipe_model  # noqa: E402
from mriqc_nb.predict import predict_samples  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402


def _line(name: str, r: dict, n: str) -> str:
    return (f"{name:<22s} {r['a']:.3f} vs {r['b']:.3f}: {r['diff']:+.3f} "
            f"[{r['low']:+.3f}, {r['high']:+.3f}]  ({n})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--seed", type=int, required=True, help="training seed of both runs")
    ap.add_argument("--a", required=True, help="run folder name of A (the candidate)")
    ap.add_argument("--b", required=True, help="run folder name of B (the reference)")
    ap.add_argument("--per-kind", type=int, default=40)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None, help="JSON file of the result")
    args = ap.parse_args(argv)

    prof = get_profile(args.profile)
    table = profile_database(prof, progress=False)
    root = Path(table.attrs["root"])
    valid = split_rows(table, "valid")
    dev = development_set(table, prof, per_kind=args.per_kind)
    xv, _ = load_arrays(valid, root=root)
    xd, _ = load_arrays(dev, root=root)
    yv = to_y(valid["label"])
    clean = yv == 0
    kinds = dev["artifact_kind"].astype(str).to_numpy()

    folder = ex.seed_runs_dir(prof, args.seed)
    scores, t0 = {}, time.perf_counter()
    for name in (args.a, args.b):
        model = recipe_model(folder / name)
        sv = predict_samples(model, xv, "mc", T=args.T, seed=0).mean(axis=0)[:, 1]
        sd = predict_samples(model, xd, "mc", T=args.T, seed=0).mean(axis=0)[:, 1]
        scores[name] = (sv, sd)
    (va, da), (vb, db) = scores[args.a], scores[args.b]

    def paired(y, a, b):
        return paired_bootstrap_diff(safe_auc, y, a, b, n_boot=args.n_boot, seed=0)

    res = {"valid": paired(yv, va, vb)}
    y_dev = np.r_[np.zeros(clean.sum()), np.ones(len(dev))]
    res["dev_all"] = paired(y_dev, np.r_[va[clean], da], np.r_[vb[clean], db])
    print(f"profile {prof.name}, training seed {args.seed}: {args.a} (A) vs {args.b} (B); "
          f"MC T = {args.T}; CPU {cpu_model()}")
    print(_line("validation AUC", res["valid"], f"{len(yv)} scans, {int(yv.sum())} artifacts"))
    print(_line("development AUC", res["dev_all"],
                f"{len(dev)} artifacts vs {int(clean.sum())} clean"))
    for k in sorted(set(kinds)):
        m = kinds == k
        y_k = np.r_[np.zeros(clean.sum()), np.ones(m.sum())]
        res[f"dev_{k}"] = paired(y_k, np.r_[va[clean], da[m]], np.r_[vb[clean], db[m]])
        print(_line(f"  {k}", res[f"dev_{k}"], f"{int(m.sum())} artifacts"))
    out = dict(profile=prof.name, seed=args.seed, a=args.a, b=args.b, T=args.T,
               n_valid=int(len(yv)), n_valid_artifacts=int(yv.sum()), n_dev=int(len(dev)),
               seconds=round(time.perf_counter() - t0, 1),
               cpu=f"{cpu_model()}, {os.cpu_count()} cores", results=res)
    if args.out:
        write_json(args.out, out, sort_keys=False)
    print("RESULT " + json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
