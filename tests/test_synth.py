"""Tests of the synthetic-head generator (mriqc_nb.synth)."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from mriqc_nb import artifacts as A
from mriqc_nb import synth

GRID, SPACING = (64, 64, 32), (4.0, 4.0, 6.0)  # the laptop profile
SMOKE_GRID, SMOKE_SPACING = (32, 32, 32), (8.0, 8.0, 6.0)
LABEL = {t: i for i, t in enumerate(synth.TISSUES)}


def _quiet(acq, **kw):
    """Acquisition without texture and clean-range physics (deterministic intensities), with overrides."""
    kept = {k: v for k, v in acq.items() if k not in synth.CLEAN_ARTIFACTS}
    return {**kept, "texture_fraction": 0.0, **kw}


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_same_seed_same_params_and_volume_different_seed_differs():
    assert synth.sample_anatomy(3) == synth.sample_anatomy(3)
    assert synth.sample_acquisition(5) == synth.sample_acquisition(5)
    assert synth.sample_anatomy(3) != synth.sample_anatomy(4)
    assert synth.sample_acquisition(5) != synth.sample_acquisition(6)
    an, acq = synth.sample_anatomy(3), synth.sample_acquisition(5)
    a = synth.make_scan(an, acq, GRID, SPACING).get_fdata(dtype=np.float32)
    b = synth.make_scan(synth.sample_anatomy(3), synth.sample_acquisition(5),
                        GRID, SPACING).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(a, b)
    c = synth.make_scan(synth.sample_anatomy(4), acq, GRID, SPACING).get_fdata()
    d = synth.make_scan(an, synth.sample_acquisition(6, acq["modality"]), GRID, SPACING)
    assert not np.allclose(a, c)
    assert not np.allclose(a, d.get_fdata())


def test_params_json_round_trip_reproduce_scan():
    an, acq = synth.sample_anatomy(11), synth.sample_acquisition(12)
    an2, acq2 = json.loads(json.dumps(an)), json.loads(json.dumps(acq))
    assert an2 == an and acq2 == acq
    a = synth.make_scan(an, acq, GRID, SPACING).get_fdata(dtype=np.float32)
    b = synth.make_scan(an2, acq2, GRID, SPACING).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(a, b)


def test_parameter_ranges_and_modalities():
    mods = {synth.sample_acquisition(s)["modality"] for s in range(40)}
    assert mods == set(synth.MODALITIES)
    for s in range(20):
        an = synth.sample_anatomy(s)
        assert np.all(np.abs(an["rotation_deg"]) <= 8) and np.all(np.abs(an["translation_mm"]) <= 5)
        assert 0 <= an["elastic_mm"] <= 4 and 20 <= an["elastic_smooth_mm"] <= 30
        acq = synth.sample_acquisition(s, "FLAIR")
        assert acq["modality"] == "FLAIR" and acq["intensities"]["background"] == 0.0
        assert 0.005 <= acq["noise"]["sigma_fraction"] <= 0.02
        assert acq["noise"]["kind"] == "noise" and acq["noise"]["severity"] == "clean"
        fwhm = acq["blur"]["fwhm_mm"]
        assert fwhm[:2] == [0.0, 0.0] and (fwhm[2] == 0.0 or 3.0 <= fwhm[2] <= 5.0)
    assert {synth.sample_acquisition(s)["blur"]["fwhm_mm"][2] > 0 for s in range(20)} == {True, False}
    with pytest.raises(ValueError):
        synth.sample_acquisition(0, "DWI")


def test_volume_format_and_affine():
    img = synth.make_scan(synth.sample_anatomy(1), synth.sample_acquisition(1), GRID, SPACING)
    assert isinstance(img, nib.Nifti1Image)
    data = np.asanyarray(img.dataobj)
    assert data.shape == GRID and data.dtype == np.float32
    assert np.isfinite(data).all() and data.min() >= 0 and data.max() > 0
    np.testing.assert_allclose(img.header.get_zooms(), SPACING)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    centre = nib.affines.apply_affine(img.affine, (np.array(GRID) - 1) / 2.0)
    np.testing.assert_allclose(centre, 0.0, atol=1e-9)  # world origin at the grid centre


@pytest.mark.parametrize("seed", [0, 7, 92])
def test_head_centred_and_inside_fov(seed):
    an, acq = synth.sample_anatomy(seed), synth.sample_acquisition(seed)
    img, lab = synth.make_scan(an, acq, GRID, SPACING, return_labels=True)
    data = img.get_fdata()
    faces = {"L": (0, 0), "R": (0, -1), "P": (1, 0), "A": (1, -1), "S": (2, -1)}
    for name, (ax, i) in faces.items():
        assert (np.take(lab, i, axis=ax) == 0).all(), f"head touches the {name} face"
        assert np.take(data, i, axis=ax).mean() < 0.05 * data.max(), name
    # The inferior face cuts through the neck only (at most the spinal cord), not the brain.
    bottom = lab[:, :, 0]
    assert np.isin(bottom, [LABEL["gm"], LABEL["wm"]]).sum() <= 12
    assert (bottom == LABEL["scalp"]).sum() > 50  # the neck is there
    # Brain centroid near the grid centre: within 3 voxels in x and y; the head sits a little
    # low by design (room above the vertex, neck below), within 25 mm.
    brain = np.isin(lab, [LABEL["csf"], LABEL["gm"], LABEL["wm"]])
    off = (np.array(ndi.center_of_mass(brain)) - (np.array(GRID) - 1) / 2) * SPACING
    assert np.all(np.abs(off[:2]) <= 3 * np.array(SPACING[:2])), off
    assert abs(off[2]) <= 25, off


def test_identity_pose_is_centred():
    lab = synth.tissue_labels({"seed": 0}, GRID, SPACING)
    idx = np.nonzero(lab > 0)
    for ax in (0, 1):  # left-right and anterior-posterior margins equal within a voxel
        assert abs(idx[ax].min() - (GRID[ax] - 1 - idx[ax].max())) <= 1


@pytest.mark.parametrize("modality", synth.MODALITIES)
def test_contrast_ordering(modality):
    order, _ = synth.CONTRAST_ORDER[modality]
    for seed in (21, 22):
        an, acq = synth.sample_anatomy(seed), synth.sample_acquisition(seed + 100, modality)
        img, lab = synth.make_scan(an, acq, GRID, SPACING, return_labels=True)
        data = img.get_fdata()
        mean = {t: data[lab == LABEL[t]].mean() for t in synth.TISSUES}
        hi, mid, lo = (mean[t] for t in order)
        assert mid > lo, (modality, mean)
        assert hi > mid or (modality == "PDw" and hi > 0.97 * mid), (modality, mean)
        assert mean["skull"] < mean["gm"] and mean["background"] < 0.1 * max(mean.values())
        if modality == "T1w":  # fat is bright: the scalp above the skull base (the neck fades)
            z_mm = (np.arange(GRID[2]) - (GRID[2] - 1) / 2) * SPACING[2]
            scalp = data[(lab == LABEL["scalp"]) & (z_mm > -60.0)[None, None, :]].mean()
            assert scalp > mean["gm"] > mean["csf"]
        if modality == "FLAIR":  # CSF nulled: voxels of (nearly) pure CSF, not partial volumes
            pure = synth.tissue_probabilities(an, GRID, SPACING, acq)["csf"] > 0.9
            assert data[pure].mean() < 0.5 * mean["wm"]


def test_tissue_maps_sum_to_one_and_shells_outside_brain():
    maps, affine = synth.tissue_maps()
    assert synth.tissue_maps()[0] is maps  # cached
    assert set(maps) == set(synth.TISSUES) and affine.shape == (4, 4)
    total = sum(maps[t] for t in synth.TISSUES)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    assert all(m.min() >= 0 and m.max() <= 1 for m in maps.values())
    brain = maps["gm"] + maps["wm"] > 0.5
    assert maps["skull"][brain].max() == 0 and maps["scalp"][brain].max() == 0
    assert maps["skull"].sum() > 1e5 and maps["scalp"].sum() > 1e5  # mm^3
    # Shells are ordered outwards: scalp farther from the brain than skull, on average.
    dist = ndi.distance_transform_edt(~brain[::2, ::2, ::2]) * 2.0
    w = {t: maps[t][::2, ::2, ::2] for t in ("csf", "skull", "scalp")}
    mean_d = {t: (dist * w[t]).sum() / w[t].sum() for t in w}
    assert mean_d["csf"] < mean_d["skull"] < mean_d["scalp"]
    assert maps["background"][0, 0, -1] == 1.0  # a corner is empty
    # The head continues through the inferior edge (neck), it is not closed off there.
    assert (1.0 - maps["background"][:, :, 0]).sum() > 5000  # mm^2 of neck section


def test_distinct_subjects_and_stable_rescans():
    def brain(seed, acq=None):
        lab = synth.tissue_labels(synth.sample_anatomy(seed), GRID, SPACING, acq)
        return np.isin(lab, [LABEL["gm"], LABEL["wm"]])

    a, b = brain(1), brain(2)
    assert 0.7 < _dice(a, b) < 0.98
    rescan = brain(1, synth.sample_acquisition(9))  # same subject, small repositioning
    assert _dice(a, rescan) > _dice(a, b)


def test_anatomy_consistent_across_grids():
    an = synth.sample_anatomy(5)
    vol = {}
    for grid, sp in ((GRID, SPACING), (SMOKE_GRID, SMOKE_SPACING)):
        p = synth.tissue_probabilities(an, grid, sp)
        vol[grid] = (p["gm"] + p["wm"]).sum() * np.prod(sp)  # brain volume, mm^3
        assert p["gm"].shape == grid
    assert abs(vol[GRID] / vol[SMOKE_GRID] - 1) < 0.03


def test_thick_slices_have_less_high_frequency_energy_along_z():
    an, acq = synth.sample_anatomy(8), synth.sample_acquisition(8, "T2w")
    grid, sp = (64, 64, 64), (4.0, 4.0, 3.0)

    def hf(thickness):
        img = synth.make_scan(an, _quiet(acq, blur={"kind": "blur", "fwhm_mm": [0, 0, thickness]}), grid, sp)
        return (np.diff(img.get_fdata(), axis=2) ** 2).sum()

    assert hf(5.0) < 0.8 * hf(0.0)


def test_noise_and_bias_are_clean_range():
    an, acq = synth.sample_anatomy(4), synth.sample_acquisition(4, "T1w")
    clean, lab = synth.make_scan(an, _quiet(acq), GRID, SPACING, return_labels=True)
    noisy = synth.make_scan(an, _quiet(acq, noise={"kind": "noise", "sigma_fraction": 0.02, "noise_seed": 1}),
                            GRID, SPACING)
    diff = noisy.get_fdata() - clean.get_fdata()
    bg = lab == LABEL["background"]
    assert 0 < noisy.get_fdata()[bg].mean() < 0.05 * clean.get_fdata().max()  # Rician floor
    wm = lab == LABEL["wm"]
    for seed in range(3):  # the clean range's upper edge: log-field std 0.02 in the unit ball
        terms = A.sample_params("bias", "clean", seed=seed)["terms"]
        std = np.std(np.log(A.bias_field((17, 17, 17), terms)))
        edge = [[i, j, k, c * 0.02 / std] for i, j, k, c in terms]
        biased = synth.make_scan(an, _quiet(acq, bias={"kind": "bias", "terms": edge}), GRID, SPACING)
        ratio = biased.get_fdata()[wm] / clean.get_fdata()[wm]
        assert 1.0 < ratio.max() / ratio.min() < 1.6
    assert np.abs(diff[~bg]).mean() < 0.05 * clean.get_fdata().max()


def test_make_subject_scans():
    scans = synth.make_subject_scans(3, 3, SMOKE_GRID, SMOKE_SPACING, modalities=("T1w", "FLAIR"))
    assert len(scans) == 3
    assert all(an == scans[0][0] for an, _, _ in scans)
    assert [acq["modality"] for _, acq, _ in scans] == ["T1w", "FLAIR", "T1w"]
    assert len({acq["seed"] for _, acq, _ in scans}) == 3
    assert all(img.shape == SMOKE_GRID for _, _, img in scans)
    again = synth.make_subject_scans(3, 3, SMOKE_GRID, SMOKE_SPACING, modalities=("T1w", "FLAIR"))
    np.testing.assert_array_equal(scans[2][2].get_fdata(), again[2][2].get_fdata())


def test_clean_acquisition_is_the_artifact_physics_at_clean_strength():
    an, acq = synth.sample_anatomy(6), synth.sample_acquisition(6, "T2w")
    assert all(acq[k]["kind"] == k and acq[k]["severity"] == "clean" for k in synth.CLEAN_ARTIFACTS)
    acq = dict(acq, blur={"kind": "blur", "severity": "clean", "fwhm_mm": [0.0, 0.0, 4.0]})
    scan = synth.make_scan(an, acq, SMOKE_GRID, SMOKE_SPACING)
    bare = {k: v for k, v in acq.items() if k not in synth.CLEAN_ARTIFACTS}
    expected = synth.make_scan(an, bare, SMOKE_GRID, SMOKE_SPACING)
    for kind in synth.CLEAN_ARTIFACTS:  # the image carries its voxel size
        expected = nib.Nifti1Image(A.apply(expected, acq[kind]), expected.affine)
    np.testing.assert_array_equal(scan.get_fdata(dtype=np.float32), expected.get_fdata(dtype=np.float32))
    assert not np.array_equal(scan.get_fdata(), synth.make_scan(an, bare, SMOKE_GRID, SMOKE_SPACING).get_fdata())


# --------------------------------------------------------------------------- release
def test_release_is_seeded_has_its_own_stream_and_all_variants():
    from mriqc_nb.synth import release

    draws = [synth.sample_release(s) for s in range(600)]
    assert draws == [synth.sample_release(s) for s in range(600)]
    share = {r: draws.count(r) / len(draws) for r in release.RELEASES}
    for r, p in zip(release.RELEASES, release.RELEASE_P):
        assert abs(share[r] - p) < 0.06, share
    acq = synth.sample_acquisition(11)
    assert acq["release"] == synth.sample_release(11)
    # the release is drawn from a stream of its own: the other parameters do not depend on it
    assert {k: v for k, v in acq.items() if k != "release"} == {
        k: v for k, v in synth.sample_acquisition(11).items() if k != "release"}
    with pytest.raises(ValueError, match="unknown release"):
        synth.apply_release(np.ones(SMOKE_GRID), synth.sample_anatomy(1),
                            {**acq, "release": "blurred"}, SMOKE_SPACING)


def _released(release):
    """A quiet T1w scan, the same after ``release``, and the template fields of its voxels."""
    an = synth.sample_anatomy(3)
    acq = _quiet(synth.sample_acquisition(5, "T1w"), release=release)
    img = np.asarray(synth.make_scan(an, acq, GRID, SPACING).dataobj)
    out = synth.apply_release(img, an, acq, SPACING)
    xyz, _, _, sd = synth.template_fields(an, GRID, SPACING, acq)
    return an, acq, img, out, xyz, sd


def test_skull_stripping_keeps_the_brain_and_zeroes_the_rest():
    an, acq, img, out, xyz, sd = _released("skull_stripped")
    brain = (sd < 0) & (xyz[2] > -60)
    np.testing.assert_array_equal(out[brain], img[brain])
    assert np.all(out[sd > 3.0] == 0)  # skull, scalp, neck gone
    assert (img[sd > 3.0] > 0.05 * img.max()).sum() > 1000  # ... where the head had signal
    full = {**acq, "release": "full"}
    assert synth.apply_release(img, an, full, SPACING) is img


def test_defacing_removes_only_the_lower_front_away_from_the_brain():
    _, _, img, out, xyz, sd = _released("defaced")
    removed = (out == 0) & (img > 0)
    assert removed.sum() > 0
    y, z = xyz[1][removed], xyz[2][removed]
    assert np.all(y > 10) and np.all(z < -60 + (60 / 70) * (y - 10))  # in front, below
    assert np.all(sd[removed] > 8.0)  # never within 8 mm of the brain
    np.testing.assert_array_equal(out[xyz[1] <= 10], img[xyz[1] <= 10])


def test_materialise_applies_the_release_after_the_artifact():
    """Noise added in the scanner does not survive skull-stripping outside the brain."""
    from mriqc_nb.data.cache import materialise

    an = synth.sample_anatomy(3)
    acq = synth.sample_acquisition(5, "T1w")
    noise = A.sample_params("noise", "prominent", seed=0)

    def corner_std(release):
        row = {"scan_id": "r", "recipe": json.dumps({
            "anatomy": an, "acquisition": {**acq, "release": release}, "artifact": noise,
            "grid": list(GRID), "spacing_mm": list(SPACING)})}
        return float(materialise(row, GRID, SPACING)[:8, :8].std())

    assert corner_std("skull_stripped") < 1e-5  # a constant background around the brain
    assert corner_std("full") > 0.05  # the scanner's noise fills the background
