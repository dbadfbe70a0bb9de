"""A disk memo for the book's slow, deterministic computations that train no network.

Chapter 10 chooses its rater model by leaving each of ABIDE's 17 sites out for six candidate
models, then repeats its protocol over five seeds: a few minutes of scikit-learn fits on
2 cores, the same every time, because the inputs are the tables shipped in ``mriqc-learn``
and every fit is seeded. :func:`cached` keeps such a result under
``$MRIQC_NB_HOME/memo`` (:func:`mriqc_nb.paths.home`), so that a second execution of the
chapter (a reader's re-run, the tests' second pass, the book build) reads it back.

A result is read back only for the *same* call: the same function, the same arguments
(tables are compared by content, not by name), the same source of every module of this
package, and the same versions of numpy, pandas, scipy and scikit-learn. Any change to one of
them is a new key, so a stale result is never returned. A file that cannot be read (cut
short, from another Python) is computed again and replaced. Writes are atomic.

Trained networks have their own store (:mod:`mriqc_nb.model.runs`), with resume.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb._atomic import atomic_open

__all__ = ["cached", "memo_key", "memo_dir"]

_LIBRARIES = ("numpy", "pandas", "scipy", "sklearn")


def memo_dir() -> Path:
    """Where :func:`cached` keeps its results: ``$MRIQC_NB_HOME/memo``."""
    from mriqc_nb.paths import home

    return home() / "memo"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """One digest of every ``.py`` file of this package and of the libraries' versions."""
    import importlib

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    for name in _LIBRARIES:
        h.update(f"{name}={importlib.import_module(name).__version__}".encode())
    return h.hexdigest()


def _feed(h, obj) -> None:
    """Hash ``obj`` by content into ``h``; refuse what cannot be hashed faithfully."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, np.integer, np.floating)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, pd.DataFrame):
        h.update(f"DataFrame{obj.shape}{list(map(str, obj.columns))}"
                 f"{list(map(str, obj.dtypes))};".encode())
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
        _feed(h, dict(obj.attrs))
    elif isinstance(obj, pd.Series):
        h.update(f"Series{obj.shape}{obj.name!r}{obj.dtype};".encode())
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"ndarray{obj.shape}{obj.dtype};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        h.update(f"dict{len(obj)}{{".encode())
        for k, v in obj.items():  # in order: the order of a dict of models is the table's order
            _feed(h, k)
            _feed(h, v)
        h.update(b"}")
    elif isinstance(obj, (list, tuple, range)):
        h.update(f"{type(obj).__name__}{len(obj)}[".encode())
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        raise TypeError(f"memo: cannot key an argument of type {type(obj).__name__!r} "
                        "by its content; call the function directly")


def memo_key(fn, args=(), kwargs=None) -> str:
    """The key of ``fn(*args, **kwargs)``: function, arguments, package source, libraries."""
    h = hashlib.sha256()
    h.update(f"{fn.__module__}.{fn.__qualname__};".encode())
    h.update(_code_digest().encode())
    _feed(h, tuple(args))
    _feed(h, dict(sorted((kwargs or {}).items())))
    return h.hexdigest()[:24]


def cached(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, read back from the memo when this exact call was made before.

    Only for deterministic functions (seeded, no clock, no network) whose arguments are plain
    values, lists, dicts, arrays and tables. The result is pickled.

    Raises
    ------
    TypeError
        For an argument whose content cannot be hashed (then call ``fn`` directly).
    """
    path = memo_dir() / f"{fn.__name__}-{memo_key(fn, args, kwargs)}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:  # cut short or unreadable: compute again and replace it
            pass
    result = fn(*args, **kwargs)
    with atomic_open(path, "wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return result
