"""Shared fixtures: small synthetic datasets in the real formats, a tiny experiment file, and one
thread per test process.

Tests run under ``pytest -n 2`` on 2 cores: each pytest worker trains on one torch thread and
runs experiments in-process (``jobs = 1``), so two workers never oversubscribe the machine and
a test's timing means what it says. The tests of parallel execution ask for ``jobs=2``
themselves.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from fearkd.datasets.synthetic import write_ascertain, write_deap

# Before numpy/torch start their thread pools in this process.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_test_process():
    """Torch on one thread in this pytest worker (restored at the end of the session)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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


_EXPERIMENT = """\
name = {name}
[dataset]
kind = {kind}
[labels]
nan_policy = {nan_policy}
[features]
teacher = {teacher}
student = {student}
window = {window}
step = {step}
[models]
backbones = {backbones}
[models.params.gru]
hidden_size = 8
[methods]
run = {methods}
kd_targets = {kd_targets}
[training]
epochs = {epochs}
batch_size = 64
patience = {patience}
[evaluation]
protocol = "subject"
folds = 2
seeds = [{seed}]
jobs = 1
"""


@pytest.fixture(scope="session")
def write_experiment():
    """Factory: ``write_experiment(folder, **settings)`` writes a tiny experiment file.

    One epoch, 2 subject-wise folds, one seed, in-process units; returns the file's path.
    Settings: ``name``, ``kind`` ("deap"/"ascertain", picks the presets), ``backbones``,
    ``methods``, ``kd_targets`` (sequences of names), ``nan_policy``, ``seed``, ``filename``,
    ``window``, ``step`` (seconds), ``epochs``, ``patience``.
    """

    def write(folder: Path, *, name: str = "experiment-test", kind: str = "deap",
              backbones=("cnn",), methods=("method1", "method2"),
              kd_targets=("hard", "soft", "combined"), nan_policy: str = "raise",
              seed: int = 0, filename: str = "experiment.toml", window: float = 4.0,
              step: float = 2.0, epochs: int = 1, patience: int = 1) -> Path:
        q = json.dumps  # a JSON string or list of strings is valid TOML
        path = Path(folder) / filename
        path.write_text(_EXPERIMENT.format(
            name=q(name), kind=q(kind), nan_policy=q(nan_policy), teacher=q(f"{kind}-teacher"),
            student=q(f"{kind}-student"), backbones=q(list(backbones)), methods=q(list(methods)),
            kd_targets=q(list(kd_targets)), seed=int(seed), window=float(window),
            step=float(step), epochs=int(epochs), patience=int(patience)))
        return path

    return write


@pytest.fixture
def obeying_modes() -> list[str]:
    """A command prefix under which folder modes hold: nothing for a normal user; for root
    (CI containers run the suite as root), ``setpriv`` without the capabilities that let root
    write anywhere, so read-only-folder tests run instead of skipping."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root ignores folder modes and setpriv (util-linux) is not installed")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
