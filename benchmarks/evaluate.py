"""E1: ``jaxseg evaluate`` end to end (whole process) against the peers' own scripts.

Workloads (DESIGN §6):

- **cityscapes**: images of 1024×2048 in the Cityscapes layout
  (``gtFine/val/<city>/<city>_000000_0000NN_gtFine_labelIds.png``, predictions
  ``results/<city>_000000_0000NN_leftImg8bit.png`` in labelIds with some void
  predictions), evaluated by ``jaxseg evaluate --label-map cityscapes`` and by
  cityscapesScripts' ``evalPixelLevelSemanticLabeling.evaluateImgLists`` (its
  instance-level score off: it needs instance files and jaxseg does not compute
  it). Target: jaxseg ≥ 2× faster.
- **sizes**: images of as many different sizes (PASCAL VOC-like palette PNGs,
  21 classes, 255 borders), against a NumPy + Pillow ``bincount`` script.
  Target: jaxseg ≤ 1.5× its time.
- **memory**: peak resident memory of the jaxseg process over an import-only
  baseline, against 3× one decoded image pair. Target: below.

Each command runs as a fresh process (import included), timed by wall clock,
alternating the tools round by round; the median and the minimum are reported.
Run ``python -m benchmarks.evaluate [--quick]``; writes ``evaluate.md`` and
``evaluate.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

CITIES = ("frankfurt", "lindau", "munster")
CS_EVAL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


def _blocky(rng: np.random.Generator, h: int, w: int, ids: np.ndarray, cell: int) -> np.ndarray:
    """A label map of rectangular regions (compresses like real annotations)."""
    small = rng.choice(ids, size=(-(-h // cell), -(-w // cell)))
    return np.repeat(np.repeat(small, cell, 0), cell, 1)[:h, :w]


def _perturb(rng: np.random.Generator, label: np.ndarray, ids: np.ndarray, cell: int) -> np.ndarray:
    h, w = label.shape
    wrong = _blocky(rng, h, w, np.array([0, 1]), cell).astype(bool)
    return np.where(wrong, _blocky(rng, h, w, ids, cell), label)


def make_cityscapes(root: Path, n: int, h: int = 1024, w: int = 2048, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    all_ids = np.arange(34)
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        stem = f"{city}_000000_{i:06d}"
        gt_dir = root / "gtFine" / "val" / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        label = _blocky(rng, h, w, all_ids, 64).astype(np.uint8)
        pred = _perturb(rng, label, all_ids, 32).astype(np.uint8)  # ids 0-6 etc. are void
        Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(pred).save(root / "results" / f"{stem}_leftImg8bit.png")


def make_sizes(root: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    ids = np.arange(21)
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    (root / "pred").mkdir(exist_ok=True)
    palette = [v for i in range(256) for v in (i, (37 * i) % 256, (91 * i) % 256)]
    for i in range(n):
        h, w = 200 + i, 500 - (i * 7) % 150  # every image a different size
        label = _blocky(rng, h, w, ids, 24).astype(np.uint8)
        border = _blocky(rng, h, w, np.array([0, 0, 0, 1]), 8).astype(bool)
        label[border & (rng.random((h, w)) < 0.5)] = 255
        pred = _perturb(rng, np.where(label == 255, 0, label), ids, 16).astype(np.uint8)
        for arr, path in ((label, root / "SegmentationClass"), (pred, root / "pred")):
            img = Image.frombytes("P", (w, h), arr.tobytes())
            img.putpalette(palette)
            img.save(path / f"2007_{i:06d}.png")


CITYSCAPES_SCRIPT = textwrap.dedent(
    """
    import glob, os, sys
    import numpy as np
    np.in1d = np.isin  # removed in NumPy 2; cityscapesScripts still calls it
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    root = sys.argv[1]
    gts = sorted(glob.glob(os.path.join(root, "gtFine", "val", "*", "*_gtFine_labelIds.png")))
    preds = [os.path.join(root, "results", os.path.basename(g).replace(
        "_gtFine_labelIds.png", "_leftImg8bit.png")) for g in gts]
    args = ev.args
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    result = ev.evaluateImgLists(preds, gts, args)
    print("miou", result["averageScoreClasses"])
    """
)

NUMPY_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from PIL import Image
    pred_dir, label_dir, c = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cm = np.zeros(c * c, np.int64)
    for name in sorted(os.listdir(label_dir)):
        label = np.asarray(Image.open(os.path.join(label_dir, name))).astype(np.int64)
        pred = np.asarray(Image.open(os.path.join(pred_dir, name))).astype(np.int64)
        keep = label != 255
        cm += np.bincount(label[keep] * c + pred[keep], minlength=c * c)
    cm = cm.reshape(c, c)
    tp = np.diag(cm)
    iou = tp / (cm.sum(0) + cm.sum(1) - tp)
    print("miou", np.nanmean(iou))
    """
)


# Peak RSS is read from VmHWM in the child itself: wait4's ru_maxrss also counts the
# parent's memory at fork (before exec), which hides everything below it.
_HWM = (
    "import atexit, runpy, sys\n"
    "def _hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM'):\n"
    "            sys.stderr.write('VMHWM %s\\n' % line.split()[1])\n"
    "atexit.register(_hwm)\n"
    "sys.argv = sys.argv[1:]\n"
    "if sys.argv[0] == '-m':\n"
    "    sys.argv = sys.argv[1:]\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _run_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, int, float, str]:
    """Wall time, peak RSS (bytes), CPU time (user + system) and stdout of one fresh process."""
    hwm = os.path.exists("/proc/self/status") and cmd[1] != "-c"
    if hwm:
        cmd = [cmd[0], "-c", _HWM, *cmd[1:]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    rss = usage.ru_maxrss * 1024
    for line in err.decode().splitlines():
        if line.startswith("VMHWM "):
            rss = int(line.split()[1]) * 1024
    return wall, rss, usage.ru_utime + usage.ru_stime, out.decode()


def _time(cmds: dict[str, list[str]], reps: int, env: dict[str, str]) -> dict[str, dict]:
    results: dict[str, dict] = {k: {"times": [], "rss": [], "cpu": []} for k in cmds}
    for _ in range(reps):
        for name, cmd in cmds.items():
            wall, rss, cpu, out = _run_rss(cmd, env)
            results[name]["cpu"].append(cpu)
            results[name]["times"].append(wall)
            results[name]["rss"].append(rss)
            results[name]["stdout"] = out[-400:]
    for r in results.values():
        r["median"] = float(np.median(r["times"]))
        r["min"] = float(np.min(r["times"]))
        r["peak_rss"] = int(np.max(r["rss"]))
        r["cpu_median"] = float(np.median(r["cpu"]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluate", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images and repetitions")
    parser.add_argument("--out", default="benchmark-results", help="folder for the results")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    n_cs, n_sizes, reps = (20, 60, 2) if args.quick else (100, 200, 3)
    reps = args.reps or reps
    py = sys.executable
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    have_cs = True
    try:
        import cityscapesscripts  # noqa: F401
    except ImportError:
        have_cs = False
    tmp = Path(tempfile.mkdtemp(prefix="jaxseg-e1-"))
    report: dict = {"n_cityscapes": n_cs, "n_sizes": n_sizes, "reps": reps, "cpus": os.cpu_count()}
    try:
        cs_root, voc_root = tmp / "cityscapes", tmp / "voc"
        make_cityscapes(cs_root, n_cs)
        make_sizes(voc_root, n_sizes)
        ours_cs = [
            py, "-m", "jaxseg", "evaluate", str(cs_root / "results"),
            str(cs_root / "gtFine" / "val"), "--label-map", "cityscapes",
            "--pred-pattern", "{name}_leftImg8bit.png",
            "--label-pattern", "{name}_gtFine_labelIds.png", "-q",
        ]  # fmt: skip
        cmds = {"jaxseg": ours_cs}
        if have_cs:
            script = tmp / "cs_eval.py"
            script.write_text(CITYSCAPES_SCRIPT)
            cmds["cityscapesScripts"] = [py, str(script), str(cs_root)]
        report["cityscapes"] = _time(cmds, reps, env)
        np_script = tmp / "np_eval.py"
        np_script.write_text(NUMPY_SCRIPT)
        pred, lab = str(voc_root / "pred"), str(voc_root / "SegmentationClass")
        report["sizes"] = _time(
            {
                "jaxseg": [
                    py,
                    "-m",
                    "jaxseg",
                    "evaluate",
                    pred,
                    lab,
                    "-C",
                    "21",
                    "--ignore-index",
                    "255",
                    "-q",
                ],
                "numpy+pillow": [py, str(np_script), pred, lab, "21"],
            },
            reps,
            env,
        )
        importer = tmp / "import_only.py"
        importer.write_text("import PIL.Image, jaxseg.cli, jaxseg._evaluate\n")
        base = _time({"import": [py, str(importer)]}, 1, env)
        report["baseline_rss"] = base["import"]["peak_rss"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    pair_bytes = 2 * 1024 * 2048  # one decoded uint8 pair
    cs = report["cityscapes"]
    sz = report["sizes"]
    extra = cs["jaxseg"]["peak_rss"] - report["baseline_rss"]
    targets = []
    if "cityscapesScripts" in cs:
        speedup = cs["cityscapesScripts"]["median"] / cs["jaxseg"]["median"]
        targets.append(("E1 cityscapes: ≥ 2× faster than cityscapesScripts", speedup, speedup >= 2))
    ratio = sz["jaxseg"]["median"] / sz["numpy+pillow"]["median"]
    targets.append((f"E1 {n_sizes} sizes: ≤ 1.5× NumPy + Pillow", ratio, ratio <= 1.5))
    mem = extra / pair_bytes
    targets.append(("E1 memory: ≤ 3× one decoded pair (extra RSS / pair)", mem, mem <= 3))
    report["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in targets]

    lines = [
        f"# E1: jaxseg evaluate, whole process ({os.cpu_count()} CPUs, median of {reps})",
        "",
        "| workload | tool | median s | min s | CPU s (median) | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for wname, res in (("cityscapes", cs), ("sizes", sz)):
        for tool, r in res.items():
            lines.append(
                f"| {wname} | {tool} | {r['median']:.2f} | {r['min']:.2f} | "
                f"{r['cpu_median']:.2f} | "
                f"{r['peak_rss'] / 2**20:.0f} |"
            )
    lines += ["", f"import-only baseline RSS: {report['baseline_rss'] / 2**20:.0f} MB", ""]
    lines += ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m:.2f} | {'yes' if ok else 'NO'} |" for t, m, ok in targets]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluate.md").write_text(text)
    (out / "evaluate.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
