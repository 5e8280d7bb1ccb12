"""Reports of the command line: tables, JSON, CSV and figures of exact counts.

The scores come from the library's own score functions (:mod:`jaxseg._scores`,
through the one chain of :mod:`jaxseg._classwise`), applied on the host in
float64 to an exact ``int64`` count table ``[C, C + 1]``: rows are labels,
columns ``0 … C-1`` are predicted classes and the last column counts *void
predictions* (a predicted id outside ``[0, C)`` at a valid pixel), false
negatives of the label's class and false positives of none, as in the
Cityscapes evaluation. So every number of the command line equals the API's on
the same counts, and nothing here imports JAX or compiles.
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

from jaxseg import _scores
from jaxseg._classwise import HostStats


@dataclasses.dataclass(frozen=True)
class Metric:
    """One entry of ``--metrics``.

    ``per_class`` maps count statistics to per-class values ``[..., C]``.
    Metrics that need the label maps themselves set ``distance``: the
    evaluation computes them per image (:mod:`jaxseg._evaluate_distance`) and
    reports the mean of the finite values with the NaN and infinite cases counted.
    Metrics of probability maps set ``probability``: they come from one
    :class:`jaxseg.ProbabilityHistogram` of the dataset (:mod:`jaxseg._evaluate_probability`).
    Object metrics set ``objects``: connected components of each class (or
    region) matched one to one, per image, in one :class:`jaxseg.PanopticStats`
    (:mod:`jaxseg._evaluate_objects`).
    """

    name: str
    title: str
    per_class: Callable[[HostStats], np.ndarray] | None = None
    distance: bool = False
    probability: bool = False
    objects: bool = False


#: ``--metrics`` names. A distance metric is one more entry with ``distance=True``.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("iou", "IoU", lambda s: _scores.iou(s, average=None)),
        Metric("dice", "Dice/F1", lambda s: _scores.dice(s, average=None)),
        Metric("precision", "Prec.", lambda s: _scores.precision(s, average=None)),
        Metric("recall", "Recall", lambda s: _scores.recall(s, average=None)),
        # accuracy has no column of its own (per-class accuracy is recall): it adds
        # pixel accuracy and mean accuracy to the summary.
        Metric("accuracy", "Acc."),
        Metric("hd", "HD", distance=True),
        Metric("hd95", "HD95", distance=True),
        Metric("assd", "ASSD", distance=True),
        Metric("nsd", "NSD", distance=True),
        Metric("boundary_iou", "BIoU", distance=True),
        Metric("pq", "PQ", objects=True),
        Metric("sq", "SQ", objects=True),
        Metric("rq", "RQ", objects=True),
        Metric("instance_f1", "Inst. F1", objects=True),
        Metric("lesion_dice", "L.Dice", objects=True),
        Metric("lesion_hd95", "L.HD95", objects=True),
        Metric("ece", "ECE", probability=True),
        Metric("auroc", "AUROC", probability=True),
        Metric("ap", "AP", probability=True),
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


def _in_averages(s: HostStats, include_background: bool) -> np.ndarray:
    """Classes that enter the averages: counted, not empty, not excluded (``[..., C]``)."""
    return ~np.isnan(_scores.iou(s, average=None, include_background=include_background))


def class_report(
    counts: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    ignored: Sequence[int] = (),
    include_background: bool = True,
    metrics: Sequence[str] = DEFAULT_METRICS,
    per_class: bool = False,
) -> dict[str, Any]:
    """Per-class and summary scores of a dataset-level count table ``[C, C+1]`` (or ``[C, C]``).

    With ``per_class=True``, ``counts`` are per-class counts ``[4, C]`` (rows
    labels, predictions, hits, void; ``ClassCounts``' layout) and the report has
    no ``confusion_matrix``. Per-class columns are the scores with
    ``average=None`` (NaN for empty or ignored classes); the summary is the
    same scores averaged with ``include_background``. Returns a JSON-ready dict.
    """
    counts = np.asarray(counts, np.int64)
    if per_class:
        c = counts.shape[-1]
        s = HostStats.from_class_counts(counts, ignored=ignored)
        support, void = counts[0], counts[3]
    else:
        c = counts.shape[0]
        if counts.shape == (c, c):
            counts = np.concatenate([counts, np.zeros((c, 1), np.int64)], axis=1)
        s = HostStats.from_table(counts, ignored=ignored)
        support, void = counts.sum(axis=1), counts[:, c]
    names = list(names) if names is not None else [str(i) for i in range(c)]
    kw = {"include_background": include_background}
    in_averages = _in_averages(s, include_background)
    columns = {m: METRICS[m].per_class(s) for m in metrics if METRICS[m].per_class is not None}
    report: dict[str, Any] = {
        "num_classes": c,
        "metrics": list(metrics),
        "include_background": include_background,
        "classes": [
            {
                "id": i,
                "name": names[i],
                **{k: float(v[i]) for k, v in columns.items()},
                "support": int(support[i]),
                "void_predictions": int(void[i]),
                "in_averages": bool(in_averages[i]),
            }
            for i in range(c)
        ],
        "miou_dataset": float(_scores.iou(s, **kw)),
        "mean_dice": float(_scores.dice(s, **kw)),
        "pixel_accuracy": float(_scores.pixel_accuracy(s, **kw)),
        "mean_accuracy": float(_scores.mean_accuracy(s, **kw)),
        "frequency_weighted_iou": float(_scores.frequency_weighted_iou(s, **kw)),
        "num_pixels": int(support.sum()),
        "num_void_predictions": int(void.sum()),
    }
    if per_class:
        report["per_class_counts"] = True  # no C x C matrix was kept
    else:
        report["confusion_matrix"] = counts[:, :c].tolist()
    # for the table's mark: classes with pixels that the averages leave out; dropped from JSON
    report["_excluded"] = ~in_averages & (s.tp + s.fp + s.fn > 0)
    return report


def image_scores(
    counts: np.ndarray, *, ignored: Sequence[int], include_background: bool, per_class: bool = False
) -> dict:
    """Per-image per-class IoU and Dice from per-image count tables ``[N, C, C+1]``.

    With ``per_class=True``, per-image per-class counts ``[N, 4, C]`` (as
    :func:`class_report`).

    Returns ``{"iou": [N, C], "dice": [N, C], "tp"/"fp"/"fn": [N, C], "miou": [N],
    "mean_dice": [N]}``: the score functions on the batched statistics.
    """
    if per_class:
        s = HostStats.from_class_counts(counts, ignored=ignored)
    else:
        s = HostStats.from_table(counts, ignored=ignored)
    kw = {"include_background": include_background}
    return {
        "tp": s.tp,
        "fp": s.fp,
        "fn": s.fn,
        "iou": _scores.iou(s, average=None),
        "dice": _scores.dice(s, average=None),
        "counted": _in_averages(s, include_background),
        "miou": _scores.iou(s, **kw),
        "mean_dice": _scores.dice(s, **kw),
    }


# -- text -------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "   n/a" if math.isnan(x) else f"{x:6.4f}"


def format_table(report: dict[str, Any]) -> str:
    """The per-class table (the chosen metrics and the support) as text."""
    keys = [m for m in report.get("metrics", DEFAULT_METRICS) if METRICS[m].per_class]
    keys += [k for k in report.get("extra_columns", ())]
    keys += list(report.get("probability_columns", ()))
    keys += list(report.get("instance_columns", ()))  # iIoU (jaxseg._evaluate_iiou)
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
    lines += distance_footer(report)
    return "\n".join(lines)


def _by_class(report: dict[str, Any], key: str, kind: str) -> str:
    parts = [
        f"{r['name']}: {r[key][kind]:,}" for r in report["classes"] if r.get(key, {}).get(kind)
    ]
    return f" (per class: {', '.join(parts)})" if parts else ""


def distance_footer(report: dict[str, Any]) -> list[str]:
    """What each distance mean leaves out: NaN and infinite cases, per class and in total."""
    lines = []
    for key in report.get("extra_columns", ()):
        cases = report["distance_cases"][key]
        title = report["titles"][key]
        line = f"{title}: mean of {cases['finite']:,} finite per-image values"
        left = []
        if cases["inf"]:
            left.append(
                f"{cases['inf']:,} infinite, class in one map only"
                + _by_class(report, f"{key}_cases", "inf")
            )
        if cases["nan"]:
            left.append(
                f"{cases['nan']:,} NaN, class in neither map"
                + _by_class(report, f"{key}_cases", "nan")
            )
        lines.append(line + ("; left out: " + "; ".join(left) if left else ""))
    return lines


def format_probability_summary(report: dict[str, Any]) -> str:
    """The summary lines of a probability-map report (:mod:`jaxseg._evaluate_probability`)."""
    metrics = report["metrics"]
    bins = report["num_bins"]
    rows = []
    if "ece" in metrics:
        rows.append((f"ECE, marginal (l1, {bins} bins), mean over classes", "mean_ece"))
        if report.get("top_label_ece") is not None:
            rows.append(("ECE, top-label (l1; confidence = largest probability)", "top_label_ece"))
    if "auroc" in metrics:
        rows.append(("AUROC, one-vs-rest, mean over classes", "mean_auroc"))
    if "ap" in metrics:
        rows.append(("average precision, mean over classes", "mean_ap"))
    rows.append(("Dice at the best threshold per class, mean over classes", "mean_best_dice"))
    width = max(len(t) for t, _ in rows)
    lines = [f"{t:<{width}}  {_fmt(report[k])}" for t, k in rows]
    sweep = ", ".join(
        f"{r['name']} {r['best_threshold']:.2f}"
        for r in report["classes"]
        if r.get("best_threshold") is not None and not math.isnan(r["best_threshold"])
    )
    if sweep:
        lines.append(f"best Dice threshold per class (p >= t): {sweep}")
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
        foreground = not report.get("include_background", True)
        rows += [
            (
                "pixel accuracy" + (" (pixels labelled foreground)" if foreground else ""),
                "pixel_accuracy",
            ),
            ("mean accuracy (mean per-class recall)", "mean_accuracy"),
        ]
    for key in report.get("extra_columns", ()):
        rows.append(
            (f"mean {report['titles'][key]} (class mean of finite image values)", f"mean_{key}")
        )
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


def _float32(x: float) -> float:
    """A float32 result as the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x))) if math.isfinite(x) else float(x)


def _cell(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


def json_value(x: float) -> float | str | None:
    """A per-image value for JSON: ``None`` for NaN, ``"inf"`` for infinity."""
    if math.isnan(x):
        return None
    return "inf" if math.isinf(x) else _float32(float(x))


def csv_bytes(report: dict[str, Any]) -> bytes:
    """The per-class table as CSV (an empty cell for NaN)."""
    keys = [m for m in report.get("metrics", DEFAULT_METRICS) if METRICS[m].per_class]
    keys += list(report.get("extra_columns", ()))
    keys += list(report.get("probability_columns", ()))
    keys += list(report.get("instance_columns", ()))
    tail = ["support"] + (["void_predictions"] if "probability_columns" not in report else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class_id", "name", *keys, *tail])
    for r in report["classes"]:
        writer.writerow([r["id"], r["name"], *(_cell(r[k]) for k in keys), *(r[k] for k in tail)])
    return buf.getvalue().encode()


def per_image_csv_bytes(
    names: Sequence[str],
    class_names: Sequence[str],
    scores: dict[str, np.ndarray],
    distances: dict[str, np.ndarray] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> bytes:
    """One row per image and class: counts, IoU, Dice, the distance metrics ``[N, C]``
    (float32 values) and the ``extra`` columns ``[N, C]`` (float64, such as ``iiou``).

    Only the classes that enter the image's averages have a row. A distance
    cell is empty for NaN and ``inf`` for an infinite value; an extra cell is
    empty for NaN.
    """
    distances = distances or {}
    extra = extra or {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["image", "class_id", "class_name", "tp", "fp", "fn", "iou", "dice"]
    writer.writerow([*head, *distances, *extra])
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
                    *(_cell(_float32(values[i, c])) for values in distances.values()),
                    *(_cell(values[i, c]) for values in extra.values()),
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


#: The reliability diagram draws one curve per class up to this many classes.
MAX_RELIABILITY_CLASSES = 10


def reliability_figure(
    top_label: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    marginal: tuple[np.ndarray, np.ndarray, np.ndarray],
    names: Sequence[str],
) -> Any:
    """Reliability diagrams: accuracy against confidence per bin, next to the diagonal.

    ``top_label`` is ``(confidence, accuracy, count)`` per bin ``[B]`` (or
    ``None`` for independent channels): drawn as bars at the bin positions with
    the pixel share per bin below. ``marginal`` is the same per class
    ``[C, B]``: one curve per class (the :data:`MAX_RELIABILITY_CLASSES`
    classes with the most positives when there are more).
    """
    panels = 2 if top_label is not None else 1
    fig = _new_figure((5.5 * panels, 5.5))
    axes = np.atleast_1d(fig.subplots(1, panels))
    conf, acc, count = (np.asarray(x, np.float64) for x in marginal)
    c, b = conf.shape
    edges = np.arange(b + 1) / b
    if top_label is not None:
        t_conf, t_acc, t_count = (np.asarray(x, np.float64) for x in top_label)
        ax = axes[0]
        seen = t_count > 0
        ax.bar(
            edges[:-1][seen],
            t_acc[seen],
            width=1 / b,
            align="edge",
            color="tab:blue",
            edgecolor="white",
            linewidth=0.3,
            label="accuracy",
        )
        ax.bar(
            edges[:-1][seen],
            np.abs(t_conf - t_acc)[seen],
            bottom=np.minimum(t_conf, t_acc)[seen],
            width=1 / b,
            align="edge",
            color="tab:red",
            alpha=0.35,
            label="gap between accuracy and confidence",
        )
        share = t_count / max(t_count.sum(), 1)
        ax.step(edges[:-1], share, where="post", color="grey", linewidth=1, label="share of pixels")
        _diagonal(ax, "top-label (largest probability)")
    ax = axes[-1]
    positives = np.nan_to_num(acc * count).sum(axis=1)
    shown = np.sort(np.argsort(-positives, kind="stable")[:MAX_RELIABILITY_CLASSES])
    for k in shown:
        seen = count[k] > 0
        ax.plot(conf[k][seen], acc[k][seen], marker=".", linewidth=1, label=str(names[k]))
    title = "per class (marginal)" if len(shown) == c else f"{len(shown)} of {c} classes (marginal)"
    _diagonal(ax, title)
    return fig


def _diagonal(ax: Any, title: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (mean probability in the bin)")
    ax.set_ylabel("accuracy (fraction positive in the bin)")
    ax.set_title(f"reliability: {title}")
    ax.legend(loc="upper left", fontsize=7)


def figure_png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
