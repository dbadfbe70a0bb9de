"""How much of an artifact reaches the network's input grid?

A detector can only find what survives the trip to its input: resampling to the profile's
grid (laptop: 4 x 4 x 6 mm, Gaussian anti-aliasing) removes every spatial frequency above
that grid's Nyquist limit. This script measures, for *paired* volumes (the same head with and
without the artifact), the root-mean-square difference after the screening pipeline's own
steps (:func:`mriqc_nb.diagnostics.visible_difference`: RAS+, resampling with anti-aliasing,
the head-centred window, z-scoring over the head), in units of the head's intensity standard
deviation. Both copies use the clean copy's head mask and window, so the number is the
artifact and nothing else.

Sources:

* ``own``: the project's simulators (``mriqc_nb.artifacts``) on clean *validation* anatomies of
  the laptop database, at both severities, simulated on the profile's grid (as the database
  does: ``grid`` = ``profile``) and on a grid twice as fine, then conformed (``grid`` = ``fine``:
  an artifact of a 2 x 2 x 3 mm acquisition as it reaches the network).
* ``torchio``: the cross-simulator sets of ``benchmarks/bench_cross_simulator.py make`` (each
  head saved clean and once per TorchIO transform, at 1 to 1.5 mm).

Each volume is measured at the laptop grid and, for reference, at its own native grid (no
downsampling) and at the colab profile's 2 x 2 x 3 mm. Nothing here trains or chooses
anything; no test row is read (the own anatomies are validation scans)::

    python experiments/visibility.py [--n 12] [--torchio /tmp/xsim1 /tmp/xsim2] [--out F.tsv]
    python experiments/visibility.py --from experiments/visibility.tsv \
        --torchio /tmp/xsim1 /tmp/xsim2 --bundle-fingerprint c20017540c43dc32

The second form reuses the measurements and, with ``--bundle-fingerprint``, reads that
bundle's screening of the TorchIO sets (``score`` of the benchmark) and prints its AUC on
the TorchIO artifacts whose difference at the laptop grid reaches 0, 0.05, 0.1 and 0.2
(every clean copy kept): how well the network ranks what reaches its input. The cut is
descriptive, made after the scores were seen.

Prints the per-kind medians and one line per TorchIO kind: the share of its scans whose
difference at the laptop grid reaches the median of the project's own *subtle* draws of that
kind (simulated on the profile's grid), which the network is not asked to find.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mriqc_nb import artifacts, synth
from mriqc_nb.diagnostics import visible_difference
from mriqc_nb.machine import cpu_model
from mriqc_nb.profiles import get_profile
from mriqc_nb.scans import load_scan

GRIDS = {"laptop": get_profile("laptop"), "colab": get_profile("colab")}


def measure(clean_img, art_img) -> dict:
    res = {"native": visible_difference(clean_img, art_img)}
    for name, prof in GRIDS.items():
        res[name] = visible_difference(clean_img, art_img, prof.grid, prof.spacing_mm)
    return res


def own_rows(n: int, seed: int) -> list[dict]:
    from mriqc_nb.data import profile_database
    from mriqc_nb.data.table import split_rows

    prof = get_profile("laptop")
    table = profile_database(prof, progress=False)
    valid = split_rows(table, "valid")
    clean = valid[valid["label"].astype(str) == "clean"]
    rng = np.random.default_rng(seed)
    chosen = clean.iloc[np.sort(rng.choice(len(clean), size=n, replace=False))]
    rows = []
    for i, src in enumerate(chosen.to_dict("records")):
        r = json.loads(src["recipe"])
        for grid_name, factor in (("profile", 1), ("fine", 2)):
            g = tuple(int(x) * factor for x in prof.grid)
            s = tuple(float(x) / factor for x in prof.spacing_mm)
            img = synth.make_scan(r["anatomy"], r["acquisition"], g, s)
            data = np.asarray(img.dataobj, dtype=np.float32)
            c = synth.apply_release(data, r["anatomy"], r["acquisition"], s)
            c_img = nib.Nifti1Image(np.asarray(c, dtype=np.float32), img.affine)
            for k, kind in enumerate(sorted(artifacts.ARTIFACTS)):
                for severity in ("subtle", "prominent"):
                    params = artifacts.sample_params(kind, severity, seed=[seed, i, k, len(severity)],
                                                     shape=g, spacing_mm=s)
                    a = artifacts.apply(data, params, spacing_mm=s)
                    a = synth.apply_release(a, r["anatomy"], r["acquisition"], s)
                    a_img = nib.Nifti1Image(np.asarray(a, dtype=np.float32), img.affine)
                    rows.append(dict(source="own", grid=grid_name, head=str(src["scan_id"]),
                                     kind=kind, severity=severity, **measure(c_img, a_img)))
        print(f"own: head {i + 1}/{n}", flush=True)
    return rows


def torchio_rows(folders) -> list[dict]:
    rows = []
    for folder in folders:
        folder = Path(folder)
        truth = pd.read_csv(folder / "truth.tsv", sep="\t")
        for head, group in truth.groupby("head"):
            files = dict(zip(group["kind"], group["file"]))
            c_img = load_scan(str(folder / files["clean"]))
            for kind, f in files.items():
                if kind == "clean":
                    continue
                rows.append(dict(source="torchio", grid=f"{folder.name}", head=f"{folder.name}/{head}",
                                 kind=kind, severity="prominent",
                                 **measure(c_img, load_scan(str(folder / f)))))
        print(f"torchio: {folder} done", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="clean validation anatomies (own simulators)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torchio", nargs="*", default=[], help="folders from bench_cross_simulator make")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="reuse the measurements of an earlier --out")
    ap.add_argument("--bundle-fingerprint", default=None,
                    help="AUC of this bundle's screening of the --torchio sets, by visibility")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.source is not None:
        df = pd.read_csv(a.source, sep="\t")
    else:
        df = pd.DataFrame(own_rows(a.n, a.seed) + torchio_rows(a.torchio))
    if a.out:
        df.to_csv(a.out, sep="\t", index=False)
    unchanged = (df["source"] == "torchio") & (df["native"] == 0)
    if unchanged.any():  # TorchIO drew no artifact (num_spikes=1 means 0 or 1 spikes)
        print(f"{int(unchanged.sum())} TorchIO copies identical to their clean copy, left out: "
              f"{df.loc[unchanged, 'kind'].value_counts().to_dict()}")
    used = df[~unchanged]
    src = used.assign(source=np.where(used["source"] == "torchio", "torchio",
                                      "own-" + used["grid"]))
    summary = (src.groupby(["source", "kind", "severity"])[["native", "colab", "laptop"]]
               .median().round(3))
    summary["n"] = src.groupby(["source", "kind", "severity"]).size()
    print(f"CPU {cpu_model()} | {time.perf_counter() - t0:.0f} s | median RMS difference "
          "(head SD units) at the native grid, colab 2x2x3 mm, laptop 4x4x6 mm")
    print(summary.to_string())
    own = src[(src["source"] == "own-profile")]
    tio = src[src["source"] == "torchio"]
    for kind in sorted(tio["kind"].unique()):
        ref = own[own["kind"] == kind]
        subtle = ref.loc[ref["severity"] == "subtle", "laptop"].median()
        prom = ref.loc[ref["severity"] == "prominent", "laptop"].quantile(0.1)
        x = tio.loc[tio["kind"] == kind, "laptop"]
        print(f"torchio {kind:9s} n={len(x):3d}: laptop-grid difference >= own subtle median "
              f"({subtle:.3f}): {(x >= subtle).mean():.2f}; >= own prominent 10th pct "
              f"({prom:.3f}): {(x >= prom).mean():.2f}")
    if a.bundle_fingerprint:
        auc_by_visibility(df, a.torchio, a.bundle_fingerprint)
    return 0


def auc_by_visibility(df: pd.DataFrame, folders, fingerprint: str) -> None:
    from mriqc_nb.metrics import bootstrap_ci, safe_auc

    parts = []
    for folder in map(Path, folders):
        screened = pd.read_csv(folder / f"screened-{fingerprint}.tsv", sep="\t")
        screened = screened[screened["status"] == "ok"]
        truth = pd.read_csv(folder / "truth.tsv", sep="\t")
        m = screened.assign(file=[Path(p).name for p in screened["path"]]).merge(truth, on="file")
        m["key"] = folder.name + "/" + m["head"].astype(str)
        vis = df.loc[(df["source"] == "torchio") & (df["grid"] == folder.name),
                     ["head", "kind", "native", "laptop"]].rename(columns={"head": "key"})
        parts.append(m.merge(vis, on=["key", "kind"], how="left"))
    m = pd.concat(parts, ignore_index=True)
    clean = m[m["kind"] == "clean"]
    art = m[(m["kind"] != "clean") & (m["native"] > 0)]  # copies TorchIO left unchanged: out
    print(f"bundle {fingerprint}: {len(clean)} clean copies; AUC on the TorchIO artifacts "
          "whose difference at the laptop grid reaches a cut (descriptive, post hoc)")
    for cut in (0.0, 0.05, 0.1, 0.2):
        sub = pd.concat([clean, art[art["laptop"] >= cut]])
        auc, lo, hi = bootstrap_ci(safe_auc, sub["y"].to_numpy(), sub["p_artifact"].to_numpy(),
                                   n_boot=1000, seed=0)
        kinds = art.loc[art["laptop"] >= cut, "kind"].value_counts().sort_index()
        print(f"  >= {cut:4.2f}: {int((sub['y'] == 1).sum()):3d} artifacts "
              f"({', '.join(f'{k} {n}' for k, n in kinds.items())}): "
              f"AUC {auc:.3f} [{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    raise SystemExit(main())
