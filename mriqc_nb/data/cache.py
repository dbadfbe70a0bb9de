"""The volume cache: one conformed float16 array per table row, named by what made it.

``DIR/cache/<grid>_<spacing>/<scan_id>.<hash>.npy`` (:func:`cache_dir_for`,
:func:`cache_file_name`): one float16 array per scan, conformed to the profile's grid and
z-scored (:func:`mriqc_nb.scans.conform`). The hash covers the row's recipe (or the file's
path, size and modification time), the grid and spacing, and the source of the modules that
make volumes (:func:`code_fingerprint`), so a changed recipe or simulator never returns a
stale array. Files are written atomically (:mod:`mriqc_nb._atomic`), so an interrupted build
resumes where it stopped. The cache directory's ``conform.json`` records its grid and spacing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mriqc_nb import artifacts, scans, synth
from mriqc_nb._atomic import save_npy, write_text
from mriqc_nb.data.table import MAX_LISTED, resolve_path
from mriqc_nb.labels import to_y

__all__ = [
    "conform_key",
    "cache_dir_for",
    "cache_file_name",
    "code_fingerprint",
    "database_id",
    "materialise",
    "load_volume",
    "cache_paths",
    "load_arrays",
]

#: File of a cache directory that records its grid and spacing.
CONFORM_FILE = "conform.json"
#: Bump to invalidate every cache built by an older version of this module.
CACHE_VERSION = 1
#: The sources that make volumes, relative to the package (folders: every file inside).
VOLUME_SOURCES = ("synth", "artifacts", "kspace.py", "scans")
_PACKAGE = Path(__file__).resolve().parent.parent


def conform_key(grid, spacing_mm) -> str:
    """Directory name of a cache: ``"64x64x32_4x4x6mm"`` (grid in voxels, spacing in mm)."""
    g = "x".join(str(int(n)) for n in grid)
    s = "x".join(f"{float(v):g}" for v in spacing_mm)
    return f"{g}_{s}mm"


def cache_dir_for(out_dir, grid, spacing_mm) -> Path:
    """The cache directory of a database directory for one grid (voxels) and spacing (mm)."""
    return Path(out_dir) / "cache" / conform_key(grid, spacing_mm)


def source_files(package=_PACKAGE) -> list[Path]:
    """The files :func:`code_fingerprint` hashes: :data:`VOLUME_SOURCES` under ``package``.

    Every file of a listed folder counts (compiled files and ``__pycache__`` excepted).
    """
    files = []
    for name in VOLUME_SOURCES:
        path = Path(package) / name
        if path.is_dir():
            files += sorted(f for f in path.rglob("*")
                            if f.is_file() and f.suffix != ".pyc" and "__pycache__" not in f.parts)
        elif path.is_file():
            files.append(path)
    return files


def _fingerprint(package) -> str:
    h = hashlib.sha1()
    for f in source_files(package):
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """Hash of the source of the modules that make volumes (see :func:`source_files`).

    Computed once per process.
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        _FINGERPRINT = _fingerprint(_PACKAGE)
    return _FINGERPRINT


def database_id(table) -> str:
    """Identity of the volumes a scan table stands for: its rows and the simulators' code.

    A hash of the columns that define each volume and its role (``scan_id``, ``split``,
    ``label``, ``recipe``, ``path``, those present) and of :func:`code_fingerprint`. Trained
    runs record it, so that a run made on another version of the benchmark is not reused.
    """
    cols = [c for c in ("scan_id", "split", "label", "recipe", "path") if c in table.columns]
    text = table[cols].astype(str).to_csv(index=False, sep="\t")
    return hashlib.sha1((code_fingerprint() + "\n" + text).encode()).hexdigest()[:16]


def _source_key(row, root=None) -> dict:
    recipe = str(row.get("recipe", "") or "")
    if recipe:
        return {"recipe": json.loads(recipe)}
    p = resolve_path(row["path"], root)
    try:
        st = p.stat()
        return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"path": str(p)}


def cache_file_name(row, grid, spacing_mm, root=None) -> str:
    """``<scan_id>.<hash>.npy``; the hash covers the source, the grid and the simulators.

    Parameters
    ----------
    row : mapping or pandas.Series
        A table row (``scan_id`` and ``recipe`` or ``path``).
    grid : sequence of 3 int
        Conformed grid, in voxels.
    spacing_mm : sequence of 3 float
        Conformed voxel size, in mm.
    root : path-like, optional
        Directory that a relative ``path`` is relative to.
    """
    key = {
        "version": CACHE_VERSION,
        "grid": [int(n) for n in grid],
        "spacing_mm": [float(s) for s in spacing_mm],
        "normalise": True,
        "code": code_fingerprint(),
        "source": _source_key(row, root),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{row['scan_id']}.{digest}.npy"


def materialise(row, grid, spacing_mm, root=None) -> np.ndarray:
    """Make the conformed volume of one table row (no cache): float32, shape ``grid``.

    Synthetic rows: :func:`mriqc_nb.synth.make_scan` on the recipe's grid, the artifact
    applied to the array with the recipe's spacing (mm), then the acquisition's release
    (:func:`mriqc_nb.synth.apply_release`: defacing or skull-stripping), then :func:`mriqc_nb.scans.conform`
    to ``grid`` and ``spacing_mm`` (the same normalisation as real files). File rows:
    ``conform(path)``.
    """
    recipe = str(row.get("recipe", "") or "")
    if recipe:
        r = json.loads(recipe)
        rgrid = tuple(r.get("grid", grid))
        rspacing = tuple(r.get("spacing_mm", spacing_mm))
        img = synth.make_scan(r["anatomy"], r["acquisition"], rgrid, rspacing)
        data = np.asarray(img.dataobj, dtype=np.float32)
        if r.get("artifact"):
            data = artifacts.apply(data, r["artifact"], spacing_mm=rspacing)
        # the dataset's release (defacing, skull-stripping) comes after the scanner's artifact
        data = synth.apply_release(data, r["anatomy"], r["acquisition"], rspacing)
        img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine)
        return scans.conform(img, tuple(grid), tuple(spacing_mm), normalise=True)
    return scans.conform(str(resolve_path(row["path"], root)), tuple(grid), tuple(spacing_mm), normalise=True)


def to_cache_dtype(volume: np.ndarray, scan_id: str) -> np.ndarray:
    """``volume`` as the cache stores it (float16); raises ``ValueError`` if not finite."""
    out = np.asarray(volume, dtype=np.float32).astype(np.float16)
    if not np.isfinite(out).all():
        raise ValueError(f"{scan_id}: conformed volume has non-finite values (or exceeds float16)")
    return out


def conform_settings(cache_dir) -> tuple[tuple, tuple]:
    """``(grid, spacing_mm)`` recorded in a cache directory's ``conform.json``."""
    f = Path(cache_dir) / CONFORM_FILE
    if not f.exists():
        raise FileNotFoundError(f"{f} not found: pass grid and spacing_mm, or build the database first")
    d = json.loads(f.read_text())
    return tuple(d["grid"]), tuple(d["spacing_mm"])


def write_conform_settings(cache_dir, grid, spacing_mm) -> None:
    """Record ``grid`` (voxels) and ``spacing_mm`` in ``cache_dir/conform.json`` (if changed)."""
    f = Path(cache_dir) / CONFORM_FILE
    text = json.dumps({"grid": [int(n) for n in grid], "spacing_mm": [float(s) for s in spacing_mm],
                       "normalise": True, "dtype": "float16", "version": CACHE_VERSION}, indent=2)
    if not f.exists() or f.read_text() != text:
        write_text(f, text)


def load_volume(row, cache_dir, *, grid=None, spacing_mm=None, root=None, write: bool = True) -> np.ndarray:
    """The conformed volume of a table row, from the cache (made and cached on a miss).

    Parameters
    ----------
    row : mapping or pandas.Series
        A row of a scan table (needs ``scan_id`` and ``recipe`` or ``path``).
    cache_dir : path-like
        The cache directory (:func:`cache_dir_for`); its ``conform.json`` gives the grid and
        spacing unless they are passed. A database directory also works for a row of its
        built table (its ``cache_file`` is read).
    grid : sequence of 3 int, optional
        Conformed grid, in voxels.
    spacing_mm : sequence of 3 float, optional
        Conformed voxel size, in mm.
    root : path-like, optional
        Directory that a relative ``path`` is relative to.
    write : bool
        Write a missing volume to the cache (default True).

    Returns
    -------
    numpy.ndarray, float32, shape ``grid``
        Always the float16 cached values (a miss returns what a later hit will return).
    """
    cache_dir = Path(cache_dir)
    if grid is None or spacing_mm is None:
        cached = str(row.get("cache_file", "") or "")
        if not (cache_dir / CONFORM_FILE).exists() and cached and (cache_dir / cached).exists():
            return np.load(cache_dir / cached).astype(np.float32)  # a database directory
        grid, spacing_mm = conform_settings(cache_dir)
    f = cache_dir / cache_file_name(row, grid, spacing_mm, root)
    if f.exists():
        return np.load(f).astype(np.float32)
    vol = to_cache_dtype(materialise(row, grid, spacing_mm, root), str(row["scan_id"]))
    if write:
        write_conform_settings(cache_dir, grid, spacing_mm)
        save_npy(f, vol)
    return vol.astype(np.float32)


def cache_paths(table: pd.DataFrame, root=None) -> list[str]:
    """Absolute cache file of every row (``root``, else ``table.attrs["root"]``, joined)."""
    root = root if root is not None else table.attrs.get("root")
    if "cache_file" not in table.columns or (table["cache_file"].astype(str) == "").any():
        raise ValueError("table has no cache files: build it with build_database() first")
    return [str(resolve_path(f, root)) for f in table["cache_file"].astype(str)]


def load_arrays(table: pd.DataFrame, ids=None, *, root=None, channel_axis: bool = True):
    """Load cached volumes into memory (for small sets): ``X, y``.

    Parameters
    ----------
    table : pandas.DataFrame
        A built scan table (with ``cache_file``).
    ids : sequence of str, optional
        Scan ids to load, in this order (default: every row).
    root : path-like, optional
        Database directory (default ``table.attrs["root"]``).
    channel_axis : bool
        Append a channel axis (default True).

    Returns
    -------
    X : numpy.ndarray, float32, shape (n, x, y, z[, 1])
    y : numpy.ndarray, int64, shape (n,)
        Integer labels: 0 = clean, 1 = artifact.
    """
    if ids is not None:
        pos = pd.Index(table["scan_id"].astype(str)).get_indexer([str(i) for i in ids])
        if (pos < 0).any():
            unknown = [str(i) for i, q in zip(ids, pos) if q < 0]
            raise KeyError(f"scan ids not in the table: {unknown[:MAX_LISTED]}")
        table = table.iloc[pos]
    paths = cache_paths(table, root)
    y = to_y(table["label"].to_numpy())
    if not paths:
        return np.zeros((0,), np.float32), y
    first = np.load(paths[0], mmap_mode="r")
    X = np.empty((len(paths), *first.shape), dtype=np.float32)
    for i, p in enumerate(paths):
        X[i] = np.load(p)
    return (X[..., None] if channel_axis else X), y

