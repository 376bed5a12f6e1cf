"""The report as data: sections of tables, figures and text, built from a run directory.

:func:`build_document` decides what the report shows; :mod:`.html` and :mod:`.markdown` only
render it. A section appears when its data is in the run directory and is left out otherwise,
so the same code reports a one-model demo and a full cross-validation.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import pandas as pd

from . import plots
from . import tables as T
from .blocks import Document, FigureBlock, Section, TableBlock, TextBlock, slug
from .effects import effects_section as _effects_section
from .effects import teacher_check_section as _teacher_check_section
from .rundata import RunData, confusion_sums, dropped_features, history_frame, named_confusions
from .rundata import dataset_config as _dataset_config

__all__ = ["Document", "Section", "TableBlock", "FigureBlock", "TextBlock", "build_document",
           "protocol_explanation"]

logger = logging.getLogger(__name__)


def _group_title(dataset: str, protocol: str, results: pd.DataFrame,
                 label: str | None = None) -> str:
    """``"DEAP · protocol subject · 4 fold(s)"``; ``label`` replaces the dataset's name (e.g.
    ``"DEAP (synthetic data)"``)."""
    n = results[(results["dataset"] == dataset) & (results["protocol"] == protocol)]["fold"]
    leaky = " · LEAKY (reference's split, not an estimate of generalisation)" \
        if protocol in ("seed-legacy", "window") else ""
    return f"{label or dataset.upper()} · protocol {protocol} · {n.nunique()} fold(s){leaky}"


def _synthetic(run: RunData, dataset: str) -> bool:
    """Whether the run's ``datasets/<dataset>/summary.json`` records synthetic data."""
    summary = run.summaries.get(dataset) or {}
    parts = summary.get("datasets")  # a combined dataset: synthetic when all its parts are
    if isinstance(parts, dict) and parts:
        return all(isinstance(p, dict) and p.get("synthetic") for p in parts.values())
    return bool(summary.get("synthetic"))


def _dtitle(run: RunData, dataset: str) -> str:
    return plots.dataset_title(dataset, _synthetic(run, dataset))


def _fig(name: str, title: str, fig, caption: str = "") -> FigureBlock:
    return FigureBlock(name=name, title=title, png=plots.figure_to_png(fig), caption=caption)


# --------------------------------------------------------------------------- text helpers
def _overlap_sentence(config: dict | None) -> str:
    feats = (config or {}).get("features") or {}
    window, step = feats.get("window"), feats.get("step")
    if isinstance(window, (int, float)) and isinstance(step, (int, float)) and window > 0:
        if step < window:
            share = (Fraction(window - step) / Fraction(window)).limit_denominator(1000)
            ref = "" if (window, step) == (2.0, 0.125) else \
                " (the reference used 2 s windows at a 0.125 s step: 15/16)"
            return (f"With this run's {window:g} s windows moved by {step:g} s, a test window "
                    f"shares {share.numerator}/{share.denominator} of its samples with the "
                    f"training window next to it{ref}")
        return (f"This run's {window:g} s windows at a {step:g} s step do not overlap, but "
                "neighbouring windows of the same trial still land on both sides of the split "
                "(the reference used 2 s windows at a 0.125 s step, which share 15/16 of "
                "their samples)")
    return ("With the reference's 2 s windows at a 0.125 s step, a test window shares 15/16 of "
            "its samples with the training window next to it")


def protocol_explanation(table: pd.DataFrame, config: dict | None = None) -> str:
    """One plain-language paragraph on why subject-wise and seed-legacy numbers differ.

    Quotes the numbers of ``table`` (:func:`fearkd.reporting.tables.protocol_comparison`).
    """
    protocols = list(table.attrs.get("protocols") or [])
    if table.empty or len(protocols) < 2:
        return ""

    def values(p: str) -> str:
        return ", ".join(f"{m} {v:.1f} %" for m, v in table[f"{p} (%)"].items()
                         if math.isfinite(v))

    chance = float(table["chance (%)"].mean()) if "chance (%)" in table else math.nan
    chance_text = f" (chance level {chance:.1f} %)" if math.isfinite(chance) else ""
    if not {"subject", "seed-legacy"} <= set(protocols):
        listing = "; ".join(f"{p}: {values(p)}" for p in protocols)
        return (f"Test accuracy under each protocol{chance_text}: {listing}. Protocols that put "
                "windows of the same subject on both sides of the split measure recognition of "
                "known people; only the subject protocol measures generalisation to new people.")
    gap = table["gap (pp)"].dropna()
    gap_text = (f"{gap.min():.1f}–{gap.max():.1f}" if len(gap) > 1 and gap.min() != gap.max()
                else f"{gap.iloc[0]:.1f}" if len(gap) else "an unknown number of")
    return (
        f"Why the two protocols disagree: with the seed-legacy split (the reference's) the "
        f"models reach {values('seed-legacy')} test accuracy; tested on people they never saw "
        f"(subject-wise cross-validation) the same models reach {values('subject')}"
        f"{chance_text}, a gap of {gap_text} percentage points. The seed-legacy split sends "
        f"every 5th window of the same trials to test. {_overlap_sentence(config)}, so the "
        "model is tested on data it has almost seen. Every subject and every trial is on both "
        "sides of that split, so a model can also recognise the person instead of the fear: "
        "subject identity leaks. Subject-wise cross-validation keeps each person entirely in "
        "training or entirely in test, so it measures what a deployed fear detector faces, "
        "generalisation to new people. Read the subject-wise figures as the result; the "
        "seed-legacy figures only reproduce the reference and show the size of the leak."
    )


# ------------------------------------------------------------------------------- sections
def _dataset_section(run: RunData) -> Section | None:
    res = run.results
    datasets = list(dict.fromkeys([*pd.unique(res["dataset"]), *run.label_reports]))
    sec = Section("datasets", "Datasets and fear classes")
    for ds in datasets:
        summ = run.summaries.get(ds)
        if summ:
            mods = summ.get("modalities") or {}
            mod_text = ", ".join(
                f"{m} ({len(e.get('channels', []))} ch, {e.get('sfreq', '?')} Hz)"
                for m, e in mods.items())
            sec.blocks.append(TextBlock(
                f"{ds.upper()}: {summ.get('n_subjects', '?')} subjects, "
                f"{summ.get('n_trials', '?')} trials; modalities: {mod_text or 'not listed'}."))
        sub = res[res["dataset"] == ds]
        if len(sub):
            sizes = sub.groupby(["protocol", "task"], sort=False).agg(
                folds=("fold", "nunique"), n_train=("n_train", "mean"), n_test=("n_test", "mean"))
            sizes = sizes.reset_index().rename(columns={
                "protocol": "Protocol", "task": "Task", "folds": "Folds",
                "n_train": "Training windows (mean per fold)",
                "n_test": "Test windows (mean per fold)"}).set_index("Protocol").round()
            sizes["Folds"] = sizes["Folds"].astype(float)
            sizes.attrs["marked_rows"] = []
            sec.blocks.append(TableBlock(slug("windows", ds), f"{ds.upper()} · windows per fold",
                                         sizes))
        sec.blocks += _balance_blocks(run, ds)
        dropped = dropped_features(run.units, ds)
        if len(dropped):
            sec.blocks.append(TableBlock(
                slug("dropped", ds), f"{ds.upper()} · features constant over a fold's training "
                f"windows, dropped from its models", dropped,
                "Constant after the per-subject normalisation over the fold's training and "
                "validation windows: nothing to learn from them, so no model of the fold saw "
                "them."))
        norm = ((_dataset_config(run.config, ds) or {}).get("features") or {}).get("normalize")
        if norm:
            from ..features.normalize import normalize_sentence

            sec.blocks.append(TextBlock(f"{ds.upper()}: {normalize_sentence(norm)}"))
            sec.blocks += _normalize_side_by_side(res[res["dataset"] == ds], ds, str(norm))
        rep = run.label_reports.get(ds)
        if rep:
            sec.blocks += _label_blocks(ds, rep)
    return sec if sec.blocks else None


def _normalize_side_by_side(res: pd.DataFrame, ds: str, norm: str) -> list:
    """A calibration run's scratch student next to the same student with ``normalize =
    "subject"`` (``scratch-subject-norm``, :func:`fearkd.methods.subject_side`), paired on
    (fold, seed): test accuracy of each and the difference with its 95 % interval."""
    from ..methods import SUBJECT_SIDE
    from .effects import paired_effect

    if SUBJECT_SIDE not in set(res["method"]):
        return []
    rows = []
    a_spec, b_spec = ("scratch", "student", "-"), (SUBJECT_SIDE, "student", "-")
    for protocol, sub in res.groupby("protocol", sort=False):
        eff = paired_effect(sub, sub, a_spec, b_spec, protocol=protocol)
        if not eff["n_pairs"]:
            continue
        test = sub[(sub["split"] == "test") & (sub["metric"] == "accuracy")
                   & (sub["stage"] == "student") & (sub["target"] == "-")]
        mean = test.groupby("method")["value"].mean() * 100
        rows.append({"Protocol": protocol, f"normalize = {norm}": mean.get("scratch"),
                     "normalize = subject": mean.get(SUBJECT_SIDE),
                     "Difference (pp)": 100 * eff["mean_diff"],
                     "95 % CI (pp)": f"[{100 * eff['ci_low']:.1f}, {100 * eff['ci_high']:.1f}]",
                     "Pairs": eff["n_pairs"]})
    if not rows:
        return []
    table = pd.DataFrame(rows).set_index("Protocol").round(1)
    table.attrs["marked_rows"] = []
    return [TableBlock(slug("normalize", ds), f"{ds.upper()} · scratch student: {norm} next to "
                       f"subject normalisation (test accuracy, %)", table,
                       note="The same student, folds and seeds; only the per-subject statistics "
                            "differ: the calibration part alone, or all of a subject's windows "
                            "(transductive for test subjects). Difference = calibration minus "
                            "subject, paired on (fold, seed).")]


def _balance_blocks(run: RunData, ds: str) -> list:
    """Fear test windows per class in each fold and subject (the units' confusions)."""
    from .subjects import class_balance

    blocks = []
    for dataset, pr in T.result_groups(run.results):
        if dataset != ds:
            continue
        per_fold, per_subject = class_balance(run.units, dataset=ds, protocol=pr)
        if len(per_fold):
            blocks.append(TableBlock(slug("balance-folds", ds, pr), f"{ds.upper()} · {pr} · "
                                     "fear test windows per fold and class", per_fold))
        if len(per_subject):
            blocks.append(TableBlock(slug("balance-subjects", ds, pr), f"{ds.upper()} · {pr} · "
                                     "fear test windows per subject and class", per_subject))
    return blocks


def _label_blocks(ds: str, rep: dict) -> list:
    classes = [str(c) for c in rep.get("classes") or []]
    counts = pd.DataFrame.from_dict(rep.get("counts") or {}, orient="index")
    counts = counts.reindex(columns=classes or list(counts.columns), fill_value=0).fillna(0)
    counts.index.name = "Subject"
    counts.loc["total"] = counts.sum(axis=0)
    counts.loc["subjects with class"] = (counts.drop(index="total") > 0).sum(axis=0)
    table = counts.astype(float).rename(columns=lambda c: f"{c} (trials)")
    table.attrs["marked_rows"] = ["total", "subjects with class"]
    blocks = [TableBlock(slug("labels", ds), f"{ds.upper()} · fear-labelled trials per subject "
                         "and class", table,
                         note=f"labelled {rep.get('n_labelled', '?')}, unlabelled "
                              f"{rep.get('n_unlabelled', '?')}, ambiguous "
                              f"{rep.get('n_ambiguous', '?')} trials")]
    blocks += [TextBlock(f"{ds.upper()}: {w}", "warning") for w in rep.get("warnings") or []]
    return blocks


def _metric_sections(run: RunData) -> list[Section]:
    res = run.results
    groups = T.result_groups(res)
    secs = {k: Section(k, t) for k, t in (
        ("backbone", "Backbone models (pretrained on the source task)"),
        ("finetune", "Fine-tuned models (Method 1 teachers, fear)"),
        ("kd", "Knowledge distillation per target"),
        ("method-comparison", "Method 1 vs Method 2"),
        ("baselines", "Chance level and baselines"))}
    for ds, pr in groups:
        here = res[(res["dataset"] == ds) & (res["protocol"] == pr)]
        head = _group_title(ds, pr, res)
        for key, builder in (("backbone", T.backbone_table), ("finetune", T.finetune_table),
                             ("method-comparison", T.method_comparison_table)):
            if key == "method-comparison" and not {"method1", "method2"} <= set(here["method"]):
                continue  # a comparison needs both methods
            table = builder(here)
            n_models = len(table.index) - len(table.attrs.get("marked_rows", []))
            if len(table) and n_models > 0:
                secs[key].blocks.append(TableBlock(slug(key, ds, pr), head, table,
                                                   note=table.attrs.get("note", "")))
        for method, stage in (("method1", "student"), ("method2", "student-source"),
                              ("method2", "student"), ("ensemble", "student")):
            for model in pd.unique(here.loc[(here["method"] == method)
                                            & (here["stage"] == stage), "model"]):
                table = T.kd_table(here, str(model), method=method, stage=stage)
                secs["kd"].blocks.append(TableBlock(
                    slug("kd", ds, pr, method, stage, model), f"{head} · {table.attrs['title']}",
                    table, note=table.attrs.get("note", "")))
        if (here["method"] == "baseline").any():
            secs["baselines"].blocks.append(TableBlock(slug("baselines", ds, pr), head,
                                                       T.baseline_table(here)))
    secs["method-comparison"].intro = (
        "Method 1: the backbone is fine-tuned to fear (teacher), then distilled into the student. "
        "Method 2: the backbone is distilled into the student on the source task, then the "
        "student is fine-tuned to fear. Scratch: the student trained on fear alone.")
    secs["backbone"].intro = (
        "Rows are models; marked rows are chance level and trivial baselines. Cells: mean ± "
        "half-width of the 95 % t-interval across folds (n = folds).")
    return [s for s in secs.values() if s.blocks]


def _quality_section(run: RunData) -> Section | None:
    """Per-stage ECE, Brier and log loss (mean ± CI over folds) with the pooled macro-F1."""
    from .quality import quality_table

    sec = Section("quality", "Probability quality and pooled macro-F1")
    sec.intro = ("ECE: expected calibration error (0 = the top-class confidence matches the "
                 "accuracy); Brier: multi-class Brier score (0 best, 2 worst); prior log loss: "
                 "what predicting the training class frequencies scores. Pooled macro-F1: "
                 "macro-F1 of all folds' test predictions together (summed confusion matrices), "
                 "over the classes that occur. A temperature-scaled stage ([training] "
                 "calibrate = \"temperature\") shows its figures before and after scaling "
                 "and its temperature T.")
    confusions = confusion_sums(run.units)
    for ds, pr in T.result_groups(run.results):
        table = quality_table(run.results, confusions, dataset=ds, protocol=pr)
        if len(table):
            sec.blocks.append(TableBlock(slug("quality", ds, pr), _group_title(ds, pr,
                                                                                run.results),
                                         table, note=table.attrs.get("note", "")))
    return sec if sec.blocks else None


def _protocol_section(run: RunData) -> Section | None:
    sec = Section("protocol-comparison", "Evaluation protocols compared")
    for ds in pd.unique(run.results["dataset"]):
        sub = run.results[run.results["dataset"] == ds]
        table = T.protocol_comparison(sub)
        if table.empty:
            continue
        sec.blocks.append(TableBlock(slug("protocols", ds), f"{ds.upper()} · backbone test "
                                     "accuracy by protocol", table))
        sec.blocks.append(_fig(slug("protocol", ds), f"{_dtitle(run, ds)} · protocol comparison",
                               plots.plot_protocol_comparison(
                                   table, title=f"{_dtitle(run, ds)}: backbone test accuracy by "
                                                "evaluation protocol")))
        sec.blocks.append(TextBlock(protocol_explanation(table, _dataset_config(run.config, ds))))
    return sec if sec.blocks else None


def _timing_section(run: RunData) -> Section | None:
    if run.timing is None or run.timing.empty:
        return None
    wall = (run.environment or {}).get("wall_seconds")
    table = T.timing_table(run.timing,
                           wall_seconds=wall if isinstance(wall, (int, float)) else None)
    return Section("timing", "Cross-validation time", [
        TableBlock("timing", "Time per dataset and model", table,
                   note=table.attrs.get("note", ""))])


def _ttest_table(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The columns of a ``compare_models`` table a reader needs, formatted for the report."""
    scale, unit = (100.0, " (pp)") if metric != "log_loss" else (1.0, " (loss)")
    loss = ""
    out = pd.DataFrame(index=pd.Index(
        [f"{T.model_label(a)} vs {T.model_label(b)}"
         for a, b in zip(table["model_a"], table["model_b"], strict=True)], name="Pair"))
    out[f"Mean difference{loss}{unit}"] = (table["mean_diff"] * scale).to_numpy()
    out[f"95 % CI{loss}{unit}"] = [
        f"[{lo * scale:.{1 if scale > 1 else 3}f}, {hi * scale:.{1 if scale > 1 else 3}f}]"
        for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)]
    out["Cohen's d_z"] = table["cohen_dz"].to_numpy()
    out["t (paired)"] = table["t_stat"].to_numpy()
    out["p (paired t)"] = table["t_p"].to_numpy()
    out["p (Nadeau-Bengio)"] = table["nb_p"].to_numpy()
    out["p (Wilcoxon)"] = table["wilcoxon_p"].to_numpy()
    out["p (Holm-adjusted)"] = table["p_adjusted"].to_numpy()
    out["Significant"] = ["yes" if s else "no" for s in table["significant"]]
    out.attrs["marked_rows"] = []
    return out


def _contrast_section(run: RunData) -> Section | None:
    """The method's named contrasts (TL, KD, Method 1 vs 2) with their sentences."""
    from ..evaluation.contrasts import central_contrasts

    res = run.results
    if not set(res["method"]) & {"method1", "method2"}:
        return None
    sec = Section("contrasts", "The method's claims: named paired contrasts")
    sec.intro = ("Each contrast pairs two stages' test accuracy on the same (fold, seed): the "
                 "mean difference a − b with its 95 % interval, the Nadeau–Bengio corrected "
                 "t-test and the Wilcoxon test, Holm-adjusted across the contrasts of a dataset "
                 "and protocol. \"hard labels (= scratch student, no KD)\" is trained once.")
    comp = central_contrasts(res, "accuracy")
    if not comp.table.empty:
        table = comp.table[["dataset", "protocol", "model", "contrast", "n_pairs", "mean_diff",
                            "ci_low", "ci_high", "nb_p_holm", "wilcoxon_p_holm"]].copy()
        for col in ("mean_diff", "ci_low", "ci_high"):
            table[col] = 100 * table[col]
        table = table.rename(columns={
            "n_pairs": "pairs", "mean_diff": "a − b (pp)", "ci_low": "95 % CI low (pp)",
            "ci_high": "95 % CI high (pp)", "nb_p_holm": "corrected t p (Holm)",
            "wilcoxon_p_holm": "Wilcoxon p (Holm)"})
        table.index = pd.Index([f"{r.dataset.upper()} · {r.protocol} · {r.model} · {r.contrast}"
                                for r in table.itertuples()], name="contrast")
        table = table.drop(columns=["dataset", "protocol", "model", "contrast"])
        sec.blocks.append(TableBlock("contrasts", "Named contrasts (test accuracy)", table))
    for sentence in comp.sentences:
        sec.blocks.append(TextBlock(sentence))
    return sec


def _ttest_section(run: RunData) -> Section | None:
    from ..evaluation.stats import TEST_TITLES, compare_models

    sec = Section("ttests", "Paired tests between models")
    res = run.results
    test = None
    for ds, pr in T.result_groups(res):
        for method, stage, what in (("backbone", "backbone", "backbones"),
                                    ("method1", "teacher", "fine-tuned teachers")):
            sel = res[(res["dataset"] == ds) & (res["protocol"] == pr) & (res["method"] == method)
                      & (res["stage"] == stage) & (res["split"] == "test")]
            if sel["model"].nunique() < 2 or sel["fold"].nunique() < 2:
                continue
            for metric in ("accuracy", "log_loss"):
                if not (sel["metric"] == metric).any():
                    continue
                try:
                    comp = compare_models(sel, metric=metric)
                except ValueError as exc:
                    # Unpaired folds (a model missing a fold) make the test impossible; say so.
                    sec.blocks.append(TextBlock(f"{ds.upper()} · {pr} · {what}: no test ({exc})",
                                                "warning"))
                    continue
                test = comp.test
                sec.blocks.append(TableBlock(
                    slug("ttest", ds, pr, method, stage, metric),
                    f"{_group_title(ds, pr, res, _dtitle(run, ds))} · {what} · test "
                    f"{'loss' if metric == 'log_loss' else metric}",
                    _ttest_table(comp.table, metric)))
                sec.blocks += [TextBlock(s) for s in comp.sentences]
    if test is not None:
        sec.intro = (
            "Every pair of models on paired test-fold scores: the dependent t-test of the "
            "reference, the Nadeau-Bengio corrected t-test (folds share training data, so the "
            "plain t-test is too confident), the Wilcoxon signed-rank test, the mean difference "
            "(first minus second) with its 95 % CI and Cohen's d_z. Verdicts use the "
            f"{TEST_TITLES.get(test, test)} with Holm's correction at alpha = 0.05.")
    return sec if sec.blocks else None


def _subject_section(run: RunData) -> Section | None:
    """Fear test accuracy per test subject of the main stages (table and figure)."""
    from .subjects import plot_subject_scores, subject_scores, subject_table

    scores = subject_scores(run.units)
    if scores.empty:
        return None
    sec = Section("subjects", "Scores per test subject")
    sec.intro = ("Fear-task test accuracy of each test subject's windows, folds and seeds "
                 "pooled; a stage that scores well on average can still fail whole people.")
    res = run.results
    for ds, pr in T.result_groups(res):
        table = subject_table(scores, dataset=ds, protocol=pr)
        if table.empty:
            continue
        head = _group_title(ds, pr, res, _dtitle(run, ds))
        sec.blocks.append(TableBlock(slug("subjects", ds, pr), head, table))
        fear = res[(res["dataset"] == ds) & (res["protocol"] == pr) & (res["task"] == "fear")]
        chance = float(fear["chance"].mean()) if len(fear) else None
        title = f"{_dtitle(run, ds)}, protocol {pr}: fear test accuracy per subject"
        sec.blocks.append(_fig(slug("subjects", ds, pr), head,
                               plot_subject_scores(table, chance=chance, title=title)))
    return sec if sec.blocks else None


def _figure_sections(run: RunData) -> list[Section]:
    res = run.results
    out = []
    folds = Section("fold-scores", "Scores per fold")
    for ds, pr in T.result_groups(res):
        here = res[(res["dataset"] == ds) & (res["protocol"] == pr)]
        for task in ("source", "fear"):
            sub = here[here["task"] == task]
            if (sub["method"] != "baseline").any() and len(sub):
                folds.blocks.append(_fig(
                    slug("folds", ds, pr, task), f"{_dtitle(run, ds)} · {pr} · {task} task",
                    plots.plot_fold_scores(sub, title=f"{_dtitle(run, ds)}, protocol {pr}: test "
                                                      f"accuracy per fold ({task} task)")))
    if folds.blocks:
        out.append(folds)
    subjects = _subject_section(run)
    if subjects is not None:
        out.append(subjects)
    # Units come in file-name order; show models in the order of the results instead.
    rank = {m: i for i, m in enumerate(pd.unique(res["model"]))}
    hist = history_frame(run.units)
    hist = hist.sort_values("backbone", key=lambda c: c.map(rank).fillna(len(rank)),
                            kind="stable")
    hsec = Section("histories", "Training curves")
    if len(hist):
        keys = ["dataset", "protocol", "method", "stage", "backbone", "model"]
        for key, grp in hist.groupby(keys, sort=False):
            ds, pr, method, stage, backbone, model = key
            title = (f"{_dtitle(run, ds)} · {pr} · "
                     f"{plots.stage_title(method, stage, model, backbone=backbone)}")
            origin = backbone if backbone != model else ""
            hsec.blocks.append(_fig(slug("history", ds, pr, method, stage, origin, model),
                                    title,
                                    plots.plot_history(grp, title=title)))
    if hsec.blocks:
        out.append(hsec)
    csec = Section("confusion", "Confusion matrices (test folds summed)")
    entries = sorted(named_confusions(run),
                     key=lambda e: rank.get(e["backbone"], len(rank)))
    grouped: dict[tuple, list] = {}
    for e in entries:
        grouped.setdefault((e["dataset"], e["protocol"], e["method"], e["stage"]), []).append(e)
    for (ds, pr, method, stage), items in grouped.items():
        title = f"{_dtitle(run, ds)} · {pr} · {plots.stage_title(method, stage)}"
        csec.blocks.append(_fig(slug("confusion", ds, pr, method, stage), title,
                                plots.plot_confusions(items, title=title)))
    if csec.blocks:
        out.append(csec)
    return out


def _config_sections(run: RunData) -> list[Section]:
    out = []
    env = run.environment
    if env:
        rows = {k: env.get(k) for k in ("python", "platform", "cpu_count", "torch_threads",
                                        "started", "finished", "wall_seconds", "seeds")
                if env.get(k) is not None}
        if isinstance(rows.get("wall_seconds"), (int, float)):
            rows["wall_seconds"] = f"{rows['wall_seconds']:.1f} s " \
                                   f"({rows['wall_seconds'] / 3600:.2f} h)"
        for lib, ver in (env.get("versions") or {}).items():
            rows[f"version: {lib}"] = ver
        table = pd.DataFrame({"Value": [str(v) for v in rows.values()]},
                             index=pd.Index(list(rows), name="Item"))
        table.attrs["marked_rows"] = []
        out.append(Section("environment", "Environment, seeds and run time",
                           [TableBlock("environment", "Environment", table)]))
    if run.config:
        out.append(Section("config", "Resolved configuration", [
            TextBlock(json.dumps(run.config, indent=2, sort_keys=False), "code")]))
    return out


def _deployed(run: RunData) -> Section | None:
    from .deployed import deployed_section

    return deployed_section(run)


def _combined_section(run: RunData) -> Section | None:
    from .combined import combined_section

    return combined_section(run)


def _online(run: RunData) -> Section | None:
    from .deployed import online_section

    return online_section(run)


def build_document(run: RunData) -> Document:
    """Every section the run's files support, in reading order.

    A dataset's sections show its own models; a combined model's scores on each dataset
    (several ``[[datasets]]``) are in the combined-student section.
    """
    import dataclasses

    from .combined import own_results

    combined = _combined_section(run)
    run = dataclasses.replace(run, results=own_results(run.results))
    res = run.results
    env = run.environment or {}
    date = env.get("finished") or env.get("started") or "unknown"
    seeds = env.get("seeds") or sorted(int(s) for s in pd.unique(res["seed"].dropna()))
    meta = [("Run", run.name), ("Date", str(date)),
            ("Datasets", ", ".join(map(str, pd.unique(res["dataset"])))),
            ("Protocols", ", ".join(map(str, pd.unique(res["protocol"])))),
            ("Methods", ", ".join(m for m in pd.unique(res["method"]))),
            ("Models", ", ".join(T.model_label(m) for m in pd.unique(
                res.loc[res["method"] != "baseline", "model"]))),
            ("Folds", str(res["fold"].nunique())), ("Seeds", ", ".join(map(str, seeds)))]
    if isinstance(env.get("wall_seconds"), (int, float)):
        meta.append(("Run time", f"{env['wall_seconds'] / 60:.1f} min"))
    sections = []
    for part in (_dataset_section(run), combined, *_metric_sections(run), _quality_section(run),
                 _protocol_section(run),
                 _timing_section(run), _contrast_section(run), _effects_section(run),
                 _teacher_check_section(run),
                 _ttest_section(run),
                 *_figure_sections(run), _deployed(run), _online(run),
                 *_config_sections(run)):
        if part is not None:
            sections.append(part)
    return Document(title=f"fearkd report: {run.name}{_synthetic_suffix(run)}", meta=meta,
                    sections=sections)


def _synthetic_suffix(run: RunData) -> str:
    """`` · synthetic data`` (naming the datasets when only some are) for the page title."""
    datasets = [str(d) for d in pd.unique(run.results["dataset"])]
    fake = [d for d in datasets if _synthetic(run, d)]
    if not fake:
        return ""
    if len(fake) == len(datasets):
        return f" · {plots.SYNTHETIC_NOTE}"
    return f" · {plots.SYNTHETIC_NOTE}: " + ", ".join(d.upper() for d in fake)
