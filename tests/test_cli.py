"""The ``mriqc-nb`` command: simulate on a user's scan, errors, help."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from mriqc_nb.artifacts import ARTIFACTS
from mriqc_nb.cli import main


def _ellipsoid_lps(path, shape=(40, 48, 36), zooms=(2.0, 2.0, 3.0)):
    """A bright ellipsoid 'head' stored in LPS orientation (as DICOM converters often write)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    data = (np.sum((grid / [[[[0.8]]], [[[0.85]]], [[[0.8]]]]) ** 2, axis=0) < 1).astype(np.float32) * 100
    data += np.linspace(0, 10, shape[2], dtype=np.float32)[None, None, :] * (data > 0)
    affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])  # L-P-S
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data, affine


@pytest.mark.parametrize("kind", ["motion", "coverage", "noise"])
def test_simulate_writes_corrupted_copy_on_input_grid(tmp_path, kind):
    src = tmp_path / "scan.nii.gz"
    data, affine = _ellipsoid_lps(src)
    out = tmp_path / "out" / "corrupted.nii.gz"
    out.parent.mkdir()
    assert main(["simulate", str(src), str(out), "--artifact", kind, "--seed", "3"]) == 0
    img = nib.load(str(out))
    assert img.shape == data.shape
    np.testing.assert_allclose(img.affine, affine)
    result = np.asarray(img.dataobj, dtype=np.float32)
    assert np.isfinite(result).all() and not np.allclose(result, data)
    record = json.loads((tmp_path / "out" / "corrupted.json").read_text())
    assert record["params"]["kind"] == kind and record["seed"] == 3


def test_simulate_coverage_cuts_the_top_in_world_space(tmp_path):
    """Reorientation round trip: 'coverage' removes the superior part whatever the storage order."""
    src = tmp_path / "scan.nii"
    data, affine = _ellipsoid_lps(src)
    out = tmp_path / "cut.nii"
    main(["simulate", str(src), str(out), "--artifact", "coverage", "--seed", "0"])
    params = json.loads((tmp_path / "cut.json").read_text())["params"]
    result = np.asarray(nib.load(str(out)).dataobj)
    lost = (data > 0) & (result == 0)
    assert lost.any()
    # axis 2 of the stored array is S (superior up), so lost voxels are at the side the params say
    z_lost = np.nonzero(lost.any(axis=(0, 1)))[0]
    z_head = np.nonzero((data > 0).any(axis=(0, 1)))[0]
    if params.get("axis", 2) == 2:
        side_end = z_head.max() if params.get("side", "+") in ("+", 1, "superior") else z_head.min()
        assert side_end in z_lost


def test_simulate_is_deterministic(tmp_path):
    src = tmp_path / "scan.nii.gz"
    _ellipsoid_lps(src)
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    main(["simulate", str(src), str(a), "-a", "ghosting", "--seed", "5"])
    main(["simulate", str(src), str(b), "-a", "ghosting", "--seed", "5"])
    np.testing.assert_array_equal(nib.load(str(a)).get_fdata(), nib.load(str(b)).get_fdata())


def test_simulate_bad_input_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a nifti file")
    assert main(["simulate", str(bad), str(tmp_path / "o.nii.gz"), "-a", "spike"]) == 2
    err = capsys.readouterr().err
    assert "broken.nii.gz" in err
    assert not (tmp_path / "o.nii.gz").exists()
    assert main(["simulate", str(tmp_path / "missing.nii"), str(tmp_path / "o.nii.gz"), "-a", "spike"]) == 2
    assert "missing.nii" in capsys.readouterr().err


def test_simulate_refuses_minc_output(tmp_path, capsys):
    src = tmp_path / "scan.nii.gz"
    _ellipsoid_lps(src)
    assert main(["simulate", str(src), str(tmp_path / "o.mnc"), "-a", "blur"]) == 2
    assert "NIfTI" in capsys.readouterr().err


def test_help_describes_every_kind(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for kind, art in ARTIFACTS.items():
        assert f"{kind} [{art.artifact_class}]" in text


def test_console_script_installed():
    exe = shutil.which("mriqc-nb", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe, "the mriqc-nb console script is not installed next to the interpreter"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "simulate" in out and "database" in out
