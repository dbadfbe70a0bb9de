"""Tests of the k-space transforms and the artifact simulators (fixed parameters, then samplers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mriqc_nb import artifacts as A
from mriqc_nb.kspace import from_kspace, to_kspace

KINDS = list(A.ARTIFACTS)
SPACING = (4.0, 4.0, 6.0)


def make_phantom(shape=(40, 36, 32)) -> np.ndarray:
    """Ellipsoid 'head' with a dark inner ellipsoid ('ventricles') and an off-centre bright blob."""
    grid = np.indices(shape, dtype=float)
    centre = (np.asarray(shape, dtype=float) - 1) / 2

    def radius(half_axes, offset=(0, 0, 0)):
        return np.sqrt(sum(((grid[a] - centre[a] - offset[a]) / h) ** 2
                           for a, h in enumerate(half_axes)))

    vol = np.where(radius([0.4 * n for n in shape]) < 1, 0.8, 0.0)
    vol[radius([0.12 * n for n in shape]) < 1] = 0.3
    vol[radius([3, 3, 3], offset=(5, 6, 2)) < 1] = 1.0
    return vol.astype(np.float32)


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return make_phantom()


def nrmse(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2)))


def mirror(index, shape):
    """Array index of the opposite spatial frequency in centred k-space (even sizes)."""
    return tuple((2 * (n // 2) - i) % n for i, n in zip(index, shape))


# --------------------------------------------------------------------- k-space
def test_kspace_round_trip_centre_and_parseval(phantom):
    k = to_kspace(phantom.astype(float))
    centre = tuple(n // 2 for n in phantom.shape)
    assert np.unravel_index(np.argmax(np.abs(k)), k.shape) == centre
    assert np.isclose(k[centre].real, phantom.sum() / np.sqrt(phantom.size))
    assert np.isclose(np.sum(np.abs(k) ** 2), np.sum(phantom.astype(float) ** 2))
    back = from_kspace(k, magnitude=False)
    assert np.iscomplexobj(back) and np.allclose(back.real, phantom, atol=1e-6)
    magnitude = from_kspace(k)
    assert magnitude.dtype == np.float32 and np.allclose(magnitude, phantom, atol=1e-6)


def test_kspace_axes_transform_each_slice(phantom):
    k2 = to_kspace(phantom, axes=(0, 1))
    assert np.allclose(k2[..., 5], to_kspace(phantom[..., 5]), atol=1e-5)
    assert np.allclose(from_kspace(k2, axes=(0, 1)), phantom, atol=1e-5)


# --------------------------------------------------------------------- fixed-parameter physics
def test_spike_energy_at_its_k_position(phantom):
    vol = phantom + 1.0  # no zero background: the magnitude stays close to linear
    position = [0.25, -0.5, 0.125]
    out = A.spike(vol, spikes=[{"k_position": position, "amplitude": 0.1}])
    diff = np.abs(to_kspace(out.astype(float)) - to_kspace(vol.astype(float)))
    expected = tuple(n // 2 + round(f * (n // 2)) for f, n in zip(position, vol.shape))
    peak = np.unravel_index(np.argmax(diff), diff.shape)
    assert peak in (expected, mirror(expected, vol.shape))
    # Stripes of amplitude 0.1 x signal level (cos: half of it at each of +-k).
    level = A.signal_level(vol)
    assert diff[expected] == pytest.approx(0.5 * 0.1 * level * np.sqrt(vol.size), rel=0.05)


@pytest.mark.parametrize("pe_axis, other", [(1, 0), (0, 2)])
def test_ghosting_replicas_at_fov_over_n(pe_axis, other):
    shape, n = (32, 32, 32), 4
    vol = np.zeros(shape, np.float32)
    vol[8:12, 8:12, 8:12] = 1.0
    out = A.ghosting(vol, n_ghosts=n, intensity=0.8, pe_axis=pe_axis)
    shift = shape[pe_axis] // n

    def at(offset_axis, offset):
        index = [slice(9, 11)] * 3
        index[offset_axis] = slice(9 + offset, 11 + offset)
        return float(out[tuple(index)].mean())

    assert at(pe_axis, shift) == pytest.approx(0.8 / n, rel=1e-3)  # ghost at FOV / n ...
    assert at(pe_axis, 2 * shift) == pytest.approx(0.8 / n, rel=1e-3)
    assert at(pe_axis, 0) == pytest.approx(1 - 0.8 / n, rel=1e-3)  # ... that the head lost
    assert at(other, shift) < 1e-4  # ... and no ghost along another axis
    assert at(pe_axis, shift // 2) < 1e-4


def test_motion_without_movement_is_identity(phantom):
    still = [{"time": 0.5, "rotation_deg": [0, 0, 0], "translation_mm": [0, 0, 0]}]
    for events in ([], still):
        out = A.motion(phantom, events=events, spacing_mm=SPACING)
        assert np.allclose(out, phantom, rtol=1e-5, atol=1e-5 * phantom.max())


def test_motion_translation_from_the_start_is_a_shift(phantom):
    shift_mm = [2 * SPACING[0], 0, -SPACING[2]]  # +2 voxels along x, -1 along z
    event = {"time": 0.0, "rotation_deg": [0, 0, 0], "translation_mm": shift_mm}
    out = A.motion(phantom, events=[event], spacing_mm=SPACING)
    assert np.allclose(out, np.roll(phantom, (2, 0, -1), axis=(0, 1, 2)), atol=1e-5)


def test_motion_rotation_from_the_start_is_a_rotation():
    # Band-limited (sinc) resampling: exact for a smooth head; a hard-edged one would ring.
    vol = ndimage.gaussian_filter(make_phantom((32, 32, 16)), 1.0)
    event = {"time": 0.0, "rotation_deg": [0, 0, 90.0], "translation_mm": [0, 0, 0]}
    out = A.motion(vol, events=[event], spacing_mm=(2.0, 2.0, 5.0))
    assert np.allclose(out, np.rot90(vol, 1, axes=(0, 1)), atol=0.01 * vol.max())
    # A small rotation about an oblique axis, anisotropic voxels: the rotation of the head in mm
    # (a head with a margin: the resampling is periodic across the FOV, the reference is not).
    vol = ndimage.gaussian_filter(np.pad(make_phantom((24, 24, 10)), [(4, 4), (4, 4), (3, 3)]), 1.0)
    event = {"time": 0.0, "rotation_deg": [3.0, -2.0, 6.0], "translation_mm": [2.0, 0, -3.0]}
    out = A.motion(vol, events=[event], spacing_mm=(2.0, 2.0, 5.0))
    rot = Rotation.from_rotvec(event["rotation_deg"], degrees=True).as_matrix()
    scale = np.array([2.0, 2.0, 5.0])
    matrix = rot.T * scale[None, :] / scale[:, None]
    centre = (np.array(vol.shape) - 1) / 2
    offset = centre - matrix @ centre - rot.T @ np.array(event["translation_mm"]) / scale
    expected = ndimage.affine_transform(vol, matrix, offset=offset, order=3)
    assert np.abs(out - expected).max() < 0.01 * vol.max()


def test_motion_at_kspace_centre_is_worse_than_at_the_edges(phantom):
    pose = {"rotation_deg": [0, 0, 4.0], "translation_mm": [3.0, 5.0, 0.0]}
    moved = A.motion(phantom, events=[{"time": 0.0, **pose}], spacing_mm=SPACING)

    def error(time):  # distance to the nearest consistent image (either pose)
        out = A.motion(phantom, events=[{"time": time, **pose}], spacing_mm=SPACING)
        return min(nrmse(out, phantom), nrmse(out, moved))

    centre, early, late = error(0.5), error(0.05), error(0.95)
    assert centre > 2 * max(early, late)
    assert min(early, late) > 0


def test_bias_field_is_positive_smooth_and_multiplies(phantom):
    terms = A.sample_params("bias", "prominent", seed=1)["terms"]
    field = A.bias_field(phantom.shape, terms)
    assert field.min() > 0 and field.max() / field.min() > 1.5
    for axis in range(3):
        assert np.abs(np.diff(np.log(field), n=2, axis=axis)).max() < 0.02
    out = A.bias(phantom, terms=terms)
    inside = phantom > 0
    assert np.allclose(out[inside] / phantom[inside], field[inside], rtol=1e-5)
    # Coordinates are normalised to [-1, 1] from the first to the last voxel.
    linear = A.bias_field((5, 3, 3), [[1, 0, 0, 0.5]])
    assert np.allclose(linear[[0, 2, 4], 1, 1], np.exp([-0.5, 0.0, 0.5]))


def test_ringing_keeps_the_central_band_exactly(phantom):
    vol = phantom + 1.0  # stays positive after ringing: magnitude == real image
    keep = 0.4
    out = A.ringing(vol, keep_fraction=keep, axes=[0, 1])
    k_in, k_out = to_kspace(vol.astype(float)), to_kspace(out.astype(float))
    band = np.ones(vol.shape, bool)
    for axis in (0, 1):
        n = vol.shape[axis]
        keep_axis = np.abs(np.arange(n) - n // 2) <= int(keep * n / 2)
        band &= keep_axis.reshape([-1 if a == axis else 1 for a in range(3)])
    tol = 1e-5 * np.abs(k_in).max()
    assert np.allclose(k_out[band], k_in[band], atol=tol)
    assert np.abs(k_out[~band]).max() < tol
    assert np.abs(k_in[~band]).max() > 100 * tol  # something was actually removed
    assert np.allclose(A.ringing(vol, keep_fraction=1.0, axes=[0, 1, 2]), vol, atol=1e-5)


def test_rician_noise_is_rayleigh_on_zero_background():
    vol = np.zeros((48, 48, 48), np.float32)
    vol[16:32, 16:32, 16:32] = 2.0
    out = A.noise(vol, sigma_fraction=0.1, noise_seed=7)
    sigma = 0.1 * A.signal_level(vol)
    assert sigma == pytest.approx(0.2)
    background = out[vol == 0]
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    assert out[vol > 0].std() == pytest.approx(sigma, rel=0.05)  # ~Gaussian at high SNR


def test_wraparound_folds_to_the_opposite_side_and_keeps_the_signal():
    vol = np.zeros((16, 48, 16), np.float32)
    vol[:, 8:40, :] = 1.0  # head extent 8..39 (32 voxels) along the PE axis
    vol[6:10, 38, 6:10] = 5.0  # a marker near the anterior edge
    out = A.wraparound(vol, fov_fraction=0.75, pe_axis=1)
    # FOV = 24 voxels centred on the head: indices 12..35; index 38 folds to 38 - 24 = 14.
    assert np.all(out[:, :12] == 0) and np.all(out[:, 36:] == 0)
    assert np.allclose(out[6:10, 14, 6:10], 1.0 + 5.0)
    assert np.allclose(out[0, 14, 0], 2.0) and np.allclose(out[0, 24, 0], 1.0)
    assert out.sum() == pytest.approx(vol.sum(), rel=1e-6)
    assert np.array_equal(A.wraparound(vol, fov_fraction=1.0, pe_axis=1), vol)


@pytest.mark.parametrize("axis, side", [(2, "+"), (2, "-"), (1, "+")])
def test_coverage_zeroes_the_cut_slab_only(phantom, axis, side):
    first, last = A.head_extent(phantom, axis)
    n_cut = round(0.25 * (last - first + 1))
    out = np.moveaxis(A.coverage(phantom, cut_fraction=0.25, axis=axis, side=side), axis, 0)
    vol = np.moveaxis(phantom, axis, 0)
    cut = slice(last - n_cut + 1, None) if side == "+" else slice(0, first + n_cut)
    kept = slice(0, last - n_cut + 1) if side == "+" else slice(first + n_cut, None)
    assert vol[cut].max() > 0 and np.all(out[cut] == 0)
    assert np.array_equal(out[kept], vol[kept])


def test_head_extent_ignores_isolated_noise(phantom):
    noisy = phantom.copy()
    noisy[0, 0, 0] = noisy[-1, -1, -1] = 0.5
    for axis in range(3):
        first, last = A.head_extent(noisy, axis)
        assert (first, last) == A.head_extent(phantom, axis)
        assert 0 < first < last < phantom.shape[axis] - 1


def high_frequency_ratio(out, vol, axis):
    """Power above half the Nyquist frequency along ``axis``, output over input."""
    def power(x):
        k = np.abs(to_kspace(x.astype(float))) ** 2
        f = np.abs(np.arange(x.shape[axis]) - x.shape[axis] // 2)
        return np.take(k, np.flatnonzero(f > x.shape[axis] // 4), axis=axis).sum()
    return power(out) / power(vol)


def test_blur_preserves_signal_and_follows_fwhm_and_spacing():
    vol = np.random.default_rng(0).uniform(0, 1, (32, 32, 32)).astype(np.float32)
    out = A.blur(vol, fwhm_mm=[2.0, 2.0, 6.0], spacing_mm=(1, 1, 1))
    assert out.sum(dtype=float) == pytest.approx(vol.sum(dtype=float), rel=1e-5)
    assert high_frequency_ratio(out, vol, 2) < 0.5 * high_frequency_ratio(out, vol, 0) < 0.5
    # The same FWHM in mm blurs less, in voxels, along an axis with larger voxels.
    out = A.blur(vol, fwhm_mm=[3.0, 3.0, 3.0], spacing_mm=(1, 1, 3))
    assert high_frequency_ratio(out, vol, 2) > 2 * high_frequency_ratio(out, vol, 0)


# --------------------------------------------------------------------- the params-dict contract
@pytest.mark.parametrize("severity", A.SEVERITIES)
@pytest.mark.parametrize("kind", KINDS)
def test_contract(phantom, kind, severity):
    vol64 = phantom.astype(np.float64)  # float64 input is used without a copy ...
    out, params = A.corrupt(vol64, kind, severity, seed=3, spacing_mm=SPACING)
    assert np.array_equal(vol64, phantom)  # ... and must not be modified
    assert out.shape == phantom.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0
    assert params["kind"] == kind and params["severity"] == severity
    loaded = json.loads(json.dumps(params))
    assert loaded == params
    assert np.array_equal(A.apply(phantom, loaded, spacing_mm=SPACING), out)
    assert not np.array_equal(out, phantom)
    # The per-kind function takes the same parameters as keywords.
    physical = {k: v for k, v in params.items() if k not in ("kind", "severity")}
    if kind in ("motion", "blur"):
        physical["spacing_mm"] = SPACING
    assert np.array_equal(getattr(A, kind)(phantom, **physical), out)


@pytest.mark.parametrize("kind", KINDS)
def test_determinism(phantom, kind):
    def draw(seed):
        return A.sample_params(kind, "prominent", seed, phantom.shape, SPACING)

    p0 = draw(11)
    assert draw(11) == p0 and draw(np.random.default_rng(11)) == p0
    p1 = draw(12)
    assert p1 != p0
    out = A.apply(phantom, p0, spacing_mm=SPACING)
    assert np.array_equal(A.apply(phantom, p0, spacing_mm=SPACING), out)
    assert not np.array_equal(A.apply(phantom, p1, spacing_mm=SPACING), out)


@pytest.mark.parametrize("kind", KINDS)
def test_prominent_changes_more_than_subtle(phantom, kind):
    def mean_change(severity):
        outs = [A.corrupt(phantom, kind, severity, s, SPACING)[0] for s in range(4)]
        return np.mean([nrmse(out, phantom) for out in outs])
    subtle, prominent = mean_change("subtle"), mean_change("prominent")
    assert prominent > 1.5 * subtle > 0


def test_bad_inputs_raise_value_error(phantom):
    with pytest.raises(ValueError, match="blurry"):
        A.sample_params("blurry")
    with pytest.raises(ValueError, match="noise.*severe"):
        A.sample_params("noise", "severe")
    with pytest.raises(ValueError, match="blurry"):
        A.corrupt(phantom, "blurry")
    with pytest.raises(ValueError, match="blurry"):
        A.apply(phantom, {"kind": "blurry"})
    with pytest.raises(ValueError, match="kind"):
        A.apply(phantom, {"intensity": 0.5})
    with pytest.raises(ValueError, match="ghosting.*missing.*intensity"):
        A.apply(phantom, {"kind": "ghosting", "n_ghosts": 3})
    with pytest.raises(ValueError, match="ghosting.*unknown.*sigma"):
        A.apply(phantom, {"kind": "ghosting", "n_ghosts": 3, "intensity": 0.5, "sigma": 1})
    with pytest.raises(ValueError, match="ghosting.*intensity"):
        A.ghosting(phantom, n_ghosts=3, intensity=1.5)
    with pytest.raises(ValueError, match="ringing.*keep_fraction"):
        A.ringing(phantom, keep_fraction=0.0)
    with pytest.raises(ValueError, match="motion.*3-D"):
        A.motion(phantom[0], events=[])
    with pytest.raises(ValueError, match="coverage.*side"):
        A.coverage(phantom, cut_fraction=0.1, side="up")


def test_registry_and_class_table():
    assert KINDS == ["motion", "ghosting", "spike", "noise", "bias", "blur", "ringing",
                     "wraparound", "coverage"]
    assert {a.artifact_class for a in A.ARTIFACTS.values()} == set(A.ARTIFACT_CLASSES)
    table = A.class_table()
    assert list(table.columns) == ["kind", "class", "title", "physics"]
    assert list(table["kind"]) == KINDS
    assert table.set_index("kind").loc["coverage", "class"] == "coverage"
    assert table["physics"].str.len().min() > 50


# --------------------------------------------------------------------- voxel size and ranges
def test_spacing_comes_from_the_image_and_is_required_for_arrays(phantom, tmp_path):
    import nibabel as nib

    params = A.sample_params("motion", "prominent", seed=2, shape=phantom.shape, spacing_mm=SPACING)
    with pytest.raises(ValueError, match="motion.*spacing_mm.*required"):
        A.apply(phantom, params)
    with pytest.raises(ValueError, match="blur.*spacing_mm.*required"):
        A.blur(phantom, fwhm_mm=[2, 2, 2])
    with pytest.raises(ValueError, match="ghosting.*spacing_mm.*required"):
        A.corrupt(phantom, "ghosting")  # the registry asks every kind for it
    with pytest.raises(ValueError, match="blur.*spacing_mm"):
        A.sample_params("blur", "prominent", seed=0)
    image = nib.Nifti1Image(phantom, np.diag([*SPACING, 1.0]))
    expected = A.apply(phantom, params, spacing_mm=SPACING)
    np.testing.assert_array_equal(A.apply(image, params), expected)  # from the header
    nib.save(image, tmp_path / "head.nii.gz")
    np.testing.assert_array_equal(A.apply(tmp_path / "head.nii.gz", params), expected)
    np.testing.assert_array_equal(A.motion(image, events=params["events"], pe_axis=params["pe_axis"]), expected)
    out, drawn = A.corrupt(image, "blur", "prominent", seed=4)
    assert drawn == A.sample_params("blur", "prominent", 4, phantom.shape, SPACING)
    with pytest.raises(ValueError, match="motion.*disagrees"):
        A.apply(image, params, spacing_mm=(1.0, 1.0, 1.0))


def test_severity_table_is_written_from_the_ranges_the_samplers_draw_from():
    table = A.severity_table()
    assert list(table.columns) == ["kind", "parameter", "meaning", "clean", "subtle", "prominent"]
    assert list(dict.fromkeys(table["kind"])) == KINDS
    cell = table.set_index(["kind", "parameter"])
    assert cell.loc[("noise", "sigma_fraction"), "prominent"] == "0.08-0.15"
    assert cell.loc[("motion", "time"), "subtle"] == "0.3-0.7 or 0.88-0.97"
    assert set(table.loc[table["clean"] != "", "kind"]) == {"noise", "bias", "blur"}
    # The samplers draw inside the table's ranges (noise: every seed lands in the printed span).
    for severity in ("clean", *A.SEVERITIES):
        low, high = A.ARTIFACTS["noise"].ranges[0].levels[severity]
        for seed in range(20):
            assert low <= A.sample_params("noise", severity, seed)["sigma_fraction"] <= high
    # The docstrings and the CLI help are written from the same table.
    for a in A.ARTIFACTS.values():
        assert a.ranges_text() in a.sample.__doc__
    with pytest.raises(ValueError, match="motion.*clean"):
        A.sample_params("motion", "clean", seed=0, shape=(8, 8, 8), spacing_mm=SPACING)


def test_k_space_shortcuts_equal_the_full_transform(phantom):
    # ghosting and ringing transform only the filtered axes; spike adds a plane wave directly.
    from mriqc_nb.kspace import filter_kspace

    vol = phantom[:, :35]  # an odd axis too
    weights = {1: np.where((np.arange(35) - 17) % 3 == 0, 0.4, 1.0), 2: np.abs(np.arange(32) - 16) <= 9}
    full = to_kspace(vol.astype(float))
    for axis, w in weights.items():
        full = full * np.asarray(w, float).reshape([-1 if a == axis else 1 for a in range(3)])
    expected = from_kspace(full, magnitude=False)
    assert np.abs(expected.imag).max() < 1e-6
    np.testing.assert_allclose(filter_kspace(vol, weights), expected.real, atol=1e-5)
    spikes = [{"k_position": [0.3, -0.55, 0.1], "amplitude": 0.2}]
    k = to_kspace(vol.astype(float))
    index = tuple(n // 2 + round(f * (n // 2)) for f, n in zip(spikes[0]["k_position"], vol.shape))
    k[index] += 0.2 * A.signal_level(vol) * np.sqrt(vol.size)
    np.testing.assert_allclose(A.spike(vol, spikes=spikes), from_kspace(k), atol=1e-5)
    assert A.signal_level(vol) == pytest.approx(np.percentile(vol, 99), rel=1e-6)
