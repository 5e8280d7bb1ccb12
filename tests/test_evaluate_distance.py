"""Distance and boundary metrics of ``jaxseg evaluate``, against MONAI, NumPy and the API.

The per-image work pads each pair to a size bucket; these tests check that the
padding changes no value (MONAI and boundary-iou-api's band on many sizes),
that the command line and the public functions give the same means, that the
means leave out the background and count the cases they leave out, and that a
folder of many sizes compiles once per bucket.
"""

from __future__ import annotations

import csv
import io
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _evaluate_distance as ed
from jaxseg.cli import main
from tests import reference_distance as R

pytest.importorskip("PIL")
from PIL import Image

ALL = ("hd", "hd95", "assd", "nsd", "boundary_iou")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _blobs(rng, shape, num_classes):
    """Label and prediction maps whose classes touch the borders, with a shifted prediction."""
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    label = np.zeros(shape, np.int32)
    for c in range(1, num_classes):
        centre = rng.uniform(0, 1, len(shape)) * shape
        radii = rng.uniform(0.25, 0.6, len(shape)) * shape
        label[(((grid - centre) / radii) ** 2).sum(-1) <= 1] = c
    pred = np.roll(label, tuple(rng.integers(-2, 3, len(shape))), range(len(shape)))
    pred = np.where(rng.random(shape) < 0.9, pred, rng.integers(0, num_classes, shape))
    return pred.astype(np.int32), label


def _monai(pred, label, c, spacing, tolerance):
    """MONAI's HD, HD95, ASSD, NSD of one pair ``[C]`` (background included)."""
    p, g = pred[None], label[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "hd": R.monai_metric("hd", p, g, c, spacing=spacing)[0],
            "hd95": R.monai_metric("hd", p, g, c, spacing=spacing, percentile=95)[0],
            "assd": R.monai_metric("asd", p, g, c, spacing=spacing, symmetric=True)[0],
            "nsd": R.monai_metric("nsd", p, g, c, spacing=spacing, tolerance=tolerance)[0],
        }


# -- padding to size buckets changes nothing --------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_padding_to_a_bucket_changes_no_value(ndim):
    """Many sizes of one bucket: every value equals MONAI's and the band equals the NumPy
    boundary-iou-api reference (its 3x3x3 form for volumes), classes touching every border."""
    pytest.importorskip("monai")
    rng = np.random.default_rng(ndim)
    c = 3
    lo, hi = (17, 32) if ndim == 2 else (9, 16)
    shapes = {tuple(int(s) for s in rng.integers(lo, hi + 1, ndim)) for _ in range(8)}
    shapes.add((hi,) * ndim)  # no padding at all
    spacing = (0.7, 1.3, 2.0)[:ndim]
    for shape in sorted(shapes):
        assert tuple(ed.bucket(n) for n in shape) == (hi,) * ndim
        pred, label = _blobs(rng, shape, c)
        got = ed.per_image_metrics(
            pred, label, num_classes=c, metrics=ALL, spacing=spacing, tolerance=1.5
        )
        want = _monai(pred, label, c, spacing, 1.5)
        for name, ref in want.items():
            np.testing.assert_allclose(got[name], ref, rtol=2e-6, err_msg=f"{name} {shape}")
        band = R.boundary_counts(pred, label, c)
        np.testing.assert_array_equal(got["boundary_iou_counts"], band, err_msg=str(shape))


def test_values_equal_the_public_functions_on_the_unpadded_maps():
    """Bit for bit (ASSD: to float32 rounding of its sum) equal to the API, with ignored ids,
    a spacing per axis and a class that one map lacks."""
    rng = np.random.default_rng(3)
    pred, label = _blobs(rng, (11, 13, 10), 4)
    label[0, :4] = 255
    pred[pred == 3] = 1  # class 3 only in the labels: infinite distances
    kw = dict(num_classes=4, spacing=(0.5, 1.0, 2.5), ignore_index=255)
    got = ed.per_image_metrics(pred, label, metrics=ALL, tolerance=1.0, **kw)
    p, g = pred[None], label[None]

    @jax.jit
    def api(p, g):  # the public functions in one compiled program
        return {
            "hd": jaxseg.hausdorff_distance(p, g, **kw),
            "hd95": jaxseg.hausdorff_distance(p, g, percentile=95, **kw),
            "assd": jaxseg.average_surface_distance(p, g, symmetric=True, **kw),
            "nsd": jaxseg.surface_dice(p, g, tolerance=1.0, **kw),
        }, jaxseg.BoundaryStats.from_predictions(
            p, g, num_classes=4, ignore_index=255, spatial_dims=3
        )

    want, state = api(p, g)
    for name in ("hd", "hd95", "nsd"):
        np.testing.assert_array_equal(got[name], np.asarray(want[name])[0], err_msg=name)
    np.testing.assert_allclose(got["assd"], np.asarray(want["assd"])[0], rtol=1e-6)
    assert np.isinf(got["hd95"][3]) and got["nsd"][3] == 0
    np.testing.assert_array_equal(got["boundary_iou_counts"], state.to_numpy())


def test_per_image_metrics_checks_its_arguments():
    x = np.zeros((4, 4), np.int32)
    with pytest.raises(ValueError, match="`metrics`"):
        ed.per_image_metrics(x, x, num_classes=2, metrics=("hd96",))
    with pytest.raises(ValueError, match="`pred` and `label`"):
        ed.per_image_metrics(x, x[:3], num_classes=2, metrics=("hd",))


def test_buckets():
    assert [ed.bucket(n) for n in (1, 8, 9, 17, 33, 64, 65, 128, 129, 500)] == [
        8, 8, 16, 32, 64, 64, 128, 128, 192, 512
    ]  # fmt: skip


# -- the command line -----------------------------------------------------------------


def _png_folder(root, pairs):
    for d in ("p", "l"):
        (root / d).mkdir()
    for i, (pred, label) in enumerate(pairs):
        Image.fromarray(pred.astype(np.uint8)).save(root / "p" / f"x{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "l" / f"x{i}.png")
    return root / "p", root / "l"


def _api_values(pred, label, c, *, include_background, ignore_index):
    """Per-image ``[N, C]`` values of the public functions for every distance metric, and
    their :class:`jaxseg.DistanceStats` (state, per-class means): one compiled program."""
    kw = dict(num_classes=c, include_background=include_background, ignore_index=ignore_index)
    off = [i for i in np.atleast_1d(ignore_index if ignore_index is not None else []) if i < c]
    off += [] if include_background else [0]

    @jax.jit
    def run(pred, label):
        bstats = jax.vmap(
            lambda p, g: jaxseg.BoundaryStats.from_predictions(
                p, g, num_classes=c, ignore_index=ignore_index
            )
        )(pred, label)
        biou = jaxseg.iou(bstats, average=None)
        values = {
            "hd95": jaxseg.hausdorff_distance(pred, label, percentile=95, **kw),
            "assd": jaxseg.average_surface_distance(pred, label, symmetric=True, **kw),
            "nsd": jaxseg.surface_dice(pred, label, tolerance=1.0, **kw),
            "boundary_iou": biou.at[:, off].set(jnp.nan) if off else biou,
        }
        states = {k: jaxseg.DistanceStats.from_values(x) for k, x in values.items()}
        return values, states, {k: s.compute() for k, s in states.items()}

    values, states, per_class = run(pred, label)
    return {
        name: (np.asarray(values[name], np.float64), states[name], per_class[name])
        for name in values
    }


@pytest.mark.parametrize("case", ["exclude-background", "ignore-index", "binary"], ids=lambda s: s)
def test_cli_means_equal_the_api_through_distance_stats(tmp_path, capsys, case):
    """The command line and the API (the functions, then DistanceStats) give the same
    per-class means and mean over classes for hd95, assd, nsd and boundary_iou."""
    rng = np.random.default_rng(11)
    c = 2 if case == "binary" else 4
    pred, label = np.stack([np.stack(_blobs(rng, (24, 20), c)) for _ in range(3)], 1)
    pred[1][pred[1] == c - 1] = 0  # the last class missed in image 1: infinite values
    label[2][label[2] == 1] = 0  # class 1 absent from image 2's labels
    args = ["-C", c]
    include_background, ignore = False, None
    if case == "exclude-background":
        args.append("--exclude-background")
    elif case == "ignore-index":
        label[:, :2] = 255
        args = [*args, "--ignore-index", "255,2"]
        include_background, ignore = True, (255, 2)
    else:
        pred, label = pred * 255, label * 255  # 0/255 masks
        args = ["--binary"]
    p_dir, l_dir = _png_folder(tmp_path, zip(pred, label, strict=True))
    # with hd: the padding test's per-image program (same bucket and classes), reused
    rc, _, err = _run(
        capsys, "evaluate", p_dir, l_dir, *args, "--metrics", "iou,hd,hd95,assd,nsd,boundary_iou",
        "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    if case == "binary":
        pred, label = pred // 255, label // 255
    api = _api_values(pred, label, c, include_background=include_background, ignore_index=ignore)
    for name, (values, state, per_class) in api.items():
        per_class = np.asarray(per_class, np.float64)
        got = np.array([np.nan if r[name] is None else r[name] for r in report["classes"]])
        np.testing.assert_allclose(got, per_class, rtol=1e-6, err_msg=name)
        finite = per_class[np.isfinite(per_class)]
        np.testing.assert_allclose(report[f"mean_{name}"], finite.mean(), rtol=1e-6)
        counts = state.to_numpy()  # rows finite, nan, inf
        scored = [i for i in range(c) if not np.isnan(values[:, i]).all()]
        for key, row in zip(("finite", "nan", "inf"), counts, strict=True):
            assert [report["classes"][i][f"{name}_cases"][key] for i in scored] == list(row[scored])
    assert report["classes"][c - 1]["hd95_cases"]["inf"] >= 1
    left_out = 2 if case == "ignore-index" else 0  # an ignored class, or the background
    assert report["classes"][left_out]["hd95"] is None
    assert report["distance_classes"] == [i for i in range(c) if i != left_out]


def test_means_leave_out_the_background_as_monai(tmp_path, capsys):
    """--binary and --exclude-background: the means are MONAI's include_background=False
    values, averaged over the images (finite values) and then over the classes."""
    pytest.importorskip("monai")
    rng = np.random.default_rng(5)
    pairs = [_blobs(rng, (26, 30), 3) for _ in range(3)]
    p_dir, l_dir = _png_folder(tmp_path, pairs)
    rc, _, err = _run(
        capsys, "evaluate", p_dir, l_dir, "-C", 3, "--exclude-background",
        "--metrics", "hd95,assd", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    for name in ("hd95", "assd"):
        monai = np.stack([_monai(p, g, 3, None, 1.0)[name][1:] for p, g in pairs])  # [N, 2]
        per_class = [np.mean(v[np.isfinite(v)]) for v in monai.T]
        assert report["classes"][0][name] is None
        np.testing.assert_allclose([r[name] for r in report["classes"][1:]], per_class, rtol=1e-5)
        np.testing.assert_allclose(report[f"mean_{name}"], np.mean(per_class), rtol=1e-5)
    # --binary on 0/255 masks: the one foreground class, MONAI's foreground mean
    bin_pairs = [((p > 0) * 255, (g > 0) * 255) for p, g in pairs]
    (tmp_path / "bin").mkdir()
    p_dir, l_dir = _png_folder(tmp_path / "bin", bin_pairs)
    rc, _, err = _run(
        capsys, "evaluate", p_dir, l_dir, "--binary", "--metrics", "hd95",
        "--json", tmp_path / "b.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "b.json").read_text())
    monai = np.array([_monai(p // 255, g // 255, 2, None, 1.0)["hd95"][1] for p, g in bin_pairs])
    np.testing.assert_allclose(report["mean_hd95"], monai.mean(), rtol=1e-5)
    np.testing.assert_allclose(report["classes"][1]["hd95"], monai.mean(), rtol=1e-5)


def test_a_class_missed_everywhere_is_counted_not_dropped(tmp_path, capsys):
    """A class never predicted has no finite HD95: the table footer and the JSON say how
    many cases were infinite (and NaN), per class and in total."""
    rng = np.random.default_rng(6)
    pairs = []
    for _ in range(3):
        pred, label = _blobs(rng, (20, 20), 3)
        pairs.append((np.where(pred == 2, 0, pred), label))
    pairs[0][1][pairs[0][1] == 1] = 0  # class 1: absent from image 0's labels
    pairs[0][0][pairs[0][0] == 1] = 0  # ... and predictions: NaN
    p_dir, l_dir = _png_folder(tmp_path, pairs)
    # with assd: the previous test's per-image program (same bucket and classes), reused
    rc, out, err = _run(
        capsys, "evaluate", p_dir, l_dir, "-C", 3, "--exclude-background",
        "--metrics", "hd95,assd", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["classes"][2]["hd95"] is None
    assert report["classes"][2]["hd95_cases"] == {"finite": 0, "nan": 0, "inf": 3}
    assert report["classes"][1]["hd95_cases"] == {"finite": 2, "nan": 1, "inf": 0}
    assert report["distance_cases"]["hd95"] == {"finite": 2, "nan": 1, "inf": 3}
    footer = [line for line in out.splitlines() if line.startswith("HD95:")]
    assert footer == [
        "HD95: mean of 2 finite per-image values; left out: 3 infinite, class in one map "
        "only (per class: 2: 3); 1 NaN, class in neither map (per class: 1: 1)"
    ]


def test_per_image_distances_in_json_and_csv(tmp_path, capsys):
    """images[] and the --per-image CSV carry every requested distance metric per class:
    an empty cell / null for NaN, inf / "inf" for infinity."""
    rng = np.random.default_rng(7)
    pairs = [_blobs(rng, shape, 3) for shape in ((18, 22), (25, 19))]
    pairs[1][0][pairs[1][0] == 2] = 1  # class 2 missed in image 1
    p_dir, l_dir = _png_folder(tmp_path, pairs)
    rc, _, err = _run(
        capsys, "evaluate", p_dir, l_dir, "-C", 3, "--metrics", "iou,hd,hd95,assd,nsd,boundary_iou",
        "--json", tmp_path / "r.json", "--per-image", tmp_path / "img.csv",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "img.csv").read_text())))
    assert len(rows) == 6
    for i, (pred, label) in enumerate(pairs):
        want = ed.per_image_metrics(pred, label, num_classes=3, metrics=ALL, tolerance=1.0)
        entry = report["images"][i]
        for name in ALL:
            got = [np.inf if x == "inf" else x for x in entry[name]]
            np.testing.assert_allclose(got, want[name], rtol=1e-6, err_msg=name)
            cells = [r[name] for r in rows if r["image"] == f"x{i}"]
            np.testing.assert_allclose([float(x) for x in cells], want[name], rtol=1e-6)
    assert report["images"][1]["hd95"][2] == "inf"
    assert [r["hd95"] for r in rows if r["image"] == "x1"][2] == "inf"


def test_mixed_sizes_compile_once_per_bucket(tmp_path, capsys):
    """A second folder of three new sizes in the same bucket, with a new spacing, compiles
    nothing more."""
    compiles = []

    def listen(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    rng = np.random.default_rng(8)
    runs = [((17, 30), (29, 18), (32, 21)), ((20, 31), (26, 24), (31, 17))]
    spacings = [(), ("--spacing", "0.7,1.3")]
    for k, shapes in enumerate(runs):
        root = tmp_path / str(k)
        root.mkdir()
        p_dir, l_dir = _png_folder(root, [_blobs(rng, s, 3) for s in shapes])
        if k == 1:
            jax.monitoring.register_event_duration_secs_listener(listen)
        try:
            rc, _, err = _run(
                capsys, "evaluate", p_dir, l_dir, "-C", 3,
                "--metrics", "hd,hd95,assd,nsd,boundary_iou", "-j", 1, *spacings[k],
            )  # fmt: skip
        finally:
            if k == 1:
                jax.monitoring.unregister_event_duration_listener(listen)
        assert rc == 0, err
    assert compiles == []


def test_3d_volume_boundary_iou_uses_3d_bands(tmp_path, capsys):
    """A 3-D .npy volume: Boundary IoU of 3-D bands (the NumPy 3x3x3 erosion reference),
    not of per-slice 2-D bands."""
    rng = np.random.default_rng(9)
    pred, label = _blobs(rng, (6, 14, 12), 3)
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    np.save(tmp_path / "p" / "v.npy", pred.astype(np.uint8))
    np.save(tmp_path / "l" / "v.npy", label.astype(np.uint8))
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 3, "--metrics",
        "boundary_iou", "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    got = [r["boundary_iou"] for r in report["classes"]]
    band = R.boundary_counts(pred, label, 3)
    np.testing.assert_allclose(got, band[0] / band[:3].sum(0), rtol=1e-6)
    per_slice = sum(R.boundary_counts(p, g, 3) for p, g in zip(pred, label, strict=True))
    assert not np.allclose(got, per_slice[0] / per_slice[:3].sum(0))


def test_distances_use_header_spacing(tmp_path, capsys):
    """NIfTI volumes: the spacing comes from the headers; --spacing with one number applies
    to every axis."""
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(10)
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    pred, label = _blobs(rng, (8, 9, 6), 3)
    affine = np.diag([0.8, 1.0, 2.5, 1.0])
    nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), tmp_path / "l" / "a.nii.gz")
    nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), tmp_path / "p" / "a.nii.gz")
    for spacing, extra in (((0.8, 1.0, 2.5), ()), ((0.5,) * 3, ("--spacing", "0.5"))):
        rc, _, err = _run(
            capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 3, "--metrics", "hd95",
            *extra, "--json", tmp_path / "r.json",
        )  # fmt: skip
        assert rc == 0, err
        report = json.loads((tmp_path / "r.json").read_text())
        want = ed.per_image_metrics(pred, label, num_classes=3, metrics=("hd95",), spacing=spacing)[
            "hd95"
        ]
        np.testing.assert_allclose(report["images"][0]["hd95"], want, rtol=1e-6)
