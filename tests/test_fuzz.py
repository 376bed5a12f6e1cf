"""Fuzzing (issue 23, item 6): damaged copies of valid files end in a named error.

Every reader (DEAP ``.dat`` and ``.mat``, ASCERTAIN ``.mat``, generic CSV with a description,
Empatica E4 CSV and its description) and the experiment file are given truncated, bit-flipped
and re-typed variants of a valid file. Each must either load (a flipped bit in a sample is
still a valid file) or fail with an error the command line prints as one line
(:data:`fearkd.cli._USER_ERRORS`: a FearkdError, a ValueError or a missing file) -- never
another exception (a traceback) and never a hang (the Hypothesis deadline).

``make test`` runs a few examples each (profile ``fast``); ``make fuzz`` runs many
(``FEARKD_FUZZ=1`` selects the ``fuzz`` profile).
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fearkd.cli import _USER_ERRORS
from fearkd.config import load_config
from fearkd.datasets.generic import load_generic
from fearkd.datasets.loaders import open_dataset
from fearkd.datasets.synthetic import write_ascertain, write_deap, write_e4

settings.register_profile("fast", max_examples=25, deadline=5000,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=500, deadline=10000,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
PROFILE = "fuzz" if os.environ.get("FEARKD_FUZZ") else "fast"

RETYPES = [(b"1", b"x"), (b"0", b"-"), (b"=", b"= ["), (b'"', b""), (b",", b";"),
           (b".", b"e"), (b"\n", b"\n\n["), (b"4", b"1e400"), (b"\n", b"\nNaN,")]


@st.composite
def damage(draw):
    """One damage: ("truncate", fraction) | ("flip", [(fraction, bit)]) | ("retype", i, k)."""
    kind = draw(st.sampled_from(["truncate", "flip", "retype"]))
    if kind == "truncate":
        return kind, draw(st.floats(0.0, 0.999))
    if kind == "flip":
        return kind, draw(st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 7)),
                                   min_size=1, max_size=8))
    return kind, draw(st.integers(0, len(RETYPES) - 1)), draw(st.integers(0, 50))


def _apply(path: Path, how) -> None:
    data = bytearray(path.read_bytes())
    if how[0] == "truncate":
        data = data[: int(len(data) * how[1])]
    elif how[0] == "flip":
        for frac, bit in how[1]:
            data[int(len(data) * frac)] ^= 1 << bit
    else:
        old, new = RETYPES[how[1]]
        hits = [i for i in range(len(data)) if data.startswith(old, i)]
        if hits:
            i = hits[how[2] % len(hits)]
            data[i: i + len(old)] = new
    path.write_bytes(bytes(data))


def _read_all(recordings) -> None:
    for subject in recordings:
        for trial in subject:
            for sig in trial.signals.values() if isinstance(trial.signals, dict) else ():
                np.asarray(sig.data).sum()


def _check(template: Path, target: str, how, opener) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(template, root)
        _apply(root / target, how)
        try:
            opener(root)
        except _USER_ERRORS as exc:
            assert str(exc).strip(), "an error without a message"


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    write_deap(base / "dat", n_subjects=1, n_trials=2, seconds=4.0, seed=0)
    write_deap(base / "mat", n_subjects=1, n_trials=2, seconds=4.0, seed=0, fmt="mat")
    write_ascertain(base / "asc", n_subjects=1, n_clips=2, seconds=8.0, seed=0)
    write_e4(base / "e4", n_subjects=1, seconds=60.0)
    csv = base / "csv"
    csv.mkdir()
    t = 100.0 + np.arange(80) / 4.0
    (csv / "p1_eda.csv").write_text("time,eda\n" + "".join(f"{a},{a}\n" for a in t.tolist()))
    (csv / "p1_events.csv").write_text("onset,duration,label\n1.0,,Relax\n5.0,3.0,Fear\n")
    (csv / "description.toml").write_text(
        'name = "csv"\nroot = "."\nsubjects = ["1"]\n'
        '[[records]]\nfile = "p{subject}_eda.csv"\ntime_column = "time"\n'
        '[channels]\neda = "gsr"\n'
        '[labels]\nfrom = "events"\nevents = "p{subject}_events.csv"\n'
        '[labels.classes]\nRelax = 0\nFear = 1\n')
    exp = base / "exp"
    exp.mkdir()
    (exp / "e.toml").write_text(
        'name = "x"\n[dataset]\nkind = "deap"\npath = "."\nsubjects = [1, 2]\n'
        '[models]\nbackbones = ["cnn", "gru"]\n[models.params.gru]\nhidden_size = 8\n'
        '[methods]\nrun = ["method1"]\nalpha = 0.5\n[training]\nepochs = 1\n'
        '[evaluation]\nprotocol = "subject"\nfolds = 2\nseeds = [0]\n')
    return base


def _open_all(root: Path) -> None:
    _read_all(open_dataset(root))


CASES = {
    "deap-dat": ("dat", "data_preprocessed_python/s01.dat", _open_all),
    "deap-mat": ("mat", "data_preprocessed_matlab/s01.mat", _open_all),
    "deap-ratings": ("dat", "metadata_csv/participant_ratings.csv", _open_all),
    "ascertain-eeg": ("asc", "ASCERTAIN_Raw/EEGData/Movie_P01/EEG_Clip1.mat", _open_all),
    "ascertain-ratings": ("asc", "ASCERTAIN_Features/Dt_SelfReports.mat", _open_all),
    "e4-csv": ("e4", "S1/EDA.csv", lambda r: _open_all(r / "description.toml")),
    "e4-description": ("e4", "description.toml", lambda r: _open_all(r / "description.toml")),
    "csv-data": ("csv", "p1_eda.csv", lambda r: _read_all(load_generic(r / "description.toml"))),
    "csv-description": ("csv", "description.toml",
                        lambda r: _read_all(load_generic(r / "description.toml"))),
    "experiment": ("exp", "e.toml", lambda r: load_config(r / "e.toml")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_file_ends_in_a_named_error(templates, case):
    folder, target, opener = CASES[case]

    @settings(settings.get_profile(PROFILE))
    @given(how=damage())
    def run(how):
        _check(templates / folder, target, how, opener)

    run()
