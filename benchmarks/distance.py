"""Workload D1, distances and boundaries: ``python -m benchmarks.distance [--quick | --tiny]``.

Rows (every ratio measured in the same run, on the same cores):

* exact EDT of ``[8, 512, 512]`` (vmapped 2-D) and of ``128^3``, 0.1% and 30% of
  the elements set, against ``scipy.ndimage.distance_transform_edt`` (and the
  ``edt`` package if installed), with the brute-force min-plus (the CPU algorithm
  before the windowed passes) as a "before" row, all timed interleaved;
* HD95 + surface Dice of ``[2, 128, 128, 128]``, C = 4, against MONAI's CPU
  ``compute_hausdorff_distance`` + ``compute_surface_dice``;
* boundary IoU counts at C = 150, ``[2, 512, 512]``, against the W3 confusion
  update (``ConfusionMatrix.from_predictions``, int32 ``[8, 512, 512]``, C = 19).

Targets (docs/benchmarks.md): EDT <= 1.5x SciPy; HD95 + NSD >= 2x faster than
MONAI; boundary IoU <= 3x the W3 update. Every jaxseg row is checked against its
peer first (``ok`` or ``MISMATCH``); a mismatch makes the run exit 1.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import jax
import numpy as np

import jaxseg
from benchmarks.timing import Interleaver, bench_main, cpu_count, time_jax, time_numpy

#: Largest differences accepted against the peers: absolute for the EDT (float32
#: distances of at most a few hundred), relative for HD95 and NSD.
EDT_ATOL = 1e-3
SURFACE_RTOL = 1e-4


def _masks(shape, density, seed=0):
    return np.random.default_rng(seed).random(shape) < density


def _label_maps(shape, c, seed=0):
    """Piecewise-constant maps: blocks of random classes, upsampled (blob-like)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, c, size=(shape[0], *[max(1, n // 16) for n in shape[1:]]))
    out = coarse
    for axis in range(1, len(shape)):
        out = np.repeat(out, shape[axis] // coarse.shape[axis], axis=axis)
    return out.astype(np.int32)


#: Seed densities of the EDT rows: sparse (SciPy's best case) and dense.
EDT_DENSITIES = (0.001, 0.3)


def edt_rows(shape, batched, reps) -> list[dict[str, Any]]:
    """EDT rows per seed density: jaxseg, the brute-force min-plus it replaced on
    CPU (the "before" row), SciPy and the ``edt`` package, timed interleaved."""
    from scipy import ndimage

    from jaxseg import _distance

    spatial = shape[1:] if batched else shape
    spacing = (1.0,) * len(spatial)
    session = Interleaver()
    rows = []
    for density in EDT_DENSITIES:
        density = max(density, 8 / np.prod(spatial))  # a few seeds even at toy shapes
        label = f"{density:.1%} set"
        mask = _masks(shape, density)

        def before(m):
            return jax.numpy.sqrt(_distance._squared_edt_min_plus(m, spacing))

        ours = jaxseg.distance_transform
        if batched:
            ours, before = jax.vmap(ours), jax.vmap(before)
        t_ours, out = time_jax(ours, (mask,), reps, session)
        t_before, out_before = time_jax(before, (mask,), reps, session)
        items = list(mask) if batched else [mask]
        t_scipy, ref = time_numpy(
            lambda items=items: [ndimage.distance_transform_edt(~m) for m in items], reps, session
        )
        want = np.stack([np.asarray(r) for r in ref]).reshape(shape)
        ref_rows = [
            ("jaxseg", t_ours, out),
            ("jaxseg brute-force min-plus (before)", t_before, out_before),
        ]
        for name, timing, got in ref_rows:
            err = float(np.max(np.abs(np.asarray(got) - want)))
            verdict = "ok" if err <= EDT_ATOL else "MISMATCH"
            check = f"{verdict}: max |diff| vs SciPy {err:.1e}"
            rows.append(_row("EDT", shape, f"{name}, {label}", timing, check))
        rows.append(_row("EDT", shape, f"scipy distance_transform_edt, {label}", t_scipy, ""))
        try:
            import edt as edt_pkg

            t_edt, _ = time_numpy(
                lambda items=items: [edt_pkg.edt(~m, parallel=1) for m in items], reps, session
            )
            rows.append(_row("EDT", shape, f"edt package (1 thread), {label}", t_edt, ""))
        except ImportError:
            rows.append(
                {"workload": "EDT", "shape": list(shape), "name": "edt package", "skipped": True}
            )
    session.run(reps)
    for r in rows:  # the timings were filled in by the session
        if "timing" in r:
            t = r.pop("timing")
            r["median_s"], r["min_s"] = t.median, t.min
    return rows


def surface_rows(shape, c, reps) -> list[dict[str, Any]]:
    pred = _label_maps(shape, c, seed=1)
    label = _label_maps(shape, c, seed=2)

    def ours(p, g):
        return (
            jaxseg.hausdorff_distance(p, g, num_classes=c, percentile=95),
            jaxseg.surface_dice(p, g, num_classes=c, tolerance=1.0),
        )

    t_ours, out = time_jax(ours, (pred, label), reps)
    rows = [_row("HD95+NSD", shape, "jaxseg", t_ours, "")]
    try:
        import torch
        from monai.metrics import compute_hausdorff_distance, compute_surface_dice
    except ImportError:
        rows.append({"workload": "HD95+NSD", "name": "MONAI", "skipped": True})
        return rows

    def onehot(x):
        return torch.from_numpy(np.moveaxis(np.eye(c, dtype=np.float32)[x], -1, 1).copy())

    p1, g1 = onehot(pred), onehot(label)

    def monai():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd = compute_hausdorff_distance(p1, g1, include_background=True, percentile=95)
            nsd = compute_surface_dice(p1, g1, [1.0] * c, include_background=True)
        return hd.numpy(), nsd.numpy()

    t_monai, ref = time_numpy(monai, max(1, reps // 2))
    diff = 0.0
    for k in range(2):
        a, b = np.asarray(out[k], np.float64), np.asarray(ref[k], np.float64)
        fin = np.isfinite(a) & np.isfinite(b)
        diff = max(
            diff, float(np.max(np.abs(a - b)[fin] / np.maximum(np.abs(b[fin]), 1e-9), initial=0))
        )
    verdict = "ok" if diff <= SURFACE_RTOL else "MISMATCH"
    rows[0]["check"] = f"{verdict}: max rel diff vs MONAI {diff:.1e}"
    rows.append(_row("HD95+NSD", shape, "MONAI compute_*", t_monai, ""))
    return rows


def _band_counts_before(preds, labels, c, d):
    """The boundary counts before the doubling band, for the "before" row: two
    running min / max windows (``lax.reduce_window``, ``O(d)`` per element) per map
    and one ``bincount`` of the concatenated label- and prediction-side keys."""
    from jax import lax

    jnp = jax.numpy

    def band(x):
        lo, hi = x, x
        for axis in (1, 2):
            dims, pad = [1, 1, 1], [(0, 0)] * 3
            dims[axis], pad[axis] = 2 * d + 1, (d, d)
            lo = lax.reduce_window(lo, np.iinfo(np.int32).max, lax.min, dims, (1, 1, 1), pad)
            hi = lax.reduce_window(hi, np.iinfo(np.int32).min, lax.max, dims, (1, 1, 1), pad)
        near = np.zeros(x.shape[1:], bool)
        for axis, n in enumerate(x.shape[1:]):
            i = np.arange(n).reshape([n if a == axis else 1 for a in range(2)])
            near = near | (i < d) | (i >= n - d)
        return (lo != hi) | near[None]

    g_band, p_band = band(labels), band(preds)
    same = preds == labels
    key_l = jnp.where(g_band, jnp.where(g_band & p_band & same, 0, 2 * c) + labels, 3 * c)
    key_p = jnp.where(p_band & ~(g_band & same), c + preds, 3 * c)
    keys = jnp.concatenate([key_l.reshape(-1), key_p.reshape(-1)])
    return jnp.bincount(keys, length=3 * c + 1)[: 3 * c].reshape(3, c)


def boundary_rows(shape, c, w3_shape, reps) -> list[dict[str, Any]]:
    """Boundary counts (now and before the doubling band) and the W3 update, interleaved."""
    pred = _label_maps(shape, c, seed=3)
    label = _label_maps(shape, c, seed=4)
    from jaxseg import _boundary, _counts

    d = _boundary.band_width(*shape[1:], 0.02)
    session = Interleaver()
    t_b, got = time_jax(
        lambda p, g: jaxseg.BoundaryStats.from_predictions(p, g, num_classes=c).counts,
        (pred, label),
        reps,
        session,
    )
    t_before, before = time_jax(
        lambda p, g: _band_counts_before(p, g, c, d), (pred, label), reps, session
    )
    rng = np.random.default_rng(5)
    p3 = rng.integers(0, 19, size=w3_shape).astype(np.int32)
    g3 = rng.integers(0, 19, size=w3_shape).astype(np.int32)
    t_w3, _ = time_jax(
        lambda p, g: jaxseg.ConfusionMatrix.from_predictions(p, g, num_classes=19).counts,
        (p3, g3),
        reps,
        session,
    )
    session.run(reps)
    got = _counts.to_int64_numpy(got)[:3]
    check = "ok" if np.array_equal(got, np.asarray(before)) else "MISMATCH"
    rows = [
        _row("BoundaryIoU", shape, f"jaxseg BoundaryStats C={c}", t_b, f"{check}: = before"),
        _row("BoundaryIoU", shape, f"running min/max band (before) C={c}", t_before, ""),
        _row("BoundaryIoU", w3_shape, "W3 confusion update C=19", t_w3, ""),
    ]
    for r in rows:  # the timings were filled in by the session
        if "timing" in r:
            t = r.pop("timing")
            r["median_s"], r["min_s"] = t.median, t.min
    return rows


def _row(workload, shape, name, timing, check) -> dict[str, Any]:
    row = {"workload": workload, "shape": list(shape), "name": name}
    if timing.times:
        row["median_s"], row["min_s"] = timing.median, timing.min
    else:  # timed later by an Interleaver: filled in after its run
        row["timing"] = timing
    return {**row, "compile_s": timing.compile_s, "check": check}


def targets(rows) -> list[dict[str, Any]]:
    by = {(r["workload"], tuple(r["shape"]), r["name"]): r for r in rows if "median_s" in r}
    out = []

    def ratio(a, b):
        return by[a]["median_s"] / by[b]["median_s"] if a in by and b in by else None

    for key in [k for k in by if k[0] == "EDT" and k[2].startswith("jaxseg, ")]:
        label = key[2].removeprefix("jaxseg, ")
        r = ratio(key, ("EDT", key[1], f"scipy distance_transform_edt, {label}"))
        name = f"EDT {list(key[1])} {label} <= 1.5x SciPy"
        out.append({"target": name, "ratio": r, "met": r <= 1.5})
    for key in [k for k in by if k[0] == "HD95+NSD" and k[2] == "jaxseg"]:
        r = ratio(("HD95+NSD", key[1], "MONAI compute_*"), key)
        if r is not None:
            out.append({"target": "HD95+NSD >= 2x faster than MONAI", "ratio": r, "met": r >= 2})
    b = [k for k in by if k[0] == "BoundaryIoU" and k[2].startswith("jaxseg")]
    w = [k for k in by if k[0] == "BoundaryIoU" and k[2].startswith("W3")]
    if b and w:
        r = ratio(b[0], w[0])
        out.append({"target": "boundary IoU <= 3x W3 update", "ratio": r, "met": r <= 3})
    return out


def markdown(rows, tgts) -> str:
    lines = [
        "| workload | shape | row | median ms | min ms | compile s | check |",
        "|---" * 7 + "|",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['workload']} | | {r['name']} | skipped (not installed) | | | |")
            continue
        lines.append(
            f"| {r['workload']} | {r['shape']} | {r['name']} | {r['median_s'] * 1e3:.1f} | "
            f"{r['min_s'] * 1e3:.1f} | {r['compile_s'] or 0:.2f} | {r['check']} |"
        )
    lines += ["", "| target | ratio | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['ratio']:.2f} | {'yes' if t['met'] else 'no'} |" for t in tgts]
    return "\n".join(lines) + "\n"


#: Shapes per mode: 2-D EDT (vmapped), 3-D EDT, HD95 + NSD, boundary band, W3 update.
SHAPES = {
    "tiny": ((1, 16, 16), (8, 8, 8), (1, 8, 8, 8), (1, 16, 16), (1, 16, 16)),
    "quick": ((2, 64, 64), (24, 24, 24), (1, 20, 20, 16), (1, 64, 64), (2, 64, 64)),
    "full": ((8, 512, 512), (128, 128, 128), (2, 128, 128, 128), (2, 512, 512), (8, 512, 512)),
}


def run(mode: str, reps: int) -> dict[str, Any]:
    edt_2d, edt_3d, surf, band, w3 = SHAPES[mode]
    rows = edt_rows(edt_2d, True, reps) + edt_rows(edt_3d, False, reps)
    rows += surface_rows(surf, 4, reps)
    rows += boundary_rows(band, 150, w3, reps)
    tgts = targets(rows)
    return {"rows": rows, "targets": tgts, "mode": mode, "cpus": cpu_count()}


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, __doc__, "distance", run, markdown, default_reps=5)


if __name__ == "__main__":
    sys.exit(main())
