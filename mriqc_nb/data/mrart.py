"""MR-ART (OpenNeuro ds004173): real motion artifacts scored by neuroradiologists, as a scan table.

MR-ART (Narai et al., 2022) has 148 adults, one T1w scan at rest and two with deliberate head
motion each, scored 1/2/3 = good/medium/bad. Nothing is downloaded here: :func:`mrart_table`
turns a local copy into the book's scan table, ready for
:func:`mriqc_nb.data.build.build_database`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

__all__ = ["MRART_ACQUISITIONS", "MRART_SCORES", "mrart_table", "write_example_tree"]


#: The three acquisitions of each MR-ART subject (BIDS ``acq-`` entity).
MRART_ACQUISITIONS = ("standard", "headmotion1", "headmotion2")
#: The radiologists' scores of MR-ART.
MRART_SCORES = {1: "good", 2: "medium", 3: "bad"}
_MEDIUM = ("drop", "artifact", "clean")
_MRART_FILE = re.compile(r"^(sub-[^_]+)_acq-(standard|headmotion1|headmotion2)_T1w\.nii(\.gz)?$")
_MRART_HINT = ("expected a local copy of MR-ART (OpenNeuro ds004173): sub-*/anat/sub-*_acq-standard_T1w.nii.gz "
               "(and acq-headmotion1, acq-headmotion2) with derivatives/scores.tsv (columns bids_name, score). "
               "Get it with internet access, e.g. `datalad install https://github.com/OpenNeuroDatasets/ds004173.git` "
               "then `datalad get`, or `openneuro-py download --dataset ds004173 --target-dir DIR`")


def _bids_stem(name: str) -> str:
    name = Path(str(name).strip()).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def mrart_table(root, scores_tsv=None, *, medium: str = "drop") -> pd.DataFrame:
    """The book's scan table for a local copy of MR-ART (OpenNeuro ds004173).

    Score 1 (good) is *clean*, score 3 (bad) is a *prominent artifact*, and score 2 (medium)
    follows ``medium``:

    - ``"drop"`` (default): left out, as the paper trained and tested on prominent artifacts
      only. (They cannot be kept aside in the book's ``subtle`` split: that split must hold
      subjects of its own, and every MR-ART subject also has a scan in the labelled splits.)
    - ``"artifact"``: kept as artifacts with ``severity = "subtle"``;
    - ``"clean"``: kept as clean.

    Parameters
    ----------
    root : path-like
        The dataset's root directory (the one holding ``sub-*/`` and ``derivatives/``).
    scores_tsv : path-like, optional
        The scores table; default ``ROOT/derivatives/scores.tsv``. Columns ``bids_name`` (e.g.
        ``sub-000103_acq-standard_T1w``, with or without ``.nii.gz``) and ``score``.
    medium : {"drop", "artifact", "clean"}

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id`` (the BIDS name), ``subject_id``, ``site`` (``"MR-ART"``: one
        scanner), ``modality`` (``"T1w"``), ``label``, ``severity``, ``path`` (absolute), plus
        ``acq`` and ``score``. No ``split``: :func:`mriqc_nb.data.build.build_database` (with
        ``table=``) splits it by subject, so a subject's still and moving scans stay together.
        Scans without a score are left out with a warning, as are scores without a file.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not look like MR-ART (no ``acq-standard`` T1w scans, or no scores
        table); the message names ``root`` and says how to get the dataset.
    ValueError
        Bad ``medium``, a scores table without ``bids_name``/``score``, or scores outside 1-3.
    """
    if medium not in _MEDIUM:
        raise ValueError(f"medium must be one of {_MEDIUM}, got {medium!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"MR-ART root {str(root)!r} is not a directory; {_MRART_HINT}")
    files = {}
    for path in sorted(root.glob("sub-*/anat/sub-*_T1w.nii*")):
        m = _MRART_FILE.match(path.name)
        if m and path.parent.parent.name == m.group(1):
            files[_bids_stem(path.name)] = (m.group(1), m.group(2), path.resolve())
    if not any(acq == "standard" for _, acq, _ in files.values()):
        raise FileNotFoundError(f"{str(root)!r} does not look like MR-ART: no sub-*/anat/sub-*_acq-standard_T1w.nii[.gz] "
                                f"found; {_MRART_HINT}")
    scores_path = Path(scores_tsv).expanduser() if scores_tsv is not None else root / "derivatives" / "scores.tsv"
    if not scores_path.is_file():
        raise FileNotFoundError(f"{str(root)!r} does not look like MR-ART: no scores table at {str(scores_path)!r}; "
                                f"{_MRART_HINT}")
    scores = pd.read_csv(scores_path, sep=None, engine="python", dtype={"bids_name": str})
    if not {"bids_name", "score"} <= set(scores.columns):
        raise ValueError(f"{scores_path}: expected columns bids_name and score, got {list(scores.columns)}")
    scores["stem"] = scores["bids_name"].map(_bids_stem)
    scores["score"] = pd.to_numeric(scores["score"], errors="coerce")
    bad = scores[~scores["score"].isin(list(MRART_SCORES))]
    if len(bad):
        raise ValueError(f"{scores_path}: scores must be 1, 2 or 3; offending rows: "
                         f"{bad[['bids_name', 'score']].head(10).to_dict('records')}")
    scored = dict(zip(scores["stem"], scores["score"].astype(int)))
    unscored = sorted(set(files) - set(scored))
    orphans = sorted(set(scored) - set(files))
    if unscored:
        warnings.warn(f"MR-ART: {len(unscored)} scan(s) without a score left out, e.g. {unscored[:3]}", stacklevel=2)
    if orphans:
        warnings.warn(f"MR-ART: {len(orphans)} score(s) without a scan file ignored, e.g. {orphans[:3]}", stacklevel=2)
    rows = []
    for stem, (subject, acq, path) in files.items():
        if stem not in scored:
            continue
        score = scored[stem]
        if score == 1 or (score == 2 and medium == "clean"):
            label, severity = "clean", "none"
        elif score == 3:
            label, severity = "artifact", "prominent"
        elif medium == "artifact":
            label, severity = "artifact", "subtle"
        else:  # score 2, dropped
            continue
        rows.append({"scan_id": stem, "subject_id": subject, "site": "MR-ART", "modality": "T1w",
                     "label": label, "severity": severity, "path": str(path), "acq": acq, "score": score})
    cols = ["scan_id", "subject_id", "site", "modality", "label", "severity", "path", "acq", "score"]
    table = pd.DataFrame(rows, columns=cols)
    table.attrs.update({"dataset": "MR-ART (OpenNeuro ds004173)", "root": str(root.resolve()), "medium": medium})
    return table


#: Scores of the miniature tree of :func:`write_example_tree`: subject -> (standard,
#: headmotion1, headmotion2).
EXAMPLE_SCORES = {"sub-000101": (1, 2, 3), "sub-000102": (1, 1, 2), "sub-000103": (1, 3, 3)}


def write_example_tree(root, scores=None, *, shape=(4, 4, 3), ext: str = ".nii.gz", seed: int = 0) -> Path:
    """Write a miniature tree laid out like MR-ART, to try :func:`mrart_table` offline.

    Parameters
    ----------
    root : path-like
        Created; must not hold a previous tree.
    scores : dict subject -> (int, int, int), optional
        Scores of the three acquisitions (:data:`MRART_ACQUISITIONS`) per subject; default
        :data:`EXAMPLE_SCORES` (9 scans: 4 good, 2 medium, 3 bad).
    shape : 3 ints
        Size of each (random, 1 mm) volume; these are not heads.
    ext : {".nii.gz", ".nii"}
    seed : int

    Returns
    -------
    pathlib.Path
        ``root``, holding ``sub-*/anat/sub-*_acq-*_T1w<ext>``, ``derivatives/scores.tsv`` and
        ``dataset_description.json``.
    """
    import nibabel as nib
    import numpy as np

    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for sub, subj_scores in (scores or EXAMPLE_SCORES).items():
        anat = root / sub / "anat"
        anat.mkdir(parents=True)
        for acq, score in zip(MRART_ACQUISITIONS, subj_scores):
            name = f"{sub}_acq-{acq}_T1w"
            nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), np.eye(4)), anat / f"{name}{ext}")
            rows.append({"bids_name": name, "score": score})
    (root / "derivatives").mkdir()
    pd.DataFrame(rows).to_csv(root / "derivatives" / "scores.tsv", sep="\t", index=False)
    (root / "dataset_description.json").write_text('{"Name": "miniature MR-ART", "BIDSVersion": "1.6.0"}')
    return root

