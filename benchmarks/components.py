"""Workload O1, connected components: ``python -m benchmarks.components [--quick | --tiny]``.

Rows (every ratio measured in the same run, on the same cores, timed interleaved):

* ``jaxseg.connected_components`` of ``[8, 512, 512]`` (vmapped 2-D) and of
  ``128^3``, at connectivity 1 and at full connectivity (8 / 26 neighbours);
* ``scipy.ndimage.label`` on the same masks, one image at a time;
* cc3d's ``connected_components`` (if installed), one image at a time.

Masks: half-full smoothed noise (blobs, the shape of segmentations) and uniform
random half-full masks (many small components near the percolation threshold).
Target (DESIGN O1): jaxseg <= 3x SciPy per image on the same cores. Every jaxseg
row is first checked equal to SciPy (labels and count); a mismatch exits 1.
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
from benchmarks.timing import Interleaver, cheap_compiles, time_jax, time_numpy

TARGET = 3.0


def masks(shape: tuple[int, ...], kind: str, batched: bool, seed: int = 0) -> np.ndarray:
    """Half-full boolean masks: ``"blobs"`` (smoothed noise) or ``"random"`` (i.i.d.)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.random(shape) < 0.5
    noise = rng.standard_normal(shape)
    sigma = [0.0 if batched and k == 0 else 4.0 for k in range(len(shape))]
    z = ndimage.gaussian_filter(noise, sigma)
    return z > np.median(z)


def rows_for(shape, batched, kind, connectivity, reps) -> list[dict[str, Any]]:
    from scipy import ndimage

    mask = masks(shape, kind, batched)
    items = list(mask) if batched else [mask]
    ndim = len(shape) - batched
    workload = f"O1 {kind} c={connectivity}"

    def ours(m):
        fn = lambda x: jaxseg.connected_components(x, connectivity=connectivity)  # noqa: E731
        return jax.vmap(fn)(m) if batched else fn(m)

    structure = ndimage.generate_binary_structure(ndim, connectivity)
    session = Interleaver()
    t_ours, (labels, counts) = time_jax(ours, (mask,), reps, session)
    t_scipy, ref = time_numpy(lambda: [ndimage.label(m, structure) for m in items], reps, session)
    got = np.asarray(labels).reshape(len(items), *items[0].shape)
    counts = np.asarray(counts).reshape(-1)
    ok = all(
        np.array_equal(got[k], ref[k][0]) and counts[k] == ref[k][1] for k in range(len(items))
    )
    check = "ok: equal to SciPy" if ok else "MISMATCH vs SciPy"
    out = [
        _row(workload, shape, "jaxseg", t_ours, check),
        _row(workload, shape, "scipy ndimage.label", t_scipy, ""),
    ]
    try:
        import cc3d
    except ImportError:
        out.append({"workload": workload, "shape": list(shape), "name": "cc3d", "skipped": True})
    else:
        neighbours = {1: 2, 2: (4, 8), 3: (6, 18, 26)}[ndim]
        neighbours = neighbours if ndim == 1 else neighbours[connectivity - 1]
        if ndim == 1:  # cc3d takes 2-D or 3-D arrays
            items = [m[None] for m in items]
            neighbours = 4
        t_cc3d, _ = time_numpy(
            lambda: [cc3d.connected_components(m, connectivity=neighbours) for m in items],
            reps,
            session,
        )
        out.append(_row(workload, shape, "cc3d", t_cc3d, ""))
    session.run(reps)
    for r in out:
        if "timing" in r:
            r.update(median_s=r["timing"].median, min_s=r["timing"].min)
    return out


def _row(workload, shape, name, timing, check) -> dict[str, Any]:
    return {
        "workload": workload,
        "shape": list(shape),
        "name": name,
        "timing": timing,
        "compile_s": timing.compile_s,
        "check": check,
    }


def targets(rows) -> list[dict[str, Any]]:
    by = {(r["workload"], tuple(r["shape"]), r["name"]): r for r in rows if "median_s" in r}
    out = []
    for key in [k for k in by if k[2] == "jaxseg"]:
        scipy = by[(key[0], key[1], "scipy ndimage.label")]
        r = by[key]["median_s"] / scipy["median_s"]
        out.append(
            {
                "target": f"{key[0]} {list(key[1])} <= {TARGET}x SciPy",
                "ratio": r,
                "met": r <= TARGET,
            }
        )
        cc3d = by.get((key[0], key[1], "cc3d"))
        if cc3d is not None:
            r = by[key]["median_s"] / cc3d["median_s"]
            out.append({"target": f"{key[0]} {list(key[1])} vs cc3d", "ratio": r, "met": None})
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
    lines += ["", "| target | ratio (jaxseg / peer) | met |", "|---|---|---|"]
    for t in tgts:
        met = "informational" if t["met"] is None else "yes" if t["met"] else "no"
        lines.append(f"| {t['target']} | {t['ratio']:.2f} | {met} |")
    return "\n".join(lines) + "\n"


#: Shapes per mode: a vmapped batch of 2-D images, one 3-D volume.
SHAPES = {
    "tiny": ((2, 16, 16), (8, 8, 8)),
    "quick": ((2, 128, 128), (48, 48, 48)),
    "full": ((8, 512, 512), (128, 128, 128)),
}


def run(mode: str, reps: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for shape, batched in zip(SHAPES[mode], (True, False), strict=True):
        ndim = len(shape) - batched
        for kind in ("blobs",) if mode == "tiny" else ("blobs", "random"):
            for connectivity in sorted({1, ndim}):
                rows += rows_for(shape, batched, kind, connectivity, reps)
    for r in rows:
        r.pop("timing", None)
    return {"rows": rows, "targets": targets(rows), "mode": mode, "cpus": _cpus()}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: toy shapes, 1 repetition, XLA's expensive passes off (times mean nothing)",
    )
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7)")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.md / .json")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    reps = args.reps or (1 if args.tiny else 7)
    with cheap_compiles(args.tiny):
        result = run(mode, reps)
    text = markdown(result["rows"], result["targets"])
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "components.md").write_text(text)
        (args.out / "components.json").write_text(json.dumps(result, indent=1))
    bad = [r for r in result["rows"] if "MISMATCH" in r.get("check", "")]
    if bad:
        print("correctness check failed: " + ", ".join(f"{r['workload']} {r['name']}" for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
