"""Tests of mriqc_nb.scans: loading, validation, orientation, resampling, crop/pad, normalisation.

Phantoms are defined in world millimetres and sampled on each test's own voxel grid, so a
test can ask where a structure *should* end up without trusting the code under test.
"""

from __future__ import annotations

import gzip
import os
import pickle
import warnings

import nibabel as nib
import numpy as np
import pytest

from mriqc_nb import scans as io
from mriqc_nb.scans import (EmptyVolumeError, NonFiniteError, NotVolumeError, ScanError,
                         ScanNotFoundError, UnreadableScanError, conform, head_mask, load_scan,
                         reorient, save_scan)

MINC_DIR = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
# Axis directions as signed world axes: "PSR" = axis 0 towards posterior (-y), 1 superior, ...
DIRS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def make_affine(codes: str, shape, zooms) -> np.ndarray:
    """Affine whose voxel axes point along ``codes`` with the array centre at world 0."""
    rot = np.zeros((3, 3))
    for ax, c in enumerate(codes):
        world, sign = DIRS[c]
        rot[world, ax] = sign * zooms[ax]
    aff = np.eye(4)
    aff[:3, :3] = rot
    aff[:3, 3] = -rot @ ((np.asarray(shape) - 1) / 2)
    return aff


def world_coords(affine, shape) -> np.ndarray:
    """World coordinates (mm) of every voxel, shape (3, *shape)."""
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape((3, *shape))


def ellipsoid(xyz, centre=(0, 0, 0), semi=(60, 75, 50), edge_mm=4.0, value=100.0):
    """Ellipsoid with a linear partial-volume edge ``edge_mm`` wide (exact along its axes)."""
    d = [(xyz[i] - centre[i]) / semi[i] for i in range(3)]
    r = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
    norm = np.sqrt(sum((xyz[i] - centre[i]) ** 2 for i in range(3)))
    dist = (r - 1) * np.divide(norm, r, out=np.zeros_like(r), where=r > 0)  # mm outside
    return value * np.clip(0.5 - dist / edge_mm, 0, 1)


def head_image(codes="RAS", shape=(90, 100, 80), zooms=(2.0, 2.0, 2.0), centre=(0, 0, 0),
               semi=(60, 75, 50), marker=None, noise=0.0, seed=0) -> nib.Nifti1Image:
    """A textured ellipsoidal 'head', optionally with a bright 12 mm cube at world ``marker``."""
    aff = make_affine(codes, shape, zooms)
    xyz = world_coords(aff, shape)
    vol = ellipsoid(xyz, centre, semi)
    vol *= 1 + 0.2 * np.sin(xyz[0] / 9.0) * np.cos(xyz[1] / 13.0)  # some texture
    if marker is not None:
        cube = np.all([np.abs(xyz[i] - marker[i]) <= 6 for i in range(3)], axis=0)
        vol[cube] = 400.0
    if noise:
        vol += np.abs(np.random.default_rng(seed).normal(0, noise, shape))
    return nib.Nifti1Image(vol.astype(np.float32), aff)


def write(img, tmp_path, name):
    path = tmp_path / name
    nib.save(img, path)
    return path


# --------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------
MARKER = (-33.0, -41.0, -27.0)  # left, posterior, inferior part of the head (inside it)


@pytest.mark.parametrize("codes", ["LPS", "PSR", "ASL", "RAS"])
def test_marker_ends_where_ras_says(codes):
    shape = {"LPS": (80, 96, 64), "PSR": (96, 64, 80), "ASL": (96, 64, 80), "RAS": (80, 96, 64)}
    img = head_image(codes, shape[codes], marker=MARKER)
    assert nib.aff2axcodes(img.affine) == tuple(codes)
    out = conform(img, grid=(48, 56, 40), spacing_mm=(4, 4, 4), normalise=False,
                  return_image=True)
    assert nib.aff2axcodes(out.affine) == ("R", "A", "S")
    assert np.all(np.diag(out.affine)[:3] > 0)
    data = out.get_fdata()
    marker_idx = np.argwhere(data > 250).mean(axis=0)
    head_idx = np.argwhere(data > 50).mean(axis=0)
    # the L-P-I marker is at lower indices than the head on every axis ...
    assert np.all(marker_idx < head_idx - 3)
    # ... and at its true world position (within one output voxel)
    world = out.affine[:3, :3] @ marker_idx + out.affine[:3, 3]
    np.testing.assert_allclose(world, MARKER, atol=4.0)


def test_reorient_is_exact_and_reversible():
    img = head_image("PSR", (50, 40, 45), marker=MARKER)
    ras = reorient(img)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    data, ras_data = img.get_fdata(), ras.get_fdata()
    assert ras_data.shape == (45, 50, 40)
    # every voxel keeps its value at its world coordinate
    np.testing.assert_allclose(world_coords(ras.affine, ras.shape)[:, 3, 7, 11],
                               world_coords(img.affine, img.shape)[:, 49 - 7, 11, 3])
    assert ras_data[3, 7, 11] == data[49 - 7, 11, 3]
    back = reorient(ras, "PSR")
    np.testing.assert_array_equal(back.get_fdata(), data)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Resampling keeps millimetres
# --------------------------------------------------------------------------------------------
def test_aspect_ratio_kept_with_anisotropic_voxels():
    semi = (60.0, 80.0, 45.0)
    img = head_image("RAS", (150, 190, 40), zooms=(1.0, 1.0, 3.0), semi=semi)
    img = nib.Nifti1Image(ellipsoid(world_coords(img.affine, img.shape), semi=semi)
                          .astype(np.float32), img.affine)
    out = conform(img, grid=(80, 96, 64), spacing_mm=(2, 2, 2), normalise=False)
    c = np.round(np.argwhere(out > 50).mean(axis=0)).astype(int)
    profiles = (out[:, c[1], c[2]], out[c[0], :, c[2]], out[c[0], c[1], :])
    # a linear edge integrates to the distance between its half-maximum points
    extents = [2.0 * p.sum() / 100.0 for p in profiles]
    np.testing.assert_allclose(extents, 2 * np.asarray(semi), atol=2.0)


def test_downsampling_is_anti_aliased():
    # a 3 mm-period pattern is beyond the Nyquist limit of 4 mm voxels: it must be smoothed
    # away, not folded into a false coarse pattern
    x = np.arange(120)
    vol = np.broadcast_to(10 + np.sin(2 * np.pi * x / 3.0)[:, None, None], (120, 8, 8))
    out = io.resample_to_spacing(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)),
                                 (4.0, 1.0, 1.0)).get_fdata()
    assert out.shape == (30, 8, 8)
    assert out[2:-2].std() < 0.1 and abs(out.mean() - 10) < 0.05


@pytest.mark.parametrize("shape, zooms, spacing", [
    ((91, 109, 91), (2.0, 2.0, 2.0), (4.0, 4.0, 6.0)),      # the MNI template to the laptop grid
    ((40, 44, 36), (5.0, 5.5, 4.0), (8.0, 8.0, 6.0)),
    ((40, 44, 36), (5.0, 5.5, 4.0), (2.0, 7.0, 3.0)),       # up- and downsampled axes
    ((17, 200, 23), (1.0, 0.7, 9.0), (4.0, 4.0, 6.0)),
])
def test_linear_resampling_equals_gaussian_then_affine_transform(shape, zooms, spacing):
    """The order-1 path (one matrix per axis) is scipy's Gaussian + affine_transform (edges
    repeated) up to float32 rounding."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    vol = (rng.normal(100, 30, shape) + np.linspace(0, 50, shape[0])[:, None, None]).astype(np.float32)
    img = nib.Nifti1Image(vol, np.diag([*zooms, 1.0]))
    ratio = np.asarray(spacing) / np.asarray(zooms)
    sigma = np.sqrt(np.clip(ratio**2 - 1.0, 0.0, None) / 12.0)
    out_shape = tuple(int(n) for n in np.maximum(1, np.ceil(np.asarray(shape) / ratio - 1e-3)))
    ref = ndimage.affine_transform(ndimage.gaussian_filter(vol, sigma, mode="nearest"), ratio,
                                   offset=(ratio - 1) / 2, output_shape=out_shape, order=1,
                                   mode="nearest", prefilter=False)
    out = io.resample_to_spacing(img, spacing)
    assert out.get_data_dtype() == np.float32 and out.shape == out_shape
    np.testing.assert_allclose(np.asarray(out.dataobj), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(nib.affines.voxel_sizes(out.affine), spacing)


def test_oblique_scan_keeps_its_rotation():
    img = head_image("LPS", (70, 80, 60), marker=MARKER)
    rot = nib.eulerangles.euler2mat(z=np.deg2rad(10))
    aff = img.affine.copy()
    aff[:3] = np.c_[rot, np.zeros(3)] @ aff
    out = conform(nib.Nifti1Image(img.get_fdata(dtype=np.float32), aff), grid=(48, 48, 40),
                  spacing_mm=(4, 4, 4), normalise=False, return_image=True)
    assert out.shape == (48, 48, 40) and nib.aff2axcodes(out.affine) == ("R", "A", "S")
    np.testing.assert_allclose(nib.affines.voxel_sizes(out.affine), 4.0)
    idx = np.argwhere(out.get_fdata() > 250).mean(axis=0)
    np.testing.assert_allclose(out.affine[:3, :3] @ idx + out.affine[:3, 3], rot @ MARKER,
                               atol=4.0)


@pytest.mark.parametrize("shape,zooms", [((40, 50, 30), (1.0, 1.0, 1.0)),
                                         ((200, 220, 180), (1.0, 1.0, 1.0)),
                                         ((64, 64, 20), (3.5, 3.5, 7.0)),
                                         ((30, 300, 31), (5.0, 0.8, 5.0))])
@pytest.mark.parametrize("normalise", [True, False])
def test_exact_grid_and_dtype(shape, zooms, normalise):
    img = head_image("LAS", shape, zooms, semi=(30, 40, 30), noise=1.0)
    out = conform(img, grid=(64, 64, 32), spacing_mm=(4, 4, 6), normalise=normalise)
    assert out.shape == (64, 64, 32) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    im = conform(img, profile="smoke", return_image=True, normalise=normalise)
    assert im.shape == (32, 32, 32) and im.get_data_dtype() == np.float32
    np.testing.assert_allclose(nib.affines.voxel_sizes(im.affine), (8, 8, 6))


def test_default_is_laptop_profile_and_explicit_values_win():
    img = head_image("RAS", (60, 70, 50), semi=(40, 50, 35))
    assert conform(img).shape == (64, 64, 32)
    assert conform(img, profile="smoke", grid=(16, 16, 16)).shape == (16, 16, 16)


def test_conform_copies_share_the_first_copys_mask_and_window(tmp_path):
    img = head_image("LPS", (70, 80, 60), semi=(40, 50, 35), noise=2.0)
    grid, mm = (48, 48, 32), (4.0, 4.0, 4.0)
    # one copy alone is exactly what conform makes of it
    (alone,) = io.conform_copies([img], grid, mm)
    np.testing.assert_array_equal(alone, conform(img, grid=grid, spacing_mm=mm))
    # a copy with bright junk in one corner of the background: conformed on its own, the
    # junk moves the window and the normalisation; conformed with the clean copy, the head is
    # unchanged voxel for voxel and only the corner differs
    junk = np.asarray(img.dataobj).copy()
    junk[:12, :12, :12] += 500.0
    junk_img = nib.Nifti1Image(junk, img.affine)
    clean, corrupted = io.conform_copies([img, junk_img], grid=None, spacing_mm=None)
    assert clean.shape == corrupted.shape == img.shape
    differs = np.abs(corrupted - clean) > 1e-5
    assert differs.any()
    # LPS on disk -> RAS+: the corner (low i, j, k) lands at high x, high y, low z
    assert not differs[:-12, :, :].any() and not differs[:, :-12, :].any()
    assert not differs[:, :, 12:].any()
    assert not np.allclose(conform(junk_img, grid=grid, spacing_mm=mm),
                           io.conform_copies([img, junk_img], grid, mm)[1], atol=1e-3)
    # files work, and copies on different grids are refused with both names
    a = write(img, tmp_path, "clean.nii.gz")
    b = write(head_image("LPS", (70, 80, 61)), tmp_path, "other.nii.gz")
    with pytest.raises(ValueError, match="differ in shape.*clean.nii.gz.*other.nii.gz"):
        io.conform_copies([a, b], grid, mm)


# --------------------------------------------------------------------------------------------
# Crop/pad centred on the head
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,centre", [((150, 150, 100), (80.0, -70.0, 40.0)),   # big FOV
                                          ((60, 60, 45), (15.0, -12.0, 10.0))])     # small FOV
def test_crop_is_centred_on_the_head(shape, centre):
    img = head_image("LPS", shape, zooms=(2, 2, 2), centre=centre, semi=(40, 50, 35))
    grid = (48, 48, 32)
    out = conform(img, grid=grid, spacing_mm=(4, 4, 4), normalise=False)
    mask = out > 50
    com = np.argwhere(mask).mean(axis=0)
    np.testing.assert_allclose(com, (np.asarray(grid) - 1) / 2, atol=1.0)
    # nothing of a head that fits is cut: the border is background
    for ax in range(3):
        assert not mask.take([0, -1], axis=ax).any()


def test_crop_or_pad_window():
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) + 1
    out = io.crop_or_pad(vol, (6, 3, 6), start=(-1, 1, 2))
    assert out.shape == (6, 3, 6)
    np.testing.assert_array_equal(out[1:5, :, :4], vol[:, 1:4, 2:])
    assert out[0].sum() == 0 and out[5].sum() == 0 and out[:, :, 4:].sum() == 0


def test_head_mask_is_one_filled_component():
    xyz = world_coords(make_affine("RAS", (40, 40, 40), (2, 2, 2)), (40, 40, 40))
    vol = ellipsoid(xyz, semi=(25, 25, 25)) - ellipsoid(xyz, semi=(8, 8, 8))  # hollow
    vol[2:4, 2:4, 2:4] = 100  # a speck outside
    mask = head_mask(vol)
    assert mask[20, 20, 20]        # the hole is filled
    assert not mask[2, 2, 2]       # the speck is dropped
    assert abs(mask.sum() * 8 - 4 / 3 * np.pi * 25**3) / (4 / 3 * np.pi * 25**3) < 0.1
    assert not head_mask(np.full((8, 8, 8), 3.0)).any()


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------
def test_normalisation_head_mean0_std1_background_low():
    img = head_image("RAS", (80, 90, 70), noise=5.0)
    out = conform(img, grid=(64, 64, 48), spacing_mm=(3, 3, 3))
    mask = head_mask(out)
    assert abs(out[mask].mean()) < 0.05
    assert abs(out[mask].std() - 1) < 0.05
    assert np.median(out[~mask]) < -1.5


def test_normalise_intensities_clips_only_the_top():
    rng = np.random.default_rng(1)
    vol = rng.normal(100, 10, (20, 20, 20)).astype(np.float32)
    mask = np.zeros(vol.shape, bool)
    mask[5:15, 5:15, 5:15] = True
    vol[~mask] = rng.normal(0, 2, (~mask).sum())
    vol[10, 10, 10] = 1e6  # a spike
    out = io.normalise_intensities(vol, mask)
    assert out.dtype == np.float32
    assert abs(out[mask].mean()) < 1e-4 and abs(out[mask].std() - 1) < 1e-4
    assert out.max() < 4  # the spike is clipped
    # background keeps its own structure (no lower clip): its spread is untouched
    scale = np.std(np.minimum(vol[mask], np.percentile(vol[mask], 99.5)))
    np.testing.assert_allclose(out[~mask].std() * scale, vol[~mask].std(), rtol=1e-3)


# --------------------------------------------------------------------------------------------
# Bad inputs: each raises its documented error naming the file
# --------------------------------------------------------------------------------------------
def _raises(exc_type, source, name):
    with pytest.raises(exc_type) as info:
        conform(source)
    assert isinstance(info.value, ScanError)
    assert name in str(info.value) and name in info.value.path
    return info.value


def test_missing_file(tmp_path):
    err = _raises(ScanNotFoundError, tmp_path / "nothere_T1w.nii.gz", "nothere_T1w.nii.gz")
    assert isinstance(err, FileNotFoundError) and isinstance(err, ValueError)


def test_unreadable_files(tmp_path):
    rng = np.random.default_rng(0)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(rng.bytes(5000))
    _raises(UnreadableScanError, garbage, "garbage.nii.gz")
    gz_garbage = tmp_path / "gzgarbage.nii.gz"
    gz_garbage.write_bytes(gzip.compress(rng.bytes(5000)))
    _raises(UnreadableScanError, gz_garbage, "gzgarbage.nii.gz")
    plain = tmp_path / "plaingarbage.nii"
    plain.write_bytes(rng.bytes(100))
    _raises(UnreadableScanError, plain, "plaingarbage.nii")
    good = write(head_image("RAS", (40, 40, 40)), tmp_path, "cut.nii.gz").read_bytes()
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(good[: len(good) // 2])
    _raises(UnreadableScanError, truncated, "cut.nii.gz")
    text = tmp_path / "notes.txt"
    text.write_text("not a scan")
    _raises(UnreadableScanError, text, "notes.txt")
    _raises(UnreadableScanError, tmp_path, str(tmp_path))


def test_not_a_volume(tmp_path):
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    flat = tmp_path / "flat2d.nii"
    nib.save(nib.Nifti1Image(np.ones((20, 20), np.float32), aff), flat)
    _raises(NotVolumeError, flat, "flat2d.nii")
    _raises(NotVolumeError, write(nib.Nifti1Image(np.random.rand(20, 20, 1).astype(np.float32),
                                                  aff), tmp_path, "slice.nii"), "slice.nii")
    vol = head_image("RAS", (40, 40, 30)).get_fdata(dtype=np.float32)
    series = np.stack([vol, vol, vol], axis=-1)
    err = _raises(NotVolumeError, write(nib.Nifti1Image(series, aff), tmp_path, "bold.nii.gz"),
                  "bold.nii.gz")
    assert "3 volumes" in str(err)
    one = write(nib.Nifti1Image(vol[..., None], aff), tmp_path, "one.nii.gz")
    assert load_scan(one).shape == (40, 40, 30)
    np.testing.assert_array_equal(conform(one), conform(nib.Nifti1Image(vol, aff)))


@pytest.mark.parametrize("fill,name", [(0.0, "zeros.nii.gz"), (7.5, "constant.nii.gz")])
def test_empty_volume(tmp_path, fill, name):
    img = nib.Nifti1Image(np.full((20, 20, 20), fill, np.float32), np.eye(4))
    _raises(EmptyVolumeError, write(img, tmp_path, name), name)


@pytest.mark.parametrize("bad,count", [(np.nan, 3), (np.inf, 2), (-np.inf, 1)])
def test_non_finite(tmp_path, bad, count):
    vol = head_image("RAS", (30, 30, 30)).get_fdata(dtype=np.float32)
    vol.flat[[5, 500, 5000][:count]] = bad
    path = write(nib.Nifti1Image(vol, np.eye(4)), tmp_path, "nonfinite.nii")
    err = _raises(NonFiniteError, path, "nonfinite.nii")
    assert f"{count} of {vol.size} voxels" in str(err)


def test_in_memory_errors_and_pickling():
    img = nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), np.eye(4))
    err = _raises(EmptyVolumeError, img, "<in-memory image>")
    assert str(err) == f"<in-memory image>: {err.problem}"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is EmptyVolumeError and str(again) == str(err)
    nf = pickle.loads(pickle.dumps(ScanNotFoundError("a.nii")))
    assert isinstance(nf, FileNotFoundError) and str(nf) == "a.nii: file not found"
    with pytest.raises(TypeError):
        load_scan(np.ones((5, 5, 5)))


# --------------------------------------------------------------------------------------------
# MINC
# --------------------------------------------------------------------------------------------
def _minc(name):
    path = os.path.join(MINC_DIR, name)
    if not os.path.exists(path):
        pytest.skip(f"nibabel test file {name} not shipped")
    return path


@pytest.fixture(autouse=True)
def _quiet_minc():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid spacing declaration")
        yield


@pytest.mark.parametrize("name", ["minc1_1_scale.mnc", "minc2_1_scale.mnc", "small.mnc"])
def test_minc_3d_loads_and_conforms(name):
    path = _minc(name)
    src = nib.load(path)
    assert len(src.shape) == 3
    img = load_scan(path)
    assert img.get_data_dtype() == np.float32 and img.shape == src.shape
    np.testing.assert_allclose(img.get_fdata(), src.get_fdata(), rtol=1e-6)
    np.testing.assert_allclose(img.affine, src.affine)
    out = conform(path, return_image=True)
    assert out.shape == (64, 64, 32) and nib.aff2axcodes(out.affine) == ("R", "A", "S")


def test_minc1_and_minc2_agree():
    a = conform(_minc("minc1_1_scale.mnc"), normalise=False)
    b = conform(_minc("minc2_1_scale.mnc"), normalise=False)
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("name", ["minc1_4d.mnc", "minc2_4d.mnc"])
def test_minc_4d_series_is_not_a_volume(name):
    path = _minc(name)
    assert nib.load(path).shape[0] > 1  # MINC stores time first
    _raises(NotVolumeError, path, name)


# --------------------------------------------------------------------------------------------
# Same input, same output
# --------------------------------------------------------------------------------------------
def test_path_image_nii_niigz_identical(tmp_path):
    img = head_image("LPS", (70, 80, 40), zooms=(2, 2, 4), noise=2.0)
    p1 = write(img, tmp_path, "scan.nii")
    p2 = write(img, tmp_path, "scan.nii.gz")
    ref = conform(img)
    for src in (p1, p2, str(p2), nib.load(p2)):
        np.testing.assert_array_equal(conform(src), ref)


def test_save_scan_roundtrip(tmp_path):
    img = head_image("LPS", (30, 32, 34))
    path = save_scan(img, tmp_path / "sub" / "sim.nii.gz")
    assert path.exists() and path.name == "sim.nii.gz"
    back = nib.load(path)
    assert back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(back.get_fdata(), img.get_fdata())
    np.testing.assert_allclose(back.affine, img.affine)
    mnc = save_scan(np.ones((4, 5, 6)), tmp_path / "x.mnc", affine=np.diag([2, 2, 2, 1]))
    assert mnc.name == "x.nii.gz"
    np.testing.assert_allclose(nib.load(mnc).affine, np.diag([2, 2, 2, 1]))
    with pytest.raises(ValueError):
        save_scan(np.ones((4, 5)), tmp_path / "flat.nii")


# --------------------------------------------------------------------------------------------
# Plausibility of the header (check_header): refused before any voxel is read
# --------------------------------------------------------------------------------------------
def _header_only(path, shape, pixdim, dtype=np.int16, gz=False):
    """A NIfTI file holding only a header (no voxel data): whatever it claims."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr["pixdim"][1:4] = pixdim
    hdr["vox_offset"] = 352
    raw = hdr.binaryblock + b"\0" * 4
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_check_header_refuses_a_huge_grid_without_allocating(tmp_path):
    import time
    import tracemalloc

    path = _header_only(tmp_path / "bomb.nii.gz", (1200, 1200, 1200), (1.0, 1.0, 1.0),
                        dtype=np.uint8, gz=True)
    assert path.stat().st_size < 200
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(io.GridSizeError) as info:
        io.check_header(path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 20e6          # not the 1.7 GB the data would take
    assert str(info.value).startswith(str(path)) and "1,728,000,000 voxels" in str(info.value)
    assert isinstance(info.value, io.ImplausibleGeometryError)


@pytest.mark.parametrize("pixdim", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, np.nan)])
def test_check_header_refuses_zero_negative_nan_pixdim(tmp_path, pixdim):
    # nibabel turns 0 into 1 and -1 into 1 when loading: the stored value is what counts
    path = _header_only(tmp_path / "pix.nii", (128, 128, 100), pixdim)
    with pytest.raises(io.InvalidHeaderError) as info:
        io.check_header(path)
    assert "pix.nii" in str(info.value) and "pixdim" in str(info.value)


@pytest.mark.parametrize("shape,zooms,error,words", [
    ((5, 5, 5), (1.0, 1.0, 1.0), io.GridSizeError, "fewer than 12 voxels"),
    ((5, 5, 5), (40.0, 40.0, 40.0), io.GridSizeError, "fewer than 12 voxels"),
    ((64, 64, 48), (50.0, 50.0, 50.0), io.VoxelSizeError, "voxel size 50 x 50 x 50 mm"),
    ((256, 256, 180), (0.05, 0.05, 0.05), io.VoxelSizeError, "voxel size"),
    ((100, 100, 100), (0.5, 0.5, 0.5), io.FieldOfViewError, "field of view 50 x 50 x 50 mm"),
    ((300, 300, 300), (2.0, 2.0, 2.0), io.FieldOfViewError, "600 x 600 x 600 mm"),
])
def test_check_header_refuses_implausible_geometry(tmp_path, shape, zooms, error, words):
    path = _header_only(tmp_path / "odd.nii", shape, zooms)
    with pytest.raises(error) as info:
        io.check_header(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)


@pytest.mark.parametrize("shape,zooms", [((256, 256, 176), (1.0, 1.0, 1.0)),
                                         ((64, 64, 20), (3.5, 3.5, 7.0)),
                                         ((40, 44, 36), (5.0, 5.5, 4.0)),
                                         ((91, 109, 91), (2.0, 2.0, 2.0))])
def test_check_header_accepts_heads_and_returns_the_lazy_image(tmp_path, shape, zooms):
    img = head_image("LAS", shape, zooms, semi=(60, 70, 60))
    path = write(img, tmp_path, "head.nii.gz")
    checked = io.check_header(path)
    assert checked.get_filename() == str(path) and not checked.in_memory  # data not read
    np.testing.assert_array_equal(conform(checked), conform(path))
    assert io.check_header(img) is img                                      # in memory too


def test_check_header_keeps_load_scan_errors(tmp_path):
    with pytest.raises(ScanNotFoundError):
        io.check_header(tmp_path / "missing.nii.gz")
    with pytest.raises(NotVolumeError):
        io.check_header(_header_only(tmp_path / "bold.nii", (64, 64, 30, 10), (3, 3, 4)))
    with pytest.raises(UnreadableScanError):
        io.check_header(tmp_path)


def test_resampling_an_implausible_voxel_size_is_refused_before_allocating(tmp_path):
    import time

    # 50 mm voxels resampled to 1 mm: a 3000 x 3000 x 2000 grid; refused, not computed
    img = nib.Nifti1Image(np.random.default_rng(0).random((60, 60, 40), np.float32) + 1,
                          np.diag([50.0, 50.0, 50.0, 1.0]))
    path = write(img, tmp_path, "coarse.nii.gz")
    t0 = time.perf_counter()
    with pytest.raises(io.GridSizeError) as info:
        conform(path, grid=(64, 64, 64), spacing_mm=(1, 1, 1))
    assert time.perf_counter() - t0 < 2.0
    assert str(info.value).startswith(str(path)) and "3000 x 3000 x 2000 grid" in str(info.value)


def test_analyze_pair_is_one_readable_scan(tmp_path):
    img = head_image("RAS", (60, 70, 50), zooms=(3.0, 3.0, 3.0))
    data = img.get_fdata(dtype=np.float32)
    nib.save(nib.AnalyzeImage(data, img.affine), tmp_path / "old.img")
    assert sorted(os.listdir(tmp_path)) == ["old.hdr", "old.img"]
    for name in ("old.img", "old.hdr"):
        loaded = load_scan(tmp_path / name)
        np.testing.assert_allclose(loaded.get_fdata(), data, rtol=1e-6)
        assert io.check_header(tmp_path / name).shape == (60, 70, 50)
    # Analyze keeps the voxel size and an integer origin: compare with the affine it kept
    same = nib.Nifti1Image(data, load_scan(tmp_path / "old.img").affine)
    np.testing.assert_array_equal(conform(tmp_path / "old.img"), conform(same))
