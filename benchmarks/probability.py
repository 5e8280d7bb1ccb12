"""Workload P1, probability histograms: ``python -m benchmarks.probability [--quick | --tiny]``.

* ``P1 update``: ``ProbabilityHistogram.from_logits`` (softmax, 100 bins) on the W1
  logits f32 ``[8, 512, 512, 19]`` (~5% labels 255), against the W1 confusion update
  ``ConfusionMatrix.from_logits`` on the same arrays (target: at most 2x);
* ``P1 readout``: every curve and calibration error from a state (AUROC, AP, ROC and
  PR curves, marginal and top-label ECE, reliability diagram, best Dice threshold),
  one jitted call (target: under 10 ms).

Both rows are timed interleaved in the same process on the same data; the histogram's
counts are checked against the confusion matrix first (the top-label correct counts
are the confusion matrix's diagonal, the marginal positives its row sums). A third
row, the softmax of the logits alone (summed), is the floor of any histogram update:
every class's probability of every pixel has to be computed before it is binned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

import jaxseg
from benchmarks.run import IGNORE, make_data
from benchmarks.timing import Interleaver, cheap_compiles, time_jax

SHAPES = {"full": (8, 512, 512), "quick": (2, 256, 256), "tiny": (1, 16, 16)}
NUM_CLASSES = 19
NUM_BINS = 100
UPDATE_BOUND = 2.0
READOUT_BOUND_S = 0.010


def _update(logits, labels):
    return jaxseg.ProbabilityHistogram.from_logits(
        logits, labels, num_bins=NUM_BINS, ignore_index=IGNORE
    )


def _confusion(logits, labels):
    return jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=IGNORE)


def _softmax_floor(logits):
    """The softmax of every pixel and class, summed: work every histogram update does."""
    return jax.numpy.sum(jax.nn.softmax(logits, axis=-1))


def _readout(h):
    return (
        jaxseg.auroc(h),
        jaxseg.average_precision(h),
        jaxseg.roc_curve(h),
        jaxseg.precision_recall_curve(h),
        jaxseg.expected_calibration_error(h),
        jaxseg.expected_calibration_error(h, mode="top_label"),
        jaxseg.reliability_diagram(h, mode="top_label"),
        jaxseg.best_threshold(h),
    )


def run(mode: str, reps: int) -> dict:
    data = make_data("logits", SHAPES[mode], NUM_CLASSES)
    logits, labels = jax.device_put(data["logits"]), jax.device_put(data["labels"])
    session = Interleaver()
    hist_t, h = time_jax(_update, (logits, labels), reps, session)
    cm_t, cm = time_jax(_confusion, (logits, labels), reps, session)
    floor_t, _ = time_jax(_softmax_floor, (logits,), reps, session)
    session.run(reps)
    read_t, _ = time_jax(_readout, (h,), reps)
    # check: top-label correct counts per bin sum to the diagonal, positives to the rows
    m = cm.to_numpy()
    correct = int(np.asarray(jaxseg._counts.to_int64_numpy(h.top_counts))[1].sum())
    positives = h.to_numpy()[1].sum(-1)
    ok = correct == int(np.trace(m)) and np.array_equal(positives, m.sum(-1) + cm.void_to_numpy())
    ratio = hist_t.median / cm_t.median
    return {
        "mode": mode,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "shape": [*SHAPES[mode], NUM_CLASSES],
        "num_bins": NUM_BINS,
        "check": "ok" if ok else "MISMATCH",
        "rows": {
            "histogram update": _row(hist_t),
            "confusion update": _row(cm_t),
            "softmax alone (floor)": _row(floor_t),
            "curves + ECE readout": _row(read_t),
        },
        "floor_ratio": floor_t.median / cm_t.median,
        "targets": [
            {
                "target": f"P1: time(histogram) / time(confusion) <= {UPDATE_BOUND}",
                "measured": ratio,
                "met": ratio <= UPDATE_BOUND,
            },
            {
                "target": f"P1: readout <= {READOUT_BOUND_S * 1e3:.0f} ms",
                "measured": read_t.median,
                "met": read_t.median <= READOUT_BOUND_S,
            },
        ],
    }


def _row(t) -> dict:
    return {
        "median_s": t.median,
        "min_s": t.min,
        "compile_s": t.compile_s,
        "memory_bytes": t.memory_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller shapes")
    size.add_argument("--tiny", action="store_true", help="toy shapes, a smoke run")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write results.json here")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    reps = args.reps or (1 if args.tiny else 9)
    with cheap_compiles(args.tiny):
        result = run(mode, reps)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "probability.json").write_text(text)
    return 0 if result["check"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
