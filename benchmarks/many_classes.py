"""Workload M1, many classes: ``python -m benchmarks.many_classes [--quick | --tiny]``.

Rows (every ratio measured in the same run, on the same cores): the update of
:class:`jaxseg.ClassCounts` (per-class sums, ``O(C)``) and of
:class:`jaxseg.ConfusionMatrix` (``C x C``) from int32 predicted and true label
maps ``[1, 512, 512]`` at ``C = 3688`` (ADE20K-full), about 5% of the pixels
ignored and 5% void predictions; and NumPy's four ``bincount`` calls of the same
per-class sums, for scale. The state sizes are reported too.

Targets (docs/benchmarks.md): ``ClassCounts`` >= 20x faster than
``ConfusionMatrix.from_predictions``, state <= 1 MB. Both jaxseg rows are checked
first: the per-class sums must equal the matrix's (``ok`` or ``MISMATCH``), and a
mismatch makes the run exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxseg
from benchmarks.timing import cheap_compiles, time_jax, time_numpy

IGNORE = -1
#: ``(shape, num_classes)`` per mode.
SIZES = {"tiny": ((1, 16, 16), 200), "quick": ((1, 128, 128), 3688), "full": ((1, 512, 512), 3688)}


def make_data(shape: tuple[int, ...], c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with a long-tailed class frequency; predictions right 70% of the time."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, c + 1)  # Zipf: a few frequent classes, many rare ones
    labels = rng.choice(c, size=shape, p=freq / freq.sum())
    preds = np.where(rng.random(shape) < 0.7, labels, rng.integers(0, c, shape))
    preds[rng.random(shape) < 0.05] = c + 7  # void predictions (misses)
    labels[rng.random(shape) < 0.05] = IGNORE
    return preds.astype(np.int32), labels.astype(np.int32)


def _row(name: str, shape, c: int, timing, check: str, state_bytes: int | None) -> dict:
    return {
        "workload": "M1",
        "shape": list(shape),
        "num_classes": c,
        "name": name,
        "median_s": timing.median,
        "min_s": timing.min,
        "compile_s": timing.compile_s,
        "state_bytes": state_bytes,
        "check": check,
    }


def _sums_of_matrix(cm) -> np.ndarray:
    """The per-class rows of ``ClassCounts`` read from a confusion matrix (exact, on the host)."""
    m, void = cm.to_numpy(), cm.void_to_numpy()
    return np.stack([m.sum(1) + void, m.sum(0), np.diagonal(m), void])


def run(mode: str, reps: int) -> dict[str, Any]:
    shape, c = SIZES[mode]
    preds, labels = make_data(shape, c)
    p, y = jax.device_put(preds), jax.device_put(labels)
    kw = {"num_classes": c, "ignore_index": IGNORE}

    t_cc, cc = time_jax(lambda a, b: jaxseg.ClassCounts.from_predictions(a, b, **kw), (p, y), reps)
    t_cm, cm = time_jax(
        lambda a, b: jaxseg.ConfusionMatrix.from_predictions(a, b, **kw), (p, y), reps
    )
    same = np.array_equal(cc.counts_to_numpy(), _sums_of_matrix(cm))
    check = "ok vs ConfusionMatrix" if same else "MISMATCH vs ConfusionMatrix"

    def numpy_sums():
        ok = labels != IGNORE
        lab, prd = labels[ok], preds[ok]
        pred_in = (prd >= 0) & (prd < c)
        return np.stack(
            [
                np.bincount(lab, minlength=c),
                np.bincount(prd[pred_in], minlength=c),
                np.bincount(lab[prd == lab], minlength=c),
                np.bincount(lab[~pred_in], minlength=c),
            ]
        )

    t_np, sums = time_numpy(numpy_sums, reps)
    np_check = "ok" if np.array_equal(sums, cc.counts_to_numpy()) else "MISMATCH"

    def nbytes(state) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(state))

    rows = [
        _row("jaxseg ClassCounts", shape, c, t_cc, check, nbytes(cc)),
        _row("jaxseg ConfusionMatrix", shape, c, t_cm, "ok (reference)", nbytes(cm)),
        _row("numpy 4x bincount", shape, c, t_np, np_check, None),
    ]
    speedup = t_cm.median / t_cc.median
    tgts = [
        {"target": "ClassCounts >= 20x faster than ConfusionMatrix", "ratio": speedup,
         "met": speedup >= 20},
        {"target": "ClassCounts state <= 1 MB", "ratio": nbytes(cc) / 1e6,
         "met": nbytes(cc) <= 1_000_000},
    ]  # fmt: skip
    return {"rows": rows, "targets": tgts, "mode": mode, "backend": jax.default_backend()}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| workload | shape | C | row | median ms | min ms | compile s | state | check |",
        "|---" * 9 + "|",
    ]
    for r in result["rows"]:
        state = "" if r["state_bytes"] is None else f"{r['state_bytes'] / 1e6:.3f} MB"
        lines.append(
            f"| {r['workload']} | {r['shape']} | {r['num_classes']} | {r['name']} | "
            f"{r['median_s'] * 1e3:.2f} | {r['min_s'] * 1e3:.2f} | {r['compile_s'] or 0:.2f} | "
            f"{state} | {r['check']} |"
        )
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['ratio']:.3g} | {'yes' if t['met'] else 'no'} |"
        for t in result["targets"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="[1, 128, 128], a few seconds")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: toy shapes, C = 200, 1 repetition, XLA's expensive passes off",
    )
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="folder for many_classes.md/.json")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    reps = args.reps or (1 if args.tiny else 10)
    with cheap_compiles(args.tiny):
        result = run(mode, reps)
    text = markdown(result)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "many_classes.md").write_text(text)
        (args.out / "many_classes.json").write_text(json.dumps(result, indent=1))
    bad = [r for r in result["rows"] if "MISMATCH" in r["check"]]
    if bad:
        print("correctness check failed: " + ", ".join(r["name"] for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
