"""Every method for several training seeds: ``results/<profile>.tsv`` and its sidecar JSON.

Usage (``make experiments``)::

    python tools/experiments.py --profile laptop --seeds 0 1 2

For each seed and method (the paper's stages and the book's ``recipe``) it trains the method
with that **training seed** (the stages' ``seed`` override; the database, and so the test
scans, stay those of the profile, so that every row is scored on the same scans), predicts
validation, test and the subtle set (MC dropout, the profile's ``mc_samples_test`` on all
three: one T), and appends one row to ``<out-dir>/<profile>.tsv``
(:func:`mriqc_nb.comparison.method_row`; columns
:func:`mriqc_nb.comparison.result_columns`). The sidecar ``<out-dir>/<profile>.json`` holds
the package version, the profile, the seeds, the CPU (``/proc/cpuinfo``), the dates and the
wall time of every method and seed; ``<out-dir>/<profile>.md`` is the same table as Markdown
(:func:`mriqc_nb.comparison.results_markdown`), which the book's results page includes.

Runs live in ``runs_dir(profile) / "seeds" / "seed-<s>" / <stage>`` under
``$MRIQC_NB_HOME``: one directory per seed, so seeds never overwrite each other, nor the
book's own runs. ``ramp`` and ``primed_baseline`` start from that seed's ``prime``.

The per-scan predictions behind every row (``scan_id``, ``split``, ``artifact_kind``, ``y``,
``p_artifact``, ``mutual_information`` on validation, test and the subtle set) go to
``<out-dir>/<profile>-scans/<method>_seed-<s>.tsv.gz``, so that paired comparisons over seeds
can be recomputed without retraining; ``<out-dir>/<profile>.png`` is the headline figure
(:func:`mriqc_nb.plots.plot_seed_results`).

Resumable: a (method, seed) already in the TSV is skipped, and an interrupted training
resumes from its last saved epoch. Read the table with
:func:`mriqc_nb.comparison.seed_summary`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from mriqc_nb import __version__, comparison, predict  # noqa: E402
from mriqc_nb._atomic import atomic_open, write_json, write_text  # noqa: E402
from mriqc_nb.model import training  # noqa: E402
from mriqc_nb.machine import cpu_model  # noqa: E402
from mriqc_nb.model.runs import STAGES  # noqa: E402
from mriqc_nb.paths import runs_dir  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402

#: Every method of the comparison: the paper's stages, then the book's recipe.
METHODS = STAGES
#: Stages that start from the same seed's ``prime`` run.
PRIMED = ("ramp", "primed_baseline")


def seed_runs_dir(profile, seed: int) -> Path:
    """Where the runs of one training seed live (under ``$MRIQC_NB_HOME``)."""
    return runs_dir(get_profile(profile)) / "seeds" / f"seed-{int(seed)}"


def train_method(method: str, profile, seed: int, *, progress: bool = False):
    """Train (or resume, or find) ``method`` with training seed ``seed``; return its Run."""
    p = get_profile(profile)
    folder = seed_runs_dir(p, seed)
    if method in PRIMED:  # train this seed's prime first, else it gets the profile's seed
        training.train_stage("prime", p, run_dir=folder / "prime", seed=int(seed),
                             progress=progress)
    return training.train_stage(method, p, run_dir=folder / method, seed=int(seed),
                                progress=progress)


def training_seconds(run) -> float:
    """Seconds the run's epochs took (its history's ``seconds``), 0 if it has none.

    A run resumed after an interruption, or found finished, takes a few seconds to return
    from ``train_stage``; its training time is the sum of its epochs' times.
    """
    history = getattr(run, "history", None)
    if history is None or "seconds" not in getattr(history, "columns", ()):
        return 0.0
    return float(pd.to_numeric(history["seconds"], errors="coerce").fillna(0).sum())


def predict_method(run, profile, *, progress: bool = False) -> dict:
    """Validation, test and subtle-set predictions of a run (MC dropout, one T for all)."""
    p = get_profile(profile)
    T = p.mc_samples_test
    out = {split: predict.run_predictions(run, split, "mc", T=T, profile=p,
                                          progress=progress)[0]
           for split in ("valid", "test")}
    try:
        out["subtle"] = predict.run_predictions(run, "subtle", "mc", T=T, profile=p)[0]
    except ValueError:  # a profile without a subtle set
        out["subtle"] = None
    return out


#: Per-scan columns kept beside the results table.
SCAN_COLUMNS = ("scan_id", "split", "artifact_kind", "y", "p_artifact", "mutual_information")


def write_scans(tables: dict, path: Path) -> Path:
    """The per-scan predictions of one (method, seed) as a gzipped TSV (reproducible bytes)."""
    import gzip

    parts = [t.assign(split=name).reindex(columns=list(SCAN_COLUMNS))
             for name, t in tables.items() if t is not None]
    text = pd.concat(parts, ignore_index=True).to_csv(sep="\t", index=False,
                                                      float_format="%.6g")
    with atomic_open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                       mtime=0) as gz:
        gz.write(text.encode())
    return path


def write_figure(df: pd.DataFrame, path: Path) -> Path:
    """The headline figure of the results table (test AUC and F1 per method and seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mriqc_nb.plots import plot_seed_results

    order = [m for m in METHODS if m in set(df["method"])]
    axes = plot_seed_results(df, methods=order)
    axes[0].figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(axes[0].figure)
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.exists():
        return pd.read_csv(path, sep="\t")
    return pd.DataFrame(columns=comparison.result_columns())


def _check_same_profile(stored, current: dict, side: Path) -> None:
    """Raise if ``side`` stamps its rows with another version of the profile.

    One sidecar describes every row of the table; rows trained under two versions of a
    profile (another recipe, other epochs) would share the newer stamp and misdescribe the older
    rows. The message names the settings that differ.
    """
    # the description is prose about the profile, not a setting of it
    stored = {k: v for k, v in (stored or {}).items() if k != "description"}
    current = {k: v for k, v in json.loads(json.dumps(current)).items() if k != "description"}
    if not stored or stored == current:
        return
    keys = sorted(k for k in {*stored, *current} if stored.get(k) != current.get(k))
    diff = "; ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in keys)
    raise ValueError(
        f"{side} was written with another version of profile {current.get('name')!r} ({diff}). "
        "Its rows would be stamped with the new one. Write to another --out-dir, or remove the "
        "rows of the methods the change affects from the table and the 'profile' entry from "
        f"{side.name}, then run again.")


def run_experiments(profile, seeds, methods=METHODS, out_dir=ROOT / "results", *,
                    n_boot: int = 1000, progress: bool = False, log=print) -> pd.DataFrame:
    """Train, predict and score every (method, seed) not yet in the results table.

    Parameters
    ----------
    profile : str or Profile
    seeds : sequence of int
        Training seeds.
    methods : sequence of str
        Stages of :data:`mriqc_nb.model.runs.STAGES`, in the order they are run.
    out_dir : path-like
        Where ``<profile>.tsv`` and ``<profile>.json`` are written.
    n_boot : int
        Bootstrap replicates of the test AUC interval.
    progress : bool
        Training progress bars.
    log : callable
        Receives one line per finished (method, seed).

    Returns
    -------
    pandas.DataFrame
        The whole results table after this call.
    """
    p = get_profile(profile)
    unknown = [m for m in methods if m not in STAGES]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {', '.join(STAGES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tsv, side = out_dir / f"{p.name}.tsv", out_dir / f"{p.name}.json"
    df = _read(tsv)
    meta = json.loads(side.read_text()) if side.exists() else {}
    _check_same_profile(meta.get("profile"), p.as_dict(), side)
    meta.update(package_version=__version__, profile=p.as_dict(), cpu=cpu_model(),
                n_cpus=os.cpu_count(),
                tf_enable_onednn_opts=os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                seeds=sorted({*meta.get("seeds", []), *map(int, seeds)}),
                methods=list(dict.fromkeys([*meta.get("methods", []), *methods])),
                runs="runs_dir(profile)/seeds/seed-<s>/<method> under $MRIQC_NB_HOME",
                started=meta.get("started", time.strftime("%Y-%m-%d %H:%M:%S")))
    wall = meta.setdefault("wall_seconds", {})
    done = set(zip(df["method"].astype(str), df["seed"].astype(int)))
    for seed in seeds:
        for method in methods:
            if (method, int(seed)) in done:
                continue
            t0 = time.perf_counter()
            run = train_method(method, p, seed, progress=progress)
            t1 = time.perf_counter()
            # a run resumed or found finished took its epochs' time, not this call's
            train_s = max(t1 - t0, training_seconds(run))
            tables = predict_method(run, p, progress=progress)
            t2 = time.perf_counter()
            row = comparison.method_row(tables["valid"], tables["test"], tables["subtle"],
                                        n_boot=n_boot, seed=int(seed))
            write_scans(tables, out_dir / f"{p.name}-scans" / f"{method}_seed-{int(seed)}.tsv.gz")
            row.update(method=method, seed=int(seed), profile=p.name,
                       seconds_train=round(train_s, 1), seconds_predict=round(t2 - t1, 1))
            new = pd.DataFrame([row])
            df = new if df.empty else pd.concat([df, new], ignore_index=True)
            df = df.reindex(columns=comparison.result_columns()).infer_objects()
            write_text(tsv, df.to_csv(sep="\t", index=False, float_format="%.6g"))
            wall.setdefault(method, {})[str(int(seed))] = {
                "train": round(train_s, 1), "predict": round(t2 - t1, 1)}
            meta["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            write_json(side, meta, sort_keys=False)
            write_pages(df, meta, out_dir, p.name)
            done.add((method, int(seed)))
            log(f"{p.name} seed {seed} {method}: AUC {row['auc']:.3f} "
                f"[{row['auc_low']:.3f}, {row['auc_high']:.3f}] F1 {row['f1']:.3f} "
                f"({row['n_test_artifacts']} of {row['n_test']} test scans are artifacts; "
                f"{train_s:.0f} s training, {t2 - t1:.0f} s predicting)")
    return df


def write_pages(df: pd.DataFrame, meta: dict, out_dir: Path, name: str) -> None:
    """``<name>.md`` (the book's tables) and ``<name>.png`` (its figure) from the table; the
    paired differences to the baseline of each seed come from the per-scan predictions."""
    scans = Path(out_dir) / f"{name}-scans"
    diffs = comparison.seed_differences(scans) if scans.is_dir() else None
    write_text(out_dir / f"{name}.md", comparison.results_markdown(df, meta, differences=diffs))
    write_figure(df, out_dir / f"{name}.png")


def render(profile, out_dir=ROOT / "results") -> None:
    """Rewrite ``<profile>.md`` and ``<profile>.png`` from the table and its sidecar."""
    out_dir, name = Path(out_dir), get_profile(profile).name
    write_pages(pd.read_csv(out_dir / f"{name}.tsv", sep="\t"),
                json.loads((out_dir / f"{name}.json").read_text()), out_dir, name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=STAGES)
    ap.add_argument("--out-dir", default=str(ROOT / "results"))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite <profile>.md and <profile>.png from the table")
    args = ap.parse_args(argv)
    if args.render:
        render(args.profile, args.out_dir)
        return 0
    df = run_experiments(args.profile, args.seeds, args.methods, args.out_dir,
                         n_boot=args.n_boot, progress=args.progress)
    summary = comparison.seed_summary(df)
    cols = ["method", "n_seeds"] + [c for c in summary.columns
                                    if c.startswith(("auc_", "f1_")) and
                                    c.endswith(("_mean", "_sd"))]
    print(summary[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
