"""Tests of fearkd.reporting: tables, figures, the HTML/Markdown report of a run directory."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fearkd.config import ExperimentConfig, config_to_dict
from fearkd.errors import FearkdError, FormatError
from fearkd.labels import label_report
from fearkd.reporting import (
    backbone_table,
    format_table,
    kd_table,
    mean_ci,
    plots,
    protocol_comparison,
    protocol_explanation,
    tables,
    timing_table,
    write_report,
)
from fearkd.reporting.rundata import confusion_sums, history_frame, load_run

MODELS = ("cnn", "lstm", "gru")
TARGETS = ("hard", "soft", "combined")
PARAMS = {"cnn": 12_345, "lstm": 23_456, "gru": 19_876}
# Test accuracy level per (protocol, method): seed-legacy leaks, subject-wise is near chance.
LEVEL = {("seed-legacy", "backbone"): 0.85, ("subject", "backbone"): 0.14,
         ("subject", "method1"): 0.33, ("subject", "method2"): 0.30,
         ("subject", "scratch"): 0.28, ("subject", "baseline"): 0.25}


# ------------------------------------------------------------------------ synthetic run dir
def _metric_rows(rng, base, level, n_classes):
    rows = []
    for split, bonus in (("train", 0.08), ("test", 0.0)):
        acc = float(np.clip(level + bonus + rng.normal(0, 0.02), 0.01, 0.99))
        values = {"accuracy": acc, "balanced_accuracy": acc * 0.95, "macro_f1": acc * 0.9,
                  "kappa": (acc - 1 / n_classes) / (1 - 1 / n_classes),
                  "log_loss": float(-np.log(max(acc, 1e-3)) + rng.normal(0, 0.01))}
        rows += [{**base, "split": split, "metric": m, "value": v} for m, v in values.items()]
    return rows


def _history(rng, level, epochs=6):
    e = np.arange(1, epochs + 1)
    acc = level * (1 - np.exp(-e / 2)) + rng.normal(0, 0.01, epochs)
    loss = 1.5 * np.exp(-e / 3) + 0.3 + rng.normal(0, 0.01, epochs)
    return {"train_loss": loss.tolist(), "train_accuracy": (acc + 0.05).tolist(),
            "val_loss": (loss + 0.1).tolist(), "val_accuracy": acc.tolist()}


def _confusion(rng, n_classes, n=40, names=None):
    m = rng.integers(0, 5, size=(n_classes, n_classes)) + np.eye(n_classes, dtype=int) * 6
    return {"labels": list(range(n_classes)),
            "class_names": list(names or [str(i) for i in range(n_classes)]),
            "matrix": m.tolist(), "split": "test"}


def write_synthetic_rundir(root: Path, *, datasets=("deap",),
                           methods=("backbone", "method1", "method2", "scratch", "baseline"),
                           legacy=True, folds=3, models=MODELS, optional=True,
                           student=None) -> Path:
    """A run directory following docs/RUNDIR.md: results.csv, units, timing, config, environment."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    units, all_rows = [], []
    fear_names = ["none", "low", "medium", "high"]
    for dataset in datasets:
        n_src = 10 if dataset == "deap" else 7
        for method in methods:
            protocols = ("subject", "seed-legacy") if method == "backbone" and legacy \
                else ("subject",)
            unit_models = ("majority", "stratified") if method == "baseline" else models
            for protocol in protocols:
                for model in unit_models:
                    for fold in range(folds):
                        info = {"dataset": dataset, "protocol": protocol, "method": method,
                                "model": model, "fold": fold, "seed": 0}
                        stages = {"backbone": [("backbone", "-", "source")],
                                  "method1": [("teacher", "-", "fear")]
                                  + [("student", t, "fear") for t in TARGETS],
                                  "method2": [("student-source", t, "source") for t in TARGETS]
                                  + [("student", t, "fear") for t in TARGETS],
                                  "scratch": [("student", "-", "fear")],
                                  "baseline": [("baseline", "-", "fear"),
                                               ("baseline", "-", "source")]}[method]
                        rows, hist, conf = [], {}, {}
                        for stage, target, task in stages:
                            k = n_src if task == "source" else 4
                            level = LEVEL.get((protocol, method), 0.3)
                            if task == "source" and method != "backbone":
                                level = 1.5 / k
                            base = {**{c: info[c] for c in ("dataset", "protocol", "method",
                                                            "model", "fold", "seed")},
                                    "stage": stage, "target": target, "task": task,
                                    **({"model": student} if student and stage.startswith(
                                        "student") else {}),
                                    "n_params": 0 if method == "baseline" else PARAMS[model],
                                    "n_train": 800, "n_test": 200, "chance": 1.0 / k}
                            rows += _metric_rows(rng, base, level, k)
                            if method != "baseline":
                                hist[f"{stage}/{target}"] = _history(rng, level)
                                conf[f"{stage}/{target}"] = _confusion(
                                    rng, k, names=fear_names if task == "fear" else None)
                        unit = {"unit": info, "rows": rows, "histories": hist,
                                "confusion": conf, "fit_seconds": 12.5, "n_train": 800,
                                "n_test": 200}
                        units.append(unit)
                        all_rows += rows
    (root / "units").mkdir(exist_ok=True)
    for u in units:
        i = u["unit"]
        uid = "__".join(str(i[k]) for k in ("dataset", "protocol", "method", "model", "fold"))
        (root / "units" / f"{uid}.json").write_text(json.dumps(u))
    results = pd.DataFrame(all_rows)[list(tables.RESULT_COLUMNS)]
    results.to_csv(root / "results.csv", index=False)
    if not optional:
        return root
    timing = pd.DataFrame({"dataset": datasets[0], "protocol": ["subject"] * len(models),
                           "model": list(models),
                           "workers": 2, "seconds": [2049.5, 9004.9, 8213.4][:len(models)]})
    timing["hours"] = timing["seconds"] / 3600
    timing.to_csv(root / "timing.csv", index=False)
    cfg = config_to_dict(ExperimentConfig())
    cfg["name"] = "synthetic-report-test"
    cfg["features"]["window"], cfg["features"]["step"] = 2.0, 0.125
    (root / "config.json").write_text(json.dumps(cfg))
    env = {"python": "3.11.2", "platform": "Linux-test", "cpu_count": 2, "torch_threads": 1,
           "versions": {"fearkd": "0.1.0", "numpy": np.__version__, "torch": "2.13.0",
                        "scipy": "1.17", "sklearn": "1.9", "pandas": pd.__version__},
           "started": "2025-01-02T10:00:00", "finished": "2025-01-02T10:42:00",
           "wall_seconds": 2520.0, "seeds": [0]}
    (root / "environment.json").write_text(json.dumps(env))
    for dataset in datasets:
        trials = pd.DataFrame({
            "subject": [f"s{i:02d}" for i in range(1, 7) for _ in range(10)],
            "y_fear": [(-1 if t % 3 == 0 else (t % 4 if i < 4 else 3))
                       for i in range(1, 7) for t in range(10)],
        })
        # Class "medium" only in subjects s01..s03 at t%4==2 -> fine; make "none" rare:
        trials.loc[(trials["y_fear"] == 0) & (trials["subject"] != "s01"), "y_fear"] = -1
        report = label_report(trials)
        d = root / "datasets" / dataset
        d.mkdir(parents=True, exist_ok=True)
        (d / "label_report.json").write_text(json.dumps(report.to_dict()))
    return root


@pytest.fixture(scope="module")
def full_rundir(tmp_path_factory) -> Path:
    return write_synthetic_rundir(tmp_path_factory.mktemp("run") / "full")


@pytest.fixture(scope="module")
def full_report(full_rundir):
    paths = write_report(full_rundir)
    parser = ReportParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    return full_rundir, paths, parser


class ReportParser(HTMLParser):
    """Collects section ids, tables, figures, marked rows and warnings of a report."""

    def __init__(self):
        super().__init__()
        self.sections, self.tables, self.images, self.tags = [], [], {}, []
        self.marked, self.warnings, self.paragraphs = [], [], []
        self._row_marked = self._in_warning = self._in_p = False
        self._first_cell = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table":
            self.tables.append(a.get("data-table"))
        elif tag == "img":
            self.images[a.get("data-figure")] = a.get("src", "")
        elif tag == "tr":
            self._row_marked, self._first_cell = a.get("class") == "marked", None
        elif tag == "td" and self._row_marked and self._first_cell is None:
            self._first_cell = ""
        elif tag == "p":
            self._in_p, self._in_warning, self._text = True, a.get("class") == "warning", []

    def handle_data(self, data):
        if self._first_cell == "":
            self._first_cell = data
            self.marked.append(data)
        if self._in_p:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "p" and self._in_p:
            (self.warnings if self._in_warning else self.paragraphs).append("".join(self._text))
            self._in_p = False


def _decode_png(src: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png")


# -------------------------------------------------------------------------------- report
EXPECTED_SECTIONS = ["datasets", "backbone", "finetune", "kd", "method-comparison", "baselines",
                     "quality", "protocol-comparison", "timing", "contrasts", "planted-effects",
                     "ttests",
                     "fold-scores",
                     "histories",
                     "confusion", "environment", "config"]


def test_full_report_has_every_section_table_and_figure(full_report):
    _, _, parser = full_report
    assert parser.sections == EXPECTED_SECTIONS
    expected_tables = {
        "windows-deap", "labels-deap", "backbone-deap-subject", "backbone-deap-seed-legacy",
        "finetune-deap-subject", "method-comparison-deap-subject", "baselines-deap-subject",
        "protocols-deap", "timing", "environment",
        "ttest-deap-subject-backbone-backbone-accuracy",
        "ttest-deap-subject-method1-teacher-log-loss",
        *(f"kd-deap-subject-{m}-{s}-{model}" for m, s in (
            ("method1", "student"), ("method2", "student-source"), ("method2", "student"))
          for model in MODELS),
    }
    assert expected_tables <= set(parser.tables)
    assert len(parser.tables) == len(set(parser.tables))  # ids are unique
    expected_figures = {
        "protocol-deap", "folds-deap-subject-fear", "folds-deap-subject-source",
        "folds-deap-seed-legacy-source",
        *(f"history-deap-{p}-backbone-backbone-{m}" for p in ("subject", "seed-legacy")
          for m in MODELS),
        *(f"history-deap-subject-{ms}-{m}" for ms in (
            "method1-teacher", "method1-student", "method2-student-source", "method2-student",
            "scratch-student") for m in MODELS),
        *(f"confusion-deap-{ms}" for ms in (
            "subject-backbone-backbone", "seed-legacy-backbone-backbone",
            "subject-method1-teacher", "subject-method1-student",
            "subject-method2-student-source", "subject-method2-student",
            "subject-scratch-student")),
    }
    assert set(parser.images) == expected_figures


def test_every_embedded_image_decodes_and_report_is_self_contained(full_report):
    _, paths, parser = full_report
    for name, src in parser.images.items():
        image = _decode_png(src)
        assert image.ndim == 3 and image.shape[0] > 150 and image.shape[1] > 300, name
    text = paths["html"].read_text(encoding="utf-8")
    assert "script" not in parser.tags and "link" not in parser.tags
    assert "http://" not in text and "https://" not in text
    assert "<style>" in text


def test_report_marks_baselines_and_highlights_warnings(full_report):
    _, _, parser = full_report
    assert "Chance (1/10)" in parser.marked and "Chance (1/4)" in parser.marked
    assert "Majority baseline" in parser.marked
    assert any("'none' comes from 1 subject(s) (s01)" in w for w in parser.warnings)


def test_protocol_paragraph_quotes_the_runs_numbers(full_report):
    rundir, _, parser = full_report
    res = pd.read_csv(rundir / "results.csv")
    sel = res[(res["method"] == "backbone") & (res["split"] == "test")
              & (res["metric"] == "accuracy") & (res["model"] == "cnn")]
    legacy = sel[sel["protocol"] == "seed-legacy"]["value"].mean() * 100
    subject = sel[sel["protocol"] == "subject"]["value"].mean() * 100
    (para,) = [p for p in parser.paragraphs if p.startswith("Why the two protocols")]
    assert f"CNN {legacy:.1f} %" in para and f"CNN {subject:.1f} %" in para
    assert "every 5th window" in para and "15/16" in para and "new people" in para


def test_markdown_mirrors_tables_and_links_saved_figures(full_report):
    rundir, paths, parser = full_report
    md = paths["md"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert len(links) == len(parser.images)
    for link in links:
        assert (rundir / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| Model | Training Accuracy (%) | Training Loss | Test Accuracy (%) | Test Loss |" in md
    assert "| *Chance (1/4)* |" in md
    assert md.count('<a id="') == len(EXPECTED_SECTIONS)


def test_header_names_run_date_datasets_protocols(full_report):
    _, paths, _ = full_report
    text = paths["html"].read_text(encoding="utf-8")
    header = text[text.index('<header id="overview">'):text.index("</header>")]
    for item in ("synthetic-report-test", "2025-01-02T10:42:00", "deap", "subject, seed-legacy"):
        assert item in header


def test_ttest_table_matches_scipy(full_report):
    rundir, paths, _ = full_report
    res = pd.read_csv(rundir / "results.csv")
    sel = res[(res["method"] == "backbone") & (res["protocol"] == "subject")
              & (res["split"] == "test") & (res["metric"] == "accuracy")]
    cnn, lstm = (sel[sel["model"] == m].sort_values("fold")["value"].to_numpy()
                 for m in ("cnn", "lstm"))
    expected = stats.ttest_rel(cnn, lstm)
    text = paths["html"].read_text(encoding="utf-8")
    table = text[text.index('data-table="ttest-deap-subject-backbone-backbone-accuracy"'):]
    row = re.search(r"<tr><td>CNN vs LSTM</td>(.*?)</tr>", table).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[0] == f"{(cnn - lstm).mean() * 100:.1f}"
    assert cells[3] == f"{expected.statistic:.3f}" and cells[4] == f"{expected.pvalue:.4f}"


def test_partial_run_leaves_missing_sections_out(tmp_path):
    rundir = write_synthetic_rundir(tmp_path / "bb", methods=("backbone",), legacy=False,
                                    optional=False)
    paths = write_report(rundir, formats=("html",))
    assert set(paths) == {"html"} and not (rundir / "report.md").exists()
    parser = ReportParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    assert parser.sections == ["datasets", "backbone", "quality", "ttests", "fold-scores",
                               "histories",
                               "confusion"]
    assert "folds-deap-subject-fear" not in parser.images
    for src in parser.images.values():
        _decode_png(src)


def test_single_fold_shows_value_and_n1(tmp_path):
    rundir = write_synthetic_rundir(tmp_path / "one", methods=("backbone",), legacy=False,
                                    folds=1, models=("cnn",), optional=False)
    paths = write_report(rundir, formats=("md",))
    md = paths["md"].read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| CNN |"))
    assert "n=1" in row and "±" not in row
    assert "ttests" not in md  # no paired test with one fold and one model


# -------------------------------------------------------------------------------- tables
def test_backbone_table_matches_independent_t_interval(full_rundir):
    res = load_run(full_rundir).results
    table = backbone_table(res, protocol="subject")
    raw = pd.read_csv(full_rundir / "results.csv")
    folds = raw[(raw["method"] == "backbone") & (raw["protocol"] == "subject")
                & (raw["model"] == "lstm") & (raw["split"] == "test")
                & (raw["metric"] == "accuracy")].sort_values("fold")["value"].to_numpy()
    lo, hi = stats.t.interval(0.95, len(folds) - 1, loc=folds.mean(), scale=stats.sem(folds))
    assert table.loc["LSTM", "Test Accuracy (%)"] == pytest.approx(folds.mean() * 100)
    assert table.loc["LSTM", "Test Accuracy (%) ±"] == pytest.approx((hi - lo) / 2 * 100)
    assert table.loc["LSTM", "n"] == 3 and table.loc["LSTM", "params"] == PARAMS["lstm"]
    assert table.loc["Chance (1/10)", "Test Accuracy (%)"] == pytest.approx(10.0)
    assert list(table.index[:3]) == ["CNN", "LSTM", "GRU"]
    assert table.attrs["marked_rows"] == ["Majority baseline", "Stratified baseline",
                                          "Chance (1/10)"]
    text = format_table(table)
    assert f"{folds.mean() * 100:.1f} ± {(hi - lo) / 2 * 100:.1f}" in text
    assert "* Chance (1/10)" in text


def test_kd_table_rows_are_targets_plus_scratch(full_rundir):
    res = load_run(full_rundir).results
    table = kd_table(res, "gru", protocol="subject")
    assert list(table.index[:4]) == ["Hard labels", "Soft targets", "Combined loss",
                                     "Scratch (no KD)"]
    src = kd_table(res, "gru", method="method2", stage="student-source", protocol="subject")
    assert "Scratch (no KD)" not in src.index and "Chance (1/10)" in src.index


def test_mean_ci_and_cell_formats():
    x = [0.2, 0.3, 0.4, 0.35]
    mean, half, n = mean_ci(x)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(x), scale=stats.sem(x))
    assert (mean, n) == (pytest.approx(np.mean(x)), 4) and half == pytest.approx((hi - lo) / 2)
    assert mean_ci([0.5])[1] != mean_ci([0.5])[1]  # NaN half-width with one fold
    assert mean_ci([])[2] == 0
    assert tables.format_cell("Test Accuracy (%)", 83.864, 1.23) == "83.9 ± 1.2"
    assert tables.format_cell("Test Loss", 0.49141) == "0.491"
    assert tables.format_cell("p (paired t)", 0.0001217) == "1.22e-04"
    assert tables.format_cell("n", 1.0) == "n=1"
    assert tables.format_cell("Test Loss", float("nan")) == "–"


def test_protocol_comparison_and_timing_tables(full_rundir):
    run = load_run(full_rundir)
    comp = protocol_comparison(run.results)
    assert comp.attrs["protocols"] == ["subject", "seed-legacy"]
    assert (comp["gap (pp)"] == comp["seed-legacy (%)"] - comp["subject (%)"]).all()
    assert protocol_comparison(run.results, method="method1", stage="teacher").empty
    timing = timing_table(run.timing)
    assert list(timing.columns) == ["Dataset", "Workers", "Time (s)", "Time (h)"]
    assert list(timing["Dataset"]) == ["DEAP"] * 3
    assert timing.loc["LSTM", "Time (h)"] == pytest.approx(9004.9 / 3600)
    assert "2.50" in format_table(timing)


def test_timing_table_sets_run_wall_time_beside_summed_unit_time(full_rundir, full_report):
    """The sum of per-unit seconds (19,268 s) exceeds the 2,520 s run: both are shown, marked,
    and the note says the units ran in parallel."""
    run = load_run(full_rundir)
    table = timing_table(run.timing, wall_seconds=run.environment["wall_seconds"])
    assert table.attrs["marked_rows"] == ["All units (summed)", "Run wall time"]
    assert table.loc["All units (summed)", "Time (s)"] == pytest.approx(2049.5 + 9004.9 + 8213.4)
    assert table.loc["Run wall time", "Time (s)"] == pytest.approx(2520.0)
    assert "in parallel" in table.attrs["note"] and "2,520 s" in table.attrs["note"]
    _, paths, parser = full_report
    assert "Run wall time" in parser.marked and "All units (summed)" in parser.marked
    html = paths["html"].read_text(encoding="utf-8")
    assert "19,268 s" in html and "Dataset" in html


def test_protocol_explanation_without_seed_legacy(full_rundir):
    res = load_run(full_rundir).results
    res = res.assign(protocol=res["protocol"].replace({"seed-legacy": "trial"}))
    table = protocol_comparison(res)
    text = protocol_explanation(table, {"features": {"window": 4.0, "step": 2.0}})
    assert "gap (pp)" not in table.columns
    assert text.startswith("Test accuracy under each protocol (chance level 10.0 %): subject: CNN")
    assert "trial: CNN" in text and "generalisation to new people" in text
    legacy = protocol_comparison(load_run(full_rundir).results)
    assert "shares 1/2 of its samples" in protocol_explanation(
        legacy, {"features": {"window": 4.0, "step": 2.0}})
    assert protocol_explanation(legacy.iloc[0:0]) == ""


def test_history_and_confusion_readers_sum_folds(full_rundir):
    run = load_run(full_rundir)
    hist = history_frame(run.units)
    one = hist[(hist["method"] == "method1") & (hist["stage"] == "student")
               & (hist["model"] == "cnn") & (hist["target"] == "soft")]
    assert sorted(one["fold"].unique()) == [0, 1, 2] and one["epoch"].max() == 6
    sums = confusion_sums(run.units)
    (entry,) = [e for e in sums if e["method"] == "method2" and e["stage"] == "student"
                and e["model"] == "lstm" and e["target"] == "hard"]
    expected = sum(np.array(u["confusion"]["student/hard"]["matrix"]) for u in run.units
                   if u["unit"]["method"] == "method2" and u["unit"]["model"] == "lstm")
    np.testing.assert_array_equal(entry["matrix"], expected)
    assert entry["class_names"] == ["none", "low", "medium", "high"] and entry["n_folds"] == 3


# -------------------------------------------------------------------------------- errors
def test_missing_results_csv_is_a_clear_error(tmp_path):
    with pytest.raises(FearkdError, match=r"results\.csv is missing; run `fearkd run` or "
                                          r"`fearkd cv` first"):
        write_report(tmp_path)
    with pytest.raises(FearkdError, match=r"No results in .*nowhere.*does not exist"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="'rundir' must be a path"):
        load_run(42)


def test_bad_files_and_arguments(tmp_path):
    rundir = write_synthetic_rundir(tmp_path / "r", methods=("backbone",), legacy=False,
                                    folds=2, models=("cnn",), optional=False)
    with pytest.raises(ValueError, match=r"'formats': \['pdf'\] unknown"):
        write_report(rundir, formats=("html", "pdf"))
    with pytest.raises(ValueError, match="'formats': expected a non-empty sequence"):
        write_report(rundir, formats=())
    (rundir / "config.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"config\.json: not valid JSON"):
        load_run(rundir)
    (rundir / "config.json").unlink()
    pd.read_csv(rundir / "results.csv").drop(columns="chance").to_csv(
        rundir / "results.csv", index=False)
    with pytest.raises(FormatError, match=r"lacks column\(s\) \['chance'\]"):
        load_run(rundir)
    bad = {"unit": {"model": "cnn", "fold": 0}, "confusion": {"backbone/-": {
        "matrix": [[1, 2, 3]], "split": "test"}}}
    with pytest.raises(FormatError, match=r"confusion 'backbone/-' has shape \(1, 3\)"):
        confusion_sums([bad])


def test_table_builders_validate_input(full_rundir):
    res = load_run(full_rundir).results
    with pytest.raises(TypeError, match="'results' must be a pandas DataFrame"):
        backbone_table([1, 2])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['value'\]"):
        backbone_table(res.drop(columns="value"))
    with pytest.raises(ValueError, match=r"several values of 'protocol'.*pass protocol="):
        backbone_table(res)
    with pytest.raises(TypeError, match="'model' must be a model name"):
        kd_table(res, 3)
    with pytest.raises(TypeError, match="'timing' must be a pandas DataFrame"):
        timing_table("timing.csv")
    with pytest.raises(ValueError, match=r"'timing' lacks column\(s\) \['seconds'\]"):
        timing_table(pd.DataFrame({"protocol": [], "model": [], "workers": []}))
    with pytest.raises(TypeError, match="'table' must be a pandas DataFrame"):
        format_table({"a": 1})


def test_plot_functions_validate_input(full_rundir):
    res = load_run(full_rundir).results
    with pytest.raises(ValueError, match="'history' has no rows"):
        plots.plot_history(pd.DataFrame(columns=["target"]))
    with pytest.raises(TypeError, match="'history' must be a DataFrame"):
        plots.plot_history([])
    with pytest.raises(ValueError, match=r"No 'test' rows of metric 'f2'"):
        plots.plot_fold_scores(res, metric="f2")
    with pytest.raises(ValueError, match="'entries' is empty"):
        plots.plot_confusions([])
    one = protocol_comparison(res[res["protocol"] == "subject"])
    with pytest.raises(ValueError, match="fewer than two protocols"):
        plots.plot_protocol_comparison(one)
    with pytest.raises(TypeError, match="'table' must be a DataFrame"):
        plots.plot_protocol_comparison(None)
    with pytest.raises(TypeError, match="'fig' must be a matplotlib Figure"):
        plots.figure_to_png("figure.png")


def test_protocol_paragraph_uses_the_datasets_own_windowing():
    from fearkd.reporting.document import _dataset_config, _overlap_sentence

    keyed = {"deap": {"features": {"window": 4.0, "step": 2.0}}}
    assert "4 s windows moved by 2 s" in _overlap_sentence(_dataset_config(keyed, "deap"))
    assert "1/2 of its samples" in _overlap_sentence(_dataset_config(keyed, "deap"))
    plain = {"features": {"window": 2.0, "step": 0.125}}
    assert "15/16" in _overlap_sentence(_dataset_config(plain, "deap"))


# ------------------------------------------------------------------- issue 19 report defects
def test_curve_mean_carries_a_stopped_fold_at_its_last_value():
    from fearkd.reporting.plots import mean_curve

    hist = pd.DataFrame({"fold": [0, 0, 0, 1, 1], "seed": 0, "epoch": [1, 2, 3, 1, 2],
                         "val_loss": [1.0, 0.8, 0.6, 2.0, 1.5]})
    mean = mean_curve(hist, "val_loss")
    # epoch 3: fold 1 stopped at 1.5 -> (0.6 + 1.5) / 2, not 0.6
    assert mean.loc[3] == pytest.approx((0.6 + 1.5) / 2)
    assert mean.loc[1] == pytest.approx(1.5)


def test_kd_loss_axis_is_not_labelled_cross_entropy():
    from fearkd.reporting.plots import loss_label, plot_history

    assert "cross-entropy" in loss_label("-") and "cross-entropy" in loss_label("hard")
    assert "KD" in loss_label("soft") and "KD" in loss_label("combined")
    hist = pd.DataFrame({"method": "method1", "stage": "student", "model": "cnn",
                         "target": "combined", "fold": [0, 0, 1], "seed": 0,
                         "epoch": [1, 2, 1], "train_loss": [1.0, 0.9, 1.1],
                         "train_accuracy": [0.3, 0.4, 0.3], "val_loss": [1.2, 1.1, 1.3],
                         "val_accuracy": [0.3, 0.3, 0.2]})
    fig = plot_history(hist)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert not any("cross-entropy" in lab for lab in labels)
    assert any("KD" in lab for lab in labels)
    # the best epoch (lowest val loss) is marked on each fold's line
    markers = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert markers


def test_tables_scroll_inside_their_container():
    from fearkd.reporting.html import _CSS

    assert ".tablewrap{overflow-x:auto;max-width:100%}" in _CSS
    assert "main,section,figure{min-width:0;max-width:100%}" in _CSS


def test_every_table_sits_in_a_scrolling_wrapper(full_report):
    _, paths, _ = full_report
    html = paths["html"].read_text(encoding="utf-8")
    assert html.count("<table") == html.count('<div class="tablewrap"><table')


def test_method1_only_has_no_method_comparison_and_says_what_did_not_run(tmp_path):
    rundir = write_synthetic_rundir(tmp_path / "m1", methods=("backbone", "method1", "scratch",
                                                              "baseline"), legacy=False,
                                    optional=False)
    paths = write_report(rundir, formats=("html",))
    parser = ReportParser()
    html = paths["html"].read_text(encoding="utf-8")
    parser.feed(html)
    assert "method-comparison" not in parser.sections
    assert "contrasts" in parser.sections
    assert "Method 2 KD (soft) vs scratch student: not run" in html
    from fearkd.reporting.text import PLUS_MINUS_LEGEND, method_tables

    texts = method_tables(load_run(rundir).results)
    assert not any("Method 1 vs Method 2" in t for t in texts)
    assert texts[-1] == PLUS_MINUS_LEGEND


def test_seed_legacy_rows_are_marked_leaky(full_rundir):
    from fearkd.reporting.text import method_tables

    texts = method_tables(load_run(full_rundir).results)
    legacy = [t for t in texts if "seed-legacy" in t]
    assert legacy and all("LEAKY" in t for t in legacy)


def test_tables_carry_chance_majority_and_binomial_threshold(full_rundir, full_report):
    from fearkd.evaluation.metrics import binomial_chance_threshold

    res = load_run(full_rundir).results
    table = backbone_table(res, dataset="deap", protocol="subject")
    sel = res[(res["protocol"] == "subject") & (res["method"] == "baseline")
              & (res["model"] == "majority") & (res["task"] == "source")
              & (res["split"] == "test") & (res["metric"] == "accuracy")]
    majority = 100 * sel["value"].mean()
    limit = 100 * binomial_chance_threshold(200, 0.1)
    note = table.attrs["note"]
    assert "Chance 10.0 % (1/10" in note
    assert f"majority class {majority:.1f} %" in note
    assert f"≥ {limit:.1f} % on n = 200 test windows" in note
    assert "Chance (1/10)" in table.index  # the row label agrees with the note
    html = full_report[1]["html"].read_text(encoding="utf-8")
    assert html.count("over the classes that occur") >= 3


def test_kd_table_shows_scratch_seed_spread_as_noise_floor():
    rows = []
    for method, stage, target, accs in (("scratch", "student", "-", {0: (0.30, 0.40), 1: (0.20,
                                                                                        0.24)}),
                                        ("method1", "student", "soft", {0: (0.5, 0.5),
                                                                        1: (0.3, 0.3)})):
        for fold, pair in accs.items():
            for seed, acc in enumerate(pair):
                rows.append({"dataset": "deap", "protocol": "subject", "method": method,
                             "stage": stage, "model": "cnn", "target": target, "task": "fear",
                             "fold": fold, "seed": seed, "split": "test", "metric": "accuracy",
                             "value": acc, "n_params": 10, "n_train": 80, "n_test": 20,
                             "chance": 0.25})
    table = kd_table(pd.DataFrame(rows), "cnn")
    # SD across the two seeds of each fold, mean over folds
    hand = 100 * np.mean([np.std([0.30, 0.40], ddof=1), np.std([0.20, 0.24], ddof=1)])
    assert table.loc["Scratch (no KD)", tables.SEED_SD] == pytest.approx(hand)
    assert table.loc["Soft targets", tables.SEED_SD] == pytest.approx(0.0)
    assert table.attrs["noise_floor"] == pytest.approx(hand)
    assert f"moves by {hand:.1f} pp between seeds" in table.attrs["note"]


def test_quality_table_pools_confusions_and_averages_probability_metrics(full_rundir,
                                                                           full_report):
    from fearkd.evaluation.metrics import macro_f1_from_confusion
    from fearkd.reporting.quality import quality_table

    run = load_run(full_rundir)
    sums = confusion_sums(run.units)
    table = quality_table(run.results, sums, dataset="deap", protocol="subject")
    entry = next(e for e in sums if (e["method"], e["stage"], e["model"], e["target"])
                 == ("method1", "teacher", "cnn", "-") and e["protocol"] == "subject")
    m = entry["matrix"].astype(float)  # oracle: F1 per class present, by hand
    tp, pred, true = np.diag(m), m.sum(0), m.sum(1)
    f1 = [2 * t / (p + r) for t, p, r in zip(tp, pred, true, strict=True) if p + r > 0]
    assert table.loc["CNN · Method 1 teacher", "Pooled macro-F1 (%)"] == \
        pytest.approx(100 * np.mean(f1))
    assert macro_f1_from_confusion(entry["matrix"]) == pytest.approx(np.mean(f1))
    res = run.results
    loss = res[(res["protocol"] == "subject") & (res["method"] == "method1")
               & (res["stage"] == "teacher") & (res["model"] == "cnn")
               & (res["split"] == "test") & (res["metric"] == "log_loss")]["value"]
    assert table.loc["CNN · Method 1 teacher", "Test Loss"] == pytest.approx(loss.mean())
    prior = res[(res["protocol"] == "subject") & (res["model"] == "majority")
                & (res["task"] == "fear") & (res["split"] == "test")
                & (res["metric"] == "log_loss")]["value"].mean()
    assert table.loc["CNN · Method 1 teacher", "Prior log loss"] == pytest.approx(prior)
    assert "quality-deap-subject" in full_report[2].tables


def test_student_stages_are_named_by_the_student_model(tmp_path):
    """Student curves and confusions carry the student's model (rows' ``model``), not the
    backbone's; the backbone is named as where the student came from."""
    from fearkd.reporting.document import build_document

    root = write_synthetic_rundir(tmp_path / "run", methods=("backbone", "method1", "scratch"),
                                  models=("cnn",), legacy=False, student="mlp")
    run = load_run(root)
    hist = history_frame(run.units)
    students = hist[hist["stage"] == "student"]
    assert set(students["model"]) == {"mlp"} and set(students["backbone"]) == {"cnn"}
    assert set(hist.loc[hist["stage"] == "teacher", "model"]) == {"cnn"}
    conf = {(e["method"], e["stage"]): e for e in confusion_sums(run.units)}
    assert conf[("method1", "student")]["model"] == "mlp"
    assert conf[("method1", "teacher")]["model"] == "cnn"
    doc = build_document(run)
    titles = [f.title for f in doc.figures() if f.name.startswith("history")]
    student_titles = [t for t in titles if "student" in t]
    assert student_titles and all("MLP (from the CNN backbone) ·" in t for t in student_titles)
    assert any(t.endswith("CNN · Method 1 teacher (fine-tuned to fear)") for t in titles)
    fig = plots.plot_confusions([e for e in confusion_sums(run.units)
                                 if e["stage"] == "student" and e["method"] == "method1"])
    panel_titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert panel_titles and all(t.startswith("MLP (from the CNN backbone)") for t in panel_titles)
    kd = [t for t in doc.tables() if t.id.startswith("kd-")]
    assert kd and all("for MLP" in t.title for t in kd)


def test_subject_counts_of_a_stage_are_hand_counts():
    from fearkd.stages import _subject_counts

    subjects = np.array(["s01", "s01", "s02", "s02", "s02"])
    counts = _subject_counts(subjects, np.array([0, 1, 2, 2, 3]), np.array([0, 0, 2, 2, 2]))
    assert counts == {"s01": [1, 2], "s02": [2, 3]}


def test_per_subject_table_and_figure_pool_folds(tmp_path):
    """Units' per-subject counts are summed over folds; the table's pooled row and each
    subject's cell equal the hand ratio; the report gets a table and a figure."""
    from fearkd.reporting.document import build_document
    from fearkd.reporting.subjects import plot_subject_scores, subject_scores, subject_table

    root = write_synthetic_rundir(tmp_path / "run", methods=("backbone", "method1", "scratch"),
                                  models=("cnn",), legacy=False, folds=2)
    for path in sorted((root / "units").glob("*.json")):
        unit = json.loads(path.read_text())
        k = unit["unit"]["fold"]
        for key, conf in unit["confusion"].items():
            # Fold k tests subject s0k; s00 is seen in both folds (window-like protocol).
            conf["subjects"] = {f"s0{k + 1}": [3, 4], "s00": [1, 5]}
            if key.startswith("teacher"):
                conf["subjects"]["s00"] = [5, 5]
        path.write_text(json.dumps(unit))
    run = load_run(root)
    scores = subject_scores(run.units)
    table = subject_table(scores, dataset="deap", protocol="subject")
    teacher = "CNN · Method 1 teacher (%)"
    assert list(table.index) == ["s00", "s01", "s02", "all subjects"]
    assert table.loc["s00", teacher] == pytest.approx(100.0)
    assert table.loc["s01", teacher] == pytest.approx(75.0)
    scratch = "CNN · Scratch fear student (%)"
    assert table.loc["s00", scratch] == pytest.approx(100 * 2 / 10)
    assert table.loc["all subjects", scratch] == pytest.approx(100 * (2 + 6) / (10 + 8))
    assert table.loc["s00", "Test windows"] == 10
    assert [c for c in table.columns if "student" in c and "Method 1" in c] == [
        f"CNN · Method 1 fear student ({t}) (%)" for t in
        ("Hard labels", "Soft targets", "Combined loss")]
    assert table.attrs["marked_rows"] == ["all subjects"]
    fig = plot_subject_scores(table, chance=0.25)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s00", "s01", "s02"]
    assert len(ax.lines) == len(table.columns) - 1 + 1  # stages + chance line
    doc = build_document(run)
    assert "subjects" in [s.id for s in doc.sections]
    assert "subjects-deap-subject" in [t.id for t in doc.tables()]
    assert "subjects-deap-subject" in [f.name for f in doc.figures()]
    with pytest.raises(ValueError, match="'table' is empty"):
        plot_subject_scores(pd.DataFrame())


def test_class_balance_counts_fear_test_windows_per_fold_and_subject(tmp_path):
    """Per fold: the row sums of a fear confusion (one unit per fold, not one per model or
    method); per subject: the stored class counts summed over folds; both in the report."""
    from fearkd.reporting.document import build_document
    from fearkd.reporting.subjects import class_balance
    from fearkd.stages import _subject_classes

    assert _subject_classes(np.array(["a", "b", "a"]), np.array([0, 3, 0]), 4) == {
        "a": [2, 0, 0, 0], "b": [0, 0, 0, 1]}
    root = write_synthetic_rundir(tmp_path / "run", methods=("backbone", "method1", "scratch"),
                                  models=("cnn", "gru"), legacy=False, folds=2)
    matrices = {}
    for path in sorted((root / "units").glob("*.json")):
        unit = json.loads(path.read_text())
        fold = unit["unit"]["fold"]
        for key, conf in unit["confusion"].items():
            matrices.setdefault((fold, key.split("/")[0]), conf["matrix"])
            conf["subject_classes"] = {f"s0{fold + 1}": [1, 2, 3, 4], "s00": [0, 0, 5, 0]}
        path.write_text(json.dumps(unit))
    run = load_run(root)
    per_fold, per_subject = class_balance(run.units, dataset="deap", protocol="subject")
    assert list(per_fold.columns) == ["none (windows)", "low (windows)", "medium (windows)",
                                      "high (windows)"]
    # The first fear stage of the first unit of each fold (backbone units have none).
    for fold in (0, 1):
        teacher = np.asarray(matrices[(fold, "teacher")]).sum(axis=1)
        assert per_fold.loc[f"fold {fold}"].tolist() == teacher.tolist()
    assert per_fold.loc["total"].tolist() == (per_fold.iloc[0] + per_fold.iloc[1]).tolist()
    assert per_subject.loc["s00"].tolist() == [0, 0, 10, 0]
    assert per_subject.loc["s01"].tolist() == [1, 2, 3, 4]
    assert per_subject.loc["subjects with class"].tolist() == [2, 2, 3, 2]
    ids = [t.id for t in build_document(run).tables()]
    assert "balance-folds-deap-subject" in ids and "balance-subjects-deap-subject" in ids


def test_confusion_figure_is_readable_with_long_class_names():
    """Long names are wrapped and tilted; each cell shows its count and the row percentage
    that its colour encodes; the colour bar says it is a row percentage."""
    names = ["no fear at all", "low fear (mild unease)", "medium fear", "high fear (panic)"]
    matrix = np.array([[8, 2, 0, 0], [1, 3, 0, 0], [0, 0, 5, 5], [0, 0, 0, 0]])
    entry = {"dataset": "deap", "protocol": "subject", "method": "method1", "stage": "student",
             "model": "mlp", "backbone": "cnn", "target": "soft", "labels": [0, 1, 2, 3],
             "class_names": names, "matrix": matrix, "n_folds": 3}
    fig = plots.plot_confusions([entry])
    ax, bar = fig.axes[0], fig.axes[-1]
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == [plots.wrap_label(n) for n in names]
    assert all(max(len(line) for line in t.get_text().split("\n")) <= 12 for t in ticks)
    assert all(t.get_rotation() == 45 for t in ticks)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert cells[(0, 0)] == "8\n80 %" and cells[(1, 1)] == "3\n75 %"
    assert cells[(2, 3)] == "5\n50 %" and cells[(3, 3)] == "0\n0 %"
    image = ax.get_images()[0].get_array()
    assert image[0, 0] == pytest.approx(80.0) and image[1, 0] == pytest.approx(25.0)
    assert "Row percentage" in bar.get_ylabel()
    assert ax.get_title().startswith("MLP (from the CNN backbone) — Soft targets")
    figure_png = plots.figure_to_png(fig)
    assert figure_png[:8] == b"\x89PNG\r\n\x1a\n"


def test_source_classes_carry_their_rating_ranges(full_rundir):
    """DEAP valence classes are the integer part of the 1-9 rating: class 0 holds no rating,
    class 9 only the rating 9; the backbone confusions of the report use these names."""
    from fearkd.labels import load_source_task
    from fearkd.reporting.rundata import named_confusions, source_class_names

    names = load_source_task("deap").class_names()
    assert names[0] == "0: no valence rating"
    assert names[1] == "1: valence [1, 2)" and names[8] == "8: valence [8, 9)"
    assert names[9] == "9: valence 9"
    edges = load_source_task({"rating": "arousal", "edges": [1, 5, 9]}).class_names()
    assert edges == ["0: arousal [1, 5)", "1: arousal [5, 9]"]
    run = load_run(full_rundir)
    assert source_class_names(run.config, "deap") == names
    entries = named_confusions(run)
    backbone = [e for e in entries if e["stage"] == "backbone"]
    assert backbone and all(e["class_names"] == names for e in backbone)
    fear = [e for e in entries if e["stage"] == "teacher"]
    assert fear and all(e["class_names"] == ["none", "low", "medium", "high"] for e in fear)


def test_dropped_constant_features_are_listed_in_the_dataset_section(tmp_path):
    from fearkd.reporting.document import build_document

    root = write_synthetic_rundir(tmp_path / "run", methods=("scratch",), legacy=False,
                                  folds=2, models=("cnn",), optional=False)
    path = sorted((root / "units").glob("*__1.json"))[0]
    unit = json.loads(path.read_text())
    unit["dropped_features"] = ["gsr:EDA:scr_count", "gsr:EDA:scr_amplitude"]
    path.write_text(json.dumps(unit))
    doc = build_document(load_run(root))
    (block,) = [t for t in doc.tables() if t.id == "dropped-deap"]
    assert block.table["Fold"].tolist() == [1.0]
    assert block.table["Features"].iloc[0] == "gsr:EDA:scr_amplitude, gsr:EDA:scr_count"
    # no unit dropped anything: no such table
    unit["dropped_features"] = []
    path.write_text(json.dumps(unit))
    assert not [t for t in build_document(load_run(root)).tables() if t.id.startswith("dropped")]
