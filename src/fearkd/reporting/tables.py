"""Result tables in the layout of the reference's tables, built from the tidy results.

Every builder is pure: a tidy results DataFrame (the ``results.csv`` schema of a run
directory) in, a DataFrame out. Rows are models (or KD targets), columns follow the reference
(Training Accuracy (%), Training Loss, Test Accuracy (%), Test Loss) plus Macro-F1, balanced
accuracy, the parameter count and the number of folds. Each numeric column ``C`` has a partner
``"C ±"`` holding the half-width of the 95 % t-based confidence interval across folds (NaN with
one fold). Seeds are averaged within each fold first, so ``n`` counts folds.

Rows that are not models (chance level, majority and stratified baselines) are listed in
``table.attrs["marked_rows"]`` so that renderers can set them apart. :func:`format_table` turns
any of these tables into aligned plain text for a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..evaluation.results import RESULT_COLUMNS, check_results
from ..evaluation.splitters import PROTOCOLS
from ..models.baselines import BASELINES

__all__ = ["RESULT_COLUMNS", "METRIC_COLUMNS", "check_results", "result_groups", "summarize_folds",
           "mean_ci", "backbone_table", "finetune_table", "kd_table", "method_comparison_table",
           "baseline_table", "timing_table", "protocol_comparison", "chance_note", "seed_spread",
           "SEED_SD", "format_table", "format_cell", "display_frame", "CI_SUFFIX", "protocol_key",
           "model_label", "target_label"]

#: (column label, split, metric, scale) of the metric columns of every model table.
METRIC_COLUMNS = (
    ("Training Accuracy (%)", "train", "accuracy", 100.0),
    ("Training Loss", "train", "log_loss", 1.0),
    ("Test Accuracy (%)", "test", "accuracy", 100.0),
    ("Test Loss", "test", "log_loss", 1.0),
    ("Macro-F1 (%)", "test", "macro_f1", 100.0),
    ("Balanced acc. (%)", "test", "balanced_accuracy", 100.0),
)

CI_SUFFIX = " ±"
_MODEL_NAMES = {"cnn": "CNN", "lstm": "LSTM", "gru": "GRU", "mlp": "MLP",
                "ensemble": "Ensemble"}
_TARGET_NAMES = {"hard": "Hard labels", "soft": "Soft targets", "combined": "Combined loss"}
_METHOD_NAMES = {"method1": "Method 1", "method2": "Method 2", "scratch": "Scratch",
                 "ensemble": "ensemble teacher"}


def protocol_key(protocol: str) -> tuple[int, str]:
    """Sort key of a protocol: registration order in ``PROTOCOLS``, unknown names last."""
    return PROTOCOLS.order(str(protocol)), str(protocol)


def model_label(model: str) -> str:
    """Display name of a model: ``"cnn"`` -> ``"CNN"``; unknown names unchanged."""
    return _MODEL_NAMES.get(str(model), str(model))


def target_label(target: str) -> str:
    """Display name of a KD target: ``"soft"`` -> ``"Soft targets"``."""
    return _TARGET_NAMES.get(str(target), str(target))


def result_groups(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, protocol) pairs present, datasets in order of appearance."""
    df = check_results(results)
    pairs = df[["dataset", "protocol"]].drop_duplicates()
    ds_order = {d: i for i, d in enumerate(pd.unique(df["dataset"]))}
    return sorted(
        ((d, p) for d, p in pairs.itertuples(index=False)),
        key=lambda dp: (ds_order[dp[0]], *protocol_key(dp[1])),
    )


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the t-based confidence interval, and n.

    The half-width is ``t_{(1+c)/2, n-1} * s / sqrt(n)`` with the sample standard deviation
    ``s`` (ddof=1); NaN when fewer than two finite values.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def summarize_folds(results: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, 95 % CI half-width and number of folds of every metric, per group.

    Parameters
    ----------
    results : DataFrame
        Tidy results.
    by : sequence of str
        Grouping columns; ``split`` and ``metric`` are added.

    Returns
    -------
    DataFrame
        Columns ``by + [split, metric, mean, ci, n, n_params, chance]``.
    """
    df = check_results(results)
    keys = list(dict.fromkeys([*by, "split", "metric"]))
    # Seeds are repetitions of the same fold: average them so that n counts folds.
    per_fold = df.groupby([*keys, "fold"], sort=False, dropna=False).agg(
        value=("value", "mean"), n_params=("n_params", "max"), chance=("chance", "mean"))
    rows = []
    for key, grp in per_fold.groupby(level=list(range(len(keys))), sort=False, dropna=False):
        mean, ci, n = mean_ci(grp["value"].to_numpy())
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, mean, ci, n, grp["n_params"].max(), grp["chance"].mean()))
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci", "n", "n_params", "chance"])


def _select(df: pd.DataFrame, dataset: str | None, protocol: str | None, what: str,
            ) -> tuple[pd.DataFrame, str, str]:
    """Rows of one dataset and protocol; refuse to mix several silently."""
    for col, value in (("dataset", dataset), ("protocol", protocol)):
        if value is not None:
            df = df[df[col] == str(value)]
        else:
            present = list(pd.unique(df[col]))
            if len(present) > 1:
                raise ValueError(
                    f"{what}: results hold several values of {col!r} ({present!r}); "
                    f"pass {col}=... to choose one (see result_groups())."
                )
    ds = str(df["dataset"].iloc[0]) if len(df) else str(dataset or "")
    pr = str(df["protocol"].iloc[0]) if len(df) else str(protocol or "")
    return df, ds, pr


def _empty_table(index_name: str) -> pd.DataFrame:
    cols = []
    for label, *_ in METRIC_COLUMNS:
        cols += [label, label + CI_SUFFIX]
    table = pd.DataFrame(columns=[*cols, "params", "n"], dtype=float)
    table.index.name = index_name
    table.attrs["marked_rows"] = []
    return table


def _metric_rows(df: pd.DataFrame, row_col: str, labels: dict[str, str] | None = None,
                 ) -> pd.DataFrame:
    """One row per value of ``row_col``; metric columns with their CI partners."""
    summ = summarize_folds(df, [row_col])
    out = {}
    for row in pd.unique(df[row_col]):
        s = summ[summ[row_col] == row]
        record: dict[str, float] = {}
        for label, split, metric, scale in METRIC_COLUMNS:
            hit = s[(s["split"] == split) & (s["metric"] == metric)]
            record[label] = float(hit["mean"].iloc[0]) * scale if len(hit) else math.nan
            record[label + CI_SUFFIX] = float(hit["ci"].iloc[0]) * scale if len(hit) else math.nan
        record["params"] = float(s["n_params"].max()) if len(s) else math.nan
        record["n"] = float(s["n"].max()) if len(s) else math.nan
        out[(labels or {}).get(str(row), str(row))] = record
    table = pd.DataFrame.from_dict(out, orient="index")
    return table


def _baseline_rows(df_all: pd.DataFrame, task: str, chance: float) -> pd.DataFrame:
    """Chance level and the majority/stratified baselines of ``task``, as table rows."""
    rows = []
    base = df_all[(df_all["method"] == "baseline") & (df_all["task"] == task)]
    if len(base):
        labels = {str(m): BASELINES.label(str(m)) for m in pd.unique(base["model"])}
        rows.append(_metric_rows(base, "model", labels))
    if np.isfinite(chance) and chance > 0:
        record = {c: math.nan for c in _empty_table("").columns}
        # A constant or uniformly random guess: accuracy and balanced accuracy both 1/K.
        record["Test Accuracy (%)"] = chance * 100.0
        record["Balanced acc. (%)"] = chance * 100.0
        record["params"] = 0.0
        label = f"Chance (1/{round(1 / chance)})"
        rows.append(pd.DataFrame.from_dict({label: record}, orient="index"))
    return pd.concat(rows) if rows else pd.DataFrame()


def chance_note(results: pd.DataFrame, task: str) -> str:
    """The rates a model of ``task`` must beat, as one sentence to print beside its table.

    Chance over the classes that occur, the majority-class rate (the ``majority`` baseline's
    test accuracy, mean over folds) and the binomial threshold: the accuracy a guesser at
    chance reaches with probability below 5 % on the mean number of test windows of a fold.
    Empty when ``results`` hold no row of ``task``.
    """
    from ..evaluation.metrics import binomial_chance_threshold

    df = check_results(results)
    sel = df[(df["task"] == task) & (df["split"] == "test") & (df["metric"] == "accuracy")]
    if sel.empty:
        return ""
    chance = float(sel["chance"].mean())
    parts = [f"Chance {100 * chance:.1f} % (1/{round(1 / chance)}, over the classes that occur)"]
    major = sel[(sel["method"] == "baseline") & (sel["model"] == "majority")]
    if len(major):
        parts.append(f"majority class {100 * float(major['value'].mean()):.1f} %")
    n_test = pd.to_numeric(sel["n_test"], errors="coerce").dropna()
    if len(n_test) and n_test.mean() >= 1 and 0 < chance < 1:
        n = int(round(float(n_test.mean())))
        limit = binomial_chance_threshold(n, chance)
        parts.append(f"a guesser at chance scores ≥ {100 * limit:.1f} % on n = {n:,} test "
                     "windows with p < 0.05 (binomial; overlapping windows are not independent, "
                     "so the real threshold is higher)")
    return "; ".join(parts) + "."


def _model_table(results: pd.DataFrame, mask_fn, row_col: str, labels, *, task: str,
                 dataset, protocol, title: str, index_name: str) -> pd.DataFrame:
    df = check_results(results)
    sel = df[mask_fn(df)]
    # Only the rows this table shows must come from one dataset and protocol.
    sel, ds, pr = _select(sel, dataset, protocol, title)
    if sel.empty:
        table = _empty_table(index_name)
    else:
        table = _metric_rows(sel, row_col, labels)
        here = df[(df["dataset"] == ds) & (df["protocol"] == pr)]
        extra = _baseline_rows(here, task, float(sel["chance"].mean()))
        table.attrs["marked_rows"] = []
        if len(extra):
            marked = list(extra.index)
            table = pd.concat([table, extra[table.columns]])
            table.attrs["marked_rows"] = marked
        table.index.name = index_name
    table.attrs.update(title=title, dataset=ds, protocol=pr, task=task,
                       note=chance_note(df[(df["dataset"] == ds) & (df["protocol"] == pr)],
                                        task) if not sel.empty else "")
    return table


def backbone_table(results: pd.DataFrame, *, dataset: str | None = None,
                   protocol: str | None = None) -> pd.DataFrame:
    """Backbones pretrained on the source task (the reference's "BackBone Model" table).

    Rows: models, then chance level and the source-task baselines when present.
    """
    return _model_table(
        results, lambda d: (d["method"] == "backbone") & (d["stage"] == "backbone"),
        "model", _MODEL_NAMES, task="source", dataset=dataset, protocol=protocol,
        title="Backbone model (source task)", index_name="Model",
    )


def finetune_table(results: pd.DataFrame, *, dataset: str | None = None,
                   protocol: str | None = None) -> pd.DataFrame:
    """Backbones fine-tuned to fear (Method 1 teachers; the reference's "Fine-Tuned Model"),
    and the ensemble of the backbones (``[models] ensemble``) when it ran."""
    return _model_table(
        results, lambda d: d["method"].isin(["method1", "ensemble"]) & (d["stage"] == "teacher"),
        "model", _MODEL_NAMES, task="fear", dataset=dataset, protocol=protocol,
        title="Fine-tuned model (fear)", index_name="Model",
    )


def kd_table(results: pd.DataFrame, model: str, *, method: str = "method1",
             stage: str = "student", dataset: str | None = None,
             protocol: str | None = None) -> pd.DataFrame:
    """Students of one backbone per KD target (the reference's "Knowledge Distillation" tables).

    Parameters
    ----------
    model : str
        Backbone model name, e.g. ``"cnn"``.
    method : {"method1", "method2"}
        Method 1 students are distilled from the fine-tuned teacher; Method 2 students are
        distilled on the source task (``stage="student-source"``) and then fine-tuned
        (``stage="student"``).
    stage : {"student", "student-source"}

    Rows: targets (hard, soft, combined); for fear students also the student trained from
    scratch (no distillation), chance level and the fear baselines.
    """
    if not isinstance(model, str):
        raise TypeError(f"'model' must be a model name (str), got {type(model).__name__}.")
    task = "source" if stage == "student-source" else "fear"

    def mask(d):
        own = (d["method"] == method) & (d["stage"] == stage) & (d["model"] == model)
        if task == "fear":
            own |= (d["method"] == "scratch") & (d["stage"] == "student") & (d["model"] == model)
        return own

    df = check_results(results)
    view = df.assign(target=np.where(df["method"] == "scratch", "scratch", df["target"]))
    labels = {**_TARGET_NAMES, "scratch": "Scratch (no KD)"}
    title = (f"Knowledge distillation for {model_label(model)} "
             f"({_METHOD_NAMES.get(method, method)}, {stage})")
    table = _model_table(view, mask, "target", labels, task=task, dataset=dataset,
                         protocol=protocol, title=title, index_name="Target")
    table.attrs["model"] = model
    own = view[mask(view) & (view["split"] == "test") & (view["metric"] == "accuracy")]
    if dataset is not None:
        own = own[own["dataset"] == str(dataset)]
    if protocol is not None:
        own = own[own["protocol"] == str(protocol)]
    spread = seed_spread(own, "target")
    if len(spread) and len(table):
        table[SEED_SD] = [spread.get(t, math.nan) for t in
                          [{v: k for k, v in labels.items()}.get(i, i) for i in table.index]]
        floor = spread.get("scratch", math.nan)
        if np.isfinite(floor):
            table.attrs["noise_floor"] = floor
            table.attrs["note"] = (
                f"Noise floor: the scratch student's test accuracy moves by {floor:.1f} pp "
                "between seeds (SD across seeds, mean over folds); a KD target within about "
                "that distance of the scratch row differs by seed noise, not by method. "
                + table.attrs.get("note", "")).strip()
    return table


#: Column of :func:`kd_table`: test-accuracy SD across seeds within a fold, mean over folds.
SEED_SD = "Seed SD (pp)"


def seed_spread(rows: pd.DataFrame, by: str) -> dict[str, float]:
    """Test-accuracy spread across seeds per value of ``by``, in percentage points.

    The SD (ddof=1) across seeds within each fold, averaged over folds; a value of ``by`` run
    with one seed only is left out (no spread to measure).

    Parameters
    ----------
    rows : DataFrame
        Tidy results of one metric (e.g. test accuracy), one dataset and protocol.
    by : str
        Column naming the rows of the table (``"target"``, ``"model"``).
    """
    out: dict[str, float] = {}
    for key, grp in rows.groupby(by, sort=False):
        per_fold = grp.groupby("fold")["value"].agg(lambda v: v.std(ddof=1) if len(v) > 1
                                                    else math.nan).dropna()
        if len(per_fold):
            out[str(key)] = 100.0 * float(per_fold.mean())
    return out


def method_comparison_table(results: pd.DataFrame, *, dataset: str | None = None,
                            protocol: str | None = None) -> pd.DataFrame:
    """Fear-task stages of Method 1 and Method 2 side by side, per model and KD target.

    Rows: ``"<MODEL> · Method 1 teacher"``, ``"<MODEL> · Method 1 student (hard)"``, ...,
    ``"<MODEL> · Method 2 student (soft)"``, ``"<MODEL> · Scratch student"``, then chance and
    the fear baselines.
    """
    df = check_results(results)
    keep = df["method"].isin(["method1", "method2", "scratch"]) & (df["task"] == "fear")
    keep &= df["stage"].isin(["teacher", "student"])
    target = np.where(df["target"].isin(["-", "nan", ""]), "", " (" + df["target"] + ")")
    row = (df["model"].map(model_label) + " · " + df["method"].map(
        lambda m: _METHOD_NAMES.get(m, m)) + " " + df["stage"] + target)
    view = df.assign(row=row)
    table = _model_table(view, lambda d: keep.reindex(d.index, fill_value=False), "row", None,
                         task="fear", dataset=dataset, protocol=protocol,
                         title="Method 1 vs Method 2 (fear)", index_name="Model · stage")
    return table


def baseline_table(results: pd.DataFrame, *, dataset: str | None = None,
                   protocol: str | None = None) -> pd.DataFrame:
    """Chance level and the majority/stratified baselines of every task present."""
    df = check_results(results)
    df, ds, pr = _select(df, dataset, protocol, "baseline_table")
    parts = []
    for task in pd.unique(df["task"]):
        sel = df[df["task"] == task]
        extra = _baseline_rows(df, task, float(sel["chance"].mean()))
        if len(extra):
            parts.append(extra.set_axis([f"{task}: {i}" for i in extra.index]))
    table = pd.concat(parts) if parts else _empty_table("Baseline")
    table.index.name = "Baseline"
    table.attrs.update(title="Baselines", dataset=ds, protocol=pr,
                       marked_rows=list(table.index))
    return table


def timing_table(timing: pd.DataFrame, *, wall_seconds: float | None = None) -> pd.DataFrame:
    """Cross-validation time per dataset and backbone model (the reference's
    "Cross-validation Result"), with the run's wall time beside the summed unit time.

    Parameters
    ----------
    timing : DataFrame
        ``timing.csv``: columns dataset (optional), protocol, model, workers, seconds, hours.
    wall_seconds : float, optional
        ``environment.json`` ``wall_seconds``. When given, two marked rows close the table:
        the training time summed over every unit and the run's wall time; units run in
        parallel, so the sum can exceed the wall time.
    """
    if not isinstance(timing, pd.DataFrame):
        raise TypeError(f"'timing' must be a pandas DataFrame, got {type(timing).__name__}.")
    missing = [c for c in ("protocol", "model", "workers", "seconds") if c not in timing.columns]
    if missing:
        raise ValueError(
            f"'timing' lacks column(s) {missing!r}; timing.csv has columns dataset, protocol, "
            f"model, workers, seconds, hours; got {list(timing.columns)!r}."
        )
    df = timing.copy()
    seconds = pd.to_numeric(df["seconds"], errors="coerce")
    workers = pd.to_numeric(df["workers"], errors="coerce")
    table = pd.DataFrame({
        "Dataset": (df["dataset"].astype(str).str.upper().to_numpy() if "dataset" in df
                    else np.full(len(df), "")),
        "Protocol": df["protocol"].astype(str).to_numpy(),
        "Model": df["model"].map(model_label).to_numpy(),
        "Workers": workers.to_numpy(),
        "Time (s)": seconds.to_numpy(),
        "Time (h)": (seconds / 3600.0).to_numpy(),
    })
    if "dataset" not in df:
        table = table.drop(columns="Dataset")
    if table["Protocol"].nunique() <= 1:
        table = table.drop(columns="Protocol")
    table = table.set_index("Model")
    marked: list[str] = []
    note = ""
    if wall_seconds is not None and math.isfinite(float(wall_seconds)):
        total, wall = float(seconds.sum()), float(wall_seconds)
        extra = pd.DataFrame(
            {c: ["", ""] if c in ("Dataset", "Protocol") else [math.nan, math.nan]
             for c in table.columns},
            index=pd.Index(["All units (summed)", "Run wall time"], name="Model"))
        extra["Time (s)"] = [total, wall]
        extra["Time (h)"] = [total / 3600.0, wall / 3600.0]
        table = pd.concat([table, extra])
        marked = list(extra.index)
        most = int(workers.max()) if workers.notna().any() else 0
        note = (f"Units ran in parallel ({most} worker process(es) at most; 0 = a Dask cluster), "
                f"so the training time summed over units ({total:,.0f} s) is not the time the "
                f"run took: its wall time was {wall:,.0f} s, including feature extraction.")
    table.attrs.update(title="Cross-validation time", marked_rows=marked, note=note,
                       marked_legend="* run totals, not a model")
    return table


def protocol_comparison(results: pd.DataFrame, *, dataset: str | None = None,
                        method: str = "backbone", stage: str = "backbone",
                        metric: str = "accuracy") -> pd.DataFrame:
    """Test score of the same models under each protocol present (e.g. subject vs seed-legacy).

    Returns
    -------
    DataFrame
        Index: model labels. Per protocol ``p``: column ``"p (%)"`` (mean), ``"p (%) ±"``
        (95 % CI half-width) and ``"n p"`` (folds); ``"chance (%)"``; and, when both
        ``subject`` and ``seed-legacy`` are present, ``"gap (pp)"`` = seed-legacy minus
        subject, in percentage points. Empty when
        fewer than two protocols hold this method and stage.
    """
    df = check_results(results)
    # Protocols are what this table compares, so only the dataset must be unique.
    df, ds, _ = _select(df.assign(protocol="*"), dataset, None, "protocol_comparison")
    df = check_results(results).loc[df.index]
    sel = df[(df["method"] == method) & (df["stage"] == stage) & (df["split"] == "test")
             & (df["metric"] == metric)]
    protocols = sorted(pd.unique(sel["protocol"]), key=protocol_key)
    table = pd.DataFrame()
    if len(protocols) >= 2:
        summ = summarize_folds(sel, ["protocol", "model"])
        for p in protocols:
            s = summ[summ["protocol"] == p].set_index("model")
            table[f"{p} (%)"] = s["mean"] * 100.0
            table[f"{p} (%){CI_SUFFIX}"] = s["ci"] * 100.0
            table[f"n {p}"] = s["n"]
        table["chance (%)"] = summ.groupby("model", sort=False)["chance"].mean() * 100.0
        if "subject" in protocols and "seed-legacy" in protocols:
            table["gap (pp)"] = table["seed-legacy (%)"] - table["subject (%)"]
        table.index = [model_label(m) for m in table.index]
    table.index.name = "Model"
    table.attrs.update(title=f"Protocol comparison ({metric}, {method}/{stage})",
                       dataset=ds,
                       protocols=list(protocols), metric=metric, marked_rows=[])
    return table


# ----------------------------------------------------------------------------- formatting
def format_cell(column: str, value: object, ci: object = math.nan) -> str:
    """One cell as text: accuracies in % with 1 decimal, losses with 3, counts as integers.

    A finite ``ci`` is appended as ``" ± ci"``; NaN prints as an en dash.
    """
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    v = float(value)
    low = column.lower().strip()
    if low == "p" or low.startswith(("p-value", "p ", "p_", "p (")):
        return f"{v:.2e}" if 0 < v < 1e-3 else f"{v:.4f}"
    if low == "n" or low.startswith("n "):
        return f"n={int(round(v))}"
    if low in ("params", "workers", "n_train", "n_test", "count", "trials"):
        return f"{int(round(v)):,}"
    if "loss" in low:
        digits = 3
    elif "%" in low or "(pp)" in low or "acc" in low or low == "chance":
        digits = 1
    elif "(s)" in low:
        digits = 1
    elif "(h)" in low:
        digits = 2
    else:
        digits = 3
    text = f"{v:.{digits}f}"
    if ci is not None and isinstance(ci, (int, float, np.floating)) and np.isfinite(ci):
        text += f" ± {float(ci):.{digits}f}"
    return text


def _is_count_column(name: str, values: pd.Series) -> bool:
    """A numeric column of whole numbers that no unit-specific rule formats (trial counts)."""
    low = name.lower()
    if any(k in low for k in ("%", "loss", "(pp)", "acc", "(s)", "(h)")) or low == "n" \
            or low.startswith(("p ", "p-", "p_", "n ")):
        return False
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    return x.size > 0 and bool(np.all(x == np.round(x)))


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings: every ``C``/``"C ±"`` pair merged into one ``"mean ± ci"`` column."""
    out = {}
    for col in table.columns:
        name = str(col)
        if name.endswith(CI_SUFFIX) and name[: -len(CI_SUFFIX)] in table.columns:
            continue
        partner = name + CI_SUFFIX
        cis = table[partner] if partner in table.columns else None
        if cis is None and _is_count_column(name, table[col]):
            out[name] = [format_cell("count", v) for v in table[col].tolist()]
            continue
        out[name] = [
            format_cell(name, v, math.nan if cis is None else cis.iloc[i])
            for i, v in enumerate(table[col].tolist())
        ]
    frame = pd.DataFrame(out, index=[str(i) for i in table.index])
    frame.index.name = table.index.name
    return frame


def format_table(table: pd.DataFrame, *, title: str | None = None) -> str:
    """Plain-text rendering for terminals (aligned columns, ``mean ± ci`` cells).

    Baseline rows (``table.attrs["marked_rows"]``) are flagged with ``*``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"'table' must be a pandas DataFrame, got {type(table).__name__}.")
    frame = display_frame(table)
    marked = set(map(str, table.attrs.get("marked_rows", [])))
    frame.index = [f"* {i}" if i in marked else f"  {i}" for i in frame.index]
    head = title if title is not None else table.attrs.get("title")
    lines = [head] if head else []
    if frame.empty:
        lines.append("(no rows)")
        return "\n".join(lines)
    index_name = str(table.index.name or "")
    cols = [index_name, *frame.columns]
    body = [[str(i), *row]
            for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)]
    widths = [max(len(str(c)), *(len(r[k]) for r in body)) for k, c in enumerate(cols)]

    def fmt_row(cells) -> str:
        return "  ".join(str(c).ljust(w) if k == 0 else str(c).rjust(w)
                         for k, (c, w) in enumerate(zip(cells, widths, strict=True)))

    lines += [fmt_row(cols), "  ".join("-" * w for w in widths)]
    lines += [fmt_row(r) for r in body]
    if marked:
        lines.append(table.attrs.get("marked_legend", "* chance level or baseline, not a model"))
    return "\n".join(lines)
