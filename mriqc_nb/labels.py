"""One vocabulary for labels, decisions and class weights.

Every module of the package speaks it:

- a scan's **label** is the text ``"clean"`` or ``"artifact"`` in scan tables (column
  ``label``), and the integer **y** (0 = clean, 1 = artifact, the index into :data:`LABELS`)
  in arrays and prediction tables (column ``y``);
- a **decision** about a scan is ``"clean"``, ``"artifact"`` or ``"refer"`` (sent to a person).

>>> to_y(["clean", "artifact", "1", 0])
array([0, 1, 1, 0])
>>> class_weights([98, 2])
array([ 1., 49.])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["LABELS", "LABEL_INDEX", "CLEAN", "ARTIFACT", "REFER", "DECISIONS",
           "to_y", "to_label", "class_weights"]

CLEAN, ARTIFACT, REFER = "clean", "artifact", "refer"
#: Class names; a class's integer label ``y`` is its index here.
LABELS: tuple[str, str] = (CLEAN, ARTIFACT)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
#: What the model (or the referral policy) decides for one scan.
DECISIONS: tuple[str, str, str] = (CLEAN, ARTIFACT, REFER)

_ALIASES = {"clean": 0, "0": 0, "artifact": 1, "artefact": 1, "1": 1}


def to_y(labels) -> np.ndarray:
    """Integer labels ``y`` (0 = clean, 1 = artifact) from text or integer labels.

    Accepts ``"clean"``/``"artifact"`` (also ``"artefact"``), ``0``/``1`` and their text.

    Raises
    ------
    ValueError
        Naming the first value that is not a label.
    """
    values = np.asarray(labels, dtype=object).ravel()
    y = np.empty(values.shape, dtype=np.int64)
    for i, v in enumerate(values):
        key = str(int(v)) if isinstance(v, (bool, np.bool_, int, np.integer)) else str(v).strip().lower()
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            key = str(int(v))
        if key not in _ALIASES:
            raise ValueError(f"not a label: {v!r} (expected one of {LABELS} or 0/1)")
        y[i] = _ALIASES[key]
    return y


def to_label(y) -> np.ndarray:
    """Text labels (``"clean"``/``"artifact"``) from integer labels ``y``."""
    return np.asarray(LABELS, dtype=object)[to_y(y)]


def class_weights(counts):
    """Class weights ``w_c = n_max / n_c`` (the most frequent class gets weight 1).

    Parameters
    ----------
    counts : sequence of int, or mapping class -> int
        Number of training scans per class (index = ``y``).

    Returns
    -------
    ndarray of float, or dict with the same keys for a mapping. A class with no scans
    gets weight 0 (it contributes nothing to the loss).

    Raises
    ------
    ValueError
        If a count is negative or every count is zero.
    """
    if isinstance(counts, Mapping):
        return dict(zip(counts.keys(), class_weights(list(counts.values())).tolist()))
    n = np.asarray(counts, dtype="float64")
    if n.ndim != 1 or n.size == 0 or np.any(n < 0) or not np.any(n > 0):
        raise ValueError(f"class counts must be non-negative with one positive, got {counts!r}")
    with np.errstate(divide="ignore"):
        return np.where(n > 0, n.max() / np.where(n > 0, n, 1.0), 0.0)
