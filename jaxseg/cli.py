"""The ``jaxseg`` command line: ``jaxseg evaluate`` and ``jaxseg demo``.

This module parses arguments and dispatches; the jobs live in
:mod:`jaxseg._evaluate` and :mod:`jaxseg._demo`. Run ``jaxseg COMMAND --help``
for the options.

Exit status: 0 on success; 2 on bad input or usage (one line on stderr naming
the file, no traceback, no output file written); 3 when ``--skip-bad`` left
files out; 1 on an unexpected error; 130 when interrupted (Ctrl-C); 141 when
standard output was closed early (``| head``), quietly, as other tools do.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import threading
from collections.abc import Sequence

PROG = "jaxseg"
EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141

# Options whose value may start with "-" (negative ids): "--ignore-index -1,7" is
# joined into "--ignore-index=-1,7" before argparse sees it.
_NUMERIC_LIST_OPTIONS = ("--ignore-index", "--spacing")
_NUMERIC_LIST = re.compile(r"-[\d.][\d.,\s-]*")


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


def _spacing(text: str) -> tuple[float, ...]:
    """One positive finite number (every axis) or one per axis, separated by commas."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(
            "expected one positive number for every axis, or one per axis separated by "
            f"commas, e.g. 0.5 or 0.8,0.8,2.5; got {text!r}"
        )
    return values


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number; got {text!r}")
    return x


def _metrics(text: str) -> tuple[str, ...]:
    from jaxseg._report import parse_metrics

    try:
        return parse_metrics(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from jaxseg import _report  # NumPy only: the metric names for --help

    parser = argparse.ArgumentParser(
        prog=PROG, description="Segmentation losses and exact metrics for JAX."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ev = sub.add_parser(
        "evaluate",
        help="score folders of label maps (PNG, .npy, NIfTI)",
        description=(
            "Compare predicted and true label maps (pixel value = class id), paired by "
            "name in the two folders and their sub-folders, with exact confusion counts."
        ),
    )
    ev.add_argument(
        "pred_dir", metavar="PRED_DIR", nargs="?", help="folder of predicted label maps"
    )
    ev.add_argument("label_dir", metavar="LABEL_DIR", nargs="?", help="folder of true label maps")
    g = ev.add_argument_group(
        "panoptic segmentation (COCO panoptic format, also Cityscapes' panoptic layout)"
    )
    g.add_argument(
        "--panoptic",
        nargs=2,
        metavar=("PRED_JSON", "GT_JSON"),
        help="score COCO panoptic JSON + PNG folders with panopticapi's rules instead of "
        "PRED_DIR LABEL_DIR; categories come from GT_JSON",
    )
    g.add_argument(
        "--pred-folder",
        metavar="DIR",
        help="PNGs of PRED_JSON (default: the folder named like PRED_JSON without .json)",
    )
    g.add_argument(
        "--gt-folder",
        metavar="DIR",
        help="PNGs of GT_JSON (default: the folder named like GT_JSON without .json)",
    )
    g = ev.add_argument_group("classes")
    g.add_argument(
        "--num-classes",
        "-C",
        type=_positive_int,
        help="number of classes C (implied by --binary and --label-map cityscapes); above "
        "1024 the counts are kept per class: the same scores, no confusion matrix or --plot",
    )
    g.add_argument(
        "--ignore-index",
        type=_int_list,
        action="extend",
        default=None,
        metavar="ID[,ID...]",
        help="label value(s) to leave out, e.g. 255 or -1,255 (repeatable; applied after "
        "--label-map; default 255 with --label-map, else none)",
    )
    g.add_argument(
        "--label-map",
        metavar="cityscapes|FILE.json",
        help="map ids before counting: 'cityscapes' (labelIds -> trainIds, others -> 255) or "
        'a JSON object {"7": 0, ...} (unlisted ids -> 255)',
    )
    g.add_argument(
        "--map-predictions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="apply --label-map to predictions too (default; use --no-map-predictions "
        "when predictions are already in the mapped ids, e.g. Cityscapes trainIds)",
    )
    g.add_argument(
        "--binary",
        action="store_true",
        help="binary masks: any non-zero value (255, True) is class 1; implies "
        "--exclude-background unless --include-background",
    )
    g.add_argument(
        "--exclude-background",
        dest="include_background",
        action="store_false",
        default=None,
        help="leave class 0 out of the averages (its pixels still count as errors elsewhere)",
    )
    g.add_argument(
        "--include-background", dest="include_background", action="store_true", default=None
    )
    g.add_argument("--class-names", metavar="FILE", help="text file, one class name per line")
    g = ev.add_argument_group("files")
    g.add_argument(
        "--pred-pattern",
        metavar="PATTERN",
        help="prediction file names, e.g. '{name}_leftImg8bit.png' (default: any supported "
        "suffix, any case)",
    )
    g.add_argument(
        "--label-pattern",
        metavar="PATTERN",
        help="label file names, e.g. '{name}_gtFine_labelIds.png'",
    )
    g.add_argument(
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="look into sub-folders (default)",
    )
    g.add_argument(
        "--instances",
        metavar="GT_INSTANCE_DIR",
        help="folder of Cityscapes gtFine instanceIds maps: adds the class and category iIoU "
        "(needs --label-map cityscapes)",
    )
    g.add_argument(
        "--instance-pattern",
        metavar="PATTERN",
        help="instance map file names (default '{name}_gtFine_instanceIds.png')",
    )
    g.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help="largest image decoded, in pixels (default 2^30)",
    )
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable, unmatched or mismatched files (listed at the end, exit 3)",
    )
    g = ev.add_argument_group("metrics")
    g.add_argument(
        "--metrics",
        type=_metrics,
        default=None,
        metavar="NAME[,NAME...]",
        help=f"columns and summary lines, any of: {', '.join(_report.METRICS)} (default: "
        f"{','.join(_report.DEFAULT_METRICS)})",
    )
    g.add_argument(
        "--spacing",
        type=_spacing,
        default=None,
        metavar="S[,S...]",
        help="voxel spacing for distance metrics: one number for every axis, or one per "
        "axis (default: from the NIfTI headers, else 1; overrides the headers)",
    )
    g.add_argument(
        "--tolerance", type=_positive_float, default=None, help="surface tolerance (same unit)"
    )
    g = ev.add_argument_group(
        "objects (--metrics pq,sq,rq,instance_f1,lesion_dice,lesion_hd95: connected "
        "components of each foreground class, matched per image)"
    )
    g.add_argument(
        "--connectivity",
        type=int,
        default=None,
        metavar="K",
        help="neighbours of a component, 1..ndim: 1 = 4 (2-D) / 6 (3-D) neighbours (default), "
        "ndim = 8 / 26 (BraTS: 3)",
    )
    g.add_argument(
        "--matching",
        choices=("threshold", "bipartite"),
        default=None,
        help="'threshold': pairs with IoU > 0.5 (default, unique); 'bipartite': the "
        "maximum-weight one-to-one matching of Dice >= 1e-6 (BraTS)",
    )
    g.add_argument(
        "--regions",
        metavar="NAME=ID,..[:NAME=ID,..]",
        default=None,
        help="score groups of classes as one mask each instead of the classes, e.g. "
        "wt=1,2,3:tc=1,3:et=3 (BraTS)",
    )
    g = ev.add_argument_group(
        "probability maps (--metrics ece,auroc,ap: .npy or NIfTI float arrays [..., C], "
        "channels last)"
    )
    g.add_argument(
        "--bins",
        type=_positive_int,
        default=None,
        help="equal-width probability bins on [0, 1] (default 100: thresholds and curves "
        "on a 0.01 grid; 15 is the usual ECE setting of calibration papers)",
    )
    g.add_argument(
        "--prob-pattern",
        metavar="PATTERN",
        help="one file per class, e.g. '{name}_prob{class}.npy' (class 0 .. C-1, in one "
        "folder); default: one [..., C] file per image",
    )
    g.add_argument(
        "--independent",
        action="store_true",
        help="channels are independent (sigmoids; channel c is positive where the label is "
        "c): no top-label ECE (default: exclusive classes, a softmax)",
    )
    g = ev.add_argument_group("outputs ('-' or /dev/stdout write to standard output)")
    g.add_argument("--json", metavar="FILE", help="write all results as JSON")
    g.add_argument("--csv", metavar="FILE", help="write the per-class table as CSV")
    g.add_argument("--per-image", metavar="FILE", help="write per-image per-class scores as CSV")
    g.add_argument(
        "--plot",
        metavar="FILE.png",
        help="write a confusion-matrix plot (a reliability diagram for probability maps)",
    )
    g = ev.add_argument_group("speed")
    g.add_argument(
        "--jobs", "-j", type=_positive_int, default=None, help="decoding threads (default ≤ 4)"
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="image pairs read at once at most (default: the number of jobs); bounds memory",
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


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if (
            a in _NUMERIC_LIST_OPTIONS
            and i + 1 < len(args)
            and _NUMERIC_LIST.fullmatch(args[i + 1])
        ):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _evaluate(args: argparse.Namespace) -> int:
    from jaxseg import _evaluate, _io

    if args.panoptic or args.pred_folder or args.gt_folder:
        return _evaluate_panoptic(args)
    if args.pred_dir is None or args.label_dir is None:
        raise _io.InputError(None, "give PRED_DIR and LABEL_DIR (or --panoptic PRED_JSON GT_JSON)")

    include_background = args.include_background
    if include_background is None:
        include_background = not args.binary
    opts = _evaluate.Options(
        pred_dir=args.pred_dir,
        label_dir=args.label_dir,
        num_classes=args.num_classes,
        ignore_index=None if args.ignore_index is None else tuple(args.ignore_index),
        label_map=args.label_map,
        map_predictions=args.map_predictions,
        binary=args.binary,
        include_background=include_background,
        pred_pattern=args.pred_pattern,
        label_pattern=args.label_pattern,
        recursive=args.recursive,
        metrics=args.metrics or _evaluate._report.DEFAULT_METRICS,
        spacing=args.spacing,
        tolerance=args.tolerance,
        class_names=args.class_names,
        json=args.json,
        csv=args.csv,
        per_image=args.per_image,
        plot=args.plot,
        jobs=args.jobs or 0,
        batch_size=args.batch_size or 0,
        max_pixels=args.max_pixels or _io.DEFAULT_MAX_PIXELS,
        skip_bad=args.skip_bad,
        quiet=args.quiet,
        num_bins=args.bins,
        prob_pattern=args.prob_pattern,
        independent=args.independent,
        instances=args.instances,
        instance_pattern=args.instance_pattern,
        connectivity=args.connectivity,
        matching=args.matching,
        regions=args.regions,
    )
    return _evaluate.run(opts)


def _evaluate_panoptic(args: argparse.Namespace) -> int:
    from jaxseg import _evaluate_panoptic, _io

    if not args.panoptic:
        raise _io.InputError(None, "--pred-folder and --gt-folder go with --panoptic")
    if args.pred_dir is not None:
        raise _io.InputError(
            None, "--panoptic takes no PRED_DIR LABEL_DIR: the JSON files name the PNGs"
        )
    defaults = build_parser().parse_args(["evaluate", "--panoptic", "p", "g"])
    kept = {"panoptic", "pred_folder", "gt_folder", "json", "csv", "jobs", "batch_size"}
    kept |= {"max_pixels", "quiet", "command", "pred_dir", "label_dir"}
    other = [k for k, v in vars(args).items() if k not in kept and v != getattr(defaults, k)]
    if other:
        flag = "--" + other[0].replace("_", "-")
        raise _io.InputError(None, f"{flag} does not apply to --panoptic")
    return _evaluate_panoptic.run(
        _evaluate_panoptic.Options(
            pred_json=args.panoptic[0],
            gt_json=args.panoptic[1],
            pred_folder=args.pred_folder,
            gt_folder=args.gt_folder,
            json=args.json,
            csv=args.csv,
            jobs=args.jobs or 0,
            batch_size=args.batch_size or 0,
            max_pixels=args.max_pixels or _io.DEFAULT_MAX_PIXELS,
            quiet=args.quiet,
        )
    )


def _demo(args: argparse.Namespace) -> int:
    from jaxseg import _demo, _io

    if args.out:
        _io.check_output(args.out, "--out")
    return _demo.run(steps=args.steps, out=args.out, seed=args.seed, quiet=args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxseg`` console script; returns the exit status.

    Called without ``argv`` (the console script, ``python -m jaxseg``) the
    process is ours: if a reading thread is still at work when the command
    ends (Ctrl-C, or a bad file met while other pairs were being scored), the
    process ends at once with the status, see :func:`_end_process`.
    """
    code = _main(argv)
    if argv is None:
        _end_process(code, now=code == EXIT_INTERRUPTED)
    return code


def _main(argv: Sequence[str] | None) -> int:
    command = "?"
    try:
        args = build_parser().parse_args(
            _join_negative_values(sys.argv[1:] if argv is None else argv)
        )
        command = args.command
        from jaxseg._io import InputError

        try:
            return _evaluate(args) if command == "evaluate" else _demo(args)
        except InputError as e:
            print(f"{PROG} {command}: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:
        if os.environ.get("JAXSEG_DEBUG"):
            raise
        print(
            f"{PROG} {command}: unexpected error: {type(e).__name__}: "
            f"{' '.join(str(e).split())[:300]} (set JAXSEG_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _end_process(code: int, *, now: bool = False) -> None:
    """``os._exit(code)`` after flushing, while a ``jaxseg-`` worker thread is still alive
    (or at once with ``now``: after Ctrl-C).

    A worker may be inside JAX (compiling or running a distance metric). The
    normal interpreter exit then runs JAX's clean-up and the C++ destructors
    under its feet, which kills the process with SIGABRT or SIGSEGV instead of
    the intended status. Ending without that finalisation is safe here: every
    output file is written completely (rename of a finished temporary file)
    before the command returns, or not at all, and the workers write nothing.
    After Ctrl-C the interrupt may have cut an import or a library call short
    anywhere (BLAS or XLA threads half started), so the process never runs the
    interpreter's finalisation then.
    """
    alive = any(t.name.startswith("jaxseg-") and t.is_alive() for t in threading.enumerate())
    if not (now or alive):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the exit flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no real stdout
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
