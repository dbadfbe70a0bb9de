"""Copy a profile's finished training runs into ``results/<profile>-runs/`` for the book to load.

    python tools/ship_runs.py --profile laptop             # the six stages, default run folders
    python tools/ship_runs.py --profile laptop --stages recipe

Each stage's run in ``runs_dir(profile) / <stage>`` (under ``$MRIQC_NB_HOME``) must be finished,
trained with the stage's configuration of the profile (:func:`mriqc_nb.model.training.stage_config`)
and on the profile's database as this code builds it: a run the book would not load is
refused here, with the reason. :func:`mriqc_nb.model.shipped.export` writes the weights the run
answers with, its history and configuration, the per-epoch memorisation measure of the
paper's stages, and ``SHIPPED.json`` (the CPU, the training time, the dates, the training
code's hash and every file's SHA-256). See :mod:`mriqc_nb.model.shipped` for how the book
uses them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT))

from mriqc_nb.data import profile_database  # noqa: E402
from mriqc_nb.data.cache import database_id  # noqa: E402
from mriqc_nb.model import shipped  # noqa: E402
from mriqc_nb.model.recipe import recipe_config  # noqa: E402
from mriqc_nb.model.runs import STAGES, Run  # noqa: E402
from mriqc_nb.model.training import stage_config  # noqa: E402
from mriqc_nb.paths import runs_dir  # noqa: E402
from mriqc_nb.profiles import get_profile  # noqa: E402


def problem(run: Run, stage: str, profile, ident: str) -> str | None:
    """Why the book would not load this run (None: it would): the test
    :func:`mriqc_nb.model.shipped.install` applies."""
    if not run.done:
        return "not finished"
    recipe = recipe_config(profile) if stage == "recipe" else None
    return shipped.mismatch(run.dir, stage_config(stage, profile), ident, recipe)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--out", type=Path, default=ROOT / "results",
                        help="folder of <profile>-runs/ (default: the checkout's results/)")
    parser.add_argument("--note", default="", help="recorded in each SHIPPED.json")
    args = parser.parse_args(argv)
    p = get_profile(args.profile)
    table = profile_database(p, progress=False)
    ident = database_id(table)
    failed = 0
    for stage in args.stages:
        run = Run(runs_dir(p) / stage)
        why = problem(run, stage, p, ident)
        if why:
            print(f"{stage}: not shipped: {run.dir}: {why}", file=sys.stderr)
            failed += 1
            continue
        dest = shipped.export(run.dir, args.out / f"{p.name}-runs" / stage, table=table,
                              note=args.note)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 2**20
        print(f"{stage}: {dest.relative_to(args.out.parent) if args.out.parent in dest.parents else dest}"
              f" ({size:.1f} MiB): {shipped.describe(dest)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
