"""Synthetic data say so: the writers' marker, the readers, summary.json, report, figures, CLI."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest

from fearkd.cli import main
from fearkd.datasets.loaders import open_dataset, summarize
from fearkd.datasets.synthetic import write_deap
from fearkd.errors import FearkdError
from fearkd.reporting import plots, write_report
from fearkd.reporting.document import _dtitle, _synthetic_suffix
from fearkd.reporting.rundata import load_run


@pytest.fixture(scope="module")
def marked_run(deap_root, tmp_path_factory, write_experiment):
    """`fearkd run` (Method 1, hard target, 2 folds, 1 epoch) on the synthetic DEAP fixture."""
    tmp = tmp_path_factory.mktemp("marked")
    config = write_experiment(tmp, methods=("method1",), kd_targets=("hard",))
    out = tmp / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", str(config), "--data", str(deap_root), "--out", str(out), "--quiet"])
    assert code == 0
    return out, stdout.getvalue()


def test_writer_marks_and_reader_surfaces_synthetic(tmp_path):
    root = write_deap(tmp_path / "deap", n_subjects=1, n_trials=4, seconds=5.0, seed=3)
    marker = json.loads((root / "fearkd-synthetic.json").read_text())
    assert marker["writer"] == "write_deap" and marker["params"]["seed"] == 3
    assert summarize(open_dataset(root))["synthetic"] is True
    # the same files without the marker read as real data: the flag comes from the marker only
    real = shutil.copytree(root, tmp_path / "real")
    (real / "fearkd-synthetic.json").unlink()
    assert summarize(open_dataset(real))["synthetic"] is False
    for folder, expected in ((root, "Dataset: deap (synthetic data)\n"), (real, "Dataset: deap\n")):
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(["info", str(folder)]) == 0
        assert stdout.getvalue().startswith(expected)


def test_malformed_marker_is_refused(tmp_path):
    root = write_deap(tmp_path / "deap", n_subjects=1, n_trials=4, seconds=5.0)
    (root / "fearkd-synthetic.json").write_text("[1, 2]")
    with pytest.raises(FearkdError, match=r"fearkd-synthetic\.json' is not a JSON object"):
        open_dataset(root)


def test_run_records_and_prints_synthetic(marked_run):
    out, stdout = marked_run
    summary = json.loads((out / "datasets" / "deap" / "summary.json").read_text())
    assert summary["synthetic"] is True
    assert "Data: DEAP (synthetic data)" in stdout


def test_report_title_and_figure_titles_say_synthetic(marked_run):
    out, _ = marked_run
    html = write_report(out, formats=("html",))["html"].read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    h1 = re.search(r"<h1>(.*?)</h1>", html).group(1)
    assert title.endswith("· synthetic data") and h1 == title
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', html)
    assert alts and all("DEAP (synthetic data)" in a for a in alts)
    # negative control: the same run recorded as real data has no such words
    path = out / "datasets" / "deap" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "synthetic": False}))
    run = load_run(out)
    assert _synthetic_suffix(run) == "" and _dtitle(run, "deap") == "DEAP"


def test_figure_suptitle_from_plots():
    assert plots.dataset_title("deap", True) == "DEAP (synthetic data)"
    assert plots.dataset_title("deap", False) == "DEAP"
    entry = {"model": "cnn", "target": "-", "class_names": ["a", "b"], "matrix": [[3, 1], [0, 4]],
             "n_folds": 2}
    fig = plots.plot_confusions([entry], title=f"{plots.dataset_title('deap', True)} · subject")
    assert fig._suptitle.get_text() == "DEAP (synthetic data) · subject"
