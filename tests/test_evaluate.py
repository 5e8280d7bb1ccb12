"""``jaxseg evaluate`` on generated folders in the real dataset layouts, against the peers.

Cityscapes numbers are compared with cityscapesScripts' own evaluation
(``evaluateImgLists``), VOC and volume numbers with scikit-learn's
``confusion_matrix``; each peer is skipped where it is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxseg import _evaluate, _io, _report
from jaxseg.cli import main

pytest.importorskip("PIL")
from PIL import Image

CS = _evaluate.CITYSCAPES_LABELS
EVAL_IDS = [i for _, i, t in sorted(CS, key=lambda r: r[2]) if t != 255]  # labelId per trainId
LABEL_TO_TRAIN = np.full(256, 255, np.int64)
for _, _i, _t in CS:
    if _i >= 0:
        LABEL_TO_TRAIN[_i] = _t


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _cityscapes(root: Path, n: int = 4, *, train_ids: bool = False, seed: int = 0) -> Path:
    """``gtFine/val/<city>/…_gtFine_labelIds.png`` and flat ``results/…_leftImg8bit.png``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        city = ("aachen", "bremen")[i % 2]
        stem = f"{city}_000000_{19 + i:06d}"
        (root / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        label = rng.integers(0, 34, size=(16, 32)).astype(np.uint8)
        pred = np.where(rng.random((16, 32)) < 0.5, label, rng.integers(0, 34, (16, 32)))
        pred = pred.astype(np.uint8)  # includes void ids (0-6, 9, 10, ...) at valid pixels
        Image.fromarray(label).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        if train_ids:  # trainIds results: 255 for every non-evaluated id (void predictions)
            pred = LABEL_TO_TRAIN[pred].astype(np.uint8)
        Image.fromarray(pred).save(root / "results" / f"{stem}_leftImg8bit.png")
    return root


def _cityscapes_scripts(root: Path, *, train_ids: bool) -> dict:
    """cityscapesScripts' evaluation of the same folders (labelIds predictions)."""
    np.in1d = np.isin  # noqa: NPY201  removed in NumPy 2; the peer still calls it
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    gts = sorted(str(p) for p in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    preds = []
    for g in gts:
        p = root / "results" / Path(g).name.replace("_gtFine_labelIds", "_leftImg8bit")
        if train_ids:  # the peer reads labelIds only: convert trainIds back (255 -> 0)
            train = np.asarray(Image.open(p)).astype(np.int64)
            back = np.zeros(256, np.uint8)
            for t, i in enumerate(EVAL_IDS):
                back[t] = i
            p = p.with_suffix(".labelIds.png")
            Image.fromarray(back[train]).save(p)
        preds.append(str(p))
    args = ev.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    return ev.evaluateImgLists(preds, gts, args)


@pytest.mark.parametrize("train_ids", [False, True], ids=["labelIds", "trainIds"])
def test_cityscapes_matches_cityscapes_scripts(tmp_path, capsys, train_ids):
    root = _cityscapes(tmp_path, train_ids=train_ids)
    argv = ["evaluate", root / "results", root / "gtFine" / "val", "--label-map", "cityscapes"]
    argv += ["--pred-pattern", "{name}_leftImg8bit.png"]
    argv += ["--label-pattern", "{name}_gtFine_labelIds.png", "--json", root / "r.json", "-q"]
    if train_ids:
        argv.append("--no-map-predictions")
    rc, _, err = _run(capsys, *argv)
    assert rc == 0, err
    ref = _cityscapes_scripts(root, train_ids=train_ids)
    cs = np.array(ref["confMatrix"], np.int64)  # [34, 34] over labelIds
    report = json.loads((root / "r.json").read_text())
    np.testing.assert_array_equal(
        np.array(report["confusion_matrix"]), cs[np.ix_(EVAL_IDS, EVAL_IDS)]
    )
    void_cols = [i for i in range(34) if i not in EVAL_IDS]
    void = [r["void_predictions"] for r in report["classes"]]
    np.testing.assert_array_equal(void, cs[np.ix_(EVAL_IDS, void_cols)].sum(1))
    assert report["num_void_predictions"] > 0
    assert report["num_images"] == 4
    assert [r["name"] for r in report["classes"]][:2] == ["road", "sidewalk"]
    for r in report["classes"]:
        assert r["iou"] == pytest.approx(ref["classScores"][r["name"]], rel=1e-12)
    assert report["miou_dataset"] == pytest.approx(ref["averageScoreClasses"], rel=1e-12)


def _voc(root: Path, n: int = 5, c: int = 21, seed: int = 1) -> dict[str, tuple]:
    """``SegmentationClass/*.png`` palette maps with 255 borders; predictions ``*.png``."""
    rng = np.random.default_rng(seed)
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "pred").mkdir()
    data = {}
    for i in range(n):
        h, w = 9 + i, 13 + 2 * i  # every image a different size
        label = rng.integers(0, c, (h, w))
        label[0, :] = label[:, 0] = 255
        pred = np.where(rng.random((h, w)) < 0.5, label, rng.integers(0, c, (h, w)))
        pred[2, 2] = 200  # a void prediction (an id outside [0, C)) at a valid pixel
        for arr, folder in ((label, "SegmentationClass"), (pred, "pred")):
            img = Image.frombytes("P", (w, h), arr.astype(np.uint8).tobytes())
            img.putpalette([v for k in range(256) for v in (k, 255 - k, 3 * k % 256)])
            img.save(root / folder / f"2007_{i:06d}.png")
        data[f"2007_{i:06d}"] = (pred, label)
    return data


def _sklearn_counts(pairs, c: int, ignore=(255,)) -> np.ndarray:
    """``[C, C + 1]`` from scikit-learn: void predictions folded into one extra column."""
    metrics = pytest.importorskip("sklearn.metrics")
    y = np.concatenate([l.ravel() for _, l in pairs])
    p = np.concatenate([p.ravel() for p, _ in pairs])
    keep = ~np.isin(y, ignore)
    p = np.where((p[keep] >= 0) & (p[keep] < c), p[keep], c)
    return metrics.confusion_matrix(y[keep], p, labels=list(range(c + 1)))[:c]


def test_voc_matches_sklearn_and_counts_void_as_miss(tmp_path, capsys):
    data = _voc(tmp_path)
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "SegmentationClass", "-C", 21,
        "--ignore-index", 255, "--json", tmp_path / "r.json", "--per-image", tmp_path / "p.csv",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    ref = _sklearn_counts(data.values(), 21)
    got = np.column_stack(
        [report["confusion_matrix"], [r["void_predictions"] for r in report["classes"]]]
    )
    np.testing.assert_array_equal(got, ref)
    tp = np.diag(ref[:, :21])
    fn = ref.sum(1) - tp  # void predictions are misses of the label's class...
    fp = ref[:, :21].sum(0) - tp  # ...and false positives of no class
    iou = tp / (tp + fp + fn)
    assert report["miou_dataset"] == pytest.approx(np.mean(iou), rel=1e-12)
    assert report["pixel_accuracy"] == pytest.approx(tp.sum() / ref.sum(), rel=1e-12)
    assert len(report["images"]) == 5 and report["num_skipped"] == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "image,class_id,class_name,tp,fp,fn,iou,dice"
    assert len(rows) > 5 * 10


def test_layouts_recursive_uppercase_mode1_binary(tmp_path, capsys):
    """Sub-folders, ``.PNG``, bilevel PNGs and 0/255 masks: per-case foreground Dice."""
    rng = np.random.default_rng(2)
    pairs = {}
    for i, sub in enumerate(["a", "a", "b/c"]):
        (tmp_path / "pred" / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / "gt" / sub).mkdir(parents=True, exist_ok=True)
        label = rng.random((8, 12)) < 0.4
        pred = np.where(rng.random((8, 12)) < 0.7, label, ~label)
        Image.fromarray(label).save(tmp_path / "gt" / sub / f"m{i}.PNG")  # mode "1"
        Image.fromarray(pred.astype(np.uint8) * 255).save(tmp_path / "pred" / sub / f"m{i}.png")
        pairs[f"{sub}/m{i}"] = (pred, label)
    (tmp_path / "gt" / "top.png").unlink(missing_ok=True)
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "gt", "--binary", "--json",
        tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_images"] == 3
    for entry in report["images"]:
        p, l = pairs[entry["name"]]
        tp, fp, fn = np.sum(p & l), np.sum(p & ~l), np.sum(~p & l)
        assert entry["foreground_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
        assert entry["foreground_iou"] == pytest.approx(tp / (tp + fp + fn), rel=1e-12)
        assert entry["miou"] == entry["foreground_iou"]  # background left out of the average
    assert report["classes"][0]["in_averages"] is False
    assert report["miou_dataset"] == report["classes"][1]["iou"]


def test_volumes_npy_and_nifti(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(3)
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "pred").mkdir()
    pairs = []
    for i in range(3):
        label = rng.integers(0, 3, (6, 7, 5)).astype(np.uint8)
        pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, 3, label.shape))
        pairs.append((pred, label))
        affine = np.diag([0.8, 0.8, 2.5, 1.0])
        nib.save(nib.Nifti1Image(label, affine), tmp_path / "labelsTr" / f"case_{i:03d}.nii.gz")
        if i == 0:
            np.save(tmp_path / "pred" / f"case_{i:03d}.npy", pred.astype(np.int16))
        else:
            nib.save(
                nib.Nifti1Image(pred.astype(np.float32), affine),
                tmp_path / "pred" / f"case_{i:03d}.nii.gz",
            )
    assert _io.read_label_map(tmp_path / "labelsTr" / "case_000.nii.gz").spacing == pytest.approx(
        (0.8, 0.8, 2.5)
    )
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "labelsTr", "-C", 3,
        "--exclude-background", "--json", tmp_path / "r.json", "--spacing", "0.8,0.8,2.5",
        "--tolerance", "1",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    ref = _sklearn_counts(pairs, 3, ignore=())
    np.testing.assert_array_equal(report["confusion_matrix"], ref[:, :3])
    tp = np.diag(ref[:, :3])
    iou = tp / (ref.sum(0)[:3] + ref.sum(1) - tp)
    assert report["miou_dataset"] == pytest.approx(iou[1:].mean(), rel=1e-12)  # no background


def test_include_background_false_is_not_ignore_zero(tmp_path, capsys):
    """Leaving class 0 out of averages keeps its pixels: foreground FP on background count."""
    (tmp_path / "p").mkdir()
    (tmp_path / "l").mkdir()
    label = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[1, 0, 1, 0]], np.uint8)
    Image.fromarray(label).save(tmp_path / "l" / "x.png")
    Image.fromarray(pred).save(tmp_path / "p" / "x.png")
    out = {}
    for flag in ("--exclude-background", "--ignore-index=0"):
        rc, _, err = _run(
            capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 2, flag, "--json",
            tmp_path / "r.json",
        )  # fmt: skip
        assert rc == 0, err
        out[flag] = json.loads((tmp_path / "r.json").read_text())["miou_dataset"]
    assert out["--exclude-background"] == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
    assert out["--ignore-index=0"] == pytest.approx(1 / 2)  # the background FP vanished


def test_negative_ignore_ids_parse(tmp_path, capsys):
    np.save(tmp_path / "l.npy", np.array([[-1, 0, 7, 1]]))
    (tmp_path / "L").mkdir()
    (tmp_path / "P").mkdir()
    np.save(tmp_path / "L" / "a.npy", np.array([[-1, 0, 7, 1, 255]]))
    np.save(tmp_path / "P" / "a.npy", np.array([[0, 0, 0, 1, 1]]))
    for form in (["--ignore-index", "-1,7,255"], ["--ignore-index=-1,7,255"]):
        rc, out, err = _run(capsys, "evaluate", tmp_path / "P", tmp_path / "L", "-C", 2, *form)
        assert rc == 0, err
        assert "evaluated 1 image pairs, 2 pixels" in out


# -- skipping -----------------------------------------------------------------------


def test_void_predictions_never_skip_a_file_and_skips_are_counted(tmp_path, capsys):
    data = _voc(tmp_path, n=4)
    (tmp_path / "pred" / "2007_000001.png").write_bytes(b"not a png")
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "SegmentationClass", "-C", 21,
        "--ignore-index", 255, "--skip-bad", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 3  # some files were skipped
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_images"] == 3 and report["num_skipped"] == 1  # only the unreadable one
    assert "skipped 1 bad file(s)" in err and "2007_000001.png" in err
    good = [v for k, v in data.items() if k != "2007_000001"]
    np.testing.assert_array_equal(report["confusion_matrix"], _sklearn_counts(good, 21)[:, :21])


def test_decompression_bomb_is_named_and_skippable(tmp_path, capsys):
    data = _voc(tmp_path, n=2)
    assert data
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "SegmentationClass", "-C", 21,
        "--ignore-index", 255, "--max-pixels", 120,
    )  # fmt: skip
    assert rc == 2 and "2007_000001.png" in err and "--max-pixels" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "SegmentationClass", "-C", 21,
        "--ignore-index", 255, "--max-pixels", 120, "--skip-bad",
    )  # fmt: skip
    assert rc == 3 and "skipped 1 bad file(s)" in err and "2007_000001.png" in err


def test_pillow_bomb_error_is_an_input_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own guard: 2x => error
    with pytest.raises(_io.InputError, match=r"a\.png"):
        _io.read_label_map(tmp_path / "a.png")


# -- outputs ------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    _voc(tmp_path, n=2)
    return [tmp_path / "pred", tmp_path / "SegmentationClass", "-C", 21, "--ignore-index", 255]


def test_symlink_target_is_replaced_not_the_link(tmp_path, capsys, small):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "r.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    rc, _, err = _run(capsys, "evaluate", *small, "--json", link)
    assert rc == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["num_images"] == 2
    assert not list(tmp_path.rglob(".*.tmp"))


def test_special_files_are_written_not_replaced(tmp_path, capsys, small):
    devnull = Path(os.devnull)
    before = devnull.stat()
    rc, _, err = _run(capsys, "evaluate", *small, "--csv", devnull)
    assert rc == 0, err
    after = devnull.stat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    rc, _, err = _run(capsys, "evaluate", *small, "--json", fifo)
    body = proc.communicate(timeout=30)[0]
    assert rc == 0, err
    assert json.loads(body)["num_images"] == 2 and fifo.is_fifo()
    rc, out, err = _run(capsys, "evaluate", *small, "--json", "-")
    assert rc == 0 and json.loads(out)["num_images"] == 2  # the table went to stderr


def test_unwritable_output_fails_before_any_work(tmp_path, capsys, small, monkeypatch):
    existing = tmp_path / "r.json"
    existing.write_text("keep")
    calls = []
    monkeypatch.setattr(_io, "match_files", lambda *a, **k: calls.append(1))
    for bad in (tmp_path / "missing" / "x.csv", tmp_path / "SegmentationClass"):
        rc, _, err = _run(capsys, "evaluate", *small, "--json", existing, "--csv", bad)
        assert rc == 2 and "--csv" in err and len(err.strip().splitlines()) == 1
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):  # root ignores permissions: check through the code
            monkeypatch.setattr(_io.tempfile, "mkstemp", _raise_permission)
        rc, _, err = _run(capsys, "evaluate", *small, "--csv", read_only / "x.csv")
    finally:
        read_only.chmod(0o700)
    assert rc == 2 and "cannot write" in err
    assert calls == [] and existing.read_text() == "keep"


def _raise_permission(*_, **__):
    raise PermissionError(13, "Permission denied")


def test_interrupt_gives_130_and_one_line(tmp_path, capsys, small, monkeypatch):
    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(_report, "class_report", interrupted)
    rc, out, err = _run(capsys, "evaluate", *small, "--json", tmp_path / "r.json")
    assert rc == 130 and err.strip() == "jaxseg: interrupted" and out == ""
    assert not (tmp_path / "r.json").exists() and not list(tmp_path.glob(".*.tmp"))


def test_broken_pipe_and_sigint_in_a_real_process(tmp_path, small):
    cmd = [sys.executable, "-m", "jaxseg", "evaluate", *map(str, small)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=_fresh_signals
    )
    proc.stdout.close()  # the reader is gone before the first line (| head -0)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""  # quiet, as other tools
    # Ctrl-C while a reading thread is blocked (a FIFO with no writer): exit at once
    os.mkfifo(tmp_path / "pred" / "2007_000009.png")
    os.mkfifo(tmp_path / "SegmentationClass" / "2007_000009.png")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=_fresh_signals
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.decode().strip() == "jaxseg: interrupted" and b"Traceback" not in err


def test_import_is_light():
    heavy = "{'jax', 'matplotlib', 'PIL'}"
    code = f"import sys, jaxseg, jaxseg.cli; print(sorted({heavy} & {{*sys.modules}}))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[]", out.stderr


def test_large_confusion_plot_labels_only_the_most_confused(tmp_path):
    pytest.importorskip("matplotlib")
    c = 300
    rng = np.random.default_rng(0)
    m = np.diag(rng.integers(50, 100, c))
    m[10, 200] = m[200, 10] = m[42, 7] = 500
    m[42, 8] = 100  # class 42 is confused more than 7
    assert set(_report.most_confused(m, 3)) == {10, 200, 42}
    fig = _report.confusion_figure(m, [f"class {i}" for i in range(c)])
    ax_all, ax_top = fig.axes[:2]  # two panels (then their colour bars)
    assert len(ax_all.get_xticklabels()) <= 20  # the full matrix: sparse id ticks only
    names = {t.get_text() for t in ax_top.get_xticklabels()}
    assert len(names) == 20 and {"class 10", "class 200", "class 42", "class 7"} <= names
    png = _report.figure_png_bytes(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _recipe(title: str) -> list[str]:
    """The ``jaxseg evaluate`` command of a docs/cli.md recipe, as argv."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    block = text.split(f"### Recipe: {title}", 1)[1].split("```bash\n", 1)[1].split("```")[0]
    command = next(c for c in block.replace("\\\n", " ").splitlines() if "jaxseg evaluate" in c)
    return shlex.split(command)[1:]


def test_docs_recipes_run_on_their_layouts(tmp_path, capsys, monkeypatch):
    pytest.importorskip("nibabel")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    _cityscapes(tmp_path)
    rc, _, err = _run(capsys, *_recipe("Cityscapes"))
    assert rc == 0 and json.loads(Path("cityscapes.json").read_text())["num_images"] == 4, err
    _voc(tmp_path / "VOC2012")
    (tmp_path / "VOC2012" / "pred").rename(tmp_path / "preds")
    rc, _, err = _run(capsys, *_recipe("PASCAL VOC"))
    assert rc == 0 and Path("voc.csv").read_text().count("\n") == 22 and Path("voc.png").exists()
    nib = pytest.importorskip("nibabel")
    for folder in ("labelsTr", "predictions"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            vol = np.random.default_rng(i).integers(0, 3, (4, 5, 6)).astype(np.uint8)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / folder / f"case_{i:03d}.nii.gz")
    argv = _recipe("medical volumes")
    rc, _, err = _run(capsys, *argv)
    assert rc == 0, err
    assert json.loads(Path("volumes.json").read_text())["miou_dataset"] == 1.0  # same volumes
    assert Path("cases.csv").read_text().startswith("image,class_id")


def test_counting_in_slices_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(5)
    label = rng.integers(0, 6, (37, 41)).astype(np.uint8)
    label[0] = 255
    pred = rng.integers(0, 8, (37, 41)).astype(np.uint8)  # 6 and 7 are void predictions
    pair = _io.Pair("x", Path("p"), Path("l"))
    counter = _evaluate.Counter(6, ignore=(255,))
    monkeypatch.setattr(_evaluate, "_CHUNK", 100)  # 16 slices, the last one partial
    got = counter.count(pair, pred, label)
    keep = label != 255
    ref = np.zeros((6, 7), np.int64)
    np.add.at(ref, (label[keep], np.minimum(pred[keep], 6)), 1)
    np.testing.assert_array_equal(got, ref)
    wide = counter.count(pair, pred.astype(np.int32), label.astype(np.int32))  # general path
    np.testing.assert_array_equal(wide, ref)


def test_distance_metrics_use_header_spacing_and_average_over_images(tmp_path, capsys):
    """--metrics hd95,assd,nsd on NIfTI volumes: spacing from the headers, the per-class
    value is the mean of the finite per-image values."""
    nib = pytest.importorskip("nibabel")
    from jaxseg._evaluate_distance import per_image_metrics

    rng = np.random.default_rng(8)
    (tmp_path / "labels").mkdir()
    (tmp_path / "pred").mkdir()
    affine = np.diag([0.8, 1.0, 2.5, 1.0])
    pairs = []
    for i in range(2):
        label = np.zeros((8, 9, 6), np.uint8)
        label[2:6, 2:7, 1:5] = 1
        label[0:2, 0:3, 0:2] = 2 if i == 0 else 0  # class 2 absent from image 1
        pred = np.where(rng.random(label.shape) < 0.9, label, rng.integers(0, 3, label.shape))
        pairs.append((pred.astype(np.uint8), label))
        nib.save(nib.Nifti1Image(label, affine), tmp_path / "labels" / f"case_{i}.nii.gz")
        nib.save(
            nib.Nifti1Image(pred.astype(np.uint8), affine), tmp_path / "pred" / f"case_{i}.nii.gz"
        )
    rc, out, err = _run(
        capsys, "evaluate", tmp_path / "pred", tmp_path / "labels", "-C", 3,
        "--metrics", "iou,hd95,assd,nsd", "--tolerance", "1.5", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    assert "HD95" in out
    report = json.loads((tmp_path / "r.json").read_text())
    # all three metrics in one call: the command line's compiled program, reused
    names = ("hd95", "assd", "nsd")
    kw = dict(num_classes=3, metrics=names, tolerance=1.5)
    per_image = [per_image_metrics(p, y, spacing=(0.8, 1.0, 2.5), **kw) for p, y in pairs]
    unit_spacing = per_image_metrics(*pairs[0], **kw)
    for name in names:
        per = np.stack([values[name] for values in per_image])
        unit = unit_spacing[name]
        finite = np.isfinite(per)
        want = np.where(finite, per, 0).sum(0) / np.maximum(finite.sum(0), 1)
        got = [r[name] for r in report["classes"]]
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)  # float32 means
        if name == "hd95":  # the header spacing was used, not 1
            assert not np.allclose(per[0], unit)


def test_boundary_iou_metric_on_png(tmp_path, capsys):
    from jaxseg._evaluate_distance import per_image_metrics

    rng = np.random.default_rng(9)
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    label = np.zeros((20, 24), np.uint8)
    label[4:15, 5:18] = 1
    label[0, 0] = 255
    pred = np.where(rng.random(label.shape) < 0.9, label, 0).astype(np.uint8)
    Image.fromarray(label).save(tmp_path / "l" / "a.png")
    Image.fromarray(pred).save(tmp_path / "p" / "a.png")
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 2, "--ignore-index", 255,
        "--metrics", "boundary_iou", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    want = per_image_metrics(
        pred, label, num_classes=2, metrics=("boundary_iou",), ignore_index=255
    )["boundary_iou"]
    np.testing.assert_allclose([r["boundary_iou"] for r in report["classes"]], want, rtol=1e-6)


def _fresh_signals() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell starts it.

    A test process may hold SIGINT blocked or ignored (set by a library in a
    thread that started it); a child inherits that and could never see Ctrl-C.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
