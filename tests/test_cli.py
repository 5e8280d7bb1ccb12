"""Tests of ``jaxseg evaluate`` on generated PNG folders, against scikit-learn and NumPy."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxseg import _io
from jaxseg.cli import main

PIL = pytest.importorskip("PIL")
sklearn_metrics = pytest.importorskip("sklearn.metrics")
from PIL import Image  # noqa: E402

C = 5  # class 4 never occurs: an empty class
IGNORE = 255


def _write(path: Path, arr: np.ndarray, mode: str = "L") -> None:
    if mode == "P":  # palette image: the stored index is the class id (PASCAL VOC style)
        h, w = arr.shape
        img = Image.frombytes("P", (w, h), arr.astype(np.uint8).tobytes())
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    elif mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16))
    else:
        img = Image.fromarray(arr.astype(np.uint8), mode=mode)
    img.save(path)


def _make_dataset(
    root: Path, seed: int = 0, n: int = 7
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two image sizes, 255 holes in the labels, four classes present out of five."""
    rng = np.random.default_rng(seed)
    pred_dir, label_dir = root / "pred", root / "label"
    pred_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    data = {}
    modes = ["L", "P", "I;16", "L", "P", "L", "I;16"]
    for i in range(n):
        h, w = (12, 16) if i % 3 else (9, 7)
        label = rng.integers(0, 4, size=(h, w))
        if i == 2:
            label[:] = 0  # an image with one class only
        label[rng.random((h, w)) < 0.1] = IGNORE
        pred = np.where(rng.random((h, w)) < 0.6, label, rng.integers(0, 4, size=(h, w)))
        pred = np.where(label == IGNORE, rng.integers(0, 4, size=(h, w)), pred)
        name = f"img_{i:02d}.png"
        _write(label_dir / name, label, modes[i % len(modes)])
        _write(pred_dir / name, pred, "L")
        data[name] = (pred, label)
    return data


@pytest.fixture
def dataset(tmp_path):
    data = _make_dataset(tmp_path)
    return tmp_path, data


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _reference(data):
    """Dataset-level and image-wise numbers from scikit-learn and NumPy loops."""
    preds = np.concatenate([p.ravel() for p, _ in data.values()])
    labels = np.concatenate([l.ravel() for _, l in data.values()])
    keep = labels != IGNORE
    y, p = labels[keep], preds[keep]
    classes = list(range(C))
    ref = {
        "cm": sklearn_metrics.confusion_matrix(y, p, labels=classes),
        "iou": sklearn_metrics.jaccard_score(y, p, labels=classes, average=None, zero_division=0),
        "f1": sklearn_metrics.f1_score(y, p, labels=classes, average=None, zero_division=0),
        "precision": sklearn_metrics.precision_score(
            y, p, labels=classes, average=None, zero_division=0
        ),
        "recall": sklearn_metrics.recall_score(y, p, labels=classes, average=None, zero_division=0),
        "accuracy": sklearn_metrics.accuracy_score(y, p),
        "balanced_accuracy": sklearn_metrics.balanced_accuracy_score(y, p),
    }
    present = ref["cm"].sum(0) + ref["cm"].sum(1) > 0
    ref["present"] = present
    ref["miou"] = ref["iou"][present].mean()
    per_image = []
    for pi, li in data.values():
        k = li != IGNORE
        ious = []
        for c in classes:
            tp = np.sum((pi[k] == c) & (li[k] == c))
            union = np.sum((pi[k] == c) | (li[k] == c))
            if union:
                ious.append(tp / union)
        per_image.append(np.mean(ious))
    ref["miou_imagewise"] = float(np.mean(per_image))
    return ref


def test_evaluate_matches_sklearn(dataset, capsys):
    root, data = dataset
    names = root / "names.txt"
    names.write_text("road\ncar\nsky\ntree\nboat\n")
    rc, out, err = _run(
        capsys,
        "evaluate",
        root / "pred",
        root / "label",
        "--num-classes",
        C,
        "--ignore-index",
        IGNORE,
        "--json",
        root / "r.json",
        "--csv",
        root / "r.csv",
        "--plot",
        root / "cm.png",
        "--class-names",
        names,
        "--batch-size",
        3,
        "-q",
    )
    assert rc == 0, err
    ref = _reference(data)
    report = json.loads((root / "r.json").read_text())
    np.testing.assert_array_equal(np.array(report["confusion_matrix"]), ref["cm"])
    assert report["num_images"] == len(data)
    assert report["num_pixels"] == ref["cm"].sum()
    rows = report["classes"]
    assert [r["name"] for r in rows] == ["road", "car", "sky", "tree", "boat"]
    for key, ref_key in [
        ("iou", "iou"),
        ("dice", "f1"),
        ("precision", "precision"),
        ("recall", "recall"),
    ]:
        got = np.array([np.nan if r[key] is None else r[key] for r in rows])
        np.testing.assert_allclose(got[ref["present"]], ref[ref_key][ref["present"]], rtol=1e-6)
        assert np.isnan(got[~ref["present"]]).all()  # the empty class is null, not 0
    assert [r["support"] for r in rows] == ref["cm"].sum(1).tolist()
    assert report["miou_dataset"] == pytest.approx(ref["miou"], rel=1e-6)
    assert report["miou_imagewise"] == pytest.approx(ref["miou_imagewise"], rel=1e-6)
    assert report["miou_dataset"] != pytest.approx(report["miou_imagewise"], rel=1e-3)
    assert report["pixel_accuracy"] == pytest.approx(ref["accuracy"], rel=1e-6)
    assert report["mean_accuracy"] == pytest.approx(ref["balanced_accuracy"], rel=1e-6)
    # the printed summary shows the same numbers, labelled by kind
    assert f"{ref['miou']:.4f}" in next(l for l in out.splitlines() if "dataset-level" in l)
    assert f"{ref['miou_imagewise']:.4f}" in next(l for l in out.splitlines() if "image-wise" in l)
    assert "boat" in out and "n/a" in out
    # CSV carries the per-class table
    with open(root / "r.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == [r["name"] for r in rows]
    assert float(table[1]["iou"]) == pytest.approx(ref["iou"][1], rel=1e-6)
    assert table[4]["iou"] == ""
    with Image.open(root / "cm.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert not list(root.glob(".*.tmp"))  # no temporary files left behind


def test_batch_size_does_not_change_results(dataset, capsys):
    root, _ = dataset
    results = []
    for bs in (1, 4):
        out_json = root / f"bs{bs}.json"
        rc, _, err = _run(
            capsys,
            "evaluate",
            root / "pred",
            root / "label",
            "-C",
            C,
            "--ignore-index",
            IGNORE,
            "--batch-size",
            bs,
            "--json",
            out_json,
        )
        assert rc == 0, err
        results.append(json.loads(out_json.read_text()))
    assert results[0] == results[1]


@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_read_label_map_modes(tmp_path, mode):
    arr = np.array([[0, 1, 2], [3, 200, 255]])
    if mode == "I;16":
        arr[0, 0] = 1000
    _write(tmp_path / "a.png", arr, mode)
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode == mode
    got = _io.read_label_map(tmp_path / "a.png").values
    assert got.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    np.testing.assert_array_equal(got, arr)


# -- bad input: one line naming the file, exit 2, no output written -----------------


def _corrupt_missing_label(root):
    (root / "label" / "img_03.png").unlink()
    return "img_03.png"


def _corrupt_extra_label(root):
    _write(root / "label" / "zz_extra.png", np.zeros((4, 4)))
    return "zz_extra.png"


def _corrupt_unreadable(root):
    (root / "pred" / "img_01.png").write_bytes(b"this is not a png file at all")
    return "img_01.png"


def _corrupt_truncated(root):
    path = root / "label" / "img_04.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "img_04.png"


def _corrupt_size(root):
    _write(root / "pred" / "img_05.png", np.zeros((5, 5)))
    return "img_05.png"


def _corrupt_rgb_label(root):
    arr = np.zeros((12, 16, 3), np.uint8)
    Image.fromarray(arr, mode="RGB").save(root / "label" / "img_01.png")
    return "img_01.png"


def _corrupt_rgba_pred(root):
    arr = np.zeros((12, 16, 4), np.uint8)
    Image.fromarray(arr, mode="RGBA").save(root / "pred" / "img_04.png")
    return "img_04.png"


def _corrupt_label_value(root):
    arr = np.zeros((12, 16))
    arr[3, 4] = 7  # >= C and not ignored
    _write(root / "label" / "img_05.png", arr)
    return "img_05.png"


BAD_CASES = {
    "missing_label": (_corrupt_missing_label, "no label file"),
    "extra_label": (_corrupt_extra_label, "no prediction file"),
    "unreadable": (_corrupt_unreadable, "cannot read"),
    "truncated": (_corrupt_truncated, "cannot read"),
    "size_mismatch": (_corrupt_size, "differs"),
    "rgb_label": (_corrupt_rgb_label, "colour image (mode RGB)"),
    "rgba_pred": (_corrupt_rgba_pred, "colour image (mode RGBA)"),
    "label_out_of_range": (_corrupt_label_value, "label value 7"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_line_exit_2_no_output(dataset, capsys, case):
    root, _ = dataset
    corrupt, needle = BAD_CASES[case]
    bad_name = corrupt(root)
    existing = root / "old.csv"
    existing.write_text("previous results\n")
    rc, out, err = _run(
        capsys,
        "evaluate",
        root / "pred",
        root / "label",
        "-C",
        C,
        "--ignore-index",
        IGNORE,
        "--json",
        root / "r.json",
        "--csv",
        existing,
        "--plot",
        root / "cm.png",
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert bad_name in lines[0] and needle in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert not (root / "r.json").exists() and not (root / "cm.png").exists()
    assert existing.read_text() == "previous results\n"  # untouched
    assert not list(root.glob(".*.tmp"))


def test_class_names_count_mismatch(dataset, capsys):
    root, _ = dataset
    names = root / "names.txt"
    names.write_text("a\nb\n")
    rc, _, err = _run(
        capsys, "evaluate", root / "pred", root / "label", "-C", C, "--class-names", names
    )
    assert rc == 2
    assert "names.txt" in err and "2 names" in err and len(err.strip().splitlines()) == 1


def test_missing_output_folder_fails_before_work(dataset, capsys):
    root, _ = dataset
    rc, _, err = _run(
        capsys, "evaluate", root / "pred", root / "label", "-C", C, "--json", root / "no" / "r.json"
    )
    assert rc == 2 and "does not exist" in err


def test_skip_bad(dataset, capsys):
    root, data = dataset
    _corrupt_rgb_label(root)
    _corrupt_missing_label(root)
    rc, _, err = _run(
        capsys,
        "evaluate",
        root / "pred",
        root / "label",
        "-C",
        C,
        "--ignore-index",
        IGNORE,
        "--skip-bad",
        "--json",
        root / "r.json",
    )
    assert rc == 3, err  # the exit status says that files were left out
    report = json.loads((root / "r.json").read_text())
    assert report["num_skipped"] == 2
    skipped = {Path(s["file"]).name for s in report["skipped"]}
    assert skipped == {"img_01.png", "img_03.png"}
    assert "skipped 2 bad file(s)" in err and "img_01.png" in err and "img_03.png" in err
    good = {k: d for k, d in data.items() if k not in skipped}
    assert report["num_images"] == len(good)
    np.testing.assert_array_equal(np.array(report["confusion_matrix"]), _reference(good)["cm"])
    assert report["miou_imagewise"] == pytest.approx(_reference(good)["miou_imagewise"], rel=1e-6)


def test_console_entry_subprocess(dataset):
    """``python -m jaxseg`` in a fresh process: a bad file gives one line and exit 2."""
    root, _ = dataset
    _corrupt_truncated(root)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxseg",
            "evaluate",
            root / "pred",
            root / "label",
            "-C",
            str(C),
            "--ignore-index",
            "255",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "img_04.png" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "evaluate" in out and "demo" in out
