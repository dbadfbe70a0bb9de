"""The ``mriqc-nb`` command.

Sub-commands
------------
``simulate``
    Write a corrupted copy of any NIfTI or MINC scan (teachers use it on their own scans).
``database``
    Build the synthetic scan database of a profile (scan table + volume cache).
``train``
    Train (or resume) one stage of the book under a profile, e.g. ``--stage ramp``.
``bundle``
    Export a trained stage as a model bundle (weights, conform settings, referral policy).
``screen``
    Screen NIfTI/MINC files (folders, lists, BIDS datasets) with a model bundle, the built-in
    one by default, into a TSV table (resumable), optionally an HTML report and a BIDS
    derivative. Exit status 1 when some inputs could not be screened, 2 for usage errors.

Run ``mriqc-nb SUBCOMMAND --help`` for the options of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser", "simulate_file"]


def _artifact_epilog() -> str:
    from mriqc_nb.artifacts import ARTIFACTS

    lines = ["artifact kinds (paper class in brackets), and the ranges each severity draws from:", ""]
    for a in ARTIFACTS.values():
        lines.append(f"  {a.name} [{a.artifact_class}]: {a.title}")
        lines.extend(textwrap.wrap(a.physics, width=76, initial_indent="      ", subsequent_indent="      "))
        for row in a.ranges_text().replace("``", "").splitlines():
            lines.extend(textwrap.wrap(row[2:], width=76, initial_indent="      * ", subsequent_indent="        "))
    lines += [
        "",
        "severity: 'subtle' is hard to see; 'prominent' is obvious to a rater ('clean': the",
        "strength of a clean acquisition in the synthetic benchmark, not offered here).",
        "The artifact is simulated on the scan's own grid and voxel size (from its header),",
        "after reorienting it to RAS+ (so the",
        "phase-encoding axis is anterior-posterior and 'coverage' cuts the top of the head);",
        "the output has the input's grid and affine. MINC inputs are written as NIfTI.",
        "The drawn parameters are written next to OUT as a JSON sidecar.",
    ]
    return "\n".join(lines)


def simulate_file(src, out, kind: str, severity: str = "prominent", seed: int = 0) -> dict:
    """Corrupt the scan at ``src`` with one artifact and write it to ``out`` (NIfTI).

    The scan is reoriented to RAS+, corrupted on its own voxel grid with its own voxel size,
    and reoriented back, so ``out`` overlays ``src`` exactly. The parameters drawn from
    ``seed`` are returned and written to ``out`` with the suffix ``.json``.

    Raises
    ------
    mriqc_nb.scans.ScanError
        If ``src`` cannot be read or is not a usable 3-D volume (the message names the file).
    ValueError
        For an unknown kind or severity, or an output name that is not .nii/.nii.gz.
    """
    import nibabel as nib

    from mriqc_nb import artifacts
    from mriqc_nb import scans as io

    out = Path(out)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise ValueError(f"{out}: output must be a NIfTI file (.nii or .nii.gz); nibabel cannot write MINC")
    img = io.load_scan(src)
    ras = io.reorient(img, "RAS")
    spacing = tuple(float(z) for z in ras.header.get_zooms()[:3])
    volume = np.asarray(ras.dataobj, dtype=np.float32)
    params = artifacts.sample_params(kind, severity, seed=seed, shape=volume.shape, spacing_mm=spacing)
    corrupted = artifacts.apply(volume, params, spacing_mm=spacing)
    back = io.reorient(nib.Nifti1Image(corrupted, ras.affine), "".join(nib.aff2axcodes(img.affine)))
    io.save_scan(back, out)
    record = {"source": str(src), "seed": seed, "spacing_mm": list(spacing), "params": params}
    sidecar = out.with_name(out.name[: -len(".nii.gz")] if out.name.endswith(".nii.gz") else out.stem)
    sidecar = sidecar.with_name(sidecar.name + ".json")
    sidecar.write_text(json.dumps(record, indent=2))
    return params


def _cmd_simulate(args) -> int:
    from mriqc_nb.scans import ScanError

    try:
        params = simulate_file(args.input, args.output, args.artifact, args.severity, args.seed)
    except (ScanError, ValueError) as err:
        print(f"mriqc-nb simulate: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable or missing output folder
        print(f"mriqc-nb simulate: error: {err.filename or args.output}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({params['kind']}, {params['severity']}, seed {args.seed})")
    return 0


def _cmd_database(args) -> int:
    import signal

    from mriqc_nb.data import BuildError, TableError, build_database, class_balance
    from mriqc_nb.paths import database_dir

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    out = Path(args.out) if args.out else database_dir(args.profile)
    previous = signal.signal(signal.SIGTERM, interrupt)  # a kill stops the workers as Ctrl-C does
    try:
        table = build_database(args.profile, out, workers=args.workers, progress=not args.quiet,
                               table=args.table)
    except (TableError, BuildError) as err:
        print(f"mriqc-nb database: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mriqc-nb database: interrupted; run the same command again to resume ({out})",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(class_balance(table).to_string())
    print(f"wrote {len(table)} scans to {out}")
    return 0


def _cmd_train(args) -> int:
    from mriqc_nb.model.training import train_stage

    try:
        run = train_stage(args.stage, args.profile, force=args.force, progress=not args.quiet,
                          strategy=args.strategy, model=args.model, shipped=False)
    except ValueError as err:
        print(f"mriqc-nb train: error: {err}", file=sys.stderr)
        return 2
    last = run.history.iloc[-1]
    print(f"{run.dir}: {args.stage} done, {int(last['epoch'])} epochs; last epoch: "
          f"val_loss {last['val_loss']:.4g}, val_accuracy {last['val_accuracy']:.3f}")
    return 0


def _cmd_bundle(args) -> int:
    from mriqc_nb.bundle import bundle_from_run
    from mriqc_nb.model.training import train_stage

    try:
        run = train_stage(args.stage, args.profile, progress=not args.quiet)
        out = bundle_from_run(run, args.out, measure=args.measure, profile=args.profile,
                              progress=not args.quiet,
                              **({"checks": None} if args.no_checks else {}))
    except ValueError as err:
        print(f"mriqc-nb bundle: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote the {args.stage} bundle of profile {args.profile} to {out}")
    return 0


def _cmd_screen(args) -> int:
    import signal

    from mriqc_nb.sources import InputError, discover, printable

    def fail(err) -> int:
        print(f"mriqc-nb screen: error: {printable(err)}", file=sys.stderr)
        return 2

    try:  # the inputs first: a mistyped folder fails at once, before anything heavy loads
        discover(args.inputs)
    except InputError as err:
        return fail(err)
    from mriqc_nb.bundle import BundleError
    from mriqc_nb.screen import ScreenError, report, screen

    out = Path(args.out) if args.out else None
    if args.derivative:
        from mriqc_nb import bids

        root = next((i for i in args.inputs if bids.is_bids_root(i)), None)
        out = out or Path(args.derivative) / "screening.tsv"
        try:
            bids.write_derivative_description(
                args.derivative, source_root=root,
                description=f"screening table {out.name} (its sidecar names the bundle and seed)")
        except OSError as err:  # FileExistsError: someone else's dataset; or not writable
            return fail(err)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)  # a kill stops the workers as Ctrl-C does
    try:
        table = screen(args.inputs, args.bundle, out, batch_size=args.batch_size, seed=args.seed,
                       workers=args.workers, report_html=args.report, progress=not args.quiet,
                       checks=not args.no_checks)
    except (InputError, BundleError, ScreenError) as err:
        return fail(err)
    except OSError as err:  # a full disk, a folder that vanished, permissions changed mid-run
        return fail(f"{err.filename or out}: {err.strerror or err}")
    except KeyboardInterrupt:
        print(f"mriqc-nb screen: interrupted; the finished rows are in {out}: run the same "
              "command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(report(table))
    n_err = int((table["status"] == "error").sum())
    print(f"wrote {len(table)} rows to {out} ({n_err} could not be screened)"
          + (f"; report: {args.report}" if args.report else ""))
    return 1 if n_err else 0


def build_parser() -> argparse.ArgumentParser:
    from mriqc_nb import __version__
    from mriqc_nb.artifacts import ARTIFACTS, SEVERITIES
    from mriqc_nb.profiles import PROFILES
    from mriqc_nb.model.runs import MODELS, STAGES

    parser = argparse.ArgumentParser(
        prog="mriqc-nb",
        description="Detect artifacts in brain MRI with deep learning and uncertainty: simulate "
        "artifacts, build the benchmark, train, and screen your own scans.")
    parser.add_argument("--version", action="version", version=f"mriqc-nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="write a corrupted copy of a NIfTI/MINC scan",
        description="Write a copy of IN corrupted by one simulated artifact.",
        epilog=_artifact_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("input", metavar="IN", help="input scan (.nii, .nii.gz or .mnc)")
    sim.add_argument("output", metavar="OUT", help="output scan (.nii or .nii.gz)")
    sim.add_argument("--artifact", "-a", required=True, choices=list(ARTIFACTS), metavar="KIND",
                     help="artifact kind: " + ", ".join(ARTIFACTS))
    sim.add_argument("--severity", "-s", default="prominent", choices=list(SEVERITIES),
                     help="subtle or prominent (default: prominent)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the random parameters (default: 0)")
    sim.set_defaults(func=_cmd_simulate)

    db = sub.add_parser("database", help="build a profile's scan database (synthetic, or your table)",
                        description="Build the scan table and the volume cache of a profile. By "
                                    "default the database is written where `mriqc-nb train` reads "
                                    "it: HOME/databases/PROFILE (HOME: $MRIQC_NB_HOME, else "
                                    "~/.cache/mriqc-nb). Interrupted builds resume.")
    db.add_argument("--profile", "-p", default="laptop", choices=list(PROFILES))
    db.add_argument("--out", "-o", default=None,
                    help="output directory (default: HOME/databases/PROFILE; resumes if it exists)")
    db.add_argument("--table", "-t", default=None,
                    help="your own table of files (TSV/CSV with path and label columns) "
                         "instead of the synthetic database")
    db.add_argument("--workers", "-j", type=int, default=None, help="processes (default: all cores)")
    db.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    db.set_defaults(func=_cmd_database)

    tr = sub.add_parser("train", help="train (or resume) one stage under a profile",
                        description="Train one stage, resuming an interrupted run; a finished "
                                    "run is not trained again. Runs live in HOME/runs/PROFILE/STAGE "
                                    "(HOME: $MRIQC_NB_HOME, else ~/.cache/mriqc-nb).")
    tr.add_argument("--stage", "-s", required=True, choices=list(STAGES),
                    help="ramp and primed_baseline train prime first if needed")
    tr.add_argument("--profile", "-p", default="laptop", choices=list(PROFILES))
    tr.add_argument("--model", "-m", default="nn008", choices=list(MODELS))
    tr.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                    help="tf.distribute strategy; the global batch is the profile's batch x replicas")
    tr.add_argument("--force", action="store_true", help="delete the run and start again")
    tr.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    bd = sub.add_parser("bundle", help="export a trained stage as a model bundle",
                        description="Write a model bundle (weights.npz + bundle.json: network, "
                                    "conform settings, class names, referral policy chosen on the "
                                    "validation split). Trains the stage first if needed.")
    bd.add_argument("--stage", "-s", default="ramp", choices=list(STAGES), help="(default: ramp)")
    bd.add_argument("--profile", "-p", default="laptop", choices=list(PROFILES))
    bd.add_argument("--out", "-o", required=True, help="output directory of the bundle")
    bd.add_argument("--measure", default="mutual_information",
                    choices=["mutual_information", "entropy", "variance"],
                    help="uncertainty measure that refers scans (default: mutual_information)")
    bd.add_argument("--no-checks", action="store_true",
                    help="screen with the network alone: no checks at the scan's own "
                         "resolution (spikes, noise; mriqc_nb.native)")
    bd.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    bd.set_defaults(func=_cmd_bundle)

    sc = sub.add_parser("screen", help="screen NIfTI/MINC files with a model bundle",
                        description="Predict every scan (files, folders searched for "
                                    ".nii/.nii.gz/.img/.mnc, list files, BIDS dataset roots) "
                                    "and write one TSV row per input: decision clean/artifact/"
                                    "refer, probability, uncertainty, BIDS entities. Unusable "
                                    "inputs get status 'error' and the run goes on. An existing "
                                    "OUT is resumed (same bundle and seed only): paths already "
                                    "in it are skipped. Exit status: 0 all screened, 1 some "
                                    "rows are errors, 2 usage error, 130 interrupted.")
    sc.add_argument("inputs", nargs="+", metavar="INPUTS",
                    help="scan files, folders, list files (.txt) and/or BIDS roots")
    sc.add_argument("--bundle", "-b", default=None,
                    help="model bundle directory (mriqc-nb bundle; default: the built-in model)")
    sc.add_argument("--out", "-o", default=None,
                    help="output table (.tsv; a .json sidecar is written beside it)")
    sc.add_argument("--derivative", default=None, metavar="DIR",
                    help="write a BIDS derivative dataset: DIR/dataset_description.json and "
                         "the table (DIR/screening.tsv unless --out is given)")
    sc.add_argument("--report", default=None, metavar="HTML",
                    help="also write a self-contained HTML report")
    sc.add_argument("--batch-size", type=int, default=4, help="scans per batch (default: 4)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the dropout masks (default: 0)")
    sc.add_argument("--workers", "-j", type=int, default=None,
                    help="processes that conform scans (default: cores less one, at least 2 on 2 "
                    "cores, at most 4; 0: none)")
    sc.add_argument("--no-checks", action="store_true",
                    help="the network alone: skip the bundle's checks at each scan's own "
                         "resolution (spikes, noise; about 1.5x faster on 2-mm scans)")
    sc.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sc.set_defaults(func=_cmd_screen)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mriqc-nb`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "screen" and not (args.out or args.derivative):
        parser.error("screen: give --out TABLE.tsv or --derivative DIR")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"mriqc-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
