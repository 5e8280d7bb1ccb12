"""Reports of the command line: scores from exact counts, tables, JSON, CSV and figures.

Every number here is computed on the host in float64 from an exact ``int64``
count table ``[C, C + 1]``: rows are labels, columns ``0 … C-1`` are predicted
classes and the last column counts *void predictions* (a predicted id outside
``[0, C)`` at a valid pixel). A void prediction is a false negative of the
label's class and a false positive of none, as in the Cityscapes evaluation.

The rules are those of the library's score functions: a class with
``tp + fp + fn = 0`` (or an ignored class id) is *empty*, gets NaN and is left
out of averages; other zero denominators give 0.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Stats:
    """Per-class statistics of a count table (float64 arrays ``[C]``) and the class mask."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    support: np.ndarray
    counted: np.ndarray  # classes that are averaged: not empty, not ignored, not excluded

    @classmethod
    def from_counts(
        cls, counts: np.ndarray, *, ignored: Sequence[int] = (), include_background: bool = True
    ) -> Stats:
        counts = np.asarray(counts, np.int64)
        c = counts.shape[-2]
        tp = np.diagonal(counts[..., :c], axis1=-2, axis2=-1).astype(np.float64)
        support = counts.sum(axis=-1).astype(np.float64)  # void predictions included
        fn = support - tp
        fp = counts[..., :c].sum(axis=-2).astype(np.float64) - tp
        counted = tp + fp + fn > 0
        off = np.zeros(c, bool)
        off[[i for i in ignored if 0 <= i < c]] = True
        if not include_background:
            off[0] = True
        counted = counted & ~off
        return cls(tp, fp, fn, support, counted)


def _ratio(num: np.ndarray, den: np.ndarray, stats: Stats) -> np.ndarray:
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    empty = stats.tp + stats.fp + stats.fn == 0
    return np.where(empty, np.nan, out)


@dataclasses.dataclass(frozen=True)
class Metric:
    """One entry of ``--metrics``.

    ``per_class`` maps count statistics to per-class values ``[..., C]``.
    Metrics that need the label maps themselves (distances) set ``per_image``
    instead: ``per_image(pred, label, num_classes=, spacing=, tolerance=)``
    returns ``[C]`` values for one image, averaged over images (finite values
    only) by the evaluation.
    """

    name: str
    title: str
    per_class: Callable[[Stats], np.ndarray] | None = None
    per_image: Callable[..., np.ndarray] | None = None


#: ``--metrics`` names. A distance metric is one more entry with ``per_image``.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("iou", "IoU", lambda s: _ratio(s.tp, s.tp + s.fp + s.fn, s)),
        Metric("dice", "Dice/F1", lambda s: _ratio(2 * s.tp, 2 * s.tp + s.fp + s.fn, s)),
        Metric("precision", "Prec.", lambda s: _ratio(s.tp, s.tp + s.fp, s)),
        Metric("recall", "Recall", lambda s: _ratio(s.tp, s.tp + s.fn, s)),
        # accuracy has no column of its own (per-class accuracy is recall): it adds
        # pixel accuracy and mean accuracy to the summary.
        Metric("accuracy", "Acc."),
    )
}
DEFAULT_METRICS = ("iou", "dice", "precision", "recall", "accuracy")


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(
            f"unknown metric {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)}"
        )
    return names


def _macro(values: np.ndarray, counted: np.ndarray) -> float:
    v = values[counted]
    return float(v.mean()) if v.size else math.nan


def class_report(
    counts: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    ignored: Sequence[int] = (),
    include_background: bool = True,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Any]:
    """Per-class and summary scores of a dataset-level count table ``[C, C+1]`` (or ``[C, C]``).

    Returns a JSON-ready dict (NaN for empty, ignored or excluded classes in averages).
    """
    counts = np.asarray(counts, np.int64)
    c = counts.shape[0]
    if counts.shape == (c, c):
        counts = np.concatenate([counts, np.zeros((c, 1), np.int64)], axis=1)
    names = list(names) if names is not None else [str(i) for i in range(c)]
    s = Stats.from_counts(counts, ignored=ignored, include_background=include_background)
    empty_or_off = ~s.counted & (s.tp + s.fp + s.fn > 0)
    columns = {m: METRICS[m].per_class(s) for m in metrics if METRICS[m].per_class is not None}
    for values in columns.values():  # ignored classes carry no score
        values[[i for i in ignored if 0 <= i < c]] = np.nan
    iou = METRICS["iou"].per_class(s)
    dice = METRICS["dice"].per_class(s)
    recall = METRICS["recall"].per_class(s)
    total = counts.sum()
    freq = s.support / max(s.support[s.counted].sum(), 1.0)
    report: dict[str, Any] = {
        "num_classes": c,
        "metrics": list(metrics),
        "include_background": include_background,
        "classes": [
            {
                "id": i,
                "name": names[i],
                **{k: float(v[i]) for k, v in columns.items()},
                "support": int(s.support[i]),
                "void_predictions": int(counts[i, c]),
                "in_averages": bool(s.counted[i]),
            }
            for i in range(c)
        ],
        "miou_dataset": _macro(iou, s.counted),
        "mean_dice": _macro(dice, s.counted),
        "pixel_accuracy": float(s.tp.sum() / total) if total else math.nan,
        "mean_accuracy": _macro(recall, s.counted),
        "frequency_weighted_iou": float(np.nansum(np.where(s.counted, freq * iou, 0.0)))
        if s.counted.any()
        else math.nan,
        "num_pixels": int(total),
        "num_void_predictions": int(counts[:, c].sum()),
        "confusion_matrix": counts[:, :c].tolist(),
    }
    report["_excluded"] = empty_or_off  # for the table; dropped from JSON
    return report


def image_scores(counts: np.ndarray, *, ignored: Sequence[int], include_background: bool) -> dict:
    """Per-image per-class IoU and Dice from per-image count tables ``[N, C, C+1]``.

    Returns ``{"iou": [N, C], "dice": [N, C], "tp"/"fp"/"fn": [N, C], "miou": [N],
    "mean_dice": [N]}``; averages follow :func:`class_report`'s rules per image.
    """
    s = Stats.from_counts(counts, ignored=ignored, include_background=include_background)
    iou = METRICS["iou"].per_class(s)
    dice = METRICS["dice"].per_class(s)
    counted = s.counted
    n = counted.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        miou = np.where(n > 0, np.where(counted, iou, 0.0).sum(-1) / np.maximum(n, 1), np.nan)
        mdice = np.where(n > 0, np.where(counted, dice, 0.0).sum(-1) / np.maximum(n, 1), np.nan)
    return {
        "tp": s.tp,
        "fp": s.fp,
        "fn": s.fn,
        "iou": iou,
        "dice": dice,
        "counted": counted,
        "miou": miou,
        "mean_dice": mdice,
    }


# -- text -------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "   n/a" if math.isnan(x) else f"{x:6.4f}"


def format_table(report: dict[str, Any]) -> str:
    """The per-class table (the chosen metrics and the support) as text."""
    keys = [m for m in report.get("metrics", DEFAULT_METRICS) if METRICS[m].per_class]
    keys += [k for k in report.get("extra_columns", ())]
    titles = {**{m.name: m.title for m in METRICS.values()}, **report.get("titles", {})}
    width = max([5, *(len(r["name"]) for r in report["classes"])])
    head = f"{'class':<{width}}" + "".join(f"  {titles[k]:>7}" for k in keys) + f"  {'Support':>13}"
    lines = [head, "-" * len(head)]
    excluded = report.get("_excluded")
    for r in report["classes"]:
        mark = "*" if excluded is not None and excluded[r["id"]] else " "
        cells = "".join(f"  {_fmt(r[k]):>7}" for k in keys)
        lines.append(f"{r['name']:<{width}}{cells}  {r['support']:>12,}{mark}".rstrip())
    lines.append("-" * len(head))
    lines.append("n/a: class absent from labels and predictions, or ignored")
    if excluded is not None and excluded.any():
        lines.append("*: left out of the averages (--exclude-background)")
    if report.get("num_void_predictions"):
        lines.append(
            f"void predictions (ids outside [0, C) at valid pixels, counted as misses): "
            f"{report['num_void_predictions']:,}"
        )
    return "\n".join(lines)


def format_summary(report: dict[str, Any]) -> str:
    rows = []
    metrics = report.get("metrics", DEFAULT_METRICS)
    if "iou" in metrics:
        rows.append(
            ("mIoU, dataset-level (counts summed over all images, then scored)", "miou_dataset")
        )
        if "miou_imagewise" in report:
            n = report.get("num_images_scored", 0)
            rows.append(
                (
                    f"mIoU, image-wise (scored per image, then averaged; {n} images)",
                    "miou_imagewise",
                )
            )
    if "dice" in metrics:
        rows.append(("mean Dice / F1, dataset-level", "mean_dice"))
        if "mean_dice_imagewise" in report:
            rows.append(("mean Dice / F1, image-wise", "mean_dice_imagewise"))
    if "accuracy" in metrics:
        rows += [
            ("pixel accuracy", "pixel_accuracy"),
            ("mean accuracy (mean per-class recall)", "mean_accuracy"),
        ]
    for key in report.get("extra_columns", ()):
        rows.append((f"mean {report['titles'][key]}, image-wise", f"mean_{key}"))
    if not rows:
        return ""
    width = max(len(t) for t, _ in rows)
    return "\n".join(f"{t:<{width}}  {_fmt(report[k])}" for t, k in rows)


# -- files ------------------------------------------------------------------------


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(val) for k, val in x.items() if not k.startswith("_")}
    if isinstance(x, list):
        return [_nan_to_none(val) for val in x]
    return x


def json_bytes(report: dict[str, Any]) -> bytes:
    return (json.dumps(_nan_to_none(report), indent=2, allow_nan=False) + "\n").encode()


def _cell(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


def csv_bytes(report: dict[str, Any]) -> bytes:
    """The per-class table as CSV (an empty cell for NaN)."""
    keys = [m for m in report.get("metrics", DEFAULT_METRICS) if METRICS[m].per_class]
    keys += list(report.get("extra_columns", ()))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class_id", "name", *keys, "support", "void_predictions"])
    for r in report["classes"]:
        writer.writerow(
            [r["id"], r["name"], *(_cell(r[k]) for k in keys), r["support"], r["void_predictions"]]
        )
    return buf.getvalue().encode()


def per_image_csv_bytes(
    names: Sequence[str], class_names: Sequence[str], scores: dict[str, np.ndarray]
) -> bytes:
    """One row per image and class: counts, IoU, Dice, and whether it enters the averages."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "class_id", "class_name", "tp", "fp", "fn", "iou", "dice"])
    for i, image in enumerate(names):
        for c, cname in enumerate(class_names):
            if not scores["counted"][i, c]:
                continue
            writer.writerow(
                [
                    image,
                    c,
                    cname,
                    int(scores["tp"][i, c]),
                    int(scores["fp"][i, c]),
                    int(scores["fn"][i, c]),
                    _cell(scores["iou"][i, c]),
                    _cell(scores["dice"][i, c]),
                ]
            )
    return buf.getvalue().encode()


# -- figures ----------------------------------------------------------------------

#: Above this many classes the plot labels only the most-confused classes.
MAX_LABELLED_CLASSES = 30


def _new_figure(figsize: tuple[float, float]) -> Any:
    """A figure on the Agg canvas, without pyplot (no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def most_confused(matrix: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` classes with the most off-diagonal mass (as label or prediction), sorted."""
    off = matrix.astype(np.float64).copy()
    np.fill_diagonal(off, 0.0)
    score = off.sum(axis=0) + off.sum(axis=1)
    return np.sort(np.argsort(-score, kind="stable")[:k])


def confusion_figure(matrix: np.ndarray, names: Sequence[str], ax: Any = None) -> Any:
    """Draw a row-normalised confusion matrix (rows: labels) on a matplotlib axis.

    Up to :data:`MAX_LABELLED_CLASSES` classes every class is labelled. Above
    it the figure shows the whole matrix unlabelled (ticks every few ids) next
    to the submatrix of the most-confused classes, labelled by name.
    """
    matrix = np.asarray(matrix)
    c = matrix.shape[0]
    if ax is None:
        if c <= MAX_LABELLED_CLASSES:
            size = min(4 + 0.45 * c, 16)
            fig = _new_figure((size, size * 0.85))
            _draw_confusion(fig.subplots(), matrix, np.arange(c), names, "confusion matrix")
        else:
            fig = _new_figure((22, 10.5))
            ax_all, ax_top = fig.subplots(1, 2)
            _draw_confusion(ax_all, matrix, np.arange(c), None, f"all {c} classes")
            top = most_confused(matrix, 20)
            _draw_confusion(ax_top, matrix, top, names, "the 20 most-confused classes")
        return fig
    _draw_confusion(ax, matrix, np.arange(c), names, "confusion matrix")
    return ax.figure


def _draw_confusion(
    ax: Any, matrix: np.ndarray, idx: np.ndarray, names: Sequence[str] | None, title: str
) -> None:
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)[np.ix_(idx, idx)]
    n = len(idx)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of label row")
    if names is None:
        step = max(1, math.ceil(n / 15))
        ticks = np.arange(0, n, step)
        ax.set_xticks(ticks, labels=[str(int(idx[t])) for t in ticks])
        ax.set_yticks(ticks, labels=[str(int(idx[t])) for t in ticks])
    else:
        labels = [str(names[i]) for i in idx]
        ticks = np.arange(n)
        ax.set_xticks(
            ticks, labels=labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center"
        )
        ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    ax.set_title(f"{title} (rows normalised)")
    if n <= 20:
        sub = matrix[np.ix_(idx, idx)]
        for i in range(n):
            for j in range(n):
                if sub[i, j]:
                    colour = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        color=colour,
                        fontsize=8,
                    )


def figure_png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
