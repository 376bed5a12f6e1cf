"""Files fearkd writes get the mode the umask allows (0644 under 022), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from fearkd._atomic import _umask, atomic_open, write_atomic
from fearkd.datasets.synthetic import write_deap


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600),
                                                (0o002, 0o664)])
def test_atomic_open_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    with atomic_open(tmp_path / "results.csv", "w") as fh:
        fh.write("a,b\n1,2\n")
    assert _mode(tmp_path / "results.csv") == expected
    write_atomic(tmp_path / "config.json", b"{}")
    assert _mode(tmp_path / "config.json") == expected


def test_umask_is_read_without_changing_it(umask):
    umask(0o027)
    assert _umask() == 0o027
    assert _umask() == 0o027
    assert os.umask(0o027) == 0o027


def test_replacing_a_0600_file_gives_the_umask_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "unit.json"
    target.write_text("{}")
    os.chmod(target, 0o600)
    write_atomic(target, "{}")
    assert _mode(target) == 0o644


def test_synthetic_deap_files_are_group_readable(tmp_path, umask):
    umask(0o022)
    root = write_deap(tmp_path / "deap", n_subjects=2, n_trials=2, seconds=4.0)
    dats = sorted(root.rglob("*.dat"))
    assert len(dats) == 2
    assert {_mode(p) for p in dats} == {0o644}
