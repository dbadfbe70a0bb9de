"""Render a screening report in headless Chromium and check the screenshot.

    python benchmarks/bench_report.py [--scans 40] [--out /tmp/report-bench]

Builds a small screening table over real files (the MNI152 template bundled with nilearn,
some copies corrupted with the package's artifact simulators, plus broken inputs), writes the
HTML report with :func:`mriqc_nb.report.write_report` (views loaded from disk, the slow path),
takes a 1280 x 2000 screenshot with Debian's ``chromium`` and checks it (size, page not blank,
content inside 1280 px, summary colours and a view drawn). Prints timings and sizes; exits 1
if a check fails. Look at the PNG it writes, too.

The tests import :func:`screenshot` and :func:`check_screenshot` from here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: The flags used for every screenshot: no network, no GPU, no profile state.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars")
WIDTH, HEIGHT = 1280, 2000
#: Colours of the summary cards' top borders (see mriqc_nb.report's CSS).
CARD_RGB = {"clean": (0x2E, 0x9D, 0x5B), "artifact": (0xD9, 0x82, 0x2B),
            "refer": (0x7A, 0x5C, 0xC7), "error": (0xC9, 0x30, 0x2C)}
BACKGROUND_RGB = (0xF4, 0xF5, 0xF7)


def chromium() -> str | None:
    """Path of the Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_path, png_path, width: int = WIDTH, height: int = HEIGHT,
               timeout_s: float = 180.0) -> Path:
    """Screenshot ``html_path`` (a local file) with headless Chromium into ``png_path``."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={width},{height}", Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not png_path.exists():
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return png_path


def check_screenshot(png_path, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """What is wrong with a report's screenshot (an empty list if nothing)."""
    from PIL import Image

    rgb = np.asarray(Image.open(png_path).convert("RGB"), dtype=np.int16)
    problems = []
    if rgb.shape[:2] != (height, width):
        return [f"size {rgb.shape[1]} x {rgb.shape[0]}, expected {width} x {height}"]
    if rgb.std() < 10:
        problems.append("the page is blank")
    near = lambda colour, tol=12: np.all(np.abs(rgb - colour) <= tol, axis=-1)  # noqa: E731
    margins = np.concatenate([near(BACKGROUND_RGB)[:, :24], near(BACKGROUND_RGB)[:, -24:]], 1)
    if margins.mean() < 0.99:
        problems.append(f"content outside the {width - 48} px column ({margins.mean():.1%} of "
                        "the margins are background): not legible at this width")
    for name, colour in CARD_RGB.items():
        if near(colour).sum() < 200:
            problems.append(f"no {name} colour: the summary cards are not styled")
    dark_text = (rgb[:120].max(axis=-1) < 90).sum()
    if dark_text < 500:
        problems.append(f"no title text at the top ({dark_text} dark pixels)")
    black = (rgb.max(axis=-1) < 12).sum()
    if black < 50_000:
        problems.append(f"no slice views drawn ({black} black pixels)")
    return problems


def _demo(folder: Path, n: int, seed: int = 0):
    """Files and a matching screening table: clean, corrupted (artifact/refer) and broken."""
    import nibabel as nib
    import pandas as pd
    from nilearn.datasets import load_mni152_template

    from mriqc_nb import artifacts
    from mriqc_nb.sources import discover

    folder.mkdir(parents=True, exist_ok=True)
    mni = load_mni152_template(resolution=2)
    clean = np.asarray(mni.dataobj, dtype=np.float32)
    spacing = tuple(float(z) for z in mni.header.get_zooms()[:3])
    kinds = list(artifacts.ARTIFACTS)
    rng = np.random.default_rng(seed)
    n_bad = max(4, n // 5)
    rows = []
    for i in range(n):
        path = folder / f"sub-{i:03d}_T1w.nii.gz"
        vol = 100 * clean * rng.uniform(0.8, 1.2) + rng.normal(0, 1, clean.shape).astype(np.float32)
        decision, p, unc = "clean", rng.uniform(0, 0.2), rng.uniform(0, 0.4)
        if i < n_bad:
            kind = kinds[i % len(kinds)]
            params = artifacts.sample_params(kind, "prominent", seed=i, shape=vol.shape,
                                             spacing_mm=spacing)
            vol = artifacts.apply(vol, params, spacing_mm=spacing)
            decision = "artifact" if i % 2 == 0 else "refer"
            p, unc = rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0) if i % 2 else rng.uniform(0, 0.4)
        nib.save(nib.Nifti1Image(np.asarray(vol, np.float32), mni.affine), path)
        rows.append({"path": str(path), "status": "ok", "error": "", "decision": decision,
                     "p_artifact": p, "entropy": p * (1 - p), "mutual_information": unc / 10,
                     "variance": unc / 20, "scaled_uncertainty": unc,
                     "referred": decision == "refer", "needs_person": decision != "clean"})
    (folder / "dir.nii.gz").mkdir(exist_ok=True)
    if not os.path.lexists(folder / "gone.nii.gz"):
        os.symlink(folder / "nowhere.nii.gz", folder / "gone.nii.gz")
    garbage = ["<img src=x onerror=alert(1)>.nii.gz", os.fsdecode(b"caf\xe9.nii.gz")]
    for name in garbage:
        (folder / name).write_bytes(b"not a NIfTI file")
    for src in discover(folder):
        if not src.ok or os.path.basename(src.fspath) in garbage:
            msg = src.problem or f"{src.path}: nibabel cannot read it (ImageFileError)"
            rows.append({"path": src.path, "status": "error", "error": msg, "decision": "error",
                         "p_artifact": np.nan, "entropy": np.nan, "mutual_information": np.nan,
                         "variance": np.nan, "scaled_uncertainty": np.nan, "referred": pd.NA,
                         "needs_person": True})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from mriqc_nb import report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=40, help="screened files in the demo table")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "report-bench"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    table = _demo(out / "scans", args.scans)
    t_demo = time.perf_counter() - t0
    n_views = int(table["decision"].isin(["artifact", "refer"]).sum())
    t0 = time.perf_counter()
    html_path = report.write_report(table, out / "report.html",
                                    meta={"bundle": "demo (no model)", "seed": 0})
    t_report = time.perf_counter() - t0
    rows = [("demo files + table", f"{t_demo:.1f} s", f"{len(table)} rows"),
            ("write_report (views from disk)", f"{t_report:.2f} s",
             f"{n_views} views, {t_report / max(n_views, 1):.2f} s/view, "
             f"{html_path.stat().st_size / 1e3:.0f} kB")]
    problems = []
    if chromium() is None:
        problems.append("chromium not installed: apt-get install -y chromium")
    else:
        t0 = time.perf_counter()
        png = screenshot(html_path, out / "report.png")
        rows.append(("chromium screenshot", f"{time.perf_counter() - t0:.1f} s", str(png)))
        problems += check_screenshot(png)
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>8}  {note}")
    print("checks:", "all passed" if not problems else "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
