"""Run the jaxseg benchmarks: ``python -m benchmarks.run [--quick] [--workload W1 ...]``.

Workloads (DESIGN §6):

* ``W1`` confusion update from logits f32 ``[8, 512, 512, 19]``, ~5% labels 255;
* ``W2`` the same from logits ``[2, 512, 512, 150]``;
* ``W3`` confusion update from int32 predicted and true label maps ``[8, 512, 512]``, C=19;
* ``L1`` / ``L2`` ``value_and_grad`` of Dice + cross-entropy on the data of W1 / W2;
* ``W4`` both (the confusion update and Dice + CE) from logits ``[1, 512, 512, 1000]``
  (LVIS / ADE20K-full class counts), with compile-time targets.

Peers run in their fastest documented configuration next to their default one
(keras ``MeanIoU`` on an outside ``jnp.argmax`` with ``sparse_y_pred=True``;
optax CE plain and masked; optax Dice with the one-hot targets made outside
the step); a ratio target against a peer holds against its fastest row.

Every row runs in the same process on the same data; every implementation is
checked against jaxseg (same counts, same loss values) before it is timed.
Peers that are not installed are skipped, and the output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")  # must precede any keras import

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg
from benchmarks.timing import (
    Interleaver,
    Timing,
    cheap_compiles,
    compile_jax,
    time_jax,
    time_numpy,
    time_torch,
)
from jaxseg import _kernels

IGNORE = 255

#: name -> (kind, shape, num_classes). Kinds: "logits", "labels", "loss".
FULL = {
    "W1": ("logits", (8, 512, 512), 19),
    "W2": ("logits", (2, 512, 512), 150),
    "W3": ("labels", (8, 512, 512), 19),
    "L1": ("loss", (8, 512, 512), 19),
    "L2": ("loss", (2, 512, 512), 150),
    "W4": ("large", (1, 512, 512), 1000),
}
QUICK = {
    "W1": ("logits", (2, 256, 256), 19),
    "W2": ("logits", (1, 128, 256), 150),
    "W3": ("labels", (2, 256, 256), 19),
    "L1": ("loss", (1, 256, 256), 19),
    "L2": ("loss", (1, 64, 128), 150),
    "W4": ("large", (1, 64, 64), 1000),
}
TINY = {
    "W1": ("logits", (2, 16, 16), 19),
    "W2": ("logits", (1, 16, 16), 150),
    "W3": ("labels", (2, 16, 16), 19),
    "L1": ("loss", (2, 16, 16), 19),
    "L2": ("loss", (1, 16, 16), 150),
    "W4": ("large", (1, 8, 8), 1000),
}

#: A peer's configurations: a target against a peer holds against the fastest of its rows.
KERAS = ("keras MeanIoU", "keras MeanIoU sparse")
OPTAX_DICE = ("optax dice", "optax dice outside one-hot")
OPTAX_CE = ("optax CE masked", "optax CE plain")

#: (workload, numerator row(s), denominator row(s), bound, "<=" or ">="), ratio of
#: medians; a tuple of rows stands for the fastest of them (a peer's best configuration).
#: The L2 rows apply the L1 bounds at C = 150 for information; they are not stated targets.
TARGETS = [
    ("W1", "jaxseg", "read roof", 3.5, "<="),
    ("W1", "keras MeanIoU", "jaxseg", 4.5, ">="),
    ("W1", KERAS, "jaxseg", 2.5, ">="),
    ("W1", "torchmetrics", "jaxseg", 15.0, ">="),
    ("W2", "jaxseg", "read roof", 3.0, "<="),
    ("W3", "keras MeanIoU", "jaxseg", 4.0, ">="),
    ("L1", "jaxseg dice", OPTAX_DICE, 0.6, "<="),
    ("L1", "jaxseg dice", OPTAX_CE, 1.1, "<="),
    ("L1", "jaxseg CE", OPTAX_CE, 0.8, "<="),
    ("L2", "jaxseg dice", OPTAX_DICE, 0.6, "<="),
    ("L2", "jaxseg dice", OPTAX_CE, 1.1, "<="),
    ("L2", "jaxseg CE", OPTAX_CE, 0.8, "<="),
    ("W4", "jaxseg", "jnp.argmax + from_predictions", 1.2, "<="),
    ("W4", "jaxseg dice+CE", OPTAX_CE, 1.2, "<="),
]
#: Memory targets: (workload, row, bound in bytes or reference row(s), factor); a tuple
#: of rows stands for the one with the least memory. Against optax's Dice with the
#: one-hot made in the step only: made outside, the one-hot is an input (pixels x C x 4
#: bytes) that XLA's temp-buffer figure does not show.
MEMORY_TARGETS = [
    ("W1", "jaxseg", 64 * 2**20, None),
    ("L1", "jaxseg dice", "optax dice", 0.6),
    ("L2", "jaxseg dice", "optax dice", 0.6),
]
#: Compile-time targets: (workload, row, bound in seconds).
COMPILE_TARGETS = [
    ("W4", "jaxseg", 5.0),
    ("W4", "jaxseg dice+CE", 5.0),
]


#: Workloads whose bounds are reported but are not acceptance targets.
INFORMATIONAL = ("L2",)


@dataclasses.dataclass
class Row:
    workload: str
    name: str
    timing: Timing | None = None
    check: str = ""
    skipped: str = ""
    #: The jaxseg row the "x jaxseg" column divides by.
    base: str = "jaxseg"


def make_data(kind: str, shape: tuple[int, ...], c: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Labels with ~5% ignored pixels, logits that mostly agree with them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=shape, dtype=np.int32)
    labels[rng.random(shape) < 0.05] = IGNORE
    if kind == "labels":
        preds = np.where(rng.random(shape) < 0.8, labels % c, rng.integers(0, c, size=shape))
        return {"preds": preds.astype(np.int32), "labels": labels}
    logits = rng.standard_normal((*shape, c), dtype=np.float32)
    # Make the prediction right for ~70% of pixels, as for a trained model.
    boost = (rng.random(shape) < 0.7) & (labels != IGNORE)
    np.put_along_axis(
        logits, np.where(labels == IGNORE, 0, labels)[..., None], 3.0 * boost[..., None], -1
    )
    return {"logits": logits, "labels": labels}


def numpy_counts(preds: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    ok = (labels >= 0) & (labels < c) & (labels != IGNORE)  # 255 is a class id when C > 255
    index = labels[ok].astype(np.int64) * c + preds[ok]
    return np.bincount(index, minlength=c * c).reshape(c, c)


# -- confusion-update rows -------------------------------------------------------------------


def count_rows(name: str, data: dict[str, np.ndarray], c: int, reps: int) -> list[Row]:
    from_logits = "logits" in data
    labels = jnp.asarray(data["labels"])
    x = jnp.asarray(data["logits"] if from_logits else data["preds"])
    if from_logits:
        ref = numpy_counts(np.argmax(data["logits"], -1), data["labels"], c)
    else:
        ref = numpy_counts(data["preds"], data["labels"], c)
    rows: list[Row] = []
    session = Interleaver()  # the workload's rows are timed together, in rotation

    def check(counts: Any) -> str:
        got = np.asarray(counts).astype(np.int64)
        return "ok" if np.array_equal(got, ref) else f"MISMATCH ({np.abs(got - ref).sum()} off)"

    def add_jax(row_name: str, fn: Callable[..., Any], readout: Callable[[Any], Any] | None):
        timing, out = time_jax(fn, (x, labels), reps, session)
        rows.append(Row(name, row_name, timing, "n/a" if readout is None else check(readout(out))))

    # The read roof: touch every input byte once.
    if from_logits:
        add_jax("read roof", lambda a, b: jnp.sum(a), None)
    else:
        add_jax("read roof", lambda a, b: jnp.sum(a) + jnp.sum(b), None)

    if from_logits:

        def ours(a, b):
            return jaxseg.ConfusionMatrix.from_logits(a, b, ignore_index=IGNORE)
    else:

        def ours(a, b):
            return jaxseg.ConfusionMatrix.from_predictions(a, b, num_classes=c, ignore_index=IGNORE)

    add_jax("jaxseg", ours, lambda s: s.to_numpy())
    if from_logits:

        def plain(a, b):
            preds = jnp.argmax(a, axis=-1)
            return jaxseg.ConfusionMatrix.from_predictions(
                preds, b, num_classes=c, ignore_index=IGNORE
            )

        add_jax("jnp.argmax + from_predictions", plain, lambda s: s.to_numpy())

    # Every kernel path on this backend, to show what the per-platform choice rests on.
    argmaxes = [m for m in _kernels.ARGMAX_METHODS if m] if from_logits else [None]
    counts = [m for m in _kernels.COUNT_METHODS if m]
    if c > _kernels.UNROLLED_MAX_CLASSES:
        # The unrolled networks compile for seconds and run for seconds at C = 1000, and
        # the one-hot matmul is ~C^2 flops per pixel: shown by benchmarks.argmax_sweep.
        argmaxes = [m for m in argmaxes if m not in ("tree", "chain")]
        counts = ["scatter"]
    for am in argmaxes:
        for cm in counts:

            def path(a, b, am=am, cm=cm):
                preds = _kernels.argmax_classes(a, method=am) if from_logits else a
                return _kernels.confusion_counts(
                    preds, b, num_classes=c, ignore_index=(IGNORE,), where=None, method=cm
                )[0]

            label = f"path argmax={am}, count={cm}" if from_logits else f"path count={cm}"
            add_jax(label, path, lambda out: out)

    rows.extend(keras_row(name, x, labels, c, reps, from_logits, check, session))
    rows.extend(torch_row(name, data, c, reps, from_logits, check, session))

    def np_update():
        p = np.argmax(data["logits"], -1) if from_logits else data["preds"]
        return numpy_counts(p, data["labels"], c)

    timing, out = time_numpy(np_update, reps, session)
    rows.append(Row(name, "numpy argmax+bincount", timing, check(out)))
    session.run(reps)
    return rows


def keras_row(name, x, labels, c, reps, from_logits, check, session=None) -> list[Row]:
    """keras ``MeanIoU``, its stateless update jitted.

    From logits in two configurations: its own argmax path (``sparse_y_pred=False``,
    "keras MeanIoU") and its fastest documented one, ``sparse_y_pred=True`` after an
    outside ``jnp.argmax`` in the same jitted step ("keras MeanIoU sparse").
    """
    try:
        import keras
    except ImportError:
        return [Row(name, "keras MeanIoU", skipped="keras not installed")]
    if keras.backend.backend() != "jax":
        return [Row(name, "keras MeanIoU", skipped=f"keras backend is {keras.backend.backend()!r}")]
    configs = [("keras MeanIoU", not from_logits, lambda a: a)]
    if from_logits:
        configs.append(("keras MeanIoU sparse", True, lambda a: jnp.argmax(a, axis=-1)))
    rows = []
    for row_name, sparse, prepare in configs:
        metric = keras.metrics.MeanIoU(num_classes=c, ignore_class=IGNORE, sparse_y_pred=sparse)
        variables = [jnp.asarray(v.value) for v in metric.variables]

        def update(a, b, metric=metric, variables=variables, prepare=prepare):
            return metric.stateless_update_state(variables, b, prepare(a))

        with warnings.catch_warnings():  # keras asks for int64 internally; JAX gives int32
            warnings.filterwarnings("ignore", "Explicitly requested dtype int64", UserWarning)
            timing, out = time_jax(update, (x, labels), reps, session)
        total = next(o for o in out if o.ndim == 2)
        rows.append(Row(name, row_name, timing, check(np.rint(np.asarray(total)))))
    return rows


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_row(name, data, c, reps, from_logits, check, session=None) -> list[Row]:
    try:
        import torch
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        return [Row(name, "torchmetrics", skipped="torch / torchmetrics not installed")]
    device = torch_device()
    metric = MulticlassJaccardIndex(
        num_classes=c, ignore_index=IGNORE, average="none", validate_args=False
    ).to(device)
    target = torch.from_numpy(data["labels"].astype(np.int64)).to(device)
    if from_logits:  # torchmetrics is channels-first; the transpose is not timed
        preds = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data["logits"], -1, 1)))
    else:
        preds = torch.from_numpy(data["preds"].astype(np.int64))
    preds = preds.to(device)

    def update() -> Any:
        with torch.inference_mode():
            return metric.update(preds, target)

    metric.reset()
    update()
    counts = metric.confmat.cpu().numpy()  # checked; the timed calls reset before each update
    timing, _ = time_torch(update, reps, device, metric.reset, session)
    timing.memory_note += f" ({device})"
    return [Row(name, "torchmetrics", timing, check(counts))]


# -- loss rows -------------------------------------------------------------------------------


#: Pixels per side of the crop on which W4's losses are checked against optax (the
#: optax references are not jitted, and their [pixels, C] temporaries are GBs at full size).
CHECK_CROP = 64


def loss_rows(
    name: str, data: dict[str, np.ndarray], c: int, reps: int, *, large: bool = False
) -> list[Row]:
    """``value_and_grad`` rows. ``large`` (W4): no optax Dice rows (several GB of
    ``[pixels, C]`` temporaries at C = 1000), a focal-loss row, checks on a crop."""
    import optax

    x = jnp.asarray(data["logits"])
    labels = jnp.asarray(data["labels"])
    dice = getattr(jaxseg, "dice_loss", None)
    ce = getattr(jaxseg, "cross_entropy_loss", None)
    rows: list[Row] = []

    def optax_dice(a, b):  # ignored labels have an all-zero one-hot row: the closest optax has
        return jnp.mean(optax.losses.dice_loss(a, jax.nn.one_hot(b, c)))

    def optax_dice_outside(a, hot):  # its best case: one-hot targets made outside the step
        return jnp.mean(optax.losses.dice_loss(a, hot))

    def optax_ce(a, b):  # masked: the fair comparison for ignore_index
        valid = b != IGNORE
        per_pixel = optax.softmax_cross_entropy_with_integer_labels(
            a, jnp.where(valid, b, 0), where=valid
        )
        axes = tuple(range(1, b.ndim))
        total = jnp.sum(jnp.where(valid, per_pixel, 0.0), axis=axes)
        return jnp.mean(total / jnp.maximum(jnp.sum(valid, axis=axes), 1).astype(jnp.float32))

    def optax_ce_plain(a, b):  # no ignore handling (ignored labels read as class 0)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(a, b))

    plain_labels = jnp.where(labels == IGNORE, 0, labels)
    fns: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
    if dice is not None:
        fns["jaxseg dice"] = (lambda a, b: jnp.mean(dice(a, b, ignore_index=IGNORE)), (x, labels))
    if ce is not None:
        fns["jaxseg CE"] = (lambda a, b: jnp.mean(ce(a, b, ignore_index=IGNORE)), (x, labels))
    if dice is not None and ce is not None:
        fns["jaxseg dice+CE"] = (
            lambda a, b: fns["jaxseg dice"][0](a, b) + fns["jaxseg CE"][0](a, b),
            (x, labels),
        )
    focal = getattr(jaxseg, "focal_loss", None)
    if large and focal is not None:
        fns["jaxseg focal"] = (
            lambda a, b: jnp.mean(focal(a, b, gamma=2.0, ignore_index=IGNORE)),
            (x, labels),
        )
    if not large:
        fns["optax dice"] = (optax_dice, (x, labels))
        fns["optax dice outside one-hot"] = (
            optax_dice_outside,
            (x, jax.nn.one_hot(labels, c, dtype=x.dtype)),
        )
    fns["optax CE masked"] = (optax_ce, (x, labels))
    fns["optax CE plain"] = (optax_ce_plain, (x, plain_labels))
    if not large:
        fns["optax dice+CE"] = (lambda a, b: optax_dice(a, b) + optax_ce(a, b), (x, labels))
    if large:
        crop = (slice(None), slice(0, CHECK_CROP), slice(0, CHECK_CROP))
        checks = loss_checks(x[crop], labels[crop], c, dice, ce, optax_ce)
        checks = {k: f"{val} on a {CHECK_CROP}x{CHECK_CROP} crop" for k, val in checks.items()}
    else:
        checks = loss_checks(x, labels, c, dice, ce, optax_ce)
    session = Interleaver()  # the workload's rows are timed together, in rotation
    for row_name, (fn, args) in fns.items():
        grad_fn = jax.value_and_grad(fn)
        timing, _ = time_jax(grad_fn, args, reps, session)
        rows.append(
            Row(name, row_name, timing, checks.get(row_name, "reference"), base="jaxseg dice+CE")
        )
    session.run(reps)
    if dice is None or ce is None:
        missing = [n for n, f in [("dice_loss", dice), ("cross_entropy_loss", ce)] if f is None]
        rows.append(Row(name, "jaxseg " + ", ".join(missing), skipped="not in this jaxseg"))
    return rows


def loss_checks(x, labels, c, dice, ce, optax_ce) -> dict[str, str]:
    """jaxseg against optax where the conventions coincide (values and gradients)."""
    import optax

    out = {}
    clean = jnp.where(labels == IGNORE, 0, labels)  # optax's Dice has no ignore
    if dice is not None:
        # Ours: (2TP + s) / (2TP + FP + FN + s); optax (alpha = beta = 1/2): s_optax = s / 2.
        v1, g1 = _value_and_grad(lambda a: jnp.mean(dice(a, clean, smooth=2.0)), x)
        v2, g2 = _value_and_grad(
            lambda a: jnp.mean(optax.losses.dice_loss(a, jax.nn.one_hot(clean, c), smooth=1.0)), x
        )
        out["jaxseg dice"] = _close(v1, v2, g1, g2)
    if ce is not None:
        v1, g1 = _value_and_grad(lambda a: jnp.mean(ce(a, labels, ignore_index=IGNORE)), x)
        v2, g2 = _value_and_grad(lambda a: optax_ce(a, labels), x)
        out["jaxseg CE"] = _close(v1, v2, g1, g2)
    if "jaxseg dice" in out and "jaxseg CE" in out:
        out["jaxseg dice+CE"] = "sum of the two"
    return out


def _value_and_grad(fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """Value and gradient of ``fn`` at ``x``, jitted: one compilation instead of one per
    operation (op-by-op dispatch compiled hundreds of small programs per check)."""
    return compile_jax(jax.value_and_grad(fn), x)(x)


def _close(v1, v2, g1, g2) -> str:
    dv = float(jnp.abs(v1 - v2))
    scale = float(jnp.max(jnp.abs(g2))) + 1e-30
    dg = float(jnp.max(jnp.abs(g1 - g2))) / scale
    ok = dv <= 1e-4 * max(1.0, abs(float(v2))) and dg <= 1e-3
    return f"{'ok' if ok else 'MISMATCH'} vs optax (value {dv:.1e}, grad {dg:.1e} rel)"


# -- reporting -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "jaxseg_version": jaxseg.__version__,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for mod in ("keras", "torch", "torchmetrics", "optax"):
        try:
            info[f"{mod}_version"] = __import__(mod).__version__
        except ImportError:
            info[f"{mod}_version"] = None
    try:
        info["torch_device"] = torch_device()
    except ImportError:
        info["torch_device"] = None
    return info


def _by_name(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {(r.workload, r.name): r for r in rows if r.timing is not None}


def _target(
    w: str,
    text: str,
    measured: float,
    met: bool,
    rows: list[str] | None = None,
    best: list[str] | None = None,
) -> dict[str, Any]:
    """One target's entry; ``rows`` names the rows the ratio was taken between and
    ``best`` those of them that won a "best of" group (a peer's best configuration)."""
    return {
        "target": f"{w}: {text}",
        "measured": measured,
        "met": met,
        "informational": w in INFORMATIONAL,
        "rows": rows or [],
        "best": best or [],
    }


def _best(
    found: dict[tuple[str, str], Row], w: str, names: str | tuple[str, ...], key: str
) -> tuple[float, str, str] | None:
    """The least ``key`` ("median" time or "memory") over the rows ``names`` that ran.

    Returns the value, the label of the target's side (the row's name, or for
    several rows ``best of a | b``) and the row that gave the value.
    """
    group = (names,) if isinstance(names, str) else names
    values = []
    for n in group:
        if (w, n) not in found:
            continue
        t = found[w, n].timing
        value = t.median if key == "median" else t.memory_bytes
        if value:
            values.append((value, n))
    if not values:
        return None
    value, n = min(values)
    return value, n if isinstance(names, str) else f"best of {' | '.join(group)}", n


def evaluate_targets(rows: list[Row]) -> list[dict[str, Any]]:
    found = _by_name(rows)
    results = []
    for w, num, den, bound, op in TARGETS:
        a, b = _best(found, w, num, "median"), _best(found, w, den, "median")
        if a is None or b is None:
            continue
        ratio = a[0] / b[0]
        met = ratio <= bound if op == "<=" else ratio >= bound
        text = f"time({a[1]}) / time({b[1]}) {op} {bound}"
        best = [r for names, r in ((num, a[2]), (den, b[2])) if not isinstance(names, str)]
        results.append(_target(w, text, ratio, met, [a[2], b[2]], best))
    for w, row, ref, factor in MEMORY_TARGETS:
        if (w, row) not in found or found[w, row].timing.memory_bytes is None:
            continue
        mem = found[w, row].timing.memory_bytes
        if factor is not None:
            b = _best(found, w, ref, "memory")
            if b is None:
                continue
            ratio = mem / b[0]
            text = f"memory({row}) / memory({b[1]}) <= {factor}"
            best = [] if isinstance(ref, str) else [b[2]]
            results.append(_target(w, text, ratio, ratio <= factor, [row, b[2]], best))
        else:
            text = f"memory({row}) <= {ref / 2**20:.0f} MiB"
            results.append(_target(w, text, mem / 2**20, mem <= ref))
    for w, row, bound in COMPILE_TARGETS:
        if (w, row) not in found or found[w, row].timing.compile_s is None:
            continue
        compile_s = found[w, row].timing.compile_s
        text = f"compile({row}) <= {bound} s"
        results.append(_target(w, text, compile_s, compile_s <= bound))
    return results


def _fmt_mem(t: Timing) -> str:
    if t.memory_bytes is None:
        return "n/a"
    return f"{t.memory_bytes / 2**20:.1f}"


def markdown(rows: list[Row], info: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    found = _by_name(rows)
    lines = [
        f"Backend `{info['backend']}` ({info['device_kind']}), {info['cpu_count']} CPUs, "
        f"jax {info['jax_version']}, {info['date']}, load average at start "
        f"{info['load_average_start']}.",
        "",
        "| workload | implementation | median ms | min ms | x jaxseg | x roof | compile s "
        "| extra MiB | check |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r.timing is None:
            lines.append(f"| {r.workload} | {r.name} | skipped: {r.skipped} | | | | | | |")
            continue
        t = r.timing
        base = found.get((r.workload, r.base))
        roof = found.get((r.workload, "read roof"))
        rel = f"{t.median / base.timing.median:.2f}" if base else ""
        to_roof = f"{t.median / roof.timing.median:.2f}" if roof else ""
        comp = f"{t.compile_s:.2f}" if t.compile_s is not None else ""
        lines.append(
            f"| {r.workload} | {r.name} | {t.median * 1e3:.2f} | {t.min * 1e3:.2f} | {rel} "
            f"| {to_roof} | {comp} | {_fmt_mem(t)} | {r.check} |"
        )
    notes = sorted({r.timing.memory_note for r in rows if r.timing is not None})
    lines += ["", "Extra memory: " + "; ".join(notes) + "."]
    if targets:
        lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
        for t in targets:
            if t.get("informational"):
                met = ("yes" if t["met"] else "no") + " (informational)"
            else:
                met = "yes" if t["met"] else "NO"
            target = t["target"]
            if t.get("best"):  # name the peer configuration the target was held against
                target += f" (best: {', '.join(t['best'])})"
            lines.append(f"| {target} | {t['measured']:.2f} | {met} |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[Row], info: dict[str, Any], targets: list[dict[str, Any]], cfg) -> dict:
    out_rows = []
    for r in rows:
        item: dict[str, Any] = {"workload": r.workload, "name": r.name, "check": r.check}
        if r.timing is None:
            item["skipped"] = r.skipped
        else:
            t = r.timing
            item.update(
                median_ms=t.median * 1e3,
                min_ms=t.min * 1e3,
                times_ms=[s * 1e3 for s in t.times],
                compile_s=t.compile_s,
                memory_bytes=t.memory_bytes,
                memory_note=t.memory_note,
            )
        out_rows.append(item)
    return {"machine": info, "config": cfg, "rows": out_rows, "targets": targets}


def run(
    workloads: list[str], *, sizes: dict[str, Any], reps: int, log: Callable[[str], Any] = print
) -> tuple[list[Row], dict[str, Any], list[dict[str, Any]]]:
    info = machine_info()
    rows: list[Row] = []
    for w in workloads:
        kind, shape, c = sizes[w]
        log(f"{w}: {kind} {shape} C={c} ...")
        data = make_data(kind, shape, c)
        if kind in ("logits", "labels", "large"):
            rows.extend(count_rows(w, data, c, reps))
        if kind in ("loss", "large"):
            rows.extend(loss_rows(w, data, c, reps, large=kind == "large"))
    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return rows, info, evaluate_targets(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repetitions")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: toy shapes, 1 repetition, XLA's expensive passes off (times mean nothing)",
    )
    parser.add_argument("--workload", nargs="+", choices=list(FULL), default=list(FULL))
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per row")
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"))
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    reps = args.reps or (1 if args.tiny else 3 if args.quick else 15)
    with cheap_compiles(args.tiny):
        rows, info, targets = run(args.workload, sizes=sizes, reps=reps)
    cfg = {
        "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "reps": reps,
        "workloads": {
            w: {"kind": sizes[w][0], "shape": sizes[w][1], "num_classes": sizes[w][2]}
            for w in args.workload
        },
    }
    text = markdown(rows, info, targets)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(to_json(rows, info, targets, cfg), indent=2))
    print(text)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    bad = [r for r in rows if "MISMATCH" in r.check]
    if bad:
        print("correctness check failed: " + ", ".join(f"{r.workload} {r.name}" for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
