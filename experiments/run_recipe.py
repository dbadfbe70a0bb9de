"""Train the recipe on a profile's database and evaluate it honestly; one JSON line out.

    nice -n 10 python experiments/run_recipe.py RUN_DIR [--profile laptop] [--partial]
        [--rounds 8] [--steps 100] [--redraws 4] [--onto-clean 300] [--share 0.25]
        [--fine-share 0] [--no-randomise] [--seed 2023]

``--partial`` uses only the rows whose volumes are already cached (a database still being
built): say so in NOTES.md. The threshold is Youden's J on the *whole* validation split
(:func:`mriqc_nb.metrics.youden_threshold`); test AUC, F1, sensitivity per kind are read at it.
Deterministic scores (no MC dropout): the recipe's ranking, not referral.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("run_dir")
p.add_argument("--profile", default="laptop")
p.add_argument("--partial", action="store_true")
p.add_argument("--rounds", type=int, default=8)
p.add_argument("--steps", type=int, default=100)
p.add_argument("--redraws", type=int, default=4)
p.add_argument("--onto-clean", type=int, default=300)
p.add_argument("--share", type=float, default=0.25)
p.add_argument("--fine-share", type=float, default=0.0)
p.add_argument("--valid-clean", type=int, default=300)
p.add_argument("--no-randomise", action="store_true")
p.add_argument("--seed", type=int, default=2023)
p.add_argument("--workers", type=int, default=2)
a = p.parse_args()

from mriqc_nb.data import make_table, split_rows
from mriqc_nb.data.cache import cache_dir_for, cache_file_name
from mriqc_nb.model.recipe import RecipeConfig, recipe_model, train_recipe, _scores
from mriqc_nb.paths import database_dir
from mriqc_nb.profiles import get_profile
from mriqc_nb.labels import to_y
from mriqc_nb.machine import cpu_model

prof = get_profile(a.profile)
root = database_dir(prof)
if a.partial:
    table = make_table(prof)
    rel = cache_dir_for(root, prof.grid, prof.spacing_mm).relative_to(root)
    table["cache_file"] = [str(rel / cache_file_name(r, prof.grid, prof.spacing_mm))
                           for r in table.to_dict("records")]
    table = table[[(root / f).exists() for f in table["cache_file"]]].reset_index(drop=True)
else:
    from mriqc_nb.data import profile_database
    table = profile_database(prof, progress=False)
table.attrs["root"] = str(root)
cfg = RecipeConfig(redraws=a.redraws, onto_clean=a.onto_clean, artifact_share=a.share, fine_share=a.fine_share,
                   batch_size=prof.batch_size, rounds=a.rounds, steps_per_round=a.steps,
                   randomise=not a.no_randomise, valid_clean=a.valid_clean, seed=a.seed)
t0 = time.perf_counter()
train_recipe(prof, a.run_dir, config=cfg, table=table, workers=a.workers)
t_train = time.perf_counter() - t0
model = recipe_model(a.run_dir)

from mriqc_nb.metrics import binary_metrics, youden_threshold

out = {}
for split in ("valid", "test"):
    rows = split_rows(table, split)
    s = _scores(model, rows, root)
    out[split] = (rows, to_y(rows["label"]), s)
rv, yv, sv = out["valid"]
thr, j = youden_threshold(yv, sv)
rt, yt, st = out["test"]
m = binary_metrics(yt, st, thr)
kinds = rt["artifact_kind"].astype(str).to_numpy()
per_kind = {k: float(np.mean(st[kinds == k] >= thr)) for k in sorted(set(kinds) - {""})}
rec = json.loads((Path(a.run_dir) / "recipe.json").read_text())
cpu = cpu_model()
result = dict(config=rec["config"], selected_round=rec["selected_round"], val_auc_rounds=rec["val_auc"],
              partial=a.partial, n_train=rec["n_train"], n_train_artifacts=rec["n_train_artifacts"],
              n_valid=int(len(yv)), n_valid_art=int(yv.sum()), n_test=int(len(yt)), n_test_art=int(yt.sum()),
              valid_auc=binary_metrics(yv, sv, thr)["auc"], valid_j=j, threshold=thr,
              test_auc=m["auc"], test_f1=m["f1"], test_sens=m["sensitivity"], test_spec=m["specificity"],
              test_bacc=m["balanced_accuracy"], per_kind_sens=per_kind, train_seconds=t_train,
              cpu=cpu, cores=os.cpu_count(), load=os.getloadavg())
print("RESULT " + json.dumps(result))
