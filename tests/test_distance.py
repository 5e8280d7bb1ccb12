"""Distance transform and surface-distance metrics against SciPy, MONAI and DeepMind."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg._distance import per_image_metrics
from tests import reference_distance as R

ndimage = pytest.importorskip("scipy.ndimage")

C = 3
CASES_2D = [((3, 16, 16), (1.0, 1.0)), ((2, 16, 12), (0.7, 1.9))]
CASE_3D = ((2, 8, 8, 6), (1.0, 1.0, 2.5))
KINDS = ["blobs", "thin", "dots", "border", "empty"]


def _maps(shape, kind, seed):
    rng = np.random.default_rng(seed)
    pred = R.random_maps(rng, shape, C, kind)
    label = R.random_maps(rng, shape, C, "blobs" if kind == "dots" else kind)
    return pred, label


def _all_kinds(shape, seed):
    """One batch holding every kind of map (one compilation, one reference call)."""
    pairs = [_maps(shape, kind, seed + k) for k, kind in enumerate(KINDS)]
    label = R.random_maps(np.random.default_rng(seed), shape, C, "blobs")
    pairs.append((np.zeros_like(label), label))  # classes 1, 2: only the label has them
    return np.concatenate([p for p, _ in pairs]), np.concatenate([g for _, g in pairs])


def _assert_match(ours, ref, rtol=1e-5):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=rtol, atol=0)


def _one_empty(pred, label):
    """[B, C]: exactly one of the two class masks is empty."""
    p = np.stack([(pred == c).reshape(len(pred), -1).any(1) for c in range(C)], 1)
    g = np.stack([(label == c).reshape(len(label), -1).any(1) for c in range(C)], 1)
    return p != g


# -- distance transform -------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,spacing",
    [((37,), None), ((19, 23), (1.0, 1.0)), ((16, 9), (0.5, 2.0)), ((7, 9, 6), (1.0, 0.8, 2.5))],
)
def test_distance_transform_equals_scipy(shape, spacing):
    rng = np.random.default_rng(len(shape))
    mask = rng.random(shape) < 0.05
    mask.flat[0] = True
    got = jax.jit(lambda m: jaxseg.distance_transform(m, spacing=spacing))(mask)
    want = ndimage.distance_transform_edt(~mask, sampling=spacing)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_distance_transform_edge_cases_and_vmap():
    assert np.all(np.isinf(jaxseg.distance_transform(jnp.zeros((4, 5), bool))))
    assert np.all(jaxseg.distance_transform(jnp.ones((4, 5), bool)) == 0)
    rng = np.random.default_rng(1)
    masks = rng.random((3, 8, 7)) < 0.1
    batched = jax.vmap(lambda m: jaxseg.distance_transform(m, spacing=(1.0, 2.0)))(masks)
    for m, b in zip(masks, batched, strict=True):
        want = ndimage.distance_transform_edt(~m, sampling=(1.0, 2.0)) if m.any() else np.inf
        np.testing.assert_allclose(b, np.broadcast_to(want, m.shape), rtol=1e-6)


# -- parity with MONAI ---------------------------------------------------------------

MONAI_METRICS = {
    "hd": (jaxseg.hausdorff_distance, "hd", {}),
    "hd95": (jaxseg.hausdorff_distance, "hd", {"percentile": 95}),
    "hd90_directed": (jaxseg.hausdorff_distance, "hd", {"percentile": 90, "directed": True}),
    "asd": (jaxseg.average_surface_distance, "asd", {}),
    "assd": (jaxseg.average_surface_distance, "asd", {"symmetric": True}),
    "nsd": (jaxseg.surface_dice, "nsd", {"tolerance": 1.5}),
}


@pytest.mark.parametrize("metric", sorted(MONAI_METRICS))
@pytest.mark.parametrize("case", [*CASES_2D, CASE_3D], ids=["2d", "2d-aniso", "3d-aniso"])
def test_equals_monai(metric, case):
    pytest.importorskip("monai")
    fn, ref_name, kw = MONAI_METRICS[metric]
    shape, spacing = case
    pred, label = _all_kinds(shape, 0)
    ours = jax.jit(lambda p, g: fn(p, g, num_classes=C, spacing=spacing, **kw))(pred, label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = R.monai_metric(ref_name, pred, label, C, spacing=spacing, **kw)
    if "percentile" in kw:
        # MONAI's torch.quantile interpolates between infinite distances when
        # exactly one mask is empty and returns NaN; the rule here is +inf.
        assert np.all(np.isnan(ref[_one_empty(pred, label)]))
        ref = np.where(_one_empty(pred, label), np.inf, ref)
    one_empty_value = 0.0 if metric == "nsd" else np.inf
    assert np.all(ref[_one_empty(pred, label)] == one_empty_value)
    assert _one_empty(pred, label).any() and np.isnan(ref).any() and np.isfinite(ref).any()
    _assert_match(ours, ref)


# -- parity with DeepMind's surface-distance definitions -----------------------------

DM_METRICS = {
    "hd": (jaxseg.hausdorff_distance, {}, {}),
    "hd95": (jaxseg.hausdorff_distance, {"percentile": 95}, {"percentile": 95}),
    "asd": (jaxseg.average_surface_distance, {}, {}),
    "assd": (jaxseg.average_surface_distance, {"symmetric": True}, {}),
    "nsd": (jaxseg.surface_dice, {"tolerance": 1.5}, {"tol": 1.5}),
}


@pytest.mark.parametrize("metric", sorted(DM_METRICS))
@pytest.mark.parametrize("case", [CASES_2D[1], CASE_3D], ids=["2d-aniso", "3d-aniso"])
def test_equals_deepmind(metric, case):
    pytest.importorskip("surface_distance")
    fn, kw, ref_kw = DM_METRICS[metric]
    ref_name = {"asd": "asd_directed", "assd": "asd", "hd95": "hd"}.get(metric, metric)
    shape, spacing = case
    pred, label = _all_kinds(shape, 10)
    ours = jax.jit(
        lambda p, g: fn(p, g, num_classes=C, spacing=spacing, definition="deepmind", **kw)
    )
    _assert_match(ours(pred, label), R.deepmind_metric(ref_name, pred, label, C, spacing, **ref_kw))


# -- the three HD95 definitions (the worked example in docs/distances.md) -------------


def _worked_example():
    yy, xx = np.mgrid[:16, :16]
    label = ((yy - 7) ** 2 + (xx - 7) ** 2 <= 16).astype(np.int32)[None]
    pred = ((yy - 7) ** 2 + (xx - 10) ** 2 <= 12).astype(np.int32)[None]
    return pred, label


def _medpy_hd95(pred, label):
    """medpy's hd95: edge voxels (mask XOR erosion), both directions pooled, np.percentile."""
    edges = [m ^ ndimage.binary_erosion(m) for m in (pred, label)]
    d_pg = ndimage.distance_transform_edt(~edges[1])[edges[0]]
    d_gp = ndimage.distance_transform_edt(~edges[0])[edges[1]]
    return float(np.percentile(np.hstack([d_pg, d_gp]), 95))


def test_three_hd95_definitions_worked_example():
    pred, label = _worked_example()
    monai = float(jaxseg.hausdorff_distance(pred, label, num_classes=2, percentile=95)[0, 1])
    deepmind = float(
        jaxseg.hausdorff_distance(pred, label, num_classes=2, percentile=95, definition="deepmind")[
            0, 1
        ]
    )
    medpy = _medpy_hd95(pred[0] == 1, label[0] == 1)
    if pytest.importorskip("monai"):
        np.testing.assert_allclose(
            monai, R.monai_metric("hd", pred, label, 2, percentile=95)[0, 1], rtol=1e-6
        )
    try:
        ref = R.deepmind_metric("hd", pred, label, 2, (1.0, 1.0), percentile=95)[0, 1]
        np.testing.assert_allclose(deepmind, ref, rtol=1e-6)
    except ImportError:
        pass
    assert len({round(monai, 4), round(deepmind, 4), round(medpy, 4)}) == 3
    doc = (Path(__file__).resolve().parents[1] / "docs" / "distances.md").read_text()
    row = {
        name: float(value)
        for name, value in re.findall(
            r"^\| `?(monai|deepmind|medpy)`? \|[^|]*\| ([\d.]+) \|", doc, re.M
        )
    }
    assert row == pytest.approx({"monai": monai, "deepmind": deepmind, "medpy": medpy}, abs=5e-4)


# -- rules: empty, ignore, background -------------------------------------------------


def test_empty_rules():
    label = np.zeros((1, 8, 8), np.int32)
    label[0, 2:5, 2:5] = 1  # class 1 only in the label, class 2 nowhere
    pred = np.zeros((1, 8, 8), np.int32)
    for definition in ("monai", "deepmind"):
        kw = dict(num_classes=3, definition=definition)
        for fn in (jaxseg.hausdorff_distance, jaxseg.average_surface_distance):
            out = np.asarray(fn(pred, label, **kw))
            assert out[0, 1] == np.inf and np.isnan(out[0, 2]), (fn, out)
        nsd = np.asarray(jaxseg.surface_dice(pred, label, tolerance=1.0, **kw))
        assert nsd[0, 1] == 0 and np.isnan(nsd[0, 2]) and nsd[0, 0] < 1


def test_ignore_index_equals_void_predictions_and_background():
    pred, label = _maps((2, 12, 12), "blobs", 3)
    label[:, :3, :] = 255
    voided = np.where(label == 255, C, pred)  # predictions outside [0, C) belong to no class
    for fn, kw in [
        (jaxseg.hausdorff_distance, {"percentile": 95}),
        (jaxseg.surface_dice, {"tolerance": 1.0}),
    ]:
        a = fn(pred, label, num_classes=C, ignore_index=255, **kw)
        b = fn(voided, label, num_classes=C, **kw)
        np.testing.assert_array_equal(a, b)
        c = np.asarray(fn(pred, label, num_classes=C, ignore_index=(255, 1), **kw))
        assert np.all(np.isnan(c[:, 1]))  # an ignored class id: NaN, and its pixels removed
        voided_1 = np.where((label == 255) | (label == 1), C, pred)
        e = np.asarray(fn(voided_1, np.where(label == 1, 255, label), num_classes=C, **kw))
        np.testing.assert_array_equal(np.delete(c, 1, 1), np.delete(e, 1, 1))
        d = np.asarray(fn(pred, label, num_classes=C, include_background=False, **kw))
        assert np.all(np.isnan(d[:, 0]))


def test_per_class_tolerance():
    pred, label = _maps((2, 12, 12), "blobs", 4)
    per_class = jaxseg.surface_dice(pred, label, num_classes=C, tolerance=[0.0, 1.0, 2.0])
    for c, tol in enumerate((0.0, 1.0, 2.0)):
        one = jaxseg.surface_dice(pred, label, num_classes=C, tolerance=tol)
        np.testing.assert_array_equal(per_class[:, c], one[:, c])


# -- transforms -----------------------------------------------------------------------


@pytest.mark.parametrize("definition", ["monai", "deepmind"])
def test_jit_and_vmap(definition):
    pred, label = _maps((4, 10, 9), "blobs", 5)

    def f(p, g):
        kw = dict(num_classes=C, definition=definition, spacing=(1.0, 1.5))
        return (
            jaxseg.hausdorff_distance(p, g, percentile=95, **kw),
            jaxseg.average_surface_distance(p, g, symmetric=True, **kw),
            jaxseg.surface_dice(p, g, tolerance=1.0, **kw),
        )

    eager = f(pred, label)
    jitted = jax.jit(f)(pred, label)
    vmapped = jax.jit(jax.vmap(f))(pred.reshape(2, 2, 10, 9), label.reshape(2, 2, 10, 9))
    for e, j, v in zip(eager, jitted, vmapped, strict=True):
        np.testing.assert_allclose(e, j, rtol=1e-6)  # fusion may reassociate float sums
        np.testing.assert_allclose(np.asarray(v).reshape(4, C), j, rtol=1e-6)


# -- the command-line hook --------------------------------------------------------------


def test_per_image_metrics():
    pred, label = _maps((1, 16, 16), "blobs", 6)
    out = per_image_metrics(
        pred[0], label[0], num_classes=C, spacing=(1.0, 2.0), tolerance=1.0, ignore_index=255
    )
    assert set(out) == {"hd95", "assd", "nsd", "boundary_iou", "boundary_iou_counts"}
    kw = dict(num_classes=C, spacing=(1.0, 2.0), ignore_index=255)
    np.testing.assert_array_equal(
        out["hd95"], jaxseg.hausdorff_distance(pred, label, percentile=95, **kw)[0]
    )
    np.testing.assert_array_equal(
        out["assd"], jaxseg.average_surface_distance(pred, label, symmetric=True, **kw)[0]
    )
    np.testing.assert_array_equal(
        out["nsd"], jaxseg.surface_dice(pred, label, tolerance=1.0, **kw)[0]
    )
    counts = R.boundary_counts(pred[0], label[0], C, ignore=(255,))
    np.testing.assert_array_equal(out["boundary_iou_counts"], counts)
    with np.errstate(invalid="ignore"):
        want = counts[0] / counts[:3].sum(0)
    np.testing.assert_allclose(out["boundary_iou"], want)
    with pytest.raises(ValueError, match="`metrics`"):
        per_image_metrics(pred[0], label[0], num_classes=C, metrics=("hd96",))


# -- bad input ----------------------------------------------------------------------------


def test_errors_name_the_argument():
    p = np.zeros((1, 6, 6), np.int32)
    with pytest.raises(TypeError, match="`mask`"):
        jaxseg.distance_transform(jnp.zeros((3, 3), jnp.int32))
    with pytest.raises(ValueError, match="`mask` must have rank"):
        jaxseg.distance_transform(jnp.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="`spacing`"):
        jaxseg.distance_transform(jnp.zeros((3, 3), bool), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="`spacing`"):
        jaxseg.hausdorff_distance(p, p, num_classes=2, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="`percentile`"):
        jaxseg.hausdorff_distance(p, p, num_classes=2, percentile=101)
    with pytest.raises(ValueError, match="`definition`"):
        jaxseg.hausdorff_distance(p, p, num_classes=2, definition="medpy")
    with pytest.raises(ValueError, match="`tolerance`"):
        jaxseg.surface_dice(p, p, num_classes=2, tolerance=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same shape"):
        jaxseg.surface_dice(p, p[:, :5], num_classes=2, tolerance=1.0)
    with pytest.raises(ValueError, match=r"\[batch, \*spatial\]"):
        jaxseg.average_surface_distance(p[0], p[0], num_classes=2)
    with pytest.raises(TypeError, match="`labels`"):
        jaxseg.average_surface_distance(p, p.astype(np.float32), num_classes=2)


def test_d1_benchmark_quick_runs(tmp_path):
    """The D1 benchmark runs end to end at tiny shapes and its rows check out."""
    from benchmarks import distance

    assert distance.main(["--quick", "--reps", "1", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "distance.md").read_text()
    assert "| EDT |" in text and "BoundaryIoU" in text and "HD95+NSD" in text
    assert "vs SciPy" in text
