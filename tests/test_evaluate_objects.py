"""Object metrics of ``jaxseg evaluate``, against the API and against panoptica.

The command line pads each pair to a size bucket and runs one per-image
``PanopticStats.from_semantic``; these tests check that its numbers (per case in
the JSON and the per-image CSV, and per dataset) equal the API's on the
unpadded maps for both matchings and with regions, that NIfTI volumes give
panoptica's values (brats-evaluation's bundled ``gli`` configuration, with the
headers' anisotropic spacing), and that bad object options stop with one line.
The images are mostly of bucket shapes so that the API calls reuse the
command line's compilations; one image per folder is padded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings

import jax
import numpy as np
import pytest

import jaxseg
from jaxseg import _evaluate_objects as eo
from jaxseg.cli import main

pytest.importorskip("PIL")
from PIL import Image

ALL = ("pq", "sq", "rq", "instance_f1", "lesion_dice")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["evaluate", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _lesions(rng, shape, num_classes, n):
    """A label map with ``n`` box lesions of random classes, and a prediction that shifts,
    grows, drops or merges some of them and adds small false positives."""
    label = np.zeros(shape, np.uint8)
    for _ in range(n):
        lo = [int(rng.integers(0, s - 3)) for s in shape]
        size = [int(rng.integers(1, 5)) for _ in shape]
        label[tuple(slice(a, a + b) for a, b in zip(lo, size, strict=True))] = rng.integers(
            1, num_classes
        )
    pred = label.copy()
    op = rng.integers(4)
    if op == 0:
        pred = np.roll(pred, 1, axis=int(rng.integers(len(shape))))
    elif op == 1:  # a lesion class swapped everywhere: misses and false positives
        pred[pred == 1] = num_classes - 1
    elif op == 2:  # lesions grown (some merge)
        grown = np.maximum(pred, np.roll(pred, 1, 0))
        pred = np.maximum(grown, np.roll(grown, 1, -1))
    noise = rng.random(shape) < 0.003
    pred[noise] = rng.integers(1, num_classes, int(noise.sum()))
    return pred, label


def _folders(tmp_path, maps):
    for d in ("pred", "label"):
        (tmp_path / d).mkdir()
    for i, (pred, label) in enumerate(maps):
        Image.fromarray(pred).save(tmp_path / "pred" / f"case{i}.png")
        Image.fromarray(label).save(tmp_path / "label" / f"case{i}.png")


#: Each folder: N_BUCKET maps of the bucket shape (the API reuses the command line's
#: compilation) and one padded map, checked against panoptica instead.
N_BUCKET = 5


def _api(maps, num_classes, **kw):
    """One state ``[N]`` of the per-case states of the API (batch 1 each, unpadded maps)."""
    states = [
        jaxseg.PanopticStats.from_semantic(
            p[None].astype(np.int32),
            g[None].astype(np.int32),
            num_classes=num_classes,
            max_segments=eo.FIRST_CAP,  # the command line's first cap: its compilation
            **kw,
        )
        for p, g in maps
    ]
    state = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *states)
    assert float(state.num_overflow.sum()) == 0
    return state


def _check_report(report, state, categories, metrics=ALL):
    """The JSON's first cases equal the API's state (its counts, and its pair sums by the
    score formulas), per case and category."""
    per_case = _formulas(state)
    counts = state.to_numpy()  # [N, 3, K]
    sec = report["objects"]
    assert all(e["name"] == categories[e["id"]] for e in sec["categories"])
    compared = 0
    for i, entry in enumerate(report["images"][: len(counts)]):
        for e in sec["categories"]:
            k, got = e["id"], entry["objects"][e["name"]]
            assert (got["tp"], got["fp"], got["fn"]) == tuple(counts[i, :, k]), (i, e["name"])
            for m in metrics:
                value = math.nan if got[m] is None else got[m]
                np.testing.assert_allclose(value, per_case[m][i, k], rtol=1e-6, err_msg=m)
                compared += 1
    return compared


def _formulas(state):
    """Per-case scores ``[N, K]`` from the API state's counts and pair sums, by the
    documented formulas (NumPy)."""
    tp, fp, fn = np.moveaxis(state.to_numpy().astype(np.float64), 1, 0)
    sums = np.moveaxis(np.asarray(state.sums, np.float64), 1, 0)
    sums = dict(zip(state.metrics, sums, strict=True))
    n, den = tp + fp + fn, tp + (fp + fn) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "pq": sums["iou"] / den,
            "sq": np.where(tp > 0, sums["iou"] / tp, 0.0),
            "rq": tp / den,
            "lesion_dice": sums["dice"] / n,
        }
        if "hd95" in sums:
            out["lesion_hd95"] = (sums["hd95"] + 374 * (fp + fn)) / n
    out["instance_f1"] = out["rq"]
    return {k: np.where(n > 0, v, np.nan) for k, v in out.items()}


def _check_dataset(report):
    """Dataset scores are those of the summed statistics, rebuilt in NumPy from the
    JSON's per-case counts and values: per category and as the mean over categories; the
    zero-TP and empty cases are counted, and the case means leave the empty ones out."""
    sec = report["objects"]
    cases = [e["objects"] for e in report["images"]]
    names = [e["name"] for e in sec["categories"]]

    def column(key):  # [N, K], None -> NaN
        return np.array(
            [[np.nan if c[n][key] is None else c[n][key] for n in names] for c in cases]
        )

    tp, fp, fn = (column(k) for k in ("tp", "fp", "fn"))
    pq_den, n = tp + (fp + fn) / 2, tp + fp + fn
    sum_iou = np.nan_to_num(column("pq")) * pq_den
    sum_dice = np.nan_to_num(column("lesion_dice")) * n
    with np.errstate(invalid="ignore", divide="ignore"):
        s_tp, s_den, s_n = tp.sum(0), pq_den.sum(0), n.sum(0)
        want = {
            "pq": sum_iou.sum(0) / s_den,
            "sq": np.where(s_tp > 0, sum_iou.sum(0) / s_tp, np.where(s_n > 0, 0.0, np.nan)),
            "rq": s_tp / s_den,
            "instance_f1": s_tp / s_den,
            "lesion_dice": sum_dice.sum(0) / s_n,
        }
    for m in ALL:
        got = [e[m] if e[m] is not None else np.nan for e in sec["categories"]]
        np.testing.assert_allclose(got, want[m], rtol=1e-5, err_msg=m)
        np.testing.assert_allclose(sec[f"mean_{m}"], np.nanmean(want[m]), rtol=1e-5, err_msg=m)
        values = column(m)
        assert sec["cases"][m]["nan"] == int(np.isnan(values).sum())
        got = [e[f"{m}_case_mean"] for e in sec["categories"]]
        np.testing.assert_allclose(got, np.nanmean(values, 0), rtol=1e-6, err_msg=m)
    assert [e["tp"] for e in sec["categories"]] == s_tp.astype(int).tolist()
    zero = (n > 0) & (tp == 0)
    assert [e["cases_zero_tp"] for e in sec["categories"]] == zero.sum(0).tolist()
    assert sec["cases_zero_tp"] == int(zero.any(1).sum())
    return int(zero.any(1).sum()), int((n == 0).sum())


def _panoptica(pred_mask, ref_mask, matcher, backend):
    """panoptica's values of one binary pair, as the command line's metric names."""
    from panoptica import ConnectedComponentsInstanceApproximator, InputType, Panoptica_Evaluator
    from panoptica.metrics import Metric

    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(cca_backend=backend),
        instance_matcher=matcher,
        instance_metrics=[Metric.IOU, Metric.DSC],
        global_metrics=[],
        verbose=False,
        log_times=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = next(
            iter(
                evaluator.evaluate(
                    pred_mask.astype(np.uint8), ref_mask.astype(np.uint8), verbose=False
                ).values()
            )
        )
    tp, fp, fn = int(res.tp), int(res.fp), int(res.fn)
    n = tp + fp + fn
    nan = math.nan
    return {
        "counts": (tp, fp, fn),
        "pq": float(res.pq) if n else nan,
        "sq": float(res.sq) if n else nan,
        "rq": float(res.rq) if n else nan,
        "instance_f1": float(res.rq) if n else nan,
        "lesion_dice": (float(res.sq_dsc) * tp / n if tp else 0.0) if n else nan,
    }


def _check_padded(entry, masks, matcher, backend):
    """The padded case (the last) equals panoptica on its own, unpadded, masks."""
    for name, (pred_mask, ref_mask) in masks.items():
        want = _panoptica(pred_mask, ref_mask, matcher, backend)
        got = entry["objects"][name]
        assert (got["tp"], got["fp"], got["fn"]) == want["counts"], name
        for m in ALL:
            value = math.nan if got[m] is None else got[m]
            np.testing.assert_allclose(value, want[m], rtol=1e-6, atol=1e-7, err_msg=m)


def _evaluate(capsys, tmp_path, *args):
    rc, out, err = _run(
        capsys,
        tmp_path / "pred",
        tmp_path / "label",
        "--metrics",
        "iou," + ",".join(ALL),
        "--json",
        tmp_path / "r.json",
        "--per-image",
        tmp_path / "cases.csv",
        *args,
    )
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cases.csv").read_text())))
    return json.loads((tmp_path / "r.json").read_text()), rows, out


def test_classes_threshold_matching_equal_the_api_and_panoptica(tmp_path, capsys):
    """Six 2-D cases, C = 4, IoU > 0.5 matching: per case (JSON and per-image CSV) equal
    PanopticStats.from_semantic (its counts, and its IoU and Dice sums by the score
    formulas); the padded case (20 x 28 in a 32 x 32
    bucket) equals panoptica (NaiveThresholdMatching, strict); the dataset scores are those
    of the summed statistics; zero-TP and empty cases are counted."""
    pytest.importorskip("panoptica", reason="panoptica is not installed (the `parity` extra)")
    from panoptica import NaiveThresholdMatching
    from panoptica.metrics import Metric
    from panoptica.utils.constants import CCABackend

    rng = np.random.default_rng(0)
    maps = [_lesions(rng, s, 4, 9) for s in [(32, 32)] * N_BUCKET + [(20, 28)]]
    maps[1] = (np.zeros_like(maps[1][0]), maps[1][1])  # empty prediction
    maps[2] = (maps[2][0], np.zeros_like(maps[2][1]))  # empty reference
    maps[3] = tuple(np.where(x == 3, 0, x).astype(np.uint8) for x in maps[3])  # no class 3
    _folders(tmp_path, maps)
    report, rows, out = _evaluate(capsys, tmp_path, "-C", 4, "-j", 1)
    state = _api(maps[:N_BUCKET], 4)
    compared = _check_report(report, state, ["0", "1", "2", "3"])
    assert compared == N_BUCKET * 3 * len(ALL)
    p, g = maps[-1]
    matcher = NaiveThresholdMatching(
        matching_metric=Metric.IOU, matching_threshold=0.5, strict_threshold=True
    )
    masks = {str(k): (p == k, g == k) for k in (1, 2, 3)}
    _check_padded(report["images"][-1], masks, matcher, CCABackend.scipy)

    sec = report["objects"]
    assert sec["matching"] == "threshold" and sec["threshold"] == 0.5 and sec["strict"]
    assert [e["id"] for e in sec["categories"]] == [1, 2, 3]  # class 0 forms no objects
    zero_tp, empty = _check_dataset(report)
    assert zero_tp > 0 and empty > 0
    # the per-image CSV carries the same values
    checked = 0
    for row in rows:
        got = next(e for e in report["images"] if e["name"] == row["image"])["objects"]
        got = got.get(row["class_name"])
        if got is None:
            assert row["objects_tp"] == ""
            continue
        assert int(row["objects_tp"]) == got["tp"] and int(row["objects_fn"]) == got["fn"]
        for m in ALL:
            assert (row[m] == "") if got[m] is None else float(row[m]) == pytest.approx(got[m])
        checked += 1
    assert checked > 10
    assert "objects: connected components (1-connectivity)" in out
    assert "cases with objects but no match (zero TP)" in out


def test_nifti_regions_bipartite_equal_the_api_and_panoptica(tmp_path, capsys):
    """NIfTI volumes with anisotropic spacing in the headers, scored with BraTS' settings
    (six regions, unions among them; 26-connectivity; bipartite Dice matching): tp, fp, fn,
    RQ (instance F1), lesion-wise Dice and HD95 (fill 374) of every case and region equal
    brats-evaluation's bundled `gli` configuration of panoptica on the same arrays (a
    padded volume, 14 x 16 x 7 in a 16 x 16 x 8 bucket, among them); every case of the
    bucket shape equals PanopticStats.from_semantic (its counts and pair sums, by the
    score formulas); the dataset scores are those of the summed statistics; the
    per-image CSV has one row per case and region."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("panoptica", reason="panoptica is not installed (the `parity` extra)")
    nib = pytest.importorskip("nibabel")
    spec = importlib.util.find_spec("brats_evaluation")
    if spec is None:
        pytest.skip("brats-evaluation is not installed (the `parity` extra)")
    from panoptica import Panoptica_Evaluator

    config = Path(spec.submodule_search_locations[0]) / "configs" / "config_gli.yaml"
    evaluator = Panoptica_Evaluator.load_from_config(config)
    rng = np.random.default_rng(2)
    spacing = (0.8, 1.0, 2.0)
    maps = [_lesions(rng, s, 5, 7) for s in [(16, 16, 8)] * 3 + [(14, 16, 7)]]
    maps[0] = (np.zeros_like(maps[0][0]), maps[0][1])  # an empty prediction
    for d in ("pred", "label"):
        (tmp_path / d).mkdir()
    affine = np.diag([*spacing, 1.0])
    for i, (p, g) in enumerate(maps):
        nib.save(nib.Nifti1Image(p, affine), tmp_path / "pred" / f"case{i}.nii.gz")
        nib.save(nib.Nifti1Image(g, affine), tmp_path / "label" / f"case{i}.nii.gz")
    regions = {"snfh": (2,), "et": (3,), "netc": (1,), "rc": (4,), "tc": (1, 3), "wt": (1, 2, 3)}
    text = ":".join(f"{k}={','.join(map(str, v))}" for k, v in regions.items())
    metrics = (*ALL, "lesion_hd95")
    rc, _, err = _run(
        capsys,
        tmp_path / "pred",
        tmp_path / "label",
        "-C",
        5,
        "--metrics",
        ",".join(metrics),
        "--regions",
        text,
        "--connectivity",
        3,
        "--matching",
        "bipartite",
        "--json",
        tmp_path / "r.json",
        "--per-image",
        tmp_path / "cases.csv",
        "-j",
        2,
    )
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (p, g), entry in zip(maps, report["images"], strict=True):
            results = evaluator.evaluate(p, g, voxelspacing=spacing, verbose=False)
            for name, got in entry["objects"].items():
                res = results[name]
                tp, fp, fn = int(res.tp), int(res.fp), int(res.fn)
                assert (got["tp"], got["fp"], got["fn"]) == (tp, fp, fn), name
                n = tp + fp + fn
                hd95_sum = float(res.sq_hd95) * tp if tp else 0.0
                want = {
                    "rq": float(res.rq),
                    "instance_f1": float(res.rq),
                    "lesion_dice": float(res.sq_dsc) * tp / n if tp else 0.0,
                    "lesion_hd95": (hd95_sum + 374 * (fp + fn)) / n if n else math.nan,
                }
                for m, want_m in want.items():
                    value = math.nan if got[m] is None else got[m]
                    np.testing.assert_allclose(
                        value,
                        want_m if n else math.nan,
                        rtol=5e-6,
                        atol=1e-5,
                        err_msg=f"{entry['name']} {name} {m}",
                    )
                    compared += 1
    assert compared == len(maps) * len(regions) * 4
    assert report["objects"]["lesion_hd95_fill"] == 374
    header = tuple(float(np.float32(x)) for x in spacing)  # as NIfTI stores it: float32
    kw = dict(eo.MATCHINGS["bipartite"], instance_metrics=("hd95",), spacing=header)
    state = _api(maps[:3], 5, regions=regions, connectivity=3, **kw)
    compared = _check_report(report, state, list(regions), metrics)
    assert compared == 3 * len(regions) * len(metrics)
    _check_dataset(report)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cases.csv").read_text())))
    region_rows = [r for r in rows if r["class_id"] == ""]
    assert [r["class_name"] for r in region_rows] == list(regions) * len(maps)
    assert all(r["iou"] == "" and r["lesion_hd95"] != "" for r in region_rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "pq", "--regions", "wt=1,x"], "--regions: expected NAME=ID"),
        (["--metrics", "pq", "--regions", "wt=1,2,3"], "class id 3 outside [0, 3)"),
        (["--metrics", "pq", "--regions", "a=1:a=2"], "named twice"),
        (["--metrics", "pq", "--connectivity", "0"], "--connectivity must be 1..ndim"),
        (["--metrics", "pq", "--connectivity", "3"], "--connectivity 3: this map has 2 axes"),
        (["--regions", "wt=1"], "--regions applies to object metrics"),
        (["--matching", "bipartite"], "--matching applies to object metrics"),
    ],
)
def test_bad_object_options_one_line_exit_2(tmp_path, capsys, args, message):
    """One line on stderr naming the option, exit 2, no output file."""
    label = np.zeros((8, 8), np.uint8)
    label[2:4, 2:4] = 1
    _folders(tmp_path, [(label, label)])
    out = tmp_path / "r.json"
    rc, _, err = _run(capsys, tmp_path / "pred", tmp_path / "label", "-C", 3, *args, "--json", out)
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_regions_parser():
    assert eo.parse_regions("wt=1,2,3:tc=1,3:et=3", 4) == {
        "wt": (1, 2, 3),
        "tc": (1, 3),
        "et": (3,),
    }
    assert eo.parse_regions(" fg = 1 , 2 ", 3) == {"fg": (1, 2)}
