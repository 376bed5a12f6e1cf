"""Figures of a run: training curves, fold scores, confusion matrices, protocol comparison.

Every function returns a :class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`
(so no global figure registry, no GUI backend and nothing to ``show``); :func:`figure_to_png`
renders one to PNG bytes with the Agg renderer and releases it.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .tables import CI_SUFFIX, check_results, model_label, protocol_key, target_label

__all__ = [
    "figure_to_png",
    "plot_history",
    "plot_fold_scores",
    "mean_curve",
    "loss_label",
    "plot_confusions",
    "plot_protocol_comparison",
    "model_name",
    "stage_title",
    "wrap_label",
]

_TRAIN, _VAL = "#1f77b4", "#d62728"
_PROTOCOL_COLOURS = {"subject": "#2a7ab9", "trial": "#4daf4a", "window": "#ff7f00",
                     "seed-legacy": "#d62728", "split": "#984ea3"}
_STAGE_NAMES = {"backbone": "backbone (source task)", "teacher": "teacher (fine-tuned to fear)",
                "student-source": "student distilled on the source task",
                "student": "fear student", "baseline": "baseline"}
_METHOD_NAMES = {"method1": "Method 1", "method2": "Method 2", "scratch": "Scratch",
                 "backbone": "Backbone", "baseline": "Baseline"}
_DPI = 100
_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])


def _close(fig: Figure) -> None:
    """Drop ``fig`` from pyplot's registry if the caller made it with pyplot."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def figure_to_png(fig: Figure, path: str | Path | None = None, *, dpi: int = _DPI) -> bytes:
    """Render ``fig`` to PNG bytes (and write them to ``path`` when given), then close it."""
    if not isinstance(fig, Figure):
        raise TypeError(f"'fig' must be a matplotlib Figure, got {type(fig).__name__}.")
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    finally:
        _close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


#: What every page, figure title and summary built on synthetic data says.
SYNTHETIC_NOTE = "synthetic data"


def dataset_title(dataset: str, synthetic: bool = False) -> str:
    """A dataset's name in titles: ``"DEAP"``, or ``"DEAP (synthetic data)"`` when it was written
    by :mod:`fearkd.datasets.synthetic` (so no figure of fake data passes for a real result)."""
    return f"{dataset.upper()} ({SYNTHETIC_NOTE})" if synthetic else dataset.upper()


def model_name(model: str, backbone: str = "") -> str:
    """A stage's model, with the backbone it came from when that is another model:
    ``"MLP (from the CNN backbone)"``."""
    name = model_label(model)
    if backbone and str(backbone) != str(model):
        name += f" (from the {model_label(backbone)} backbone)"
    return name


def stage_title(method: str, stage: str, model: str = "", *, backbone: str = "") -> str:
    """Human title of a (method, stage, model), e.g. ``"CNN · Method 1 fear student"``.

    ``model`` is the model trained in the stage (a student's own model, not its teacher's);
    ``backbone``, when another model, is named after it.
    """
    head = f"{model_name(model, backbone)} · " if model else ""
    method_name = _METHOD_NAMES.get(method, method)
    if method in ("backbone", "baseline") or not method:
        return head + _STAGE_NAMES.get(stage, stage)
    return head + f"{method_name} {_STAGE_NAMES.get(stage, stage)}"


# ------------------------------------------------------------------------------ histories
def mean_curve(history: pd.DataFrame, column: str) -> pd.Series:
    """Mean over every (fold, seed) of ``column`` per epoch, each fold's last value carried
    past the epoch where it stopped early (so the mean does not jump when a fold stops).

    Parameters
    ----------
    history : DataFrame
        Columns ``fold``, ``seed``, ``epoch`` and ``column``.
    column : str

    Returns
    -------
    Series
        Indexed by epoch, from the first to the last epoch any fold ran.
    """
    wide = history.pivot_table(index="epoch", columns=["fold", "seed"], values=column,
                               aggfunc="mean", dropna=False)
    return wide.sort_index().ffill().mean(axis=1)


def loss_label(target: str) -> str:
    """Axis label of the training loss of a stage with KD ``target``."""
    if target in ("soft", "combined"):
        return "Loss (KD: α·CE + (1−α)·T²·KL)" if target == "combined" else \
            "Loss (KD: CE against teacher probabilities)"
    return "Loss (cross-entropy)"


def plot_history(history: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Training and validation accuracy and loss per epoch of one model and stage.

    Parameters
    ----------
    history : DataFrame
        Rows of :func:`fearkd.reporting.rundata.history_frame` for one (method, stage, model);
        several ``target`` values give one row of panels each.
    title : str, optional

    Returns
    -------
    Figure
        Panels (n_targets, 2): accuracy (%) and loss against epoch; each fold a thin line with
        its best epoch (lowest validation loss, the restored weights) marked, the mean over all
        folds a thick one (:func:`mean_curve`: stopped folds carried at their last value).
    """
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"'history' must be a DataFrame, got {type(history).__name__}.")
    if history.empty:
        raise ValueError("'history' has no rows; pass the epochs of at least one fold.")
    targets = list(pd.unique(history["target"]))
    fig = Figure(figsize=(10, 2.9 * len(targets) + 0.6), layout="constrained")
    axes = fig.subplots(len(targets), 2, squeeze=False)
    for r, target in enumerate(targets):
        sub = history[history["target"] == target]
        for c, (kind, scale, unit) in enumerate((("accuracy", 100.0, "Accuracy (%)"),
                                                   ("loss", 1.0, loss_label(str(target))))):
            ax = axes[r, c]
            for split, colour, name in (("train", _TRAIN, "training"),
                                        ("val", _VAL, "validation")):
                col = f"{split}_{kind}"
                if col not in sub or sub[col].isna().all():
                    continue
                for _, fold in sub.groupby(["fold", "seed"], sort=True):
                    ax.plot(fold["epoch"], fold[col] * scale, color=colour, lw=0.8, alpha=0.35)
                    if split == "val" and fold["val_loss"].notna().any():
                        best = fold.loc[fold["val_loss"].idxmin()]
                        ax.plot(best["epoch"], best[col] * scale, marker="v", color=colour,
                                ms=5, ls="none")
                mean = mean_curve(sub, col) * scale
                ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2.2,
                        label=f"{name} (mean of {sub.groupby(['fold', 'seed']).ngroups} folds)")
            label = "" if target in ("-", "", "nan") else f" — {target_label(target)}"
            ax.set_title(f"{'Accuracy' if kind == 'accuracy' else 'Loss'}{label}", fontsize=10)
            ax.set_xlabel("Epoch")
            ax.set_ylabel(unit)
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title + "\n(thin lines: single folds, ▼ best epoch; thick: mean, stopped "
                     "folds carried at their last value)", fontsize=11)
    return fig


# ---------------------------------------------------------------------------- fold scores
def _row_label(method: str, stage: str, model: str, target: str) -> str:
    if method == "baseline":
        return f"{model} baseline"
    text = stage_title(method, stage, model).split(" (")[0]
    if target not in ("-", "", "nan"):
        text += f" ({target})"
    return text


def plot_fold_scores(results: pd.DataFrame, *, metric: str = "accuracy", split: str = "test",
                     title: str | None = None) -> Figure:
    """Score of every fold per model/stage: a box plot with the folds drawn as points.

    Parameters
    ----------
    results : DataFrame
        Tidy results of one dataset, protocol and task (one chance level).
    metric, split : str
        Which score to show.

    Returns
    -------
    Figure
        One horizontal box per (method, stage, model, target) with its folds as dots (seeds
        averaged); chance level as a dashed line.
    """
    df = check_results(results)
    df = df[(df["metric"] == metric) & (df["split"] == split)]
    if df.empty:
        raise ValueError(
            f"No {split!r} rows of metric {metric!r} in 'results'; nothing to plot."
        )
    per_fold = df.groupby(["method", "stage", "model", "target", "fold"], sort=False)[
        "value"].mean().reset_index()
    groups = list(per_fold.groupby(["method", "stage", "model", "target"], sort=False))
    labels = [_row_label(*key) for key, _ in groups]
    values = [g["value"].to_numpy() * 100.0 for _, g in groups]
    fig = Figure(figsize=(9, 0.42 * len(groups) + 1.6), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(groups))[::-1]
    # Matplotlib 3.10 replaced ``vert`` by ``orientation``; the project supports both.
    horizontal = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
    ax.boxplot(values, positions=pos, widths=0.55, showfliers=False, **horizontal,
               patch_artist=True, boxprops={"facecolor": "#dbe9f6", "edgecolor": "#4a6a8a"},
               medianprops={"color": "#1f3b5a"})
    for y, v, (key, _) in zip(pos, values, groups, strict=True):
        # Evenly spread offsets instead of random jitter: the picture is the same every time.
        offs = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
        colour = "#888888" if key[0] == "baseline" else "#d62728"
        ax.scatter(v, y + offs, s=18, color=colour, zorder=3, edgecolor="white", lw=0.5)
    ax.set_yticks(pos, labels, fontsize=8)
    chance = float(df["chance"].mean())
    if np.isfinite(chance):
        ax.axvline(chance * 100, color="black", ls="--", lw=1,
                   label=f"chance ({chance * 100:.1f} %)")
        # Outside the axes: inside it would hide the points of whichever row sits there.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    name = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
            "macro_f1": "macro-F1"}.get(metric, metric)
    ax.set_xlabel(f"{'Test' if split == 'test' else 'Training'} {name} (%) per fold")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


# ------------------------------------------------------------------------------ confusion
def wrap_label(name: object, width: int = 12) -> str:
    """A class name broken into lines of at most ``width`` characters (at spaces when it can)."""
    import textwrap

    return "\n".join(textwrap.wrap(str(name), width=width, break_long_words=True)) or str(name)


def plot_confusions(entries: Sequence[dict], *, title: str | None = None) -> Figure:
    """Confusion matrices summed over folds, one panel per (target, model).

    Parameters
    ----------
    entries : sequence of dict
        Items of :func:`fearkd.reporting.rundata.confusion_sums` of one (method, stage).

    Returns
    -------
    Figure
        Rows = KD targets, columns = backbones. Colour = row percentage (share of the true
        class's windows, the colour bar), text = window count and that row percentage; long
        class names are wrapped and the predicted-class labels tilted.
    """
    if not entries:
        raise ValueError("'entries' is empty; pass at least one confusion matrix.")
    # Columns are backbones (a student's model may be the same for several backbones).
    models = list(dict.fromkeys(e.get("backbone", e["model"]) for e in entries))
    targets = list(dict.fromkeys(e["target"] for e in entries))
    k = max(np.asarray(e["matrix"]).shape[0] for e in entries)
    names_all = [str(n) for e in entries for n in e["class_names"]]
    longest = max((len(n) for n in names_all), default=1)
    side = 2.6 + 0.42 * k + 0.05 * min(longest, 24)
    fig = Figure(figsize=(side * len(models) + 1.4, side * len(targets) + 0.9),
                 layout="constrained")
    axes = fig.subplots(len(targets), len(models), squeeze=False)
    image = None
    for e in entries:
        ax = axes[targets.index(e["target"]), models.index(e.get("backbone", e["model"]))]
        m = np.asarray(e["matrix"], dtype=float)
        totals = m.sum(axis=1, keepdims=True)
        share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0) * 100.0
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        font = 8 if m.shape[0] <= 6 else 6
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                # The count, and the row percentage that the cell's colour shows.
                ax.text(j, i, f"{int(m[i, j])}\n{share[i, j]:.0f} %", ha="center",
                        va="center", fontsize=font - 1,
                        color="white" if share[i, j] > 55 else "black")
        names = [wrap_label(n) for n in e["class_names"]]
        tilt = longest > 6 or len(names) > 6
        ax.set_xticks(range(len(names)), names, rotation=45 if tilt else 0,
                      ha="right" if tilt else "center", rotation_mode="anchor", fontsize=font)
        ax.set_yticks(range(len(names)), names, fontsize=font)
        ax.set_xlabel("Predicted class", fontsize=8)
        ax.set_ylabel("True class", fontsize=8)
        label = model_name(e["model"], e.get("backbone", ""))
        if e["target"] not in ("-", "", "nan"):
            label += f" — {target_label(e['target'])}"
        ax.set_title(f"{label} ({e.get('n_folds', 1)} folds)", fontsize=9)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6,
                     label="Row percentage (% of the true class's windows)")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


# ------------------------------------------------------------------- protocol comparison
def plot_protocol_comparison(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Bars of test accuracy per model and protocol, with 95 % CI error bars.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`fearkd.reporting.tables.protocol_comparison` (not empty).
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"'table' must be a DataFrame, got {type(table).__name__}.")
    protocols = list(table.attrs.get("protocols") or [
        c[:-4] for c in table.columns if c.endswith(" (%)") and c != "chance (%)"])
    if table.empty or len(protocols) < 2:
        raise ValueError(
            "'table' compares fewer than two protocols; build it with protocol_comparison() "
            "on results that hold at least two."
        )
    protocols.sort(key=protocol_key)
    models = [str(m) for m in table.index]
    fig = Figure(figsize=(max(6.0, 1.6 * len(models) + 3), 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(protocols)
    x = np.arange(len(models))
    for i, p in enumerate(protocols):
        mean = table[f"{p} (%)"].to_numpy(dtype=float)
        ci = np.nan_to_num(table[f"{p} (%){CI_SUFFIX}"].to_numpy(dtype=float))
        bars = ax.bar(x + (i - (len(protocols) - 1) / 2) * width, mean, width * 0.95,
                      yerr=ci, capsize=4, label=p, color=_PROTOCOL_COLOURS.get(p, None),
                      alpha=0.85)
        for b, v, e in zip(bars, mean, ci, strict=True):
            if math.isfinite(v):
                # Above the error bar, so the number never sits on the whisker.
                ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v + e), ha="center",
                            va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    if "chance (%)" in table:
        chance = float(table["chance (%)"].mean())
        if math.isfinite(chance):
            ax.axhline(chance, color="black", ls="--", lw=1, label=f"chance ({chance:.1f} %)")
    ax.set_xticks(x, models)
    ax.set_ylabel("Test accuracy (%), mean ± 95 % CI over folds")
    ax.set_ylim(0, 105)
    ax.legend(title="protocol", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "Test accuracy by evaluation protocol", fontsize=11)
    return fig
