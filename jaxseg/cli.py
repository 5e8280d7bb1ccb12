"""The ``jaxseg`` command line: ``jaxseg evaluate`` and ``jaxseg demo``.

``jaxseg evaluate PRED_DIR LABEL_DIR --num-classes C`` scores folders of PNG
label maps with the exact :class:`~jaxseg.ConfusionMatrix` state;
``jaxseg demo`` trains a small Flax model on synthetic shapes with jaxseg's
losses. Run ``jaxseg COMMAND --help`` for the options.

Exit status: 0 on success, 2 on bad input or usage (one line on stderr naming
the file, no traceback, no output file written), 1 on an unexpected error.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxseg import _io
from jaxseg import _validation as v

PROG = "jaxseg"
EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


# -- shared report: per-class table, summary, plot ---------------------------------


def class_names_or_ids(num_classes: int, names: Sequence[str] | None) -> list[str]:
    return list(names) if names is not None else [str(c) for c in range(num_classes)]


def class_report(state: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class and summary scores of a dataset-level :class:`~jaxseg.ConfusionMatrix`.

    Returns a JSON-ready dict (NaN for empty or ignored classes).
    """
    import jaxseg

    c = state.num_classes
    names = class_names_or_ids(c, names)
    matrix = state.to_numpy()
    per_class = {
        "iou": jaxseg.iou(state, average=None),
        "dice": jaxseg.dice(state, average=None),
        "precision": jaxseg.precision(state, average=None),
        "recall": jaxseg.recall(state, average=None),
    }
    per_class = {k: np.asarray(x, np.float64) for k, x in per_class.items()}
    support = matrix.sum(axis=1)
    classes = [
        {
            "id": i,
            "name": names[i],
            **{k: float(x[i]) for k, x in per_class.items()},
            "support": int(support[i]),
        }
        for i in range(c)
    ]
    return {
        "num_classes": c,
        "classes": classes,
        "miou_dataset": float(jaxseg.iou(state)),
        "mean_dice": float(jaxseg.dice(state)),
        "pixel_accuracy": float(jaxseg.pixel_accuracy(state)),
        "mean_accuracy": float(jaxseg.mean_accuracy(state)),
        "frequency_weighted_iou": float(jaxseg.frequency_weighted_iou(state)),
        "num_pixels": int(matrix.sum()),
        "confusion_matrix": matrix.tolist(),
    }


def _fmt(x: float) -> str:
    return "   n/a" if math.isnan(x) else f"{x:6.4f}"


def format_table(report: dict[str, Any]) -> str:
    """The per-class table (IoU, Dice = F1, precision, recall, support) as text."""
    width = max([5, *(len(r["name"]) for r in report["classes"])])
    head = (
        f"{'class':<{width}}  {'IoU':>6}  {'Dice/F1':>7}  {'Prec.':>6}  {'Recall':>6}  "
        f"{'Support':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in report["classes"]:
        lines.append(
            f"{r['name']:<{width}}  {_fmt(r['iou'])}  {_fmt(r['dice']):>7}  "
            f"{_fmt(r['precision'])}  {_fmt(r['recall'])}  {r['support']:>12,}"
        )
    lines.append("-" * len(head))
    lines.append("n/a: class absent from labels and predictions, or ignored")
    return "\n".join(lines)


def format_summary(report: dict[str, Any]) -> str:
    rows = [("mIoU, dataset-level (counts summed over all images, then scored)", "miou_dataset")]
    if "miou_imagewise" in report:
        n = report.get("num_images_scored", 0)
        rows.append(
            (f"mIoU, image-wise (scored per image, then averaged; {n} images)", "miou_imagewise")
        )
    rows += [
        ("mean Dice / F1, dataset-level", "mean_dice"),
        ("pixel accuracy", "pixel_accuracy"),
        ("mean accuracy (mean per-class recall)", "mean_accuracy"),
    ]
    width = max(len(t) for t, _ in rows)
    return "\n".join(f"{t:<{width}}  {_fmt(report[k])}" for t, k in rows)


def confusion_figure(matrix: np.ndarray, names: Sequence[str], ax: Any = None) -> Any:
    """Draw a row-normalised confusion matrix (rows: labels) on a matplotlib axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = matrix.shape[0]
    fig = None
    if ax is None:
        size = min(4 + 0.45 * c, 24)
        fig, ax = plt.subplots(figsize=(size, size * 0.85), layout="constrained")
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of label row")
    ticks = np.arange(c)
    ax.set_xticks(
        ticks, labels=names, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center"
    )
    ax.set_yticks(ticks, labels=names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    ax.set_title("confusion matrix (rows normalised)")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                if matrix[i, j]:
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
    return fig if fig is not None else ax.figure


def figure_png_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# -- evaluate ---------------------------------------------------------------------


def _read_class_names(path: str, num_classes: int) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _io.InputError(path, f"cannot read class names ({_io._reason(e)})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise _io.InputError(
            path, f"--class-names has {len(names)} names; --num-classes is {num_classes}"
        )
    return names


def _check_values(
    pair: _io.Pair, pred: np.ndarray, label: np.ndarray, c: int, ignore: tuple[int, ...]
) -> None:
    """Host check that every counted pixel holds a class id in ``[0, C)``."""
    considered = ~np.isin(label, ignore) if ignore else np.ones(label.shape, bool)
    bad = considered & ((label < 0) | (label >= c))
    if bad.any():
        raise _io.InputError(
            pair.label,
            f"label value {int(label[bad].max())} is not a class id in [0, {c}) and not ignored "
            f"({int(bad.sum())} pixels; use --ignore-index to leave it out)",
        )
    bad = considered & ((pred < 0) | (pred >= c))
    if bad.any():
        raise _io.InputError(
            pair.pred,
            f"predicted value {int(pred[bad].max())} is not a class id in [0, {c}) "
            f"({int(bad.sum())} pixels at non-ignored labels)",
        )


@functools.lru_cache(maxsize=8)
def _make_step(num_classes: int, ignore: tuple[int, ...]) -> Any:
    """Jitted batch update: per-image states (vmap) -> per-image mIoU, folded total."""
    import jax

    import jaxseg

    def per_image(pred, label, keep):
        return jaxseg.ConfusionMatrix.from_predictions(
            pred, label, num_classes=num_classes, ignore_index=ignore, where=keep
        )

    @jax.jit
    def step(total, preds, labels, keep):
        states = jax.vmap(per_image)(preds, labels, keep)  # [B, C, C]
        return total.merge(states.reduce()), jaxseg.iou(states), states.num_invalid

    return step


class _Evaluation:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.skipped: list[_io.InputError] = []

    def bad(self, err: _io.InputError) -> None:
        if not self.args.skip_bad:
            raise err
        self.skipped.append(err)

    def run(self) -> int:
        import jax.numpy as jnp

        import jaxseg

        args = self.args
        c = v.check_num_classes(args.num_classes)
        ignore = v.normalize_ignore_index(args.ignore_index)
        names = _read_class_names(args.class_names, c) if args.class_names else None
        for option, path in (("--json", args.json), ("--csv", args.csv), ("--plot", args.plot)):
            if path:
                _io.check_writable(path, option)

        pairs, unmatched = _io.match_files(args.pred_dir, args.label_dir)
        for err in unmatched:
            self.bad(err)
        if not pairs:
            raise _io.InputError(
                None, f"no PNG pairs found in {args.pred_dir} and {args.label_dir}"
            )

        # Pass 1: headers only (cheap). Checks modes and sizes, groups by size.
        groups: dict[tuple[int, int], list[_io.Pair]] = defaultdict(list)
        for pair in pairs:
            try:
                size_l = _io.probe_label_map(pair.label)
                size_p = _io.probe_label_map(pair.pred)
                if size_p != size_l:
                    raise _io.InputError(
                        pair.pred,
                        f"size {size_p[1]}x{size_p[0]} differs from the label's "
                        f"{size_l[1]}x{size_l[0]} ({pair.label})",
                    )
            except _io.InputError as e:
                self.bad(e)
                continue
            groups[size_l].append(pair)

        # Pass 2: decode, check values, stream through the state in equal-size batches.
        step = _make_step(c, ignore)
        total = jaxseg.ConfusionMatrix.empty(c, ignore_index=ignore)
        per_image: dict[str, float] = {}
        bs = args.batch_size
        progress = _progress(sum(len(g) for g in groups.values()), args.quiet)
        try:
            for (h, w), group in sorted(groups.items()):
                for start in range(0, len(group), bs):
                    chunk = group[start : start + bs]
                    preds = np.zeros((bs, h, w), np.int32)
                    labels = np.zeros((bs, h, w), np.int32)
                    keep = np.zeros((bs, 1, 1), bool)
                    names_ok = []
                    for pair in chunk:
                        progress.update(1)
                        try:
                            label = _io.read_label_map(pair.label)
                            pred = _io.read_label_map(pair.pred)
                            _check_values(pair, pred, label, c, ignore)
                        except _io.InputError as e:
                            self.bad(e)
                            continue
                        k = len(names_ok)
                        preds[k], labels[k], keep[k] = pred, label, True
                        names_ok.append(pair.name)
                    if not names_ok:
                        continue
                    total, mious, invalid = step(
                        total,
                        jnp.asarray(preds),
                        jnp.asarray(labels),
                        jnp.broadcast_to(jnp.asarray(keep), (bs, h, w)),
                    )
                    if float(jnp.sum(invalid)) > 0:  # the host check above should prevent this
                        raise _io.InputError(chunk[0].label, "invalid labels counted by the state")
                    for name, m in zip(names_ok, np.asarray(mious)[: len(names_ok)], strict=True):
                        per_image[name] = float(m)
        finally:
            progress.close()

        if not per_image:
            raise _io.InputError(None, "no valid image pairs to evaluate")
        report = class_report(total, names)
        scored = [m for m in per_image.values() if not math.isnan(m)]
        report["miou_imagewise"] = float(np.mean(scored)) if scored else math.nan
        report["num_images"] = len(per_image)
        report["num_images_scored"] = len(scored)
        report["ignore_index"] = list(ignore)
        report["images"] = [{"name": n, "miou": m} for n, m in sorted(per_image.items())]
        report["skipped"] = [{"file": e.path, "reason": e.message} for e in self.skipped]

        # Render every output in memory first, then write each one atomically.
        outputs: list[tuple[str, bytes]] = []
        if args.json:
            outputs.append((args.json, _json_bytes(report)))
        if args.csv:
            outputs.append((args.csv, _csv_bytes(report)))
        if args.plot:
            fig = confusion_figure(
                np.asarray(report["confusion_matrix"]), class_names_or_ids(c, names)
            )
            outputs.append((args.plot, figure_png_bytes(fig)))

        out = sys.stdout
        print(f"evaluated {len(per_image)} image pairs, {report['num_pixels']:,} pixels", file=out)
        print(format_table(report), file=out)
        print(format_summary(report), file=out)
        for path, data in outputs:
            _io.atomic_write_bytes(path, data)
            print(f"wrote {path}", file=out)
        if self.skipped:
            print(f"{PROG}: skipped {len(self.skipped)} bad file(s):", file=sys.stderr)
            for e in self.skipped:
                print(f"  {e}", file=sys.stderr)
        return EXIT_OK


def _progress(total: int, quiet: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    if tqdm is None or quiet:

        class _Null:
            def update(self, n: int) -> None:
                pass

            def close(self) -> None:
                pass

        return _Null()
    return tqdm(
        total=total, unit="img", file=sys.stderr, desc="evaluate", leave=False, disable=None
    )


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(val) for k, val in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(val) for val in x]
    return x


def _json_bytes(report: dict[str, Any]) -> bytes:
    return (json.dumps(_nan_to_none(report), indent=2, allow_nan=False) + "\n").encode()


def _csv_bytes(report: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class_id", "name", "iou", "dice", "precision", "recall", "support"])
    for r in report["classes"]:
        writer.writerow(
            [r["id"], r["name"]]
            + [
                "" if math.isnan(r[k]) else repr(r[k])
                for k in ("iou", "dice", "precision", "recall")
            ]
            + [r["support"]]
        )
    return buf.getvalue().encode()


# -- argument parsing -------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {n}")
    return n


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas; got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Segmentation losses and exact metrics for JAX."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ev = sub.add_parser(
        "evaluate",
        help="score folders of PNG label maps",
        description=(
            "Compare predicted and true PNG label maps (single-channel, pixel value = class id), "
            "matched by file name, with an exact confusion matrix."
        ),
    )
    ev.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted label maps (*.png)")
    ev.add_argument("label_dir", metavar="LABEL_DIR", help="folder of true label maps (*.png)")
    ev.add_argument(
        "--num-classes", "-C", type=_positive_int, required=True, help="number of classes C"
    )
    ev.add_argument(
        "--ignore-index",
        type=_int_list,
        action="extend",
        default=None,
        metavar="ID[,ID...]",
        help="label value(s) to leave out, e.g. 255 or 0,255 (repeatable)",
    )
    ev.add_argument("--json", metavar="FILE", help="write all results as JSON")
    ev.add_argument("--csv", metavar="FILE", help="write the per-class table as CSV")
    ev.add_argument("--plot", metavar="FILE.png", help="write a confusion-matrix plot")
    ev.add_argument("--class-names", metavar="FILE", help="text file, one class name per line")
    ev.add_argument(
        "--batch-size", type=_positive_int, default=8, help="images per jitted batch (default 8)"
    )
    ev.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip bad or unmatched files (listed at the end) instead of stopping",
    )
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    demo = sub.add_parser(
        "demo",
        help="train a small Flax model on synthetic shapes with jaxseg losses",
        description=(
            "Train a small Flax NNX segmentation net on procedurally generated shapes with "
            "class-weighted cross-entropy + Dice from jaxseg, then evaluate it exactly."
        ),
    )
    demo.add_argument(
        "--steps", type=_positive_int, default=600, help="training steps (default 600)"
    )
    demo.add_argument(
        "--out", metavar="FILE.png", default="jaxseg-demo.png", help="figure to write"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


def _version() -> str:
    from jaxseg import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxseg`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            return _Evaluation(args).run()
        from jaxseg import _demo

        if args.out:
            _io.check_writable(args.out, "--out")
        return _demo.run(steps=args.steps, out=args.out, seed=args.seed, quiet=args.quiet)
    except _io.InputError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("JAXSEG_DEBUG"):
            raise
        print(
            f"{PROG} {args.command}: unexpected error: {type(e).__name__}: "
            f"{' '.join(str(e).split())[:300]} (set JAXSEG_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
