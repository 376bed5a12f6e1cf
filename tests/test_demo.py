"""`fearkd demo --quick` end to end: data, features, CV, methods, protocols, report."""

import base64
import contextlib
import io
from html.parser import HTMLParser

import pandas as pd
import pytest

import fearkd.demo
import fearkd.training.trainer
from fearkd.cli import main


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.tables = set(), [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "id" in a:
            self.sections.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "table" and a.get("data-table"):
            self.tables.add(a["data-table"])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One quick demo, shared by the tests below, with every ``fit`` call counted.

    The demo's units run in this process (jobs = 1) so that the calls can be counted. Both
    tests are in one file, which `make test` (``--dist loadfile``) runs on one pytest worker.
    """
    calls = []
    real_fit, real_config = fearkd.training.trainer.fit, fearkd.demo.demo_config

    def counting_fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fearkd.training.trainer, "fit", counting_fit)
        mp.setattr(fearkd.demo, "demo_config",
                   lambda *a: real_config(*a).replace(evaluation={"jobs": 1}))
        out = tmp_path_factory.mktemp("demo") / "demo"
        capture = io.StringIO()
        with contextlib.redirect_stdout(capture):
            rc = main(["demo", "--quick", "--out", str(out), "--quiet"])
        yield {"rc": rc, "out": out, "printed": capture.getvalue(), "calls": calls}


@pytest.mark.slow
def test_quick_demo_end_to_end(demo_run):
    out = demo_run["out"]
    assert demo_run["rc"] == 0
    assert demo_run["calls"], "the demo trained nothing through fearkd.training.trainer.fit"
    printed = demo_run["printed"]
    assert "fearkd demo: summary (synthetic data)" in printed and "report.html" in printed
    assert "DEAP (synthetic data): " in printed and "ASCERTAIN (synthetic data): " in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results["dataset"]) == {"deap", "ascertain"}
    assert set(results["protocol"]) == {"subject", "seed-legacy"}
    assert {"backbone", "method1", "method2", "scratch", "baseline", "mispaired",
            "method1-permuted"} <= set(results["method"])
    # three seeds, paired on (fold, seed): every stage has every (fold, seed) pair
    assert set(results["seed"]) == {0, 1, 2}
    pairs = results.groupby(["dataset", "protocol", "method", "stage", "model", "target"])[
        ["fold", "seed"]].apply(lambda g: len(g.drop_duplicates()))
    assert set(pairs) == {2 * 3}, pairs[pairs != 6]
    assert set(results.loc[results["method"] == "baseline", "model"]) == {"majority", "logreg",
                                                                          "rf"}
    students = results[(results["method"] == "method1") & (results["stage"] == "student")]
    # "hard" labels are the scratch student, trained and shown once
    assert set(students["target"]) == {"soft", "combined"}
    backbones = results[results["method"] == "backbone"]
    assert set(backbones["model"]) == {"multi-input", "cnn"}
    # the leaky protocol runs for the teacher's backbone only
    assert set(backbones.loc[backbones["protocol"] == "seed-legacy", "model"]) == {"multi-input"}
    # the methods run for the first backbone (the teacher) only, under the subject protocol
    methods = results[~results["method"].isin(["backbone", "baseline"])]
    assert set(methods["protocol"]) == {"subject"} and set(methods["model"]) == {"multi-input"}

    page = _Collect()
    page.feed((out / "report.html").read_text())
    for section in ("datasets", "backbone", "finetune", "kd", "method-comparison",
                    "protocol-comparison", "timing", "ttests", "histories", "confusion",
                    "deployed", "environment", "config", "teacher-check", "planted-effects"):
        assert section in page.sections, section
    assert page.images
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.md").is_file()


@pytest.mark.slow
def test_demo_data_use_the_knobs_and_the_teacher_check_is_computed(demo_run):
    """The synthetic DEAP is written with the demo's knobs, and the printed teacher check is
    the one :func:`teacher_check` computes from the run's results (nothing hard-coded)."""
    import json

    from fearkd.reporting.effects import teacher_check, teacher_check_sentence

    out = demo_run["out"]
    marker = json.loads((out / "data" / "deap" / "fearkd-synthetic.json").read_text())
    assert {k: marker["params"][k] for k in fearkd.demo.DEMO_KNOBS} == fearkd.demo.DEMO_KNOBS
    results = pd.read_csv(out / "results.csv")
    check = teacher_check(results)
    assert set(check["dataset"]) == {"deap", "ascertain"}
    assert set(check["model"]) == {"multi-input"}
    assert (check["n_pairs"] == 2 * 3).all()
    printed = demo_run["printed"]
    for _, row in check.iterrows():
        assert teacher_check_sentence(row) in printed
    report = (out / "report.md").read_text()
    assert teacher_check_sentence(check.iloc[0]) in report


@pytest.mark.slow
def test_quick_demo_deploys_a_student_that_streams_like_predict(demo_run):
    import json

    out = demo_run["out"]
    summary = json.loads((out / "deployed" / "summary.json").read_text())
    bundle = out / "deployed" / "student.fkd"
    assert bundle.is_file() and (out / "deployed" / "MODEL_CARD.md").is_file()
    assert summary["bundle"] == str(bundle) and str(bundle) in demo_run["printed"]
    assert summary["bundle_bytes"] == bundle.stat().st_size
    assert summary["flops_per_window"] > 0 and summary["n_params"] > 0
    assert summary["unseen"]["subjects"] and summary["windows"]["matched"] > 0
    assert summary["windows"]["matched"] == summary["windows"]["predict"]
    assert summary["agreement"] == 1.0
    assert summary["max_abs_diff"] <= 1e-5
    assert "Deployed student" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_second_demo_run_resumes_and_retrains_nothing(demo_run):
    out, calls = demo_run["out"], demo_run["calls"]
    assert demo_run["rc"] == 0 and calls
    results = pd.read_csv(out / "results.csv")
    before = results.sort_values(list(results.columns[:11])).reset_index(drop=True)
    calls.clear()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    assert calls == [], f"the second run retrained {len(calls)} model(s)"
    again = pd.read_csv(out / "results.csv")
    after = again.sort_values(list(again.columns[:11])).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
