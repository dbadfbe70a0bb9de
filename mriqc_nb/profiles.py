"""Run profiles: every size, count and epoch number of the book in one place.

A chapter takes the profile *name* as a papermill parameter and asks this module for the
rest, so no chapter carries its own constants. The four profiles span five orders of
magnitude of compute:

``smoke``
    Continuous integration: the whole book in minutes on 2 CPU cores, on a tiny grid. Its
    numbers test that the code runs; they are not results.
``laptop``
    The default for building the book, on 2 CPU cores. The book loads its six networks as
    trained with it (``results/laptop-runs``, :mod:`mriqc_nb.model.shipped`); training them
    here adds hours (150 min with a 30-round recipe on an idle older 2-core AMD EPYC without
    AVX-512; the recipe now trains 60 rounds, about half an hour more; README.md). Their
    predictions took 11 minutes and the database 6 on that machine. 8,000 scans: the training split holds 3,000
    (60 artifacts), validation 1,600 (32) and test 3,400 (68), so that test F1 and per-kind
    sensitivity rest on more than a handful of artifacts.
``colab``
    One T4-class GPU; the target is a chapter in under about 15 minutes (not yet timed on a
    GPU), thousands of scans at 98% clean.
``paper``
    The scale of Pizarro et al. (2023): a 256 x 256 x 64 grid and 34,800 scans.

All grids share one field of view of 256 x 256 x 192 mm (RAS+ order: left-right,
posterior-anterior, inferior-superior); the third axis is the slice axis of an axial,
thick-slice clinical acquisition, as in the paper.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

__all__ = ["Profile", "PROFILES", "DEFAULT_PROFILE", "get_profile", "resolve_profile"]

#: Environment variable that selects the profile when a chapter is given none.
PROFILE_ENV = "MRIQC_NB_PROFILE"
#: The profile the book is built with when nothing else is said.
DEFAULT_PROFILE = "laptop"


@dataclass(frozen=True)
class Profile:
    """Sizes, counts and schedule of one run of the book.

    Attributes
    ----------
    name : str
        Profile name.
    grid : tuple of int
        Voxel grid (x, y, z) that every scan is conformed to. Each side divides by 32, as the
        5-pooling network needs.
    spacing_mm : tuple of float
        Voxel size in millimetres along (x, y, z).
    n_scans : int
        Number of labelled scans in the database (all splits).
    clean_share : float
        Fraction of labelled scans that are clean (the paper: 0.98).
    scans_per_subject : int
        Scans drawn per synthetic subject (modalities and repeats); splits group by subject.
    n_subtle : int
        Size of the separate set of *subtle* artifacts kept aside for discussion (the paper
        excluded subtle artifacts from its labelled sets).
    split_fractions : tuple of float
        Train / validation / test fractions (grouped by subject, stratified by label).
    epochs_prime, ramp_epochs, epochs_finetune, epochs_baseline : int
        Priming epochs, the ramp length E_R, fine-tuning epochs after the ramp, and epochs of
        the baselines trained on the full imbalanced set.
    batch_size : int
        Batch size per replica.
    mc_samples_valid, mc_samples_test : int
        Monte Carlo dropout samples T on the validation and test splits.
    seed : int
        Master seed of the profile's database and training.
    description : str
        One line for tables and the book.
    """

    name: str
    grid: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    n_scans: int
    clean_share: float
    scans_per_subject: int
    n_subtle: int
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    epochs_prime: int = 10
    ramp_epochs: int = 5
    epochs_finetune: int = 2
    epochs_baseline: int = 8
    batch_size: int = 5
    mc_samples_valid: int = 50
    mc_samples_test: int = 100
    seed: int = 2023
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view in millimetres, ``grid * spacing_mm``."""
        return tuple(float(n * s) for n, s in zip(self.grid, self.spacing_mm))

    @property
    def n_artifact(self) -> int:
        """Number of labelled artifact scans, ``round(n_scans * (1 - clean_share))``."""
        return int(round(self.n_scans * (1.0 - self.clean_share)))

    @property
    def n_clean(self) -> int:
        """Number of labelled clean scans."""
        return self.n_scans - self.n_artifact

    def as_dict(self) -> dict:
        """Plain-dict view (for JSON configs and tables)."""
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        return d


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            grid=(32, 32, 32),
            spacing_mm=(8.0, 8.0, 6.0),
            n_scans=120,
            clean_share=0.90,
            scans_per_subject=2,
            n_subtle=6,
            epochs_prime=2,
            ramp_epochs=2,
            epochs_finetune=1,
            epochs_baseline=2,
            batch_size=4,
            mc_samples_valid=8,
            mc_samples_test=10,
            description="CI: minutes on 2 CPU cores; numbers check the code, not the method",
            extra={"recipe": dict(redraws=2, onto_clean=20, artifact_share=0.5, batch_size=4,
                                  rounds=2, steps_per_round=10, valid_clean=0)},
        ),
        Profile(
            name="laptop",
            grid=(64, 64, 32),
            spacing_mm=(4.0, 4.0, 6.0),
            n_scans=8000,
            clean_share=0.98,
            scans_per_subject=4,
            n_subtle=100,
            # train 3,000 (60 artifacts), valid 1,600 (32), test 3,400 (68): at least 60
            # test artifacts, so that F1 and per-kind sensitivity mean something
            split_fractions=(0.375, 0.2, 0.425),
            epochs_prime=30,
            ramp_epochs=5,
            epochs_finetune=3,
            epochs_baseline=10,
            batch_size=8,
            mc_samples_valid=50,
            mc_samples_test=100,
            description="the default, on 2 CPU cores: loads the networks trained with the book "
                        "(results/laptop-runs); training them here adds hours",
            # the recipe of chapter 5b: 60 x 60 steps of 8 (59-69 min on 2 shared cores).
            # 12 rounds left it undertrained: validation AUC 0.887 against 0.982 for 30
            # (seed 2023, MC T = 100, all 1,600 validation scans; experiments/NOTES.md 10);
            # 30 still did: 60 rounds raised validation AUC for training seeds 0, 1 and 2
            # (+0.036, +0.089, +0.015, every paired interval above 0; NOTES 18 and 18b).
            # onto_clean 1,500 (was 300): each pool artifact comes back about 3 times, not
            # 12; development-set AUC 0.962 against 0.945, validation 0.987 against 0.982
            # (paired intervals, validation anatomy only; experiments/NOTES.md 12)
            # pose "exact": the randomisation shifts by whole voxels and resamples nothing; the
            # interpolating pose step smoothed every clean training scan, and without it the
            # development-set AUC rose for seeds 0 and 2 (+0.010, +0.018; NOTES 19)
            # monitor_valid: the paper's stages watch 400 validation scans (stratified) after
            # every epoch instead of all 1,600 (training.monitor_rows; no weight changes)
            extra={"recipe": dict(redraws=4, onto_clean=1500, artifact_share=0.5, batch_size=8,
                                  rounds=60, steps_per_round=60, valid_clean=300,
                                  pose="exact"),
                   "monitor_valid": 400},
        ),
        Profile(
            name="colab",
            grid=(128, 128, 64),
            spacing_mm=(2.0, 2.0, 3.0),
            n_scans=6000,
            clean_share=0.98,
            scans_per_subject=4,
            n_subtle=120,
            epochs_prime=60,
            ramp_epochs=20,
            epochs_finetune=5,
            epochs_baseline=30,
            batch_size=8,
            mc_samples_valid=50,
            mc_samples_test=100,
            description="one T4-class GPU; target: a chapter in under about 15 minutes (not yet timed "
                        "on a T4; NN008 trained at 355 volumes/s on an H200, JAX backend)",
            extra={"recipe": dict(redraws=8, onto_clean=600, artifact_share=0.5, batch_size=8,
                                  rounds=20, steps_per_round=100, valid_clean=600),
                   "monitor_valid": 600},
        ),
        Profile(
            name="paper",
            grid=(256, 256, 64),
            spacing_mm=(1.0, 1.0, 3.0),
            n_scans=34800,
            clean_share=0.98,
            scans_per_subject=4,
            n_subtle=700,
            epochs_prime=500,
            ramp_epochs=20,
            epochs_finetune=10,
            epochs_baseline=50,
            batch_size=5,
            mc_samples_valid=50,
            mc_samples_test=100,
            description="the scale of Pizarro et al. 2023 (256x256x64, 34,800 scans)",
            extra={"recipe": dict(redraws=8, onto_clean=2000, artifact_share=0.5, batch_size=5,
                                  rounds=40, steps_per_round=200, valid_clean=0),
                   "monitor_valid": 2000},
        ),
    )
}


def get_profile(name: str | Profile) -> Profile:
    """Return the profile called ``name`` (a :class:`Profile` is returned unchanged).

    Raises
    ------
    KeyError
        If no profile has that name; the message lists the known ones.
    """
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[str(name).strip().lower()]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown profile {name!r}; known profiles: {known}") from None


def resolve_profile(name: str | Profile | None = None) -> Profile:
    """Profile for a chapter: ``name`` if given, else ``$MRIQC_NB_PROFILE``, else ``laptop``.

    Chapters call this on their papermill parameter, so that one environment variable
    switches a whole book build (CI builds with ``MRIQC_NB_PROFILE=smoke``).
    """
    if name is None or (isinstance(name, str) and not name.strip()):
        name = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    return get_profile(name)
