"""Shared fixtures: small synthetic datasets written in the real formats (once per worker)."""

from pathlib import Path

import pytest

from fearkd.datasets.synthetic import write_ascertain, write_deap

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def deap_root(tmp_path_factory) -> Path:
    """3 subjects x 12 trials x 13 s (3 s baseline) of synthetic DEAP, .dat files."""
    return write_deap(tmp_path_factory.mktemp("deap"), n_subjects=3, n_trials=12, seconds=13.0,
                      seed=0)


@pytest.fixture(scope="session")
def ascertain_root(tmp_path_factory) -> Path:
    """3 subjects x 12 clips of about 20 s of synthetic ASCERTAIN."""
    return write_ascertain(tmp_path_factory.mktemp("ascertain"), n_subjects=3, n_clips=12,
                           seconds=20.0, seed=0)
