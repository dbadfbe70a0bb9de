"""Train the built-in model of ``mriqc-nb screen`` and write it, with its model card.

    python tools/make_model.py                                   # what `make model` runs
    python tools/make_model.py --profile smoke --out /tmp/model  # a quick check of this script

Trains (or reuses) one stage of one profile (:func:`mriqc_nb.model.training.train_stage`;
runs live in ``$MRIQC_NB_HOME``), bundles it (:func:`mriqc_nb.bundle.bundle_from_run`: the
referral policy is chosen on the validation split, and its validation AUC is stored), then
measures the frozen bundle on the *test* split and on the separate *subtle* set (MC dropout,
the bundle's T, seed 0) and writes ``MODEL_CARD.md`` beside ``bundle.json`` and
``weights.npz``. Every number of the card is computed here; nothing is typed by hand.

The default output is the package's own ``mriqc_nb/models/default/``, which
:func:`mriqc_nb.bundle.default_bundle` finds. ``--stage`` and ``--profile`` choose the recipe
(the detector's best recipe, once it is settled, is one of :data:`mriqc_nb.model.runs.STAGES`).
Exit status: 0, or 2 for a bad argument; a bundle whose validation AUC is below
:data:`mriqc_nb.bundle.MIN_VALID_AUC` is written but the card and the output say so loudly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT))

from mriqc_nb import bundle as bundles  # noqa: E402
from mriqc_nb import native, predict, referral  # noqa: E402
from mriqc_nb.artifacts import ARTIFACTS  # noqa: E402
from mriqc_nb._atomic import write_text  # noqa: E402
from mriqc_nb.comparison import method_metrics  # noqa: E402
from mriqc_nb.metrics import bootstrap_ci, safe_auc  # noqa: E402
from mriqc_nb.model.runs import STAGES  # noqa: E402
from mriqc_nb.profiles import PROFILES, get_profile  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import checks_on_benchmark as cob  # noqa: E402

DEFAULT_OUT = ROOT / "mriqc_nb" / Path(*bundles.DEFAULT_BUNDLE)
CARD_FILE = "MODEL_CARD.md"
#: The built-in model refers at most this share of the validation scans to a person. The
#: bundle's own default (half) let a model whose validation J rises with every referral
#: refer 47% of the scans; a screening pass over a large database must stay reviewable.
MAX_REFERRED = 0.1


def _ci(point, low, high, digits=3) -> str:
    fmt = f"{{:.{digits}f}}"
    if not np.isfinite(point):
        return "n/a"
    return f"{fmt.format(point)} [{fmt.format(low)}, {fmt.format(high)}]"


def _per_kind(policy, table, checked=None) -> list[str]:
    """Markdown rows: per artifact kind, the share called artifact and the share that reaches
    a person (called artifact or referred), with counts; with ``checked`` (the same scans as
    screening with the checks sees them: :func:`checks_on_benchmark.with_checks`), the share
    called artifact with the checks too."""
    def shares(t):
        applied = referral.apply_policy(policy, t)
        kind = applied["artifact_kind"].astype(str).where(applied["y"] == 1, "")
        return {k: ((g["decision"] == "artifact").mean(), g["needs_person"].mean(), len(g))
                for k, g in applied.groupby(kind)}

    net = shares(table)
    chk = shares(checked) if checked is not None else {}
    rows = []
    for kind in sorted(k for k in net if k):
        called, person, n = net[kind]
        extra = f" {chk[kind][0]:.2f} |" if chk else ""
        rows.append(f"| {kind} | {n} | {called:.2f} | {person:.2f} |{extra}")
    if "" in net:
        called, person, n = net[""]
        extra = f" {chk[''][0]:.2f} |" if chk else ""
        rows.append(f"| (clean scans: share flagged) | {n} | {called:.2f} | {person:.2f} |{extra}")
    return rows


def measure(run, bundle_dir: Path, profile, n_boot: int, keep_measures: bool = False) -> dict:
    """Test and subtle-set numbers of the frozen bundle (policy from its bundle.json); with
    the checks, the scans' measures come from (and with ``keep_measures`` go to)
    ``results/<profile>-scans/checks.tsv.gz``."""
    info = json.loads((bundle_dir / bundles.BUNDLE_FILE).read_text())
    policy = referral.ReferralPolicy.from_dict(info["policy"])
    T = int(info["mc_samples"])
    test, _ = predict.run_predictions(run, "test", "mc", T=T, seed=0, profile=profile)
    y, p = test["y"].to_numpy(), test["p_artifact"].to_numpy()
    out = {"policy": policy, "T": T, "test_n": len(test), "test_artifacts": int(y.sum()),
           "auc": bootstrap_ci(safe_auc, y, p, n_boot=n_boot, seed=0),
           "test": method_metrics(policy, test, n_boot=n_boot, seed=0),
           "per_kind": _per_kind(policy, test)}
    checks = info.get("checks")
    checked = None
    if checks:  # the same test scans measured before conforming (tools/checks_on_benchmark.py)
        try:
            measures = cob.load_measures(profile, write=keep_measures)
            checked = cob.with_checks(test, measures, checks)
        except (ValueError, KeyError) as err:
            print(f"WARNING: no test numbers with the checks: {err}", file=sys.stderr)
    if checked is not None:
        clean = checked["y"].to_numpy() == 0
        out["checks"] = {
            "auc": bootstrap_ci(safe_auc, y, checked["p_artifact"].to_numpy(), n_boot=n_boot,
                                seed=0),
            "test": method_metrics(policy, checked, n_boot=n_boot, seed=0),
            "called": int(checked["called"].sum()),
            "clean_called": int((checked["called"].to_numpy() & clean).sum())}
        out["per_kind"] = _per_kind(policy, test, checked)
    try:
        subtle, _ = predict.run_predictions(run, "subtle", "mc", T=T, seed=0, profile=profile)
    except ValueError:  # a profile without a subtle set
        subtle = None
    if subtle is not None and len(subtle):
        applied = referral.apply_policy(policy, subtle)
        art = applied[applied["y"] == 1]
        sub_checked = None
        if checked is not None:
            try:
                sub_checked = cob.with_checks(subtle, measures, checks)
            except ValueError as err:
                print(f"WARNING: no subtle numbers with the checks: {err}", file=sys.stderr)
        out["subtle"] = {"n": len(art), "called": float((art["decision"] == "artifact").mean()),
                         "person": float(art["needs_person"].mean()),
                         "per_kind": _per_kind(policy, subtle, sub_checked)}
        if sub_checked is not None:
            sa = referral.apply_policy(policy, sub_checked)
            out["subtle"]["called_checks"] = float(
                (sa.loc[sa["y"] == 1, "decision"] == "artifact").mean())
    return out


def _metric_table(m: dict) -> list[str]:
    """The test metrics as Markdown rows: the network, and with the checks when measured."""
    t, c = m["test"], m.get("checks")
    rows = [("| metric | the network alone [95% interval] | with the checks |" if c else
             "| metric | value [95% interval] |"),
            "|---|---|" + ("---|" if c else "")]

    def row(name, net, chk):
        rows.append(f"| {name} | {net} |" + (f" {chk} |" if c else ""))

    row("ROC AUC (all scans)", _ci(*m["auc"]), _ci(*c["auc"]) if c else "")
    for k in ("accuracy", "f1", "sensitivity", "specificity"):
        row(f"{k} (retained scans)", _ci(t[k], t[k + "_low"], t[k + "_high"]),
            _ci(c["test"][k], c["test"][k + "_low"], c["test"][k + "_high"]) if c else "")
    row("referred to a person", f"{t['referred_fraction']:.3f}",
        f"{c['test']['referred_fraction']:.3f}" if c else "")
    row("artifacts missed (retained, called clean)", f"{t['missed_artifact_fraction']:.3f}",
        f"{c['test']['missed_artifact_fraction']:.3f}" if c else "")
    if c:
        row("scans a check calls (clean among them)", "", f"{c['called']} ({c['clean_called']})")
    return rows


#: What each check measures, in the card's words.
_CHECKED = {"kspace_peak": "spikes", "noise": "white noise",
            "kspace_comb": "periodic ghosting (files of at most 2 mm)"}


def _and(words: list) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _comb_scope(profile) -> str:
    """The sentence on ``kspace_comb``'s scope, and whether the profile's scans are in it."""
    spacing = get_profile(profile).spacing_mm
    outside = (" (this profile's benchmark scans, at " + " x ".join(f"{v:g}" for v in spacing)
               + " mm, are outside it)") if max(spacing) > native.SCOPE_MM else ""
    return (f". `kspace_comb` measures only files of at most {native.SCOPE_MM:g} mm that are "
            f"not skull-stripped{outside}")


def model_card(info: dict, fp: str, m: dict, profile, stage: str) -> str:
    """The text of MODEL_CARD.md, from the bundle's description and the measured numbers."""
    val = info.get("validation") or {}
    prov = info.get("provenance", {})
    t = m["test"]
    warns = bundles.bundle_warnings(info)
    pol = m["policy"]
    lines = [
        "# Model card: the built-in model of `mriqc-nb screen`", "",
        "*Generated by `tools/make_model.py` on "
        f"{datetime.date.today().isoformat()}; do not edit by hand.*", "",
    ]
    if warns:
        lines += ["> **WARNING** " + " ".join(warns), ""]
    lines += [
        "## What it is", "",
        f"- Network: `{info['model_name']}` (3-D CNN), input grid {info['conform']['grid']} "
        f"voxels at {info['conform']['spacing_mm']} mm (RAS+, head-centred, z-scored over "
        "the head).",
        f"- Uncertainty: Monte Carlo dropout, T = {m['T']} passes per scan; referral on "
        f"`{pol.measure}` at eta = {pol.eta:.3g} (scaled to the validation range), threshold "
        f"p(artifact) >= {pol.threshold:.3g}; both chosen on the validation split, referring "
        f"at most {info['provenance'].get('policy_max_referred', 0.5):.0%} of its scans.",
        *([f"- Checks at the scan's own resolution, before it is conformed "
           f"(`mriqc_nb.native`; thresholds chosen on validation anatomy, "
           f"`experiments/NOTES.md` sections 20 and 26): "
           + ", ".join(f"`{k}` > {v:g} calls {native.CALLS[k]}" for k, v in info["checks"].items())
           + (_comb_scope(profile) if "kspace_comb" in info["checks"] else "")
           + ". A called scan is decided artifact (p(artifact) 1); the network's own "
           "probability stays in the column `p_network`. Below, the network's numbers are on "
           "volumes at the grid; *with the checks* adds the checks' calls, measured on the "
           "same test scans made again before conforming (`tools/checks_on_benchmark.py`)."]
          if info.get("checks") else []),
        f"- Fingerprint `{fp}` (weights and description; recorded in every screening table).",
        "", "## Training data and recipe", "",
        f"- Profile `{profile.name}`: {profile.description}",
        f"- {profile.n_scans} synthetic scans ({profile.clean_share:.0%} clean) made from "
        "nilearn's MNI152 anatomy: synthetic subjects and contrasts, artifacts simulated by "
        f"the package's physics-based simulators ({', '.join(ARTIFACTS)}). Splits grouped "
        "by subject.",
        f"- Stage `{stage}` (see `mriqc_nb.model.training.stage_config`), seed "
        f"{prov.get('seed')}, weights of epoch (round) {prov.get('epoch')}, chosen on validation where the stage chooses; data seed {profile.seed}.",
        *([f"- Recipe settings (the run's `recipe.json`): "
           + ", ".join(f"{k} {v}" for k, v in prov["recipe"].items()) + "."]
          if prov.get("recipe") else []),
        f"- Made with mriqc-nb {prov.get('package_version')} on {prov.get('created')}.",
        "", "## How good it is", "",
        f"Validation ({val.get('n_scans')} scans, {val.get('n_artifact')} with an artifact): "
        f"ROC AUC {val.get('auc') if val.get('auc') is None else format(val['auc'], '.3f')} "
        f"(a bundle below {bundles.MIN_VALID_AUC} is warned about at every use).", "",
        f"Test split ({m['test_n']} scans, {m['test_artifacts']} with an artifact; the policy "
        "frozen before the test scans were seen; 95% bootstrap intervals, "
        "stratified):", "",
        *_metric_table(m), "",
        "Per artifact kind on the test split (prominent artifacts):", "",
        "| kind | scans | called artifact | reaches a person (artifact or referred) |"
        + (" called artifact, with the checks |" if m.get("checks") else ""),
        "|---|---|---|---|" + ("---|" if m.get("checks") else ""), *m["per_kind"], "",
    ]
    sub = m.get("subtle")
    if sub:
        with_checks = (f"; with the checks {sub['called_checks']:.2f} called artifact"
                       if "called_checks" in sub else "")
        lines += [f"Subtle set ({sub['n']} scans with a subtle artifact, kept out of training): "
                  f"{sub['called']:.2f} called artifact, {sub['person']:.2f} reach a person"
                  f"{with_checks}.", "",
                  "| kind | scans | called artifact | reaches a person |"
                  + (" called artifact, with the checks |" if with_checks else ""),
                  "|---|---|---|---|" + ("---|" if with_checks else ""),
                  *sub["per_kind"], ""]
    lines += [
        "## Intended use", "",
        "A first pass over a database of structural head MRI (T1w and similar 3-D "
        "acquisitions): sort the scans so that a person looks first at those called "
        "artifact, referred (too uncertain) or unreadable. Not a diagnosis, not a replacement "
        "for a rater, and not a verdict on any single scan.", "",
        "## Known limits", "",
        "- **Trained on synthetic data only**: simulated artifacts on synthetic heads from one "
        "template. Real scanners, sequences, populations (children, lesions, atrophy) and "
        "preprocessing differ; its numbers on real data are unknown until measured (chapter "
        "10 measures a related model on real ratings). Training heads are whole, defaced or "
        "skull-stripped (`mriqc_nb.synth.release`), but the synthetic heads have no face, so "
        "real faces, and defacing masks of other tools, were never seen.",
        "- It sees a low-resolution copy (the grid above). Detail finer than two voxels is "
        "removed before the network sees the scan, and with it every artifact that lives only "
        "there: subtle ringing, slight blur, a movement that touches only the edge of k-space, "
        "the white noise of a 1-mm scan, a k-space spike far from the centre. Of TorchIO's "
        "motion, noise and spikes made at 1 mm, little reaches this grid (chapter 5b, section "
        "5b.6); the subtle set above shows the same for this package's own artifacts."
        + (" The checks above measure "
           + _and([_CHECKED.get(k, k) for k in info["checks"]])
           + " at the scan's own resolution; nothing does so for motion, whose fine-scale "
           "trace a clean scan reconstructed from partial or zero-filled k-space shares "
           "(`experiments/NOTES.md`, section 25)." if info.get("checks") else ""),
        "- It knows only the simulated kinds; an artifact of another kind (metal, RF "
        "interference patterns, susceptibility, wrong contrast or sequence, a non-brain "
        "image) may be called clean.",
        "- One volume at a time: 4-D series, and geometry that cannot be a head, are refused "
        "(error rows), never screened.",
        "- Its referral rule was chosen on synthetic validation scans; the share referred on "
        "real data can differ.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", "-p", default="laptop", choices=list(PROFILES))
    parser.add_argument("--stage", "-s", default="recipe", choices=list(STAGES))
    parser.add_argument("--out", "-o", default=str(DEFAULT_OUT),
                        help=f"bundle folder (default: {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument("--measure", default="mutual_information",
                        choices=["mutual_information", "entropy", "variance"])
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--max-referred", type=float, default=MAX_REFERRED,
                        help="largest share of validation scans the referral policy may refer "
                             f"(default {MAX_REFERRED}: the workload of a data manager)")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    from mriqc_nb.model.training import train_stage

    profile = get_profile(args.profile)
    run = train_stage(args.stage, profile, progress=not args.quiet, shipped=False)
    out = bundles.bundle_from_run(run, args.out, measure=args.measure, profile=profile,
                                  progress=not args.quiet, max_referred=args.max_referred)
    folder, info = bundles.read_info(out)
    fp = bundles.fingerprint(folder, info)
    # the repository's measures are written only when the built-in model is made
    m = measure(run, folder, profile, args.n_boot,
                keep_measures=Path(args.out).resolve() == DEFAULT_OUT.resolve())
    card = folder / CARD_FILE
    write_text(card, model_card(info, fp, m, profile, args.stage))
    for f in folder.iterdir():  # package data: readable by every user of an installation
        f.chmod(0o644)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"wrote {folder} ({size:.1f} MB, fingerprint {fp}) and {card.name}")
    for w in bundles.bundle_warnings(info):
        print(f"WARNING: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
