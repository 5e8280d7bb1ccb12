"""``jaxseg evaluate --panoptic`` on generated folders in Cityscapes' real panoptic layout.

The numbers are compared with cityscapesScripts' panoptic evaluation (panopticapi's
``pq_compute_single_core`` and ``average_pq``, run in this process on the same
folders) to 1e-12, and with :meth:`jaxseg.PanopticStats.from_panoptic` on the same id
maps; every kind of bad input is checked to give one line, exit status 2 and no
output file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxseg.cli import main
from tests import panoptic_layout as pl

pytest.importorskip("PIL")
from PIL import Image

N_CASES = 12  # every fifth splits a crowd region into two segments of one category


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("panoptic")
    cases = pl.random_cases(N_CASES, seed=7)
    return cases, pl.write_cityscapes_panoptic(root, cases, seed=7)


def _panopticapi(paths: dict[str, Path]) -> tuple[dict, dict]:
    """cityscapesScripts' results and its per-category (tp, fp, fn, iou) on ``paths``."""
    ev = pytest.importorskip(
        "cityscapesscripts.evaluation.evalPanopticSemanticLabeling",
        reason="cityscapesScripts is not installed (pip install 'jaxseg[bench]')",
    )
    gt = json.loads(paths["gt_json"].read_text())
    pred = json.loads(paths["pred_json"].read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    by_image = {a["image_id"]: a for a in pred["annotations"]}
    matched = [(a, by_image[a["image_id"]]) for a in gt["annotations"]]
    stat = ev.pq_compute_single_core(
        0, matched, str(paths["gt_folder"]), str(paths["pred_folder"]), categories
    )
    counts = {c: (s.tp, s.fp, s.fn, s.iou) for c, s in stat.pq_per_cat.items()}
    return ev.average_pq(stat, categories), counts


def test_panoptic_equals_cityscapesscripts(layout, tmp_path, capsys):
    """PQ, SQ, RQ of All / Things / Stuff and per category to 1e-12; tp, fp, fn exactly;
    the CSV and the printed table carry the same numbers."""
    _, paths = layout
    out_json, out_csv = tmp_path / "pq.json", tmp_path / "pq.csv"
    rc, out, err = _run(
        capsys,
        "evaluate", "--panoptic", paths["pred_json"], paths["gt_json"],
        "--json", out_json, "--csv", out_csv, "-j", "2",
    )  # fmt: skip
    assert rc == 0, err
    ours = json.loads(out_json.read_text())
    ref, ref_counts = _panopticapi(paths)
    assert ours["num_images"] == N_CASES
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == ref[group]["n"]
        for m in ("pq", "sq", "rq"):
            assert abs(ours[group][m] - ref[group][m]) <= 1e-12, (group, m)
    scored = 0
    for c in ours["categories"]:
        tp, fp, fn, iou = ref_counts.get(c["id"], (0, 0, 0, 0.0))
        assert (c["tp"], c["fp"], c["fn"]) == (tp, fp, fn), c["name"]
        assert abs(c["iou_sum"] - iou) <= 1e-12
        if tp + fp + fn == 0:  # panopticapi writes 0 and leaves the category out of the means
            assert not c["in_averages"] and c["pq"] is None
            continue
        scored += 1
        for m in ("pq", "sq", "rq"):
            assert abs(c[m] - ref["per_class"][c["id"]][m]) <= 1e-12, (c["name"], m)
    assert scored >= 15  # the cases reach most categories, things and stuff
    assert sum(c["tp"] for c in ours["categories"]) > 0
    assert any(c["fp"] for c in ours["categories"]) and any(c["fn"] for c in ours["categories"])
    rows = out_csv.read_text().splitlines()
    assert rows[0] == "category_id,name,isthing,pq,sq,rq,tp,fp,fn"
    assert len(rows) == 1 + len(pl.CITYSCAPES_CATEGORIES)
    for row, c in zip(rows[1:], ours["categories"], strict=True):
        cells = row.split(",")
        assert int(cells[0]) == c["id"] and [int(x) for x in cells[6:]] == [
            c["tp"],
            c["fp"],
            c["fn"],
        ]
        assert cells[3] == ("" if c["pq"] is None else repr(c["pq"]))
    # the printed table: panopticapi's rows in percent, to one decimal
    lines = out.splitlines()
    all_row = next(line for line in lines if line.startswith("All "))
    assert all_row.split("|")[1].split()[:3] == [
        f"{100 * ref['All'][m]:.1f}" for m in ("pq", "sq", "rq")
    ]
    person = next(line for line in lines if line.startswith("person "))
    pq = ref["per_class"][24]["pq"]
    assert person.split("|")[1].split()[0] == f"{100 * pq:.1f}"
    assert f"wrote {out_json}" in out


def test_degenerate_images_equal_cityscapesscripts(tmp_path, capsys):
    """An all-VOID prediction (every reference segment missed), an all-VOID reference
    (every predicted segment lies in VOID: no false positive), both all VOID, and a
    one-pixel image."""
    rng = np.random.default_rng(5)
    label = pl.random_label(rng)
    pred = pl.random_prediction(rng, label)
    void = np.zeros_like(label)
    cases = [
        pl.PanopticCase("frankfurt_000000_000001", label, void),
        pl.PanopticCase("frankfurt_000000_000002", void, pred),
        pl.PanopticCase("frankfurt_000000_000003", void, void),
        pl.PanopticCase("lindau_000000_000004", np.full((1, 1), 26001), np.full((1, 1), 26007)),
    ]
    paths = pl.write_cityscapes_panoptic(tmp_path, cases, seed=2)
    out_json = tmp_path / "pq.json"
    rc, _, err = _run(
        capsys, "evaluate", "--panoptic", paths["pred_json"], paths["gt_json"], "--json", out_json
    )
    assert rc == 0, err
    ours = json.loads(out_json.read_text())
    ref, ref_counts = _panopticapi(paths)
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == ref[group]["n"]
        for m in ("pq", "sq", "rq"):
            assert abs(ours[group][m] - ref[group][m]) <= 1e-12, (group, m)
    for c in ours["categories"]:
        assert (c["tp"], c["fp"], c["fn"]) == ref_counts.get(c["id"], (0, 0, 0, 0.0))[:3]
    assert sum(c["fp"] for c in ours["categories"]) == 0  # all predictions lie in VOID
    assert next(c for c in ours["categories"] if c["name"] == "car")["tp"] == 1


def test_panoptic_equals_the_api(layout, tmp_path, capsys):
    """The command line (COCO files: RGB ids and ``segments_info``) equals the library on the
    same images as id maps in jaxseg's ``category * 1000 + instance`` convention: exact
    counts, and PQ, SQ, RQ to 1e-12.

    The id maps go through ``panoptic_image_counts``, the host form of
    ``PanopticStats.from_panoptic``'s per-image step (equal to the jitted state in
    tests/test_panoptic_coco.py); no compilation here. Cases with two crowd segments
    of one category are left out: the id convention has one crowd region per
    category (``category * 1000``), the COCO files two.
    """
    import jaxseg
    from jaxseg import _panoptic, _panoptic_rules

    cases, _ = layout
    keep = [c for c in cases if not c.split_crowd]
    assert len(keep) >= 8
    sub_paths = pl.write_cityscapes_panoptic(tmp_path / "sub", keep, seed=1)
    out_json = tmp_path / "pq.json"
    rc, _, err = _run(
        capsys, "evaluate", "--panoptic", sub_paths["pred_json"], sub_paths["gt_json"],
        "--json", out_json,
    )  # fmt: skip
    assert rc == 0, err
    ours = json.loads(out_json.read_text())
    per_image = [
        _panoptic.panoptic_image_counts(
            c.pred_ids, c.label_ids, categories=pl.CITYSCAPES_CATEGORIES
        )
        for c in keep
    ]
    counts = sum(c for c, _ in per_image)
    sums = sum(s for _, s in per_image)
    assert counts.tolist() == [[c[k] for c in ours["categories"]] for k in ("tp", "fp", "fn")]
    api = jaxseg.panoptic_summary(
        _panoptic_rules.host_state(counts, sums, pl.CITYSCAPES_CATEGORIES)
    )
    for group in ("All", "Things", "Stuff"):
        assert api[group]["n"] == ours[group]["n"]
        for m in ("pq", "sq", "rq"):
            assert abs(api[group][m] - ours[group][m]) <= 1e-12
    for c in ours["categories"]:
        for m in ("pq", "sq", "rq"):
            want = api["per_class"][c["id"]][m]
            assert (c[m] is None and np.isnan(want)) or abs(c[m] - want) <= 1e-12


def test_folders_named_explicitly_and_coco_integer_ids(layout, tmp_path, capsys):
    """PNG folders elsewhere (``--pred-folder`` / ``--gt-folder``) and COCO's integer image
    ids give the same result; without the flags the missing folder is named."""
    _, paths = layout
    ref_json = tmp_path / "ref.json"
    assert _run(capsys, "evaluate", "--panoptic", paths["pred_json"], paths["gt_json"],
                "--json", ref_json)[0] == 0  # fmt: skip
    ref = json.loads(ref_json.read_text())
    coco = tmp_path / "coco"
    gt_png, pred_png = coco / "gt_png", coco / "pred_png"
    shutil.copytree(paths["gt_folder"], gt_png)
    shutil.copytree(paths["pred_folder"], pred_png)
    number = {}
    for key, name in (("gt_json", "panoptic_val2017.json"), ("pred_json", "pred.json")):
        data = json.loads(paths[key].read_text())
        for ann in reversed(data["annotations"]):  # another order than the ground truth's
            ann["image_id"] = number.setdefault(ann["image_id"], len(number) + 1)
        data["annotations"].reverse()
        (coco / name).write_text(json.dumps(data))
    out_json = tmp_path / "coco.json"
    rc, _, err = _run(
        capsys, "evaluate", "--panoptic", coco / "pred.json", coco / "panoptic_val2017.json",
        "--pred-folder", pred_png, "--gt-folder", gt_png, "--json", out_json,
    )  # fmt: skip
    assert rc == 0, err
    got = json.loads(out_json.read_text())
    assert got["categories"] == [
        {**c, **{m: pytest.approx(c[m], abs=1e-12) for m in ("pq", "sq", "rq", "iou_sum")}}
        for c in ref["categories"]
    ]
    for key in ("All", "Things", "Stuff"):  # summed in another image order: float rounding
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
    rc, _, err = _run(
        capsys, "evaluate", "--panoptic", coco / "pred.json", coco / "panoptic_val2017.json"
    )
    assert rc == 2 and "panoptic_val2017: not a folder" in err and "--gt-folder" in err


# -- bad input: one line, exit status 2, nothing written ---------------------------------


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _first_segment(data: dict) -> dict:
    return data["annotations"][0]["segments_info"][0]


def _recolour(path: Path, edit) -> None:
    Image.fromarray(edit(np.asarray(Image.open(path)).copy())).save(path)


BAD = {
    "json syntax": ("pred_json", lambda p: p.write_text('{"annotations": ['), "not valid JSON"),
    "not an object": ("gt_json", lambda p: p.write_text("[]"), "got a JSON list"),
    "no categories": (
        "gt_json",
        lambda p: _edit_json(p, lambda d: d.pop("categories")),
        "the file has no 'categories'",
    ),
    "no segments_info": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: d["annotations"][1].pop("segments_info")),
        "has no 'segments_info'",
    ),
    "segment id not an integer": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: _first_segment(d).update(id="7")),
        "'id' is \"7\", not an integer",
    ),
    "isthing not a flag": (
        "gt_json",
        lambda p: _edit_json(p, lambda d: d["categories"][0].update(isthing="yes")),
        "'isthing' is \"yes\", not an integer or a boolean",
    ),
    "iscrowd not a flag": (
        "gt_json",
        lambda p: _edit_json(p, lambda d: _first_segment(d).update(iscrowd=2)),
        "'iscrowd' is 2, not 0 or 1",
    ),
    "duplicate segment id": (
        "gt_json",
        lambda p: _edit_json(
            p, lambda d: d["annotations"][0]["segments_info"].append(_first_segment(d))
        ),
        "is listed twice in segments_info",
    ),
    "duplicate image": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: d["annotations"].append(d["annotations"][0])),
        "has two annotations",
    ),
    "unknown category": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: _first_segment(d).update(category_id=99)),
        "category_id 99, which is not among the categories",
    ),
    "no prediction for an image": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: d["annotations"].pop(1)),
        "no prediction for image_id",
    ),
    "prediction without ground truth": (
        "pred_json",
        lambda p: _edit_json(
            p, lambda d: d["annotations"].append({**d["annotations"][0], "image_id": "extra"})
        ),
        'image_id "extra" has no annotation in',
    ),
    "missing png": ("pred_png", lambda p: p.unlink(), "missing: the prediction PNG of image_id"),
    "id in png, not in segments_info": (
        "pred_json",
        lambda p: _edit_json(p, lambda d: d["annotations"][0]["segments_info"].pop(0)),
        "is in the PNG but not in segments_info",
    ),
    "segment of segments_info not in png": (
        "gt_json",
        lambda p: _edit_json(
            p,
            lambda d: d["annotations"][0]["segments_info"].append(
                {"id": 4321, "category_id": 7, "iscrowd": 0}
            ),
        ),
        "segment id 4321 of segments_info has no pixel in the PNG",
    ),
    "grey png": (
        "pred_png",
        lambda p: Image.fromarray(np.zeros((24, 40), np.uint8)).save(p),
        "expected an RGB panoptic PNG",
    ),
    "size differs": (
        "gt_png",
        lambda p: _recolour(p, lambda a: a[:-1]),
        "differs from the ground truth's",
    ),
    "not a png": ("gt_png", lambda p: p.write_bytes(b"not an image"), "cannot read image"),
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    cases = pl.random_cases(3, seed=11)
    pl.write_cityscapes_panoptic(root, cases, seed=11)
    return root


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(small, tmp_path, capsys, case):
    target, edit, message = BAD[case]
    root = tmp_path / "data"
    shutil.copytree(small, root)
    gt_json = root / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = root / "results" / "cityscapes_panoptic_val.json"
    first = json.loads(gt_json.read_text())["annotations"][0]["file_name"]
    paths = {
        "gt_json": gt_json,
        "pred_json": pred_json,
        "gt_png": root / "gtFine" / "cityscapes_panoptic_val" / first,
        "pred_png": root / "results" / "cityscapes_panoptic_val"
        / first.replace("_gtFine_panoptic", "_panoptic"),
    }  # fmt: skip
    edit(paths[target])
    out_json, out_csv = tmp_path / "out.json", tmp_path / "out.csv"
    out_csv.write_text("old\n")
    rc, out, err = _run(
        capsys, "evaluate", "--panoptic", pred_json, gt_json, "--json", out_json, "--csv", out_csv
    )
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("jaxseg evaluate: error: ") and message in err, err
    # the file at fault is named: the edited one, or the PNG disagreeing with its segments_info
    named = {
        "id in png, not in segments_info": "pred_png",
        "segment of segments_info not in png": "gt_png",
    }
    assert str(paths[named.get(case, target)]) in err, err
    assert not out_json.exists() and out_csv.read_text() == "old\n"


def test_output_naming_an_input_is_refused_before_any_work(small, tmp_path, capsys):
    gt_json = small / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = small / "results" / "cityscapes_panoptic_val.json"
    png = next((small / "gtFine" / "cityscapes_panoptic_val").iterdir())
    before = {p: p.read_bytes() for p in (gt_json, png)}
    for option, target in (("--json", gt_json), ("--csv", png)):
        rc, _, err = _run(capsys, "evaluate", "--panoptic", pred_json, gt_json, option, target)
        assert rc == 2 and "an input; refusing to overwrite it" in err and option in err
    assert all(p.read_bytes() == data for p, data in before.items())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["p", "l", "--panoptic", "a.json", "b.json"], "--panoptic takes no PRED_DIR LABEL_DIR"),
        (["--panoptic", "a.json", "b.json", "-C", "3"], "--num-classes does not apply"),
        (["--panoptic", "a.json", "b.json", "--per-image", "x.csv"], "--per-image does not"),
        (["--gt-folder", "x", "p", "l"], "--pred-folder and --gt-folder go with --panoptic"),
        (["p"], "give PRED_DIR and LABEL_DIR"),
    ],
)
def test_usage_errors(capsys, argv, message):
    rc, _, err = _run(capsys, "evaluate", *argv)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_tiny_benchmark_runs_and_agrees_with_cityscapesscripts(tmp_path):
    """``python -m benchmarks.panoptic --tiny``: both tools as processes, results checked."""
    pytest.importorskip(
        "cityscapesscripts",
        reason="cityscapesScripts is not installed (pip install 'jaxseg[bench]')",
    )
    from benchmarks import panoptic

    assert panoptic.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "panoptic.json").read_text())
    assert result["check"].startswith("ok"), result["check"]
    assert {r["tool"] for r in result["rows"]} == {"jaxseg", "cityscapesScripts"}
    assert result["targets"][0]["target"].startswith("O1 panoptic")
    assert "| jaxseg |" in (tmp_path / "panoptic.md").read_text()


def test_panoptic_folders_are_scored_without_importing_jax(small, tmp_path):
    """The whole ``--panoptic`` run (reading, counting, panopticapi's rules, the report)
    stays in NumPy: a process that imports JAX pays about 1.5 s of CPU for it."""
    import subprocess
    import sys

    gt_json = small / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = small / "results" / "cityscapes_panoptic_val.json"
    out = tmp_path / "r.json"
    code = (
        "import sys\n"
        "from jaxseg.cli import main\n"
        f"rc = main(['evaluate', '--panoptic', {str(pred_json)!r}, {str(gt_json)!r}, "
        f"'--json', {str(out)!r}, '-q'])\n"
        "print(rc, 'jax' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split()[-2:] == ["0", "False"], res.stdout + res.stderr
    assert json.loads(out.read_text())["All"]["n"] > 0
