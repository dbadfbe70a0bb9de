"""Building a scan database: the table, the volume cache, in parallel, resumable.

:func:`build_database` writes a database directory::

    DIR/scans.tsv                    the scan table (mriqc_nb.data.table)
    DIR/database.json                profile, counts per split, code fingerprint
    DIR/cache/<grid>_<spacing>/      one float16 array per scan (mriqc_nb.data.cache)

Volumes are made by worker processes, each writing its own files atomically; the parent
never holds the volumes, so memory does not grow with the database. The result does not
depend on the number of workers (every row has its own seeds). An interrupted build resumes
where it stopped. Workers end with their parent: they ignore Ctrl-C (the parent stops them),
stop cleanly on SIGTERM, and are sent SIGTERM when the parent dies, however it dies.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import numpy as np
import pandas as pd

from mriqc_nb._atomic import save_npy, write_json
from mriqc_nb._workers import Stopped, default_workers, stop_workers, worker_pool
from mriqc_nb.data.cache import (
    cache_dir_for,
    cache_file_name,
    code_fingerprint,
    materialise,
    to_cache_dtype,
    write_conform_settings,
)
from mriqc_nb.data.ramp import add_ramp_order
from mriqc_nb.data.splits import prepare_table
from mriqc_nb.data.synthetic import make_table
from mriqc_nb.data.table import ALL_SPLITS, MAX_LISTED, TABLE_FILE, json_default, save_table, validate_table
from mriqc_nb.labels import LABELS
from mriqc_nb.paths import database_dir
from mriqc_nb.profiles import Profile, get_profile

__all__ = ["META_FILE", "BuildError", "build_database", "profile_database"]

#: File name of the database's metadata inside its directory.
META_FILE = "database.json"


class BuildError(RuntimeError):
    """Some volumes of a database could not be made; the message lists the scans and why.

    Attributes
    ----------
    failures : dict[str, str]
        ``scan_id`` -> error message.
    """

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        shown = [f"  {k}: {v}" for k, v in list(self.failures.items())[:MAX_LISTED]]
        more = [f"  ... ({len(failures) - MAX_LISTED} more)"] if len(failures) > MAX_LISTED else []
        super().__init__(f"{len(failures)} scan(s) could not be built:\n" + "\n".join(shown + more))


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


def _build_chunk(rows: list[dict], cache_dir: str, grid, spacing_mm, root) -> dict[str, str]:
    """Make and cache the volumes of ``rows``; return ``{scan_id: error}``."""
    failures = {}
    cache_dir = Path(cache_dir)
    try:
        for row in rows:
            try:
                vol = to_cache_dtype(materialise(row, grid, spacing_mm, root), row["scan_id"])
                save_npy(cache_dir / Path(row["cache_file"]).name, vol)
            except Exception as err:  # noqa: BLE001 -- reported per scan, the build goes on
                failures[row["scan_id"]] = f"{type(err).__name__}: {err}"
    except Stopped as stop:  # the pool would catch it and wait for more work: exit instead
        os._exit(stop.code)
    return failures


def _run_build(todo: list[dict], cache_dir: Path, grid, spacing_mm, root, workers: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    failures: dict[str, str] = {}
    bar = tqdm(total=len(todo), unit="scan", desc="building volumes", disable=not progress or not todo)
    try:
        if workers <= 1 or len(todo) <= 1:
            for row in todo:
                failures.update(_build_chunk([row], str(cache_dir), grid, spacing_mm, root))
                bar.update(1)
            return failures
        chunk = max(1, min(16, len(todo) // (workers * 4)))
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        pool = worker_pool(workers)
        try:
            pending = {}
            it = iter(chunks)
            for c in it:  # keep at most 2 chunks per worker in flight: bounded memory
                pending[pool.submit(_build_chunk, c, str(cache_dir), grid, spacing_mm, root)] = len(c)
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    bar.update(pending.pop(fut))
                    failures.update(fut.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(_build_chunk, nxt, str(cache_dir), grid, spacing_mm, root)] = len(nxt)
        except BaseException:  # Ctrl-C, a signal turned into an exception, a broken pool
            stop_workers(pool)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()
    return failures


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def build_database(
    profile: str | Profile,
    out_dir,
    workers: int | None = None,
    progress: bool = True,
    *,
    table=None,
    on_error: str = "raise",
    prune: bool = True,
) -> pd.DataFrame:
    """Build (or resume) a scan database: ``DIR/scans.tsv``, ``DIR/database.json``, the cache.

    Idempotent: a second call finds every volume cached and only rewrites the table. An
    interrupted call resumes where it stopped. The result does not depend on ``workers``.

    Parameters
    ----------
    profile : str or Profile
        Grid, spacing, counts and seed (see :mod:`mriqc_nb.profiles`).
    out_dir : path-like
        The database directory (:func:`mriqc_nb.paths.database_dir` is the profile's own).
    workers : int, optional
        Processes (default: all available cores; 0 or 1 builds in this process).
    progress : bool
        Show a progress bar (tqdm).
    table : DataFrame or path-like, optional
        Your own table of files (see :mod:`mriqc_nb.data.table`) instead of the synthetic
        database (:func:`mriqc_nb.data.synthetic.make_table`); it is validated, split by
        subject if it has no ``split`` column, and conformed to the profile's grid.
    on_error : {"raise", "drop"}
        If some volumes cannot be made (e.g. unreadable files): raise :class:`BuildError`
        after building all the others (the default), or drop those rows with a warning.
    prune : bool
        Delete cached arrays that no row of the table uses any more (stale recipes).

    Returns
    -------
    pandas.DataFrame
        The scan table, with ``cache_file`` filled and ``attrs["root"] = out_dir``.
    """
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
    p = get_profile(profile)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    df = make_table(p) if table is None else prepare_table(table, p)
    root = None  # synthetic rows have no paths; prepare_table made paths absolute
    validate_table(df, check_files=False)
    cache_dir = cache_dir_for(out_dir, p.grid, p.spacing_mm)
    write_conform_settings(cache_dir, p.grid, p.spacing_mm)
    rel = cache_dir.relative_to(out_dir)
    df["cache_file"] = [
        str(rel / cache_file_name(r, p.grid, p.spacing_mm, root)) for r in df[["scan_id", "recipe", "path"]].to_dict("records")
    ]
    df.attrs["root"] = str(out_dir)
    save_table(df, out_dir / TABLE_FILE)

    exists = np.array([(out_dir / f).exists() for f in df["cache_file"]], dtype=bool)
    todo = df.loc[~exists, ["scan_id", "recipe", "path", "cache_file"]].to_dict("records")
    n_workers = default_workers() if workers is None else int(workers)
    failures = _run_build(todo, cache_dir, tuple(p.grid), tuple(p.spacing_mm), root, n_workers, progress)

    if failures and on_error == "drop":
        warnings.warn(str(BuildError(failures)) + "\nthese rows are dropped from the table", stacklevel=2)
        df = df[~df["scan_id"].isin(failures)].reset_index(drop=True)
        df = add_ramp_order(df, p.seed)
        df.attrs["root"] = str(out_dir)
        save_table(df, out_dir / TABLE_FILE)
    if prune:
        used = {Path(f).name for f in df["cache_file"]}
        for f in cache_dir.glob("*.npy"):
            if f.name not in used:
                f.unlink(missing_ok=True)
    meta = {
        "profile": p.as_dict(),
        "source": "synthetic" if table is None else "table",
        "cache_dir": str(rel),
        "code_fingerprint": code_fingerprint(),
        "n_rows": int(len(df)),
        "counts": {
            s: {lab: int(((df["split"] == s) & (df["label"] == lab)).sum()) for lab in LABELS}
            for s in ALL_SPLITS
        },
        "n_prime": int(df["prime"].sum()),
    }
    write_json(out_dir / META_FILE, meta, sort_keys=False, default=json_default)
    if failures and on_error == "raise":
        raise BuildError(failures)
    return df


def profile_database(profile, *, workers: int | None = None, progress: bool = True) -> pd.DataFrame:
    """The scan table of ``profile``'s own database, built on first use.

    The database lives in :func:`mriqc_nb.paths.database_dir` (under ``$MRIQC_NB_HOME``), so
    every chapter, training stage and command that asks for a profile's data shares one copy.
    Later calls only check the cache (see :func:`build_database`).
    """
    p = get_profile(profile)
    return build_database(p, database_dir(p), workers=workers, progress=progress)
