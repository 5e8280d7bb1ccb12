"""Cityscapes iIoU (``InstanceIoUStats``, ``evaluate --instances``) against cityscapesScripts.

Folders are generated in the real Cityscapes layout
(``gtFine/val/<city>/<name>_gtFine_labelIds.png`` and ``_gtFine_instanceIds.png``,
predictions ``results/<name>_leftImg8bit.png`` in labelIds) and scored by
cityscapesScripts' own ``evaluateImgLists`` with ``evalInstLevelScore=True``, in
process. The class iIoU (per class and mean) and the category iIoU (human,
vehicle, mean) must be equal to 1e-12, through the command line's JSON and through
the API under x64.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _evaluate, _iiou
from jaxseg.cli import main

pytest.importorskip("PIL")
from PIL import Image

THINGS = (24, 25, 26, 27, 28, 31, 32, 33)  # person rider car truck bus train motorcycle bicycle
STUFF = (7, 8, 11, 17, 21, 23)  # road sidewalk building pole vegetation sky
IGNORED = (0, 4, 5, 29, 30)  # unlabeled static dynamic caravan trailer
NAMES = {
    24: "person",
    25: "rider",
    26: "car",
    27: "truck",
    28: "bus",
    31: "train",
    32: "motorcycle",
    33: "bicycle",
}
CITIES = ("aachen", "bremen", "zurich")
SHAPE = (40, 64)  # the largest image; the API pads the others to it (masked out)


def _image(rng, shape, things, *, crowd, ignored, noise):
    """A street-like labelIds map, its instanceIds and a prediction in labelIds."""
    h, w = shape
    label = np.array(STUFF)[rng.integers(0, len(STUFF), (h // 8 + 1, w // 8 + 1))]
    label = np.kron(label, np.ones((8, 8), np.int64))[:h, :w]
    inst = label.copy()
    count = dict.fromkeys(THINGS, 0)
    for c in things:  # rectangles of instances, numbered from 0 per class
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        dy, dx = rng.integers(2, 14), rng.integers(2, 20)
        label[y : y + dy, x : x + dx] = c
        inst[y : y + dy, x : x + dx] = c * 1000 + count[c]
        count[c] += 1
    if crowd:  # a crowd region keeps the plain class id in instanceIds
        c = int(rng.choice(THINGS))
        label[: h // 4, : w // 4] = c
        inst[: h // 4, : w // 4] = c
    if ignored:  # ignored stuff, and a caravan instance (a class not evaluated)
        label[-3:, :] = rng.choice((0, 4, 5))
        inst[-3:, :] = label[-3:, :]
        label[-8:-4, -10:] = 29
        inst[-8:-4, -10:] = 29000
    pred = label.copy()
    pred[:, 3:] = label[:, :-3]  # shifted: partial hits on every instance
    flip = rng.random(shape) < noise
    pred[flip] = rng.choice((*STUFF, *THINGS, *IGNORED), size=int(flip.sum()))
    return label.astype(np.uint8), inst.astype(np.uint16), pred.astype(np.uint8)


def _dataset(seed):
    """Mixed images of three sizes with every instance class, crowds and ignored pixels,
    then degenerate ones: background only, crowd only, one class, void predictions."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(6):
        shape = ((32, 64), (24, 48), SHAPE)[i % 3]
        things = [THINGS[(i + k) % 8] for k in range(5)] * 2  # two instances per class
        out.append(_image(rng, shape, things, crowd=i % 2 == 0, ignored=i % 3 != 1, noise=0.1))
    label, inst, pred = _image(rng, (24, 48), (), crowd=False, ignored=False, noise=0.0)
    pred[5:9, 5:20] = 26  # background only: car predicted on road is a false positive
    out.append((label, inst, pred))
    label, inst, pred = _image(rng, (24, 48), (), crowd=True, ignored=True, noise=0.0)
    out.append((label, inst, pred))  # crowd only: no instance
    label, inst, pred = _image(rng, (32, 64), (24, 24, 24), crowd=False, ignored=False, noise=0)
    out.append((label, inst, np.zeros_like(pred)))  # persons only, every prediction void
    return out


def _write(root: Path, images) -> list[tuple[str, str]]:
    pairs = []
    for i, (label, inst, pred) in enumerate(images):
        city = CITIES[i % 3]
        stem = f"{city}_000000_{19 + i:06d}"
        gt = root / "gtFine" / "val" / city
        gt.mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(inst).save(gt / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(pred).save(root / "results" / f"{stem}_leftImg8bit.png")
        pairs.append((str(root / "results" / f"{stem}_leftImg8bit.png"), str(gt / stem)))
    return pairs


def _cityscapes_scripts(pairs, monkeypatch) -> dict:
    """cityscapesScripts' ``evaluateImgLists`` with ``evalInstLevelScore=True``, in process."""
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    # np.in1d was removed in NumPy 2; the peer still calls it (flattened result)
    monkeypatch.setattr(
        np, "in1d", lambda a, b, invert=False: np.isin(np.ravel(a), b, invert=invert), raising=False
    )
    args = copy.copy(ev.args)
    args.evalInstLevelScore, args.evalPixelAccuracy = True, False
    args.JSONOutput, args.quiet = False, True
    order = sorted(pairs, key=lambda p: Path(p[1]).name)  # the command line's order
    preds = [p for p, _ in order]
    gts = [g + "_gtFine_labelIds.png" for _, g in order]
    return ev.evaluateImgLists(preds, gts, args)


def _assert_close(ours: float, theirs: float) -> None:
    if math.isnan(theirs):
        assert ours is None or math.isnan(ours)
    else:
        assert abs(ours - theirs) <= 1e-12, (ours, theirs)


def _argv(root: Path, *extra) -> list[str]:
    argv = ["evaluate", root / "results", root / "gtFine" / "val", "--label-map", "cityscapes"]
    argv += ["--pred-pattern", "{name}_leftImg8bit.png"]
    argv += ["--label-pattern", "{name}_gtFine_labelIds.png", "-q"]
    argv += ["--instances", root / "gtFine" / "val"]
    argv += ["--instance-pattern", "{name}_gtFine_instanceIds.png", *extra]
    return [str(a) for a in argv]


def _api(images) -> jaxseg.InstanceIoUStats:
    """One jitted call over every image, padded to SHAPE and masked (x64 on)."""
    stacks = [np.zeros((len(images), *SHAPE), np.int32) for _ in range(3)]
    where = np.zeros((len(images), *SHAPE), bool)
    for n, arrays in enumerate(images):
        h, w = arrays[0].shape
        for stack, a in zip(stacks, arrays, strict=True):
            stack[n, :h, :w] = a
        where[n, :h, :w] = True
    label, inst, pred = stacks
    return jax.jit(jaxseg.InstanceIoUStats.cityscapes)(pred, label, inst, where=where)


def test_cli_and_api_equal_cityscapes_scripts(tmp_path, capsys, monkeypatch):
    images = _dataset(0)
    pairs = _write(tmp_path, images)
    ref = _cityscapes_scripts(pairs, monkeypatch)
    assert not any(math.isnan(ref["classInstScores"][n]) for n in NAMES.values())
    out = tmp_path / "r.json"
    rc = main(_argv(tmp_path, "--json", out, "--csv", tmp_path / "r.csv"))
    text, err = capsys.readouterr()
    assert rc == 0, err
    assert "iIoU, category vehicle" in text and "iIoU" in text.splitlines()[1]
    report = json.loads(out.read_text())
    got = report["iiou"]
    for name in NAMES.values():
        _assert_close(got["classes"][name], ref["classInstScores"][name])
        row = next(r for r in report["classes"] if r["name"] == name)
        _assert_close(row["iiou"], ref["classInstScores"][name])
    _assert_close(got["class_mean"], ref["averageScoreInstClasses"])
    for cat in ("human", "vehicle"):
        _assert_close(got["categories"][cat], ref["categoryInstScores"][cat])
    _assert_close(got["category_mean"], ref["averageScoreInstCategories"])
    _assert_close(report["miou_dataset"], ref["averageScoreClasses"])
    assert "iiou" in (tmp_path / "r.csv").read_text().splitlines()[0]
    road = next(r for r in report["classes"] if r["name"] == "road")
    assert road["iiou"] is None  # stuff: no iIoU
    _check_per_image(tmp_path, pairs, monkeypatch)

    with jax.enable_x64(True):
        state = _api(images).reduce()
        per_class = np.asarray(jaxseg.iou(state.classes, average=None))
        per_cat = np.asarray(jaxseg.iou(state.categories, average=None))
        class_mean, cat_mean = float(jaxseg.iou(state.classes)), float(jaxseg.iou(state.categories))
    for label_id, name in NAMES.items():
        _assert_close(float(per_class[label_id]), ref["classInstScores"][name])
    assert np.isnan(np.delete(per_class, list(NAMES))).all()  # no iIoU for other classes
    _assert_close(class_mean, ref["averageScoreInstClasses"])
    for k, cat in enumerate(("human", "vehicle")):
        _assert_close(float(per_cat[k]), ref["categoryInstScores"][cat])
    _assert_close(cat_mean, ref["averageScoreInstCategories"])


def _check_per_image(root: Path, pairs, monkeypatch) -> None:
    """Each image's iIoU in the JSON and the ``--per-image`` CSV is cityscapesScripts'
    score of the one-image list."""
    out, table = root / "p.json", root / "p.csv"
    assert main(_argv(root, "--json", out, "--per-image", table)) == 0
    images = json.loads(out.read_text())["images"]
    rows = list(csv.DictReader(table.read_text().splitlines()))
    order = sorted(pairs, key=lambda p: Path(p[1]).name)
    assert len(images) == len(order)
    checked = 0
    for entry, pair in zip(images, order, strict=True):
        assert Path(pair[1]).name.startswith(entry["name"].rsplit("/", 1)[-1])
        ref = _cityscapes_scripts([pair], monkeypatch)
        for name in NAMES.values():
            value = entry["iiou"][name]
            _assert_close(math.nan if value is None else value, ref["classInstScores"][name])
            cells = [
                r["iiou"] for r in rows if r["image"] == entry["name"] and r["class_name"] == name
            ]
            if cells:  # a class with a row: its cell is the same value (empty for NaN)
                assert (cells[0] == "") == math.isnan(ref["classInstScores"][name])
                if cells[0]:
                    _assert_close(float(cells[0]), ref["classInstScores"][name])
                    checked += 1
        _assert_close(_nan(entry["iiou_class_mean"]), ref["averageScoreInstClasses"])
        for cat in ("human", "vehicle"):
            _assert_close(_nan(entry["iiou_categories"][cat]), ref["categoryInstScores"][cat])
        _assert_close(_nan(entry["iiou_category_mean"]), ref["averageScoreInstCategories"])
    assert checked > len(order)  # the CSV holds values, not only empty cells
    stuff = [r["iiou"] for r in rows if r["class_name"] == "road"]
    assert stuff and set(stuff) == {""}


def _nan(x):
    return math.nan if x is None else x


def test_degenerate_sets_equal_cityscapes_scripts(tmp_path, capsys, monkeypatch):
    """Only the degenerate images: classes without instances score NaN (nothing) or 0 (only
    false positives), as cityscapesScripts; one prediction map in trainIds reads the same."""
    images = _dataset(0)[-3:]
    pairs = _write(tmp_path, images)
    ref = _cityscapes_scripts(pairs, monkeypatch)
    scores = [ref["classInstScores"][n] for n in NAMES.values()]
    assert 0.0 in scores and any(map(math.isnan, scores))  # only false positives; nothing
    rc = main(_argv(tmp_path, "--json", tmp_path / "r.json"))
    assert rc == 0, capsys.readouterr().err
    got = json.loads((tmp_path / "r.json").read_text())["iiou"]
    for name in NAMES.values():
        _assert_close(
            math.nan if got["classes"][name] is None else got["classes"][name],
            ref["classInstScores"][name],
        )
    for cat in ("human", "vehicle"):
        _assert_close(got["categories"][cat], ref["categoryInstScores"][cat])
    _assert_close(got["class_mean"], ref["averageScoreInstClasses"])
    # the same predictions as trainIds: the class iIoU is the same (a caravan prediction,
    # which has no trainId, counts for the vehicle category only in labelIds)
    lut = np.full(256, 255, np.uint8)
    for _name, label_id, train_id in _evaluate.CITYSCAPES_LABELS:
        if label_id >= 0:
            lut[label_id] = train_id
    for pred_path, _ in pairs:
        Image.fromarray(lut[np.asarray(Image.open(pred_path))]).save(pred_path)
    rc = main(_argv(tmp_path, "--json", tmp_path / "t.json", "--no-map-predictions"))
    assert rc == 0, capsys.readouterr().err
    train = json.loads((tmp_path / "t.json").read_text())["iiou"]
    assert train["classes"] == got["classes"]
    assert train["categories"]["human"] == got["categories"]["human"]


def _prepare(tmp_path, n=3):
    images = _dataset(1)[:n]
    _write(tmp_path, images)
    return images


@pytest.mark.parametrize(
    "case",
    ["missing", "no-label-map", "pattern-alone", "bad-id", "shape", "output-is-input"],
)
def test_cli_errors_name_the_file(tmp_path, capsys, case):
    _prepare(tmp_path)
    inst_files = sorted((tmp_path / "gtFine" / "val").rglob("*_instanceIds.png"))
    argv = _argv(tmp_path, "--json", tmp_path / "r.json")
    expect = inst_files[0].name
    if case == "missing":
        inst_files[0].unlink()
    elif case == "no-label-map":
        i = argv.index("--label-map")
        argv[i : i + 2] = ["--num-classes", "34"]
        expect = "--label-map cityscapes"
    elif case == "pattern-alone":
        i = argv.index("--instances")
        del argv[i : i + 2]
        expect = "--instance-pattern"
    elif case == "bad-id":  # road (7) has no instances: cityscapesScripts raises KeyError
        inst = np.asarray(Image.open(inst_files[0])).copy()
        inst[0, 0] = 7001
        Image.fromarray(inst).save(inst_files[0])
    elif case == "shape":
        Image.fromarray(np.zeros((8, 8), np.uint16)).save(inst_files[0])
    else:  # an output naming an instance map is refused: inputs are never overwritten
        argv[argv.index("--json") + 1] = str(inst_files[0])
    before = inst_files[-1].read_bytes(), inst_files[0].exists() and inst_files[0].read_bytes()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "r.json").exists()
    assert before == (
        inst_files[-1].read_bytes(),
        inst_files[0].exists() and inst_files[0].read_bytes(),
    )


def test_state_algebra():
    """Split batches merge to the whole, in any order, with ``empty`` as identity; vmapped
    images equal the batch; the device terms (float32) equal the host terms (float64)."""
    images = [tuple(a[:24, :48] for a in im) for im in _dataset(2)[:4]]
    label, inst, pred = (np.stack(a).astype(np.int32) for a in zip(*images, strict=True))
    whole = jaxseg.InstanceIoUStats.cityscapes(pred, label, inst)
    assert whole.batch_shape == (4,)
    a = jaxseg.InstanceIoUStats.cityscapes(pred[:2], label[:2], inst[:2]).reduce()
    b = jaxseg.InstanceIoUStats.cityscapes(pred[2:], label[2:], inst[2:]).reduce()
    empty = jaxseg.InstanceIoUStats.empty(
        34,
        class_sizes=_iiou.CITYSCAPES_AVG_CLASS_SIZE,
        categories=_iiou.CITYSCAPES_CATEGORIES,
        ignore_index=_iiou.CITYSCAPES_IGNORED,
    )
    total = whole.reduce()
    for merged in (a + b, b.merge(a), empty + a + b):
        np.testing.assert_allclose(merged.weighted, total.weighted, rtol=1e-6)
        np.testing.assert_array_equal(merged.fp_to_numpy(), total.fp_to_numpy())
    for n in range(4):
        w64, fp64 = _iiou.image_terms(
            pred[n].ravel(), label[n].ravel(), inst[n].ravel(), _iiou.CITYSCAPES
        )
        np.testing.assert_allclose(whole.weighted[n], w64, rtol=1e-6)
        np.testing.assert_array_equal(whole.fp_to_numpy()[n], fp64)
    assert total.weighted[0, 26] > 0 and total.fp_to_numpy()[26] > 0  # cars were counted
    one = jax.vmap(lambda p, l, i: jaxseg.InstanceIoUStats.cityscapes(p[None], l[None], i[None]))
    mapped = one(pred, label, inst)  # vmapped single images: batch shape (4, 1)
    np.testing.assert_allclose(mapped.weighted[:, 0], whole.weighted, rtol=1e-6)
    np.testing.assert_array_equal(mapped.fp_to_numpy()[:, 0], whole.fp_to_numpy())


def test_bad_arguments():
    x = jnp.zeros((1, 4), jnp.int32)
    make = jaxseg.InstanceIoUStats.from_predictions
    with pytest.raises(TypeError, match="`instances`"):
        make(x, x, x.astype(jnp.float32), num_classes=3, class_sizes={1: 2.0})
    with pytest.raises(ValueError, match="`instances` and `labels`"):
        make(x, x, jnp.zeros((1, 5), jnp.int32), num_classes=3, class_sizes={1: 2.0})
    with pytest.raises(ValueError, match="`class_sizes`"):
        make(x, x, x, num_classes=3, class_sizes={3: 2.0})
    with pytest.raises(ValueError, match="`class_sizes`"):
        make(x, x, x, num_classes=3, class_sizes={1: -2.0})
    with pytest.raises(ValueError, match="two categories"):
        make(x, x, x, num_classes=3, class_sizes={1: 2.0}, categories={"a": (1,), "b": (1, 2)})
    with pytest.raises(ValueError, match="`label_divisor`"):
        make(x, x, x, num_classes=3, class_sizes={1: 2.0}, label_divisor=0)
    with pytest.raises(ValueError, match="batch axis"):
        make(x[0], x[0], x[0], num_classes=3, class_sizes={1: 2.0})
    a = jaxseg.InstanceIoUStats.empty(3, class_sizes={1: 2.0})
    b = jaxseg.InstanceIoUStats.empty(3, class_sizes={2: 2.0})
    with pytest.raises(ValueError, match="different settings"):
        a + b
