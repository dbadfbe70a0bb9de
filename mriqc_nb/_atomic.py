"""Atomic file writes: a reader never sees half a file, an interrupted write leaves no trace.

Each writer goes to a temporary file in the destination's folder, then :func:`os.replace`
(atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_open", "write_text", "write_json", "save_npy", "save_npz"]

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` on success.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left
    as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes the file private (0600); give it the mode a plain open() would (umask)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_json(path, obj, **kwargs) -> Path:
    """Write ``obj`` as indented JSON (keys sorted unless ``sort_keys=False``), atomically."""
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("sort_keys", True)
    return write_text(path, json.dumps(obj, **kwargs) + "\n")


def save_npy(path, array) -> Path:
    """``np.save`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        np.save(fh, np.asarray(array))
    return Path(path)


def save_npz(path, *arrays, **named) -> Path:
    """``np.savez`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        np.savez(fh, *arrays, **named)
    return Path(path)
