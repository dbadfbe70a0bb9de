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


def _phantom_stored_as(path, codes, shape=(40, 48, 36), zooms=(2.0, 2.5, 3.0)):
    """One asymmetric head phantom (the same voxels in world space), stored in orientation
    ``codes`` (e.g. "ILP": the first array axis runs superior to inferior)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radii = np.reshape([0.8, 0.85, 0.75], (3, 1, 1, 1))
    centre = np.reshape([0.1, -0.05, 0.0], (3, 1, 1, 1))  # off-centre: no symmetry to hide behind
    data = (np.sum(((grid - centre) / radii) ** 2, axis=0) < 1).astype(np.float32) * 100
    data += (np.linspace(0, 10, shape[0])[:, None, None] + np.linspace(0, 20, shape[2])) * (data > 0)
    ras = nib.Nifti1Image(data.astype(np.float32), np.diag([*zooms, 1.0]))
    img = ras.as_reoriented(nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(tuple(codes))))
    assert "".join(nib.aff2axcodes(img.affine)) == codes
    nib.save(img, str(path))
    return img


def _lost_world_points(src_img, out_path):
    """World coordinates (mm) of the head voxels that the artifact set to zero, sorted."""
    before = np.asarray(src_img.dataobj)
    after = nib.load(str(out_path))
    np.testing.assert_allclose(after.affine, src_img.affine)
    ijk = np.argwhere((before > 0) & (np.asarray(after.dataobj) == 0))
    xyz = nib.affines.apply_affine(src_img.affine, ijk)
    return xyz[np.lexsort(xyz.T[::-1])], nib.affines.apply_affine(
        src_img.affine, np.argwhere((before > 0) & (np.asarray(after.dataobj) != 0)))


def test_simulate_coverage_cuts_the_same_world_region_whatever_the_storage_order(tmp_path):
    """Reorientation round trip: the cut is found in RAS+ and written back to the input's order.

    The same head stored as RAS and as ILP (array axes: superior->inferior, right->left,
    anterior->posterior) must lose the same points in world space. Without the reorientation
    the ILP copy would be cut along its last array axis (posterior), not where RAS is cut.
    """
    lost = {}
    for codes in ("RAS", "ILP"):
        img = _phantom_stored_as(tmp_path / f"{codes}.nii.gz", codes)
        out = tmp_path / f"{codes}_cut.nii.gz"
        assert main(["simulate", str(tmp_path / f"{codes}.nii.gz"), str(out), "-a", "coverage",
                     "-s", "prominent", "--seed", "0"]) == 0
        lost[codes], kept = _lost_world_points(img, out)
        assert len(lost[codes]) > 100
        # the lost points are a slab at one end of a world axis: beyond every kept head point
        ends = [(lost[codes][:, a].min() > kept[:, a].max()) or (lost[codes][:, a].max() < kept[:, a].min())
                for a in range(3)]
        assert any(ends), "the cut is not a slab at one edge of the head"
    assert lost["RAS"].shape == lost["ILP"].shape
    np.testing.assert_allclose(lost["ILP"], lost["RAS"], atol=1e-3)


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


def test_simulate_to_an_unwritable_place_exits_2(tmp_path, capsys):
    src = tmp_path / "scan.nii.gz"
    _ellipsoid_lps(src)
    assert main(["simulate", str(src), "/proc/no-such-dir/o.nii.gz", "-a", "blur"]) == 2
    err = capsys.readouterr().err
    assert "/proc/no-such-dir" in err and "Traceback" not in err


def test_screen_checks_the_inputs_before_loading_tensorflow(tmp_path):
    """A mistyped or empty folder fails at once: exit 2, and TensorFlow never imported."""
    (tmp_path / "empty").mkdir()
    code = ("import sys; from mriqc_nb.cli import main; "
            "rc = [main(['screen', a, '--out', 'r.tsv', '-q']) for a in sys.argv[1:]]; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mistyped"),
                           str(tmp_path / "empty")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2, 2]"
    assert "mistyped: no such file or folder" in proc.stderr and "no .nii" in proc.stderr
    assert not (tmp_path / "r.tsv").exists()
