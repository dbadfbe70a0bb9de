"""A larger redraw pool for the recipe, judged on validation anatomy only.

The laptop recipe shows the network 7,200 artifact views (30 rounds x 60 steps x 4) drawn from
a pool of about 600 volumes (60 stored training artifacts, 240 redraws, 300 drawn onto clean
training scans), so each pool volume comes back about 12 times. The candidate draws artifacts
onto more clean training scans (``--onto-clean``), so that each comes back about 3 times.

Two steps, each printing one ``RESULT`` JSON line::

    nice python experiments/pool_size.py train RUN_DIR [--onto-clean 1500] [--seed 2023]
    nice python experiments/pool_size.py score RUN_DIR [--per-kind 40]

``score`` compares the candidate with the built-in model (the laptop recipe as it stands, seed
2023, ``mriqc_nb/models/default``) on

* the validation split: every scan, MC dropout T = 100 (seed 0); AUC with a stratified
  bootstrap interval and the paired bootstrap difference;
* a *per-kind development set*: ``--per-kind`` prominent artifacts of every kind drawn onto
  clean **validation** scans (``redraw_table(onto_clean=, split="valid")``, the recipe's own
  draws on validation anatomy), scored against every clean validation scan: per-kind
  AUC, and sensitivity at each model's validation Youden threshold. The validation split holds
  only 3-4 artifacts of a kind; this set holds 40.

No test row is read.

The reference is ``--reference`` (a bundle folder; default: the built-in model). NOTES
section 12 ran before the candidate became the built-in model, so its reference was the
previous built-in bundle (fingerprint ``feac0d77679ef8c0``), which is
``mriqc_nb/models/default`` at commit ``6e2fc83``::

    git worktree add /tmp/prev 6e2fc83
    python experiments/pool_size.py score RUN_DIR --reference /tmp/prev/mriqc_nb/models/default

Run today with the default, it would compare the candidate with itself. The per-kind numbers
are the quantities of :func:`mriqc_nb.diagnostics.development_sensitivity` (the same draws:
seed 90,001, ``--per-kind`` of each kind); this script keeps its own loop because the paired
differences need both models' scores on the same volumes.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("step", choices=("train", "score"))
p.add_argument("run_dir")
p.add_argument("--onto-clean", type=int, default=1500)
p.add_argument("--seed", type=int, default=2023)
p.add_argument("--per-kind", type=int, default=40)
p.add_argument("--workers", type=int, default=2)
p.add_argument("--reference", default=None, help="bundle folder (default: the built-in model)")
a = p.parse_args()

from mriqc_nb.data import profile_database  # noqa: E402
from mriqc_nb.machine import cpu_model  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402

prof = get_profile("laptop")
table = profile_database(prof, progress=False)
root = Path(table.attrs["root"])
stamp = dict(cpu=cpu_model(), cores=os.cpu_count())

if a.step == "train":
    from mriqc_nb.model.recipe import recipe_config, train_recipe

    cfg = recipe_config(prof, onto_clean=a.onto_clean, seed=a.seed)
    t0 = time.perf_counter()
    train_recipe(prof, a.run_dir, config=cfg, table=table, workers=a.workers)
    rec = json.loads((Path(a.run_dir) / "recipe.json").read_text())
    print("RESULT " + json.dumps(dict(step="train", config=rec["config"],
                                      selected_round=rec["selected_round"],
                                      val_auc_rounds=rec["val_auc"],
                                      pool_seconds=rec["pool_seconds"],
                                      seconds=time.perf_counter() - t0, **stamp)))
    raise SystemExit(0)

from mriqc_nb.bundle import load_bundle  # noqa: E402
from mriqc_nb.diagnostics import development_set  # noqa: E402
from mriqc_nb.data.cache import load_arrays  # noqa: E402
from mriqc_nb.data.table import split_rows  # noqa: E402
from mriqc_nb.labels import to_y  # noqa: E402
from mriqc_nb.metrics import bootstrap_ci, paired_bootstrap_diff, safe_auc, youden_threshold  # noqa: E402
from mriqc_nb.model.recipe import recipe_model  # noqa: E402
from mriqc_nb.predict import predict_samples  # noqa: E402

valid = split_rows(table, "valid")
# The development set: artifacts of every kind drawn onto clean validation scans.
t0 = time.perf_counter()
dev = development_set(table, prof, per_kind=a.per_kind, workers=a.workers)
t_dev = time.perf_counter() - t0
xv, _ = load_arrays(valid, root=root)
xd, _ = load_arrays(dev, root=root)
yv = to_y(valid["label"])
clean_v = yv == 0
kinds = dev["artifact_kind"].astype(str).to_numpy()

reference = load_bundle(a.reference, warn=False)
models = {f"reference {reference.fingerprint}": reference.model,
          f"candidate (onto_clean {a.onto_clean})": recipe_model(a.run_dir)}
res, scores, dev_scores = {}, {}, {}
for name, model in models.items():
    t = time.perf_counter()
    sv = predict_samples(model, xv, "mc", T=100, seed=0).mean(axis=0)[:, 1]
    sd = predict_samples(model, xd, "mc", T=100, seed=0).mean(axis=0)[:, 1]
    scores[name] = sv
    dev_scores[name] = np.r_[sv[clean_v], sd]
    thr, j = youden_threshold(yv, sv)
    ci = bootstrap_ci(safe_auc, yv, sv, n_boot=1000, seed=0)
    per_kind = {}
    for k in sorted(set(kinds)):
        s_k = sd[kinds == k]
        y_k = np.r_[np.zeros(clean_v.sum()), np.ones(len(s_k))]
        per_kind[k] = dict(auc=safe_auc(y_k, np.r_[sv[clean_v], s_k]),
                           sensitivity=float(np.mean(s_k >= thr)))
    res[name] = dict(valid_auc=safe_auc(yv, sv), valid_auc_ci=ci, threshold=thr, youden_j=j,
                     clean_flagged=float(np.mean(sv[clean_v] >= thr)),
                     dev_auc_all=safe_auc(np.r_[np.zeros(clean_v.sum()), np.ones(len(sd))],
                                          np.r_[sv[clean_v], sd]),
                     dev_sensitivity_all=float(np.mean(sd >= thr)), per_kind=per_kind,
                     seconds=time.perf_counter() - t)
names = list(models)
diff = paired_bootstrap_diff(safe_auc, yv, scores[names[1]], scores[names[0]], n_boot=1000, seed=0)
y_dev = np.r_[np.zeros(clean_v.sum()), np.ones(len(dev))]
dev_diff = paired_bootstrap_diff(safe_auc, y_dev, dev_scores[names[1]], dev_scores[names[0]],
                                 n_boot=1000, seed=0)
print("RESULT " + json.dumps(dict(step="score", models=res, valid_auc_diff=diff, dev_auc_diff=dev_diff,
                                  n_valid=int(len(yv)), n_valid_artifacts=int(yv.sum()),
                                  n_dev=int(len(dev)), dev_seconds=t_dev, **stamp), default=str))
