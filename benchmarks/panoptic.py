"""O1 (panoptic): ``jaxseg evaluate --panoptic`` against cityscapesScripts, whole process.

Workload (DESIGN §6): 100 Cityscapes-size (1024×2048) panoptic pairs in the real
layout: the reference as ``createPanopticImgs.py`` writes it
(``gtFine/cityscapes_panoptic_val/<name>_gtFine_panoptic.png`` + ``gtFine/
cityscapes_panoptic_val.json``; stuff and crowd segments carry the category id,
thing instances ``category * 1000 + k``), the prediction in COCO panoptic result
format (``results/cityscapes_panoptic_val/<name>_panoptic.png`` + JSON, random
segment ids up to ``2^24 - 1``). Each scene has the Cityscapes mix: about ten
stuff segments (sky, building, vegetation, road, sidewalk, poles, signs, ...),
20-40 thing instances of mixed sizes, sometimes a crowd region, VOID (the ego
vehicle, a border). The prediction is the same scene drawn with perturbed
boundaries, jittered instances, some missed, split, relabelled or invented.

Both tools run as fresh processes (imports included) on the same cores, timed by
wall clock, alternating round by round; cityscapesScripts' own
``evalPanopticSemanticLabeling`` runs its pool of ``cpu_count()`` processes, jaxseg
as many reading threads (``--jobs``). Before timing, the two results are checked equal (PQ, SQ, RQ
of All / Things / Stuff and per category, to 1e-12). Target: jaxseg ≥ 3× faster.

``python -m benchmarks.panoptic [--quick | --tiny] [--out DIR]``; writes
``panoptic.md`` and ``panoptic.json``. ``--quick``: 20 pairs; ``--tiny``: 3 pairs
of 64×128, one round (the smoke run of the test suite).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D = 1000
CATEGORIES = [
    {"id": i, "name": n, "isthing": t, "supercategory": s, "color": [0, 0, 0]}
    for i, n, s, t in [
        (7, "road", "flat", 0),
        (8, "sidewalk", "flat", 0),
        (11, "building", "construction", 0),
        (12, "wall", "construction", 0),
        (13, "fence", "construction", 0),
        (17, "pole", "object", 0),
        (19, "traffic light", "object", 0),
        (20, "traffic sign", "object", 0),
        (21, "vegetation", "nature", 0),
        (22, "terrain", "nature", 0),
        (23, "sky", "sky", 0),
        (24, "person", "human", 1),
        (25, "rider", "human", 1),
        (26, "car", "vehicle", 1),
        (27, "truck", "vehicle", 1),
        (28, "bus", "vehicle", 1),
        (31, "train", "vehicle", 1),
        (32, "motorcycle", "vehicle", 1),
        (33, "bicycle", "vehicle", 1),
    ]
]
# thing categories with their frequency in a scene and typical size (height, width) at 1024 rows
THINGS = {24: (0.35, (120, 45)), 25: (0.05, (110, 50)), 26: (0.35, (110, 220)),
          27: (0.04, (200, 300)), 28: (0.03, (260, 380)), 31: (0.01, (260, 600)),
          32: (0.03, (90, 90)), 33: (0.14, (90, 90))}  # fmt: skip


def _scene(rng: np.random.Generator) -> dict:
    """Random parameters of one street scene (drawn twice: reference and prediction)."""
    n = int(rng.integers(20, 41))
    cats = rng.choice(list(THINGS), size=n, p=[p for p, _ in THINGS.values()])
    things = []
    for k, cat in enumerate(cats, start=1):
        scale = float(rng.uniform(0.15, 1.3)) ** 2
        th, tw = THINGS[int(cat)][1]
        things.append(
            {
                "id": int(cat) * D + k,
                "y": float(rng.uniform(0.42, 0.85)),
                "x": float(rng.uniform(0.0, 1.0)),
                "h": max(2.0, th * scale),
                "w": max(2.0, tw * scale),
                "ellipse": bool(rng.random() < 0.5),
            }
        )
    things.sort(key=lambda t: t["y"])  # nearer (lower) objects drawn last, in front
    return {
        "horizon": float(rng.uniform(0.38, 0.5)),
        "sky": float(rng.uniform(0.12, 0.3)),
        "phase": rng.uniform(0, 6.3, 4),
        "blocks": rng.choice([11, 11, 11, 21, 21, 12, 13], size=int(rng.integers(4, 9))),
        "poles": rng.uniform(0, 1, int(rng.integers(4, 12))),
        "terrain": bool(rng.random() < 0.5),
        "things": things,
        "crowd": int(rng.choice([24, 26])) if rng.random() < 0.4 else 0,
        "crowd_box": rng.uniform(0, 1, 2),
    }


def _draw(scene: dict, h: int, w: int, rng: np.random.Generator | None) -> np.ndarray:
    """Ids ``int64 [h, w]`` in the ``category * 1000 + instance`` convention; with ``rng``,
    the prediction's perturbations (shifted borders, jittered, missed, split, relabelled
    and invented instances, no VOID)."""
    jitter = (lambda s: float(rng.normal(0, s))) if rng is not None else (lambda s: 0.0)
    x = np.arange(w)[None, :] / w
    y = np.arange(h)[:, None] / h
    ph = scene["phase"] + (rng.normal(0, 0.05, 4) if rng is not None else 0)
    horizon = scene["horizon"] + 0.03 * np.sin(7 * x + ph[0]) + jitter(0.004)
    sky = scene["sky"] + 0.06 * np.sin(11 * x + ph[1]) + 0.02 * np.sin(37 * x + ph[2])
    block = scene["blocks"][
        np.minimum((x * len(scene["blocks"])).astype(int), len(scene["blocks"]) - 1)
    ]
    ids = np.where(y < sky, 23, block).astype(np.int64)
    road_half = 0.08 + 0.9 * np.clip(y - horizon, 0, None)
    centre = 0.5 + 0.04 * np.sin(ph[3])
    ground = np.where(np.abs(x - centre) < road_half, 7, 8)
    if scene["terrain"]:
        ground = np.where(
            (np.abs(x - centre) > road_half + 0.12) & (y > horizon + 0.05), 22, ground
        )
    ids = np.where(y >= horizon, ground, ids) * D
    for i, px in enumerate(scene["poles"]):
        x0 = int((px + jitter(0.002)) * w)
        top = int((scene["horizon"] - 0.25 - 0.05 * (i % 3)) * h)
        bottom = int((scene["horizon"] + 0.08) * h)
        ids[max(top, 0) : bottom, max(x0, 0) : x0 + max(2, w // 200)] = 17 * D
        sign = 19 if i % 3 == 0 else 20
        ids[max(top - h // 40, 0) : max(top, 1), max(x0 - w // 150, 0) : x0 + w // 150] = sign * D
    if scene["crowd"]:
        cy, cx = scene["crowd_box"]
        y0, x0 = int((0.45 + 0.3 * cy) * h), int(cx * 0.8 * w)
        cid = scene["crowd"] * D if rng is None else scene["crowd"] * D + 900
        ids[y0 : y0 + h // 10, x0 : x0 + w // 8] = cid
    extra = []
    if rng is not None:  # invented instances
        for k in range(int(rng.integers(0, 4))):
            cat = int(rng.choice([24, 26, 33]))
            extra.append({"id": cat * D + 950 + k, "y": float(rng.uniform(0.45, 0.8)),
                          "x": float(rng.uniform(0, 1)), "h": float(rng.uniform(5, 60)),
                          "w": float(rng.uniform(5, 60)), "ellipse": True})  # fmt: skip
    for t in [*scene["things"], *extra]:
        tid = t["id"]
        if rng is not None:
            r = rng.random()
            if r < 0.1:
                continue  # missed
            if r < 0.15:
                other = int(rng.choice(list(THINGS)))
                tid = other * D + tid % D  # wrong category
        scale = h / 1024
        th, tw = t["h"] * scale * (1 + jitter(0.06)), t["w"] * scale * (1 + jitter(0.06))
        cy, cx = t["y"] * h + jitter(2), t["x"] * w + jitter(2)
        y0, y1 = int(max(cy - th, 0)), int(min(cy, h))
        x0, x1 = int(max(cx - tw / 2, 0)), int(min(cx + tw / 2, w))
        if y1 <= y0 or x1 <= x0:
            continue
        sub = ids[y0:y1, x0:x1]
        if t["ellipse"]:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            mask = ((yy - (cy - th / 2)) / (th / 2)) ** 2 + ((xx - cx) / (tw / 2)) ** 2 <= 1
        else:
            mask = np.ones(sub.shape, bool)
        sub[mask] = tid
        if rng is not None and rng.random() < 0.05:  # split: the right half a new instance
            sub[:, sub.shape[1] // 2 :][mask[:, sub.shape[1] // 2 :]] = tid + 500
    if rng is None:  # VOID: the ego vehicle's bonnet and a border column
        yy = np.arange(h)[:, None] / h
        hood = yy > 0.9 + 0.08 * ((np.arange(w)[None, :] / w - 0.5) * 2) ** 2
        ids[hood] = 0
        ids[:, : max(1, w // 400)] = 0
    return ids


def _segments(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, areas = np.unique(ids, return_counts=True)
    keep = values != 0
    return values[keep], areas[keep]


def _rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)


def make_dataset(root: Path, n: int, h: int = 1024, w: int = 2048, seed: int = 0) -> dict:
    """Write ``n`` pairs in the real layouts; returns the JSON and folder paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    gt_dir = root / "gtFine" / "cityscapes_panoptic_val"
    pred_dir = root / "results" / "cityscapes_panoptic_val"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    images, gt_anns, pred_anns = [], [], []
    things = {c["id"] for c in CATEGORIES if c["isthing"]}
    for i in range(n):
        name = f"{('frankfurt', 'lindau', 'munster')[i % 3]}_000000_{i:06d}"
        scene = _scene(rng)
        label = _draw(scene, h, w, None)
        pred = _draw(scene, h, w, rng)
        # the reference as createPanopticImgs.py writes it: stuff and crowd carry the
        # category id, thing instances category * 1000 + k
        cs = np.where(label % D == 0, label // D, label)
        values, areas = _segments(cs)
        gt_info = [
            {"id": int(v), "category_id": int(v if v < D else v // D), "area": int(a),
             "iscrowd": int(v < D and v in things)}
            for v, a in zip(values, areas, strict=True)
        ]  # fmt: skip
        values, areas = _segments(pred)
        new = rng.choice(np.arange(1, 1 << 24), size=len(values), replace=False)
        lut_keys = np.searchsorted(values, pred)
        coco = np.where(pred == 0, 0, new[np.clip(lut_keys, 0, len(values) - 1)])
        pred_info = [
            {"id": int(s), "category_id": int(v // D), "area": int(a), "iscrowd": 0}
            for s, v, a in zip(new, values, areas, strict=True)
        ]
        Image.fromarray(_rgb(cs)).save(gt_dir / f"{name}_gtFine_panoptic.png")
        Image.fromarray(_rgb(coco)).save(pred_dir / f"{name}_panoptic.png")
        images.append({"id": name, "width": w, "height": h, "file_name": f"{name}_leftImg8bit.png"})
        gt_anns.append({"image_id": name, "file_name": f"{name}_gtFine_panoptic.png",
                        "segments_info": gt_info})  # fmt: skip
        pred_anns.append({"image_id": name, "file_name": f"{name}_panoptic.png",
                          "segments_info": pred_info})  # fmt: skip
    gt_json = root / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = root / "results" / "cityscapes_panoptic_val.json"
    gt_json.write_text(json.dumps({"images": images, "annotations": gt_anns,
                                   "categories": CATEGORIES}))  # fmt: skip
    pred_json.write_text(json.dumps({"annotations": pred_anns}))
    return {"gt_json": gt_json, "pred_json": pred_json}


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, its child processes included) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:5])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _check(ours: Path, theirs: Path) -> str:
    """'ok' when both results agree to 1e-12 (All / Things / Stuff and per category)."""
    a = json.loads(ours.read_text())
    b = json.loads(theirs.read_text())
    worst = 0.0
    for group in ("All", "Things", "Stuff"):
        for m in ("pq", "sq", "rq"):
            worst = max(worst, abs(a[group][m] - b[group][m]))
        if a[group]["n"] != b[group]["n"]:
            return f"MISMATCH: {group} n {a[group]['n']} vs {b[group]['n']}"
    for c in a["categories"]:
        ref = b["per_class"][str(c["id"])]
        for m in ("pq", "sq", "rq"):
            mine = 0.0 if c[m] is None else c[m]  # panopticapi writes 0 for empty categories
            worst = max(worst, abs(mine - ref[m]))
    return f"ok (max |diff| {worst:.1e})" if worst <= 1e-12 else f"MISMATCH: max |diff| {worst}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.panoptic", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="20 pairs, 2 rounds")
    mode.add_argument("--tiny", action="store_true", help="3 pairs of 64x128, 1 round")
    parser.add_argument("--out", default="benchmark-results", help="folder for the results")
    parser.add_argument("--reps", type=int, default=None, help="rounds (default 3)")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="generate into DIR and keep it (reused when it holds the pairs)",
    )
    args = parser.parse_args(argv)
    n, h, w, reps = (
        (3, 64, 128, 1)
        if args.tiny
        else (20, 1024, 2048, 2)
        if args.quick
        else (100, 1024, 2048, 3)
    )
    reps = args.reps or reps
    py = sys.executable
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    try:
        import cityscapesscripts  # noqa: F401

        have_cs = True
    except ImportError:
        have_cs = False
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="jaxseg-o1-pan-"))
    report: dict = {"pairs": n, "shape": [h, w], "reps": reps, "cpus": os.cpu_count()}
    try:
        t0 = time.perf_counter()
        gt_json = tmp / "gtFine" / "cityscapes_panoptic_val.json"
        if (
            args.keep
            and gt_json.exists()
            and len(json.loads(gt_json.read_text())["annotations"]) == n
        ):
            paths = {"gt_json": gt_json, "pred_json": tmp / "results" / gt_json.name}  # reuse
        else:
            paths = make_dataset(tmp, n, h, w)
        report["generate_s"] = time.perf_counter() - t0
        ours_json, theirs_json = tmp / "jaxseg.json", tmp / "cityscapes.json"
        cmds = {
            "jaxseg": [py, "-m", "jaxseg", "evaluate", "--panoptic", str(paths["pred_json"]),
                       str(paths["gt_json"]), "--json", str(ours_json), "-q",
                       "--jobs", str(os.cpu_count() or 1)],
        }  # fmt: skip
        if have_cs:
            cmds["cityscapesScripts"] = [
                py, "-m", "cityscapesscripts.evaluation.evalPanopticSemanticLabeling",
                "--gt-json-file", str(paths["gt_json"]),
                "--prediction-json-file", str(paths["pred_json"]),
                "--results_file", str(theirs_json),
            ]  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(reps):
            for name, cmd in cmds.items():
                wall, used = _run(cmd, env)
                times[name].append(wall)
                cpu[name].append(used)
        check = _check(ours_json, theirs_json) if have_cs else "cityscapesScripts not installed"
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for name, ts in times.items():
        rows.append({"tool": name, "median_s": float(np.median(ts)), "min_s": float(np.min(ts)),
                     "cpu_median_s": float(np.median(cpu[name])), "times": ts})  # fmt: skip
    report["rows"] = rows
    report["check"] = check
    targets = []
    if have_cs:
        speedup = float(np.median(times["cityscapesScripts"]) / np.median(times["jaxseg"]))
        targets.append({"target": "O1 panoptic: ≥ 3× faster than cityscapesScripts",
                        "measured": speedup, "met": speedup >= 3})  # fmt: skip
    report["targets"] = targets
    lines = [
        f"# O1 panoptic: {n} pairs of {h}×{w}, whole process ({os.cpu_count()} CPUs, "
        f"median of {reps}, interleaved)",
        "",
        "| tool | median s | min s | CPU s (median) |",
        "| --- | --- | --- | --- |",
        *(
            f"| {r['tool']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['cpu_median_s']:.2f} |"
            for r in rows
        ),
        "",
        f"check: {check}",
        "",
        *(
            f"- {t['target']}: {t['measured']:.2f}× ({'met' if t['met'] else 'NOT met'})"
            for t in targets
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "panoptic.md").write_text(text)
    (out / "panoptic.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if "MISMATCH" not in check else 1


if __name__ == "__main__":
    sys.exit(main())
