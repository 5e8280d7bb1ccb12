"""Time ``jaxseg evaluate --metrics …hd95,assd,nsd,boundary_iou`` on volumes of many sizes.

``python -m benchmarks.evaluate_distance [--cases 20] [--classes 3]`` writes
``--cases`` 3-D ``.npy`` label / prediction pairs, each of a different shape
(every axis between 24 and 64), runs the command line on them in a fresh
process and prints the seconds per case (compilations included: the cost a
user pays on a folder of mixed sizes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = "iou,dice,hd95,assd,nsd,boundary_iou"


def make_cases(root: Path, cases: int, classes: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``cases`` pairs of distinct shapes: ellipsoids per class, a shifted prediction."""
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = []
    while len(shapes) < cases:
        shape = tuple(int(s) for s in rng.integers(24, 65, 3))
        if shape not in shapes:
            shapes.append(shape)
    for d in ("pred", "label"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, shape in enumerate(shapes):
        grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
        label = np.zeros(shape, np.uint8)
        pred = np.zeros(shape, np.uint8)
        for c in range(1, classes):
            centre = rng.uniform(0.3, 0.7, 3) * shape
            radii = rng.uniform(0.15, 0.3, 3) * shape
            shift = rng.normal(0, 1.5, 3)
            label[(((grid - centre) / radii) ** 2).sum(-1) <= 1] = c
            pred[(((grid - centre - shift) / radii) ** 2).sum(-1) <= 1] = c
        np.save(root / "label" / f"case_{i:02d}.npy", label)
        np.save(root / "pred" / f"case_{i:02d}.npy", pred)
    return shapes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--metrics", default=METRICS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_cases(root, args.cases, args.classes)
        cmd = [sys.executable, "-m", "jaxseg", "evaluate", str(root / "pred"), str(root / "label")]
        cmd += ["-C", str(args.classes), "--metrics", args.metrics, "-q"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(done.stderr)
    print(done.stdout)
    per_case = wall / args.cases
    print(f"{args.cases} cases of {args.cases} shapes: {wall:.1f} s, {per_case:.2f} s per case")


if __name__ == "__main__":
    main()
