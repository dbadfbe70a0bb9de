"""DS030, the external test of the book's IQM rater model: 5 seeds, with the anchor beside it.

The model is chosen with ABIDE only: every setting of ``mriqc_nb.iqm.CANDIDATES`` is scored by
leaving one ABIDE site out at a time, and the best mean AUC within a held-out site
(``mriqc_nb.iqm.CRITERION``) wins. Then, for each
seed, the protocol of ``mriqc_nb.iqm.site_protocol`` (train sites, validation sites, test
sites of ABIDE; DS030 scored once) gives DS030's AUC, and at the validation threshold without
referral its balanced accuracy and F1; the referral policy by mutual information is compared
with its random control (random referral of the same share, same threshold).

Run: ``python benchmarks/bench_ds030.py`` (about 6 minutes on 2 shared cores; needs mriqc-learn).
The last line reads ``DS030 AUC mean X (min A, max B) over 5 seeds``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from mriqc_nb import iqm, ratings

TARGETS = {"auc": 0.80, "balanced_accuracy": 0.70, "f1": 0.55}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    abide, ds030 = ratings.load_ratings("abide"), ratings.load_ratings("ds030")
    choice = iqm.leave_sites_out(abide, iqm.CANDIDATES)
    print("Model choice on ABIDE alone (leave one site out, 17 sites):")
    print(choice.round(3).to_string())
    chosen = str(choice[iqm.CRITERION].idxmax())
    models = {chosen: iqm.CANDIDATES[chosen]}
    models.setdefault(iqm.ANCHOR, iqm.CANDIDATES[iqm.ANCHOR])
    print(f"\nchosen by {iqm.CRITERION}: {chosen}; anchor: {iqm.ANCHOR}\n")
    table = iqm.seed_table(abide, {"DS030": ds030}, seeds=range(args.seeds), models=models)
    ds = table[table.set == "DS030"]
    cols = ["auc", "balanced_accuracy", "f1", "accuracy", "sensitivity", "specificity", "kappa", "eta",
            "retained_fraction", "ba_gain_vs_no_referral", "ba_gain_vs_random", "f1_gain_vs_random", "warnings"]
    pd.set_option("display.width", 200)
    for name in models:
        rows = ds[ds.model == name].set_index("seed")[cols]
        print(f"DS030, {name} ({len(ds030)} scans, {int(ds030.y.sum())} artifacts):")
        print(rows.round(3).to_string())
        summary = rows[cols[:-1]].agg(["mean", "min", "max"]).round(3)
        print(summary.to_string(), "\n")
    mine = ds[ds.model == chosen]
    missed = [f"{k} {mine[k].mean():.3f} < {v}" for k, v in TARGETS.items() if mine[k].mean() < v]
    print("targets (mean over seeds: AUC >= 0.80, balanced accuracy >= 0.70, F1 >= 0.55):",
          "met" if not missed else "NOT met: " + ", ".join(missed))
    print(f"({time.perf_counter() - start:.0f} s)")
    print(f"DS030 AUC mean {mine.auc.mean():.3f} (min {mine.auc.min():.3f}, max {mine.auc.max():.3f}) "
          f"over {mine.seed.nunique()} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
