"""The command line's numbers equal the API's on the same data, for every score and option.

The report scores host float64 statistics with the library's own score
functions; these tests run ``jaxseg evaluate`` end to end on PNG folders (mixed
sizes, void predictions, ignored pixels, a background-only image) and compare
every number of the JSON and the per-image CSV with the public API
(:class:`jaxseg.ConfusionMatrix` and the score functions, float32 on the device).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import jaxseg
from jaxseg.cli import main

pytest.importorskip("PIL")
from PIL import Image

C = 4
SIZES = [(5, 7), (8, 8), (3, 11), (6, 4)]


def _folders(root: Path, *, binary: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    pairs = []
    for i, (h, w) in enumerate(SIZES):
        if binary:
            y = (rng.random((h, w)) < 0.4).astype(np.uint8) * 255
            p = np.where(rng.random((h, w)) < 0.7, y, 255 - y).astype(np.uint8)
        else:
            y = rng.integers(0, C, (h, w)).astype(np.uint8)
            y[rng.random((h, w)) < 0.1] = 255  # ignored pixels
            p = np.where(rng.random((h, w)) < 0.6, y, rng.integers(0, C, (h, w)))
            p = np.where(rng.random((h, w)) < 0.1, 250, p).astype(np.uint8)  # void ids
        if i == 3:  # a background-only image predicted perfectly
            y = np.zeros((h, w), np.uint8)
            p = y.copy()
        for d, a in (("p", p), ("l", y)):
            (root / d).mkdir(exist_ok=True)
            Image.fromarray(a).save(root / d / f"{i}.png")
        pairs.append((p.astype(np.int32), y.astype(np.int32)))
    return pairs


OPTIONS = {  # labels hold 255 (ignored pixels): every non-binary case ignores it
    "default": (["--ignore-index", "255"], {"ignore_index": 255}),
    "exclude_background": (
        ["--ignore-index", "255", "--exclude-background"],
        {"ignore_index": 255, "include_background": False},
    ),
    "ignore_class_1": (["--ignore-index", "1,255"], {"ignore_index": (1, 255)}),
    "binary": (["--binary"], {"include_background": False}),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_cli_report_equals_the_api(tmp_path, capsys, option):
    flags, kw = OPTIONS[option]
    binary = option == "binary"
    pairs = _folders(tmp_path, binary=binary)
    c = 2 if binary else C
    argv = [
        "evaluate",
        str(tmp_path / "p"),
        str(tmp_path / "l"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    argv += ["--per-image", str(tmp_path / "i.csv"), "--quiet", *flags]
    if not binary:
        argv += ["-C", str(c)]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())

    ignore = kw.get("ignore_index")
    include = kw.get("include_background", True)
    if binary:
        pairs = [(p // 255, y // 255) for p, y in pairs]
    states = [
        jaxseg.ConfusionMatrix.from_predictions(p, y, num_classes=c, ignore_index=ignore)
        for p, y in pairs
    ]
    cm = states[0]
    for s in states[1:]:
        cm = cm + s
    both = {"include_background": include}

    def close(got, want, what):
        want = np.asarray(want, np.float64)
        got = np.array([np.nan if g is None else g for g in np.atleast_1d(got)], np.float64)
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=2e-6, err_msg=what)

    for name, fn in (
        ("iou", jaxseg.iou),
        ("dice", jaxseg.dice),
        ("precision", jaxseg.precision),
        ("recall", jaxseg.recall),
    ):
        close([r[name] for r in report["classes"]], fn(cm, average=None), name)
    close(report["miou_dataset"], jaxseg.iou(cm, **both), "miou")
    close(report["mean_dice"], jaxseg.dice(cm, **both), "mean dice")
    close(report["pixel_accuracy"], jaxseg.pixel_accuracy(cm, **both), "pixel accuracy")
    close(report["mean_accuracy"], jaxseg.mean_accuracy(cm, **both), "mean accuracy")
    close(report["frequency_weighted_iou"], jaxseg.frequency_weighted_iou(cm, **both), "fwIoU")
    # image-wise: the API's per-image scores, then the mean over scored images
    per_image = [float(jaxseg.iou(s, **both)) for s in states]
    close([im["miou"] for im in report["images"]], per_image, "per-image mIoU")
    close(report["miou_imagewise"], np.nanmean(per_image), "image-wise mIoU")
    with open(tmp_path / "i.csv") as f:
        rows = list(csv.DictReader(f))
    # each image's per-class scores once (one eager score call per image, not per row)
    iou_of = [np.asarray(jaxseg.iou(s, average=None)) for s in states]
    dice_of = [np.asarray(jaxseg.dice(s, average=None)) for s in states]
    assert rows
    for row in rows:
        i = int(row["image"])
        k = int(row["class_id"])
        close(float(row["iou"]), iou_of[i][k], f"csv iou {row}")
        close(float(row["dice"]), dice_of[i][k], f"csv dice {row}")


def test_pixel_accuracy_without_background_is_the_api_value(tmp_path, capsys):
    """The reported case: 0.625 in the command line, 0.600 in the API."""
    preds = np.array([[0, 0, 1, 1, 2, 2, 0, 1]], np.uint8)
    labels = np.array([[0, 1, 1, 1, 2, 0, 0, 2]], np.uint8)
    for d, a in (("p", preds), ("l", labels)):
        (tmp_path / d).mkdir()
        Image.fromarray(a).save(tmp_path / d / "x.png")
    out = tmp_path / "r.json"
    argv = [
        "evaluate",
        tmp_path / "p",
        tmp_path / "l",
        "-C",
        "3",
        "--exclude-background",
        "--json",
        out,
    ]
    assert main([str(a) for a in argv]) == 0
    got = json.loads(out.read_text())["pixel_accuracy"]
    cm = jaxseg.ConfusionMatrix.from_predictions(preds, labels, num_classes=3)
    want = float(jaxseg.pixel_accuracy(cm, include_background=False))
    assert want == pytest.approx(0.6)
    assert got == pytest.approx(want, rel=1e-6)
    capsys.readouterr()


def test_demo_table_uses_the_same_chain():
    """The demo's report is built from the same score functions (no second copy)."""
    from jaxseg import _report

    m = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]], np.int64)
    r = _report.class_report(m, include_background=False)
    p = np.repeat([0, 1, 0, 1, 2], [5, 1, 2, 3, 1])
    y = np.repeat([0, 0, 1, 1, 1], [5, 1, 2, 3, 1])
    cm = jaxseg.ConfusionMatrix.from_predictions(p, y, num_classes=3)
    np.testing.assert_array_equal(cm.to_numpy(), m)
    assert r["miou_dataset"] == pytest.approx(float(jaxseg.iou(cm, include_background=False)))
