"""BIDS datasets: recognise a root, list its anatomical scans, parse entities, write derivatives.

The Brain Imaging Data Structure (BIDS, https://bids-specification.readthedocs.io) names every
file after its *entities*, ``key-value`` pairs joined by ``_`` and ended by a *suffix*::

    sub-01/ses-pre/anat/sub-01_ses-pre_acq-mprage_run-2_T1w.nii.gz

Screening a BIDS dataset means every anatomical scan (``anat/`` folder) of every subject and
session: :func:`anat_scans`. Each screening row carries the entities (:data:`ENTITY_COLUMNS`)
so that a table can be grouped by subject or session, and the table can be written as a BIDS
*derivative* dataset: :func:`write_derivative_description`.

>>> entities("sub-01/ses-pre/anat/sub-01_ses-pre_acq-mprage_run-2_T1w.nii.gz")["acquisition"]
'mprage'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from . import __version__
from ._atomic import write_json

__all__ = ["ENTITIES", "ENTITY_COLUMNS", "BIDS_VERSION", "BidsScan", "is_bids_root",
           "anat_scans", "entities", "write_derivative_description"]

#: Short entity keys of BIDS file names and their long names (the names pybids uses).
ENTITIES = {
    "sub": "subject", "ses": "session", "task": "task", "acq": "acquisition",
    "ce": "ceagent", "trc": "tracer", "rec": "reconstruction", "dir": "direction",
    "run": "run", "mod": "modality", "echo": "echo", "flip": "flip", "inv": "inversion",
    "mt": "mtransfer", "part": "part", "chunk": "chunk", "space": "space",
    "res": "resolution", "den": "density", "label": "label", "desc": "description",
}
#: Entity columns a screening table carries (text; empty when a file has no such entity).
ENTITY_COLUMNS = ("subject", "session", "acquisition", "reconstruction", "run", "suffix")
#: Version of the BIDS specification the written derivative follows.
BIDS_VERSION = "1.9.0"
DESCRIPTION = "dataset_description.json"
#: Name of this tool in ``GeneratedBy`` (how our own derivative is recognised).
GENERATOR = "mriqc-nb"
_NIFTI = (".nii", ".nii.gz")
#: Folder names that are BIDS data types (``anat``, ``func``...), reported as ``datatype``.
_DATATYPES = {"anat", "func", "dwi", "fmap", "perf", "pet", "meg", "eeg", "ieeg", "beh",
              "micr", "nirs", "motion"}


class BidsScan(NamedTuple):
    """One anatomical file of a BIDS dataset.

    Attributes
    ----------
    path : str
        The file, under the root given to :func:`anat_scans` (as the OS names it: a name that
        is not valid UTF-8 keeps its bytes as surrogate escapes).
    entities : dict of str to str
        As :func:`entities` parses them from the name.
    """

    path: str
    entities: dict


def entities(path) -> dict[str, str]:
    """Entities of a BIDS file name, with long keys, plus ``suffix`` and ``datatype``.

    Parameters
    ----------
    path : str or os.PathLike
        A file name or path, e.g. ``"sub-01/anat/sub-01_run-1_T1w.nii.gz"``.

    Returns
    -------
    dict of str to str
        ``subject``, ``session``, ``acquisition``, ``run``... (see :data:`ENTITIES`; an
        unknown key is kept as it is written), ``suffix`` (``"T1w"``), ``extension``
        (``".nii.gz"``) and ``datatype`` when the parent folder is one (``"anat"``). Values
        are text as written (``run`` ``"02"`` stays ``"02"``). Empty when the name does not
        start with a ``sub-<label>`` entity or is not ``key-value`` pairs and a suffix.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    if not parts[0].startswith("sub-") or len(parts) < 2 or "-" in parts[-1] or not parts[-1]:
        return {}
    out: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("-")
        if not sep or not key or not value or "-" in value:
            return {}
        out[ENTITIES.get(key, key)] = value
    out["suffix"] = parts[-1]
    out["extension"] = dot + rest
    parent = os.path.basename(os.path.dirname(path))
    if parent in _DATATYPES:
        out["datatype"] = parent
    return out


def is_bids_root(path) -> bool:
    """True if ``path`` is the root folder of a BIDS dataset.

    A root holds ``dataset_description.json`` (required by BIDS), or (a dataset whose
    description was forgotten) a ``sub-<label>`` folder laid out as BIDS, holding a data type
    folder (``anat/``...) or a ``ses-<label>`` folder. A subject's own folder (``sub-01/``)
    is not a root, nor a plain folder whose subfolders merely start with ``sub-``.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    if os.path.isfile(os.path.join(path, DESCRIPTION)):
        return True
    for sub in _sorted_dirs(path, "sub-"):
        try:
            if any(e.is_dir() and (e.name in _DATATYPES or e.name.startswith("ses-"))
                   for e in os.scandir(sub)):
                return True
        except OSError:
            continue
    return False


def _sorted_dirs(folder: str, prefix: str) -> list[str]:
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix) and e.is_dir()]
    except OSError:
        return []
    return [os.path.join(folder, n) for n in sorted(names)]


def anat_scans(root) -> list[BidsScan]:
    """Every NIfTI file in the ``anat/`` folders of every subject and session of a dataset.

    Parameters
    ----------
    root : str or os.PathLike
        The dataset root (see :func:`is_bids_root`).

    Returns
    -------
    list of BidsScan
        Sorted by subject, session, file name. Every entry whose name ends in ``.nii`` or
        ``.nii.gz`` is listed, *whatever it is*: a broken symbolic link (a DataLad/git-annex
        file whose content was not fetched), a folder, a FIFO; the caller decides what is
        usable (:func:`mriqc_nb.sources.discover` turns those into error rows). Hidden names
        (``.``) and the ``derivatives/``, ``sourcedata/`` and ``code/`` folders are not
        visited (they are not subject folders).
    """
    root = os.fspath(root)
    out = []
    for sub in _sorted_dirs(root, "sub-"):
        for folder in [sub, *_sorted_dirs(sub, "ses-")]:
            anat = os.path.join(folder, "anat")
            try:
                names = sorted(os.listdir(anat))
            except OSError:  # no anat folder (or not readable) in this subject/session
                continue
            for name in names:
                if name.startswith(".") or not name.lower().endswith(_NIFTI):
                    continue
                path = os.path.join(anat, name)
                out.append(BidsScan(path, entities(path)))
    return out


def write_derivative_description(out_dir, *, source_root=None,
                                 name: str = "mriqc-nb screening",
                                 description: str | None = None) -> Path:
    """Write ``dataset_description.json`` that makes ``out_dir`` a BIDS derivative dataset.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The derivative folder (created if needed), e.g. ``<dataset>/derivatives/mriqc-nb``.
    source_root : str or os.PathLike, optional
        The screened BIDS dataset, listed in ``SourceDatasets`` (its DOI when its own
        description gives ``DatasetDOI``, else its ``file://`` URL).
    name : str
        ``Name`` of the derivative dataset.
    description : str, optional
        Free text for ``GeneratedBy[0].Description`` (e.g. the model bundle and seed used).

    Returns
    -------
    pathlib.Path
        The written file (``DatasetType`` ``"derivative"``, ``BIDSVersion``
        :data:`BIDS_VERSION`, ``GeneratedBy`` ``[{"Name": "mriqc-nb", "Version": ...}]``).

    Raises
    ------
    FileExistsError
        If ``out_dir`` already holds a description that mriqc-nb did not write: someone
        else's dataset is never modified. Our own is updated.
    """
    out = Path(os.fspath(out_dir)) / DESCRIPTION
    if out.exists():
        try:
            old = json.loads(out.read_text())
            ours = old.get("GeneratedBy", [{}])[0].get("Name") == GENERATOR
        except (ValueError, AttributeError, IndexError, TypeError, OSError):
            ours = False
        if not ours:
            raise FileExistsError(f"{out}: a dataset description not written by {GENERATOR}; "
                                  "choose another output folder")
    generated = {"Name": GENERATOR, "Version": __version__,
                 "CodeURL": "https://github.com/mriqc-nb/mriqc-nb"}
    if description:
        generated["Description"] = description
    info = {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [generated]}
    if source_root is not None:
        src = Path(os.fspath(source_root)).resolve()
        try:
            doi = json.loads((src / DESCRIPTION).read_text()).get("DatasetDOI")
        except (OSError, ValueError, AttributeError):
            doi = None
        info["SourceDatasets"] = [{"DOI": doi} if doi else {"URL": src.as_uri()}]
    return write_json(out, info, sort_keys=False)
