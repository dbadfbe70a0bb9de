"""Issue 11: options for the DS030 rater model scored on ABIDE only (DS030 is never loaded here).

``benchmarks/bench_ds030.py`` scores every setting of ``iqm.CANDIDATES`` by leaving one ABIDE
site out and picks the threshold rule of the winner. This script scores the options that did
not enter the candidates, the same way:

1. feature choice: drop the IQMs that are site fingerprints on raw ABIDE (between-site share
   of the variance above a cut), and the regularisation of the rater-vote logistic model
   (``C``), by ``iqm.leave_sites_out`` (criterion ``iqm.CRITERION``);
2. the threshold rules (``iqm.rule_table``, ABIDE test sites, seeds 0-9) of the models named
   with ``--rules-for`` (default: the book's model before issue 11).

Run: ``PYTHONPATH=$PWD python experiments/ds030_choice.py`` (a few minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from mriqc_nb import iqm, ratings
from mriqc_nb.machine import cpu_model


def site_fingerprints(df: pd.DataFrame, cut: float) -> list[str]:
    """IQMs whose raw values are mostly site: between-site share of the variance > ``cut``."""
    out = []
    for c in ratings.IQM_COLUMNS:
        x = df[c].astype(float)
        between = df.groupby("site")[c].transform("mean").var(ddof=0)
        if between / max(x.var(ddof=0), 1e-12) > cut:
            out.append(c)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules-for", nargs="*", default=[iqm.PREVIOUS])
    args = ap.parse_args(argv)
    start = time.perf_counter()
    print("CPU:", cpu_model(), "| load:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    pd.set_option("display.width", 200)
    abide = ratings.load_ratings("abide")
    base = iqm.CANDIDATES[iqm.PREVIOUS]
    extra = {}
    for cut in (0.5, 0.8):
        fp = site_fingerprints(abide, cut)
        print(f"site fingerprints (between-site variance share > {cut} on raw ABIDE): {len(fp)}: {fp}")
        kept = [c for c in ratings.IQM_COLUMNS if c not in fp]
        extra[f"{iqm.PREVIOUS}, no site fingerprints > {cut}"] = {**base, "features": kept}
    for C in (0.01, 0.1, 0.3):
        extra[f"{iqm.PREVIOUS}, C={C}"] = {**base, "C": C}
    rows = []
    for name, kw in {iqm.PREVIOUS: base, **extra}.items():
        rows.append(iqm.leave_sites_out(abide, {name: kw}))
    print("\nABIDE leave-one-site-out (17 sites), options outside iqm.CANDIDATES:")
    print(pd.concat(rows).round(3).to_string(), flush=True)
    for name in args.rules_for:
        rules = iqm.rule_table(abide, {**iqm.CANDIDATES, **iqm.MLP_CANDIDATES}[name])
        print(f"\nThreshold rules for {name} on ABIDE test sites (mean of seeds 0-9):")
        print(rules.round(3).to_string(), flush=True)
    print(f"\nCPU: {cpu_model()} | load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} | "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
