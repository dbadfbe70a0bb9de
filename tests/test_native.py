"""Checks at the scan's own resolution (``mriqc_nb.native``): a k-space peak calls a spike,
the finest Haar detail measures white noise, and neither fires on a clean head, on a sharp
edge in k-space (truncation, ringing) or on blur."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mriqc_nb import artifacts, native, synth

GRID, SPACING = (80, 80, 60), (3.0, 3.0, 3.0)


@pytest.fixture(scope="module")
def head():
    img = synth.make_scan(synth.sample_anatomy(11), synth.sample_acquisition(12, "T1w"),
                          GRID, SPACING)
    return np.asarray(img.dataobj, dtype=np.float32)


def _apply(vol, kind, **params):
    return artifacts.apply(vol, {"kind": kind, **params}, spacing_mm=SPACING)


def test_a_spike_stands_out_in_kspace_and_a_clean_head_does_not(head):
    clean = native.kspace_peak(head)
    assert clean < 0.8  # well under the threshold of 1
    for position, amplitude in (([0.3, -0.55, 0.1], 0.2), ([-0.5, 0.2, -0.2], 0.03)):
        spiked = _apply(head, "spike", spikes=[{"k_position": position, "amplitude": amplitude}])
        assert native.kspace_peak(spiked) > native.THRESHOLDS["kspace_peak"] + 0.3, position
        assert native.called(native.measure(spiked)) == ["spike"]
    assert native.called(native.measure(head)) == []


def test_edges_in_kspace_and_blur_are_not_peaks(head):
    # truncated k-space (ringing) has a sharp edge, not a peak; blur removes detail
    ringing = _apply(head, "ringing", keep_fraction=0.3, axes=[0, 1])
    blurred = _apply(head, "blur", fwhm_mm=[9.0, 9.0, 9.0])
    for vol in (ringing, blurred):
        assert native.kspace_peak(vol) < native.THRESHOLDS["kspace_peak"]
    # computed on half of k-space: the same as on all of it, for even and odd sizes
    rng = np.random.default_rng(3)
    for shape in ((20, 24, 18), (21, 25, 19)):
        x = np.abs(rng.normal(5.0, 1.0, shape)).astype(np.float32)
        full = np.log(np.abs(np.fft.fftshift(np.fft.fftn(x - x.mean()))) + 1e-7 * np.abs(
            np.fft.fftn(x - x.mean())).max())
        excess = full - native._ring_max(full.astype(np.float32))
        g = np.meshgrid(*[np.abs(np.arange(n) - n // 2) / (n / 2) for n in shape], indexing="ij")
        keep = (sum(a**2 for a in g) > 0.01) & np.logical_and.reduce(
            [a > 1.5 / (n / 2) for a, n in zip(g, shape)])
        assert native.kspace_peak(x) == pytest.approx(float(excess[keep].max()), abs=1e-4)
    # a lone peak is invariant to where the head sits (a shift changes only phases)
    shifted = np.roll(head, (7, -5, 3), axis=(0, 1, 2))
    assert native.kspace_peak(shifted) == pytest.approx(native.kspace_peak(head), abs=0.05)


def test_ring_max_is_the_maximum_over_the_chebyshev_shell():
    # separable passes give exactly the shell's maximum, periodic at the edges
    rng = np.random.default_rng(8)
    for shape in ((9, 11, 8), (20, 24, 18), (21, 25, 19)):
        v = rng.normal(size=shape).astype(np.float32)
        brute = np.full(shape, -np.inf, dtype=np.float32)
        r = range(-3, 4)
        for offset in ((a, b, c) for a in r for b in r for c in r):
            if max(map(abs, offset)) >= 2:
                brute = np.maximum(brute, np.roll(v, offset, axis=(0, 1, 2)))
        assert np.array_equal(native._ring_max(v), brute), shape


def test_haar_noise_recovers_the_sd_of_white_noise_whatever_the_offset():
    rng = np.random.default_rng(0)
    for sd in (0.5, 2.0):
        x = 100.0 + rng.normal(0.0, sd, (64, 64, 48))
        assert native.haar_noise(x) == pytest.approx(sd, rel=0.03)
    # odd sizes: the last plane is left out, not wrapped
    assert native.haar_noise(rng.normal(0, 1.0, (33, 35, 31))) == pytest.approx(1.0, rel=0.05)
    mask = np.zeros((64, 64, 48), dtype=bool)
    assert math.isnan(native.haar_noise(rng.normal(0, 1.0, (64, 64, 48)), mask))


def test_noise_level_on_every_second_voxel_agrees_with_full_resolution(head):
    # mask and medians on an eighth of the voxels (NOTES 21): the same estimate within a
    # small fraction of the gap between clean and subtle noise (about 0.5 here)
    from mriqc_nb.scans.grid import head_mask

    for fraction in (0.0, 0.03, 0.12):
        x = head if not fraction else _apply(head, "noise", sigma_fraction=fraction,
                                             noise_seed=1)
        m = head_mask(x)
        full = math.log(native.haar_noise(x, m) / (np.median(x[m]) - np.median(x[~m])))
        assert native.noise_level(x) == pytest.approx(full, abs=0.15), fraction
        assert native.noise_level(x, m) == pytest.approx(full, abs=0.02), fraction


def test_noise_level_rises_with_noise_falls_with_blur_and_calls_prominent_noise(head):
    clean = native.noise_level(head)
    subtle = native.noise_level(_apply(head, "noise", sigma_fraction=0.03, noise_seed=1))
    prominent = native.noise_level(_apply(head, "noise", sigma_fraction=0.12, noise_seed=1))
    blurred = native.noise_level(_apply(head, "blur", fwhm_mm=[9.0, 9.0, 9.0]))
    assert blurred < clean < subtle < native.THRESHOLDS["noise"] < prominent
    # relative to the head: the same scan scaled and offset has the same level
    assert native.noise_level(3.0 * head + 50.0) == pytest.approx(clean, abs=1e-3)
    # the level is measured from the background, not from the lowest voxel: one outlier, or
    # signed noise (an additive Gaussian, not the magnitude's Rician), does not move it
    outlier = head.copy()
    outlier[0, 0, 0] = -10.0 * head.max()
    # (the head mask's histogram is coarser with the outlier: a small change, where
    # subtracting the minimum would lower the measure by log 11 = 2.4)
    assert native.noise_level(outlier) == pytest.approx(clean, abs=0.05)
    sd = 0.1 * float(np.percentile(head, 99))
    signed = head + np.random.default_rng(2).normal(0, sd, head.shape).astype(np.float32)
    level = np.median(head[head > 0.3 * head.max()])
    assert native.noise_level(signed) == pytest.approx(math.log(sd / level), abs=0.35)
    assert "noise" in native.called(native.measure(
        _apply(head, "noise", sigma_fraction=0.12, noise_seed=1)))


def test_thresholds_are_validated_and_nan_calls_nothing():
    assert native.validate_thresholds({"kspace_peak": 1}) == {"kspace_peak": 1.0}
    with pytest.raises(ValueError, match="unknown check 'motion'"):
        native.validate_thresholds({"motion": 1.0})
    for bad in (float("nan"), "1", True, None):
        with pytest.raises(ValueError, match="kspace_peak"):
            native.validate_thresholds({"kspace_peak": bad})
    with pytest.raises(ValueError, match="JSON object"):
        native.validate_thresholds([1.0])
    assert native.called({"kspace_peak": float("nan"), "noise": float("nan")}) == []
    assert native.called({"kspace_peak": 2.0, "noise": -1.0}, {"noise": -2.5}) == ["noise"]
    with pytest.raises(ValueError, match="3-D"):
        native.measure(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="finite"):
        native.kspace_peak(np.full((10, 10, 10), np.nan))


def _zero_filled(x, pf_axis=None):
    """A clean acquisition reconstructed from zero-filled k-space: a 2x interpolated matrix
    (k-space beyond half the Nyquist frequency of axes 0 and 1 zero), or with ``pf_axis``
    partial Fourier (a quarter of the lines of that axis missing on one side)."""
    k = np.fft.fftn(x)
    for axis in ((0, 1) if pf_axis is None else (pf_axis,)):
        f = np.fft.fftfreq(x.shape[axis])
        keep = (np.abs(f) <= 0.25) if pf_axis is None else (f >= -0.25)
        k = k * keep.reshape([-1 if a == axis else 1 for a in range(3)])
    return np.abs(np.fft.ifftn(k)).astype(np.float32)


@pytest.fixture(scope="module")
def fine():
    """A head at 2 mm (the comb's scope: at most 2 mm) on a 200 x 220 x 180 mm box."""
    img = synth.make_scan(synth.sample_anatomy(11), synth.sample_acquisition(12, "T1w"),
                          (100, 110, 90), (2.0, 2.0, 2.0))
    return np.asarray(img.dataobj, dtype=np.float32)


def test_a_comb_in_kspace_calls_ghosting_and_nothing_else_makes_one(fine):
    def apply(kind, **params):
        return artifacts.apply(fine, {"kind": kind, **params}, spacing_mm=(2.0, 2.0, 2.0))

    cut = native.THRESHOLDS["kspace_comb"]
    # periodic ghosting scales every n-th phase-encoding line: a comb, on any axis
    clean = native.kspace_comb(fine)
    assert clean < cut / 2
    for n, axis in ((2, 0), (3, 1), (4, 2)):
        ghosted = apply("ghosting", n_ghosts=n, intensity=0.5, pe_axis=axis)
        assert native.kspace_comb(ghosted) > 2 * cut, (n, axis)
    # a step (partial Fourier, a movement late in the acquisition) or a cliff (a zero-filled
    # 2x matrix, k-space truncated at half) is not a comb
    moved = apply("motion", pe_axis=1, events=[
        {"time": 0.8, "rotation_deg": [4, 2, 1], "translation_mm": [3, 2, 2]}])
    truncated = apply("ringing", keep_fraction=0.5, axes=[0, 1])
    for vol in (_zero_filled(fine), _zero_filled(fine, 1), _zero_filled(fine, 2), moved,
                truncated):
        assert native.kspace_comb(vol) < cut
    # the same on any intensity scale
    assert native.kspace_comb(5.0 * fine + 20.0) == pytest.approx(clean, abs=1e-3)


def test_the_comb_is_measured_on_fine_whole_heads_only(fine):
    head = fine
    ghosted = artifacts.apply(fine, {"kind": "ghosting", "n_ghosts": 3, "intensity": 0.5,
                                     "pe_axis": 1}, spacing_mm=(2.0, 2.0, 2.0))
    inside = native.measure(ghosted, spacing_mm=(2.0, 2.0, 2.0))
    assert inside["kspace_comb"] > native.THRESHOLDS["kspace_comb"]
    assert native.called(inside) == ["ghosting"]
    # coarser than 2 mm: the network's (the measure is not taken)
    assert math.isnan(native.measure(ghosted, spacing_mm=(2.0, 2.0, 2.5))["kspace_comb"])
    # no voxel size: no scope, no measure
    assert math.isnan(native.measure(ghosted)["kspace_comb"])
    # a skull-stripped file (only a brain's volume is non-zero) is out of scope
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in head.shape], indexing="ij"))
    brain = np.sum(g**2, axis=0) < 0.5**2  # 7% of the 200 x 220 x 180 mm box: 0.5 L
    assert native.in_scope(ghosted, (2.0, 2.0, 2.0))
    assert not native.in_scope(np.where(brain, ghosted, 0), (2.0, 2.0, 2.0))
    stripped = native.measure(np.where(brain, ghosted, 0), spacing_mm=(2.0, 2.0, 2.0))
    assert math.isnan(stripped["kspace_comb"]) and "ghosting" not in native.called(stripped)
    for bad in ((2.0, 2.0), (2.0, 0.0, 2.0), (2.0, float("nan"), 2.0), "2 mm"):
        with pytest.raises(ValueError, match="spacing_mm"):
            native.measure(head, spacing_mm=bad)
