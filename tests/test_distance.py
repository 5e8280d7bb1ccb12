"""Distance transform and surface-distance metrics against SciPy, MONAI and DeepMind."""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from tests import reference_distance as R

ndimage = pytest.importorskip("scipy.ndimage")

C = 3
# one batch per case: every kind of map (and extra rows), one compilation per case
CASE_2D = ((16, 16), None)  # isotropic; holds the worked example of docs/distances.md
CASE_2D_ANISO = ((12, 14), (0.7, 1.9))
CASE_3D = ((6, 7, 5), (1.0, 1.0, 2.5))
CASES = {"2d": CASE_2D, "2d-aniso": CASE_2D_ANISO, "3d-aniso": CASE_3D}
KINDS = ["blobs", "thin", "dots", "border", "empty"]
SEEDS = (0, 10)  # two random batches per case, stacked into one call


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


# -- every metric in one compiled program per case ------------------------------------

# name: (function, keywords, MONAI name, DeepMind reference name, DeepMind keywords)
METRICS = {
    "hd": (jaxseg.hausdorff_distance, {}, "hd", "hd", {}),
    "hd95": (jaxseg.hausdorff_distance, {"percentile": 95}, "hd", "hd", {"percentile": 95}),
    # MONAI reads percentile 0 as "none" (the maximum); DeepMind's is the smallest distance
    "hd0": (jaxseg.hausdorff_distance, {"percentile": 0}, "hd", "hd", {"percentile": 0}),
    "hd90_directed": (
        jaxseg.hausdorff_distance,
        {"percentile": 90, "directed": True},
        "hd",
        None,
        None,
    ),
    "asd": (jaxseg.average_surface_distance, {}, "asd", "asd_directed", {}),
    "assd": (jaxseg.average_surface_distance, {"symmetric": True}, "asd", "asd", {}),
    "nsd": (jaxseg.surface_dice, {"tolerance": 1.5}, "nsd", "nsd", {"tol": 1.5}),
}
DEFINITIONS = ("monai", "deepmind")


def _all_metrics(p, g, spacing):
    """{(definition, metric): [B, C]} for every metric of :data:`METRICS`."""
    out = {}
    for definition in DEFINITIONS:
        for name, (fn, kw, *_) in METRICS.items():
            out[definition, name] = fn(
                p, g, num_classes=C, spacing=spacing, definition=definition, **kw
            )
    return out


def _worked_example():
    yy, xx = np.mgrid[:16, :16]
    label = ((yy - 7) ** 2 + (xx - 7) ** 2 <= 16).astype(np.int32)[None]
    pred = ((yy - 7) ** 2 + (xx - 10) ** 2 <= 12).astype(np.int32)[None]
    return pred, label


def _empty_rule_pair(shape):
    """Class 1 only in the label, class 2 nowhere."""
    label = np.zeros((1, *shape), np.int32)
    label[(0, *[slice(2, 5)] * len(shape))] = 1
    return np.zeros_like(label), label


def _inputs(name):
    shape, _ = CASES[name]
    batches = [_all_kinds((1, *shape), seed) for seed in SEEDS]
    if name == "2d":
        batches += [_worked_example(), _empty_rule_pair(shape)]
    pred = np.concatenate([p for p, _ in batches])
    label = np.concatenate([g for _, g in batches])
    return pred, label


def _split(x):
    """[B, ...] -> [2, B / 2, ...]: an extra batch axis for vmap."""
    return x.reshape(2, len(x) // 2, *x.shape[1:])


VMAPPED = "2d-aniso"


def _program(inputs):
    """Every metric of every case: ONE jitted program (one compilation instead of one
    per case). The 2-D anisotropic case runs vmapped over an extra batch axis, so the
    parity tests check the vmapped values against MONAI and DeepMind directly."""
    out = {}
    for name, (p, g) in inputs.items():
        spacing = CASES[name][1]
        if name == VMAPPED:
            split = jax.vmap(functools.partial(_all_metrics, spacing=spacing))(_split(p), _split(g))
            out[name] = {k: v.reshape(len(p), *v.shape[2:]) for k, v in split.items()}
        else:
            out[name] = _all_metrics(p, g, spacing)
    return out


@functools.cache
def _all_cases():
    inputs = {name: _inputs(name) for name in CASES}
    return inputs, jax.device_get(jax.jit(_program)(inputs))


def _case(name):
    """(pred, label, ours) of one case; ours from the one jitted call over every case."""
    inputs, out = _all_cases()
    return (*inputs[name], out[name])


# -- distance transform -------------------------------------------------------------

_EDT = jax.jit(jaxseg.distance_transform, static_argnames="spacing")


@pytest.mark.parametrize(
    "shape,spacing", [((37,), None), ((19, 23), (1.0, 1.0)), ((7, 9, 6), (1.0, 0.8, 2.5))]
)
def test_distance_transform_equals_scipy(shape, spacing):
    rng = np.random.default_rng(len(shape))
    mask = rng.random(shape) < 0.05
    mask.flat[0] = True
    got = _EDT(mask, spacing=spacing)
    want = ndimage.distance_transform_edt(~mask, sampling=spacing)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_distance_transform_edge_cases_and_vmap():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 16, 9)) < 0.1
    masks[0].flat[0] = True
    masks[2], masks[3] = False, True  # no True element: inf everywhere; all True: 0
    batched = jax.jit(jax.vmap(lambda m: jaxseg.distance_transform(m, spacing=(0.5, 2.0))))(masks)
    assert np.all(np.isinf(batched[2])) and np.all(np.asarray(batched[3]) == 0)
    for m, b in zip(masks, batched, strict=True):
        want = ndimage.distance_transform_edt(~m, sampling=(0.5, 2.0)) if m.any() else np.inf
        np.testing.assert_allclose(b, np.broadcast_to(want, m.shape), rtol=1e-6)
    # the eager call (one compiled program inside) equals the jitted one
    np.testing.assert_array_equal(
        jaxseg.distance_transform(masks[0], spacing=(0.5, 2.0)), batched[0]
    )


# -- parity with MONAI ---------------------------------------------------------------


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_monai(metric, case):
    pytest.importorskip("monai")
    _, kw, ref_name, *_ = METRICS[metric]
    pred, label, ours = _case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = R.monai_metric(ref_name, pred, label, C, spacing=CASES[case][1], **kw)
    if kw.get("percentile"):
        # MONAI's torch.quantile interpolates between infinite distances when
        # exactly one mask is empty and returns NaN; the rule here is +inf.
        assert np.all(np.isnan(ref[_one_empty(pred, label)]))
        ref = np.where(_one_empty(pred, label), np.inf, ref)
    one_empty_value = 0.0 if metric == "nsd" else np.inf
    assert np.all(ref[_one_empty(pred, label)] == one_empty_value)
    assert _one_empty(pred, label).any() and np.isnan(ref).any() and np.isfinite(ref).any()
    _assert_match(ours["monai", metric], ref)


# -- parity with DeepMind's surface-distance definitions -----------------------------


@pytest.mark.parametrize("metric", sorted(m for m in METRICS if METRICS[m][3]))
@pytest.mark.parametrize("case", ["2d-aniso", "3d-aniso"])
def test_equals_deepmind(metric, case):
    pytest.importorskip("surface_distance")
    *_, ref_name, ref_kw = METRICS[metric]
    pred, label, ours = _case(case)
    ref = R.deepmind_metric(ref_name, pred, label, C, CASES[case][1], **ref_kw)
    _assert_match(ours["deepmind", metric], ref)


# -- DeepMind's robust HD: the percentile rule, ties and q = 0 -------------------------

PERCENTILES = (0, 50, 95, 100)


def _deepmind_percentiles(p, g, spacing):
    return [
        jaxseg.hausdorff_distance(
            p, g, num_classes=2, percentile=q, spacing=spacing, definition="deepmind"
        )[:, 1]
        for q in PERCENTILES
    ]


PERCENTILE_CASES = [
    ((16, 16), 240, (1.0, 1.0)),
    ((16, 16), 240, (0.7, 1.9)),
    ((6, 7, 5), 40, (1.0, 1.0, 2.5)),
]


@functools.cache
def _percentiles_all():
    """Pairs and our percentiles of every case, from ONE jitted call."""
    pairs = [
        R.rectangle_or_blob_pairs(np.random.default_rng(n + len(shape)), n, shape)
        for shape, n, _ in PERCENTILE_CASES
    ]

    def run(pairs):
        return [
            _deepmind_percentiles(p, g, spacing)
            for (p, g), (_, _, spacing) in zip(pairs, PERCENTILE_CASES, strict=True)
        ]

    return pairs, jax.device_get(jax.jit(run)(pairs))


@pytest.mark.parametrize("k", range(len(PERCENTILE_CASES)))
def test_deepmind_percentile_equals_surface_distance(k):
    """``compute_robust_hausdorff`` on boxes and blobs at q = 0, 50, 95, 100.

    Equal to the package wherever its float64 cumulative fraction does not sit
    exactly on q / 100; at such ties (where its summation rounding decides) the
    fraction counts as reaching q / 100.
    """
    sd = pytest.importorskip("surface_distance")
    shape, n, spacing = PERCENTILE_CASES[k]
    pairs, results = _percentiles_all()
    (pred, label), ours = pairs[k], np.asarray(results[k])
    ties = 0
    for i in range(n):
        s = sd.compute_surface_distances(label[i] == 1, pred[i] == 1, spacing)
        for k, q in enumerate(PERCENTILES):
            rule = max(
                R.deepmind_percentile(s["distances_gt_to_pred"], s["surfel_areas_gt"], q),
                R.deepmind_percentile(s["distances_pred_to_gt"], s["surfel_areas_pred"], q),
            )
            package = sd.compute_robust_hausdorff(s, q)
            ties += package != rule
            if q in (0, 100):  # no ties at the ends: the package itself
                assert rule == package
            np.testing.assert_allclose(ours[k, i], rule, rtol=1e-6, err_msg=f"pair {i}, q={q}")
    # q = 0 is the smallest surfel distance, not 0 (boxes that do not share an edge)
    assert np.any(ours[0] > 0)
    if shape == (16, 16):
        assert ties > 0  # the package's rounding decided some of them


# -- the three HD95 definitions (the worked example in docs/distances.md) -------------


def _medpy_hd95(pred, label):
    """medpy's hd95: edge voxels (mask XOR erosion), both directions pooled, np.percentile."""
    edges = [m ^ ndimage.binary_erosion(m) for m in (pred, label)]
    d_pg = ndimage.distance_transform_edt(~edges[1])[edges[0]]
    d_gp = ndimage.distance_transform_edt(~edges[0])[edges[1]]
    return float(np.percentile(np.hstack([d_pg, d_gp]), 95))


def test_three_hd95_definitions_worked_example():
    pred, label = _worked_example()
    all_pred, all_label, ours = _case("2d")
    row = len(all_pred) - 2  # the worked example's row in the 2-D batch
    np.testing.assert_array_equal(all_pred[row], pred[0])
    np.testing.assert_array_equal(all_label[row], label[0])
    monai = float(ours["monai", "hd95"][row, 1])
    deepmind = float(ours["deepmind", "hd95"][row, 1])
    medpy = _medpy_hd95(pred[0] == 1, label[0] == 1)
    ours_medpy = jaxseg.hausdorff_distance(
        pred, label, num_classes=2, percentile=95, definition="medpy"
    )
    np.testing.assert_allclose(float(ours_medpy[0, 1]), medpy, rtol=1e-6)
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
    _, _, ours = _case("2d")  # the last row: class 1 only in the label, class 2 nowhere
    for definition in DEFINITIONS:
        for name in ("hd", "hd95", "hd0", "hd90_directed", "asd", "assd"):
            out = ours[definition, name][-1]
            assert out[1] == np.inf and np.isnan(out[2]), (definition, name, out)
        nsd = ours[definition, "nsd"][-1]
        assert nsd[1] == 0 and np.isnan(nsd[2]) and nsd[0] < 1


def _hd95_nsd(p, g, ignore_index=None, include_background=True):
    kw = dict(num_classes=C, ignore_index=ignore_index, include_background=include_background)
    return (
        jaxseg.hausdorff_distance(p, g, percentile=95, **kw),
        jaxseg.surface_dice(p, g, tolerance=1.0, **kw),
    )


def test_ignore_index_equals_void_predictions_and_background():
    pred, label = _maps((2, 12, 12), "blobs", 3)
    label[:, :3, :] = 255
    voided = np.where(label == 255, C, pred)  # predictions outside [0, C) belong to no class
    voided_1 = np.where((label == 255) | (label == 1), C, pred)

    @jax.jit  # every variant in one compiled call
    def run(pred, label, voided_both, label_both):
        return (
            _hd95_nsd(voided_both, label_both),  # both void variants in one batch
            _hd95_nsd(pred, label, ignore_index=255),
            _hd95_nsd(pred, label, ignore_index=(255, 1)),
            _hd95_nsd(pred, label, include_background=False),
        )

    b_both, a_all, c_all, d_all = run(
        pred,
        label,
        np.concatenate([voided, voided_1]),
        np.concatenate([label, np.where(label == 1, 255, label)]),
    )
    for k in range(2):  # hd95, nsd
        a, c, d = (np.asarray(x[k]) for x in (a_all, c_all, d_all))
        b, e = np.split(np.asarray(b_both[k]), 2)
        np.testing.assert_array_equal(a, b)
        assert np.all(np.isnan(c[:, 1]))  # an ignored class id: NaN, and its pixels removed
        np.testing.assert_array_equal(np.delete(c, 1, 1), np.delete(e, 1, 1))
        assert np.all(np.isnan(d[:, 0]))


def test_per_class_tolerance():
    pred, label = _maps((2, 12, 12), "blobs", 4)
    # eager calls share the library's compiled program per tolerance shape
    per_class = jaxseg.surface_dice(
        pred, label, num_classes=C, tolerance=jnp.asarray([0.0, 1.0, 2.0])
    )
    for c, tol in enumerate((0.0, 1.0, 2.0)):
        one = jaxseg.surface_dice(pred, label, num_classes=C, tolerance=jnp.float32(tol))
        np.testing.assert_array_equal(per_class[:, c], one[:, c])
    # a host tolerance (checked on the host) gives the same values
    np.testing.assert_array_equal(
        jaxseg.surface_dice(pred, label, num_classes=C, tolerance=[0.0, 1.0, 2.0]), per_class
    )


# -- transforms -----------------------------------------------------------------------


def test_jit_and_vmap():
    """One case runs vmapped (its values are the ones checked against MONAI and DeepMind),
    the others batched: both forms hold every metric of both definitions, per image."""
    inputs, out = _all_cases()
    assert VMAPPED in out and len(CASES) > 1
    for name in CASES:
        assert set(out[name]) == {(d, m) for d in DEFINITIONS for m in METRICS}
        for value in out[name].values():
            assert value.shape == (len(inputs[name][0]), C)


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
        jaxseg.hausdorff_distance(p, p, num_classes=2, definition="scipy")
    with pytest.raises(ValueError, match="`tolerance`"):
        jaxseg.surface_dice(p, p, num_classes=2, tolerance=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same shape"):
        jaxseg.surface_dice(p, p[:, :5], num_classes=2, tolerance=1.0)
    with pytest.raises(ValueError, match=r"\[batch, \*spatial\]"):
        jaxseg.average_surface_distance(p[0], p[0], num_classes=2)
    with pytest.raises(TypeError, match="`labels`"):
        jaxseg.average_surface_distance(p, p.astype(np.float32), num_classes=2)


def test_spacing_and_percentile_forms():
    """One number, sequences, NumPy scalars and 0-d arrays give the same values."""
    pred, label = _maps((1, 8, 9), "blobs", 11)
    # eager: every form below reuses the library's compiled programs of this call
    want = (
        jaxseg.hausdorff_distance(pred, label, num_classes=2, spacing=(0.5, 0.5), percentile=90.0),
        jaxseg.distance_transform(label[0] == 1, spacing=(0.5, 0.5)),
    )
    assert np.isfinite(want[0]).all() and np.isfinite(want[1]).any()
    forms = [0.5, [0.5, 0.5], np.float32(0.5), np.float64(0.5), np.array(0.5), jnp.float32(0.5)]
    forms += [np.array([0.5, 0.5]), jnp.array([0.5, 0.5]), (np.float32(0.5), 0.5)]
    for spacing in forms:
        for pct in (90, np.float32(90.0), np.int64(90), jnp.float32(90.0), np.array(90.0)):
            kw = dict(num_classes=2, spacing=spacing, percentile=pct)
            np.testing.assert_array_equal(jaxseg.hausdorff_distance(pred, label, **kw), want[0])
        np.testing.assert_array_equal(
            jaxseg.distance_transform(label[0] == 1, spacing=spacing), want[1]
        )


@pytest.mark.parametrize(
    "spacing,error",
    [
        ((True, True), TypeError),
        (np.array([True, True]), TypeError),
        ("1.0", TypeError),
        ((1.0, None), TypeError),
        ((1.0, 1.0, 1.0), ValueError),
        ((), ValueError),
        (0.0, ValueError),
        ((1.0, -1.0), ValueError),
        ((1.0, np.nan), ValueError),
        ((np.inf, 1.0), ValueError),
        (1e-20, ValueError),  # distances would underflow float32 to 0
        ((1.0, 1e20), ValueError),  # or overflow to inf
    ],
)
def test_bad_spacing_is_refused(spacing, error):
    p = np.zeros((1, 4, 4), np.int32)
    with pytest.raises(error, match="`spacing`"):
        jaxseg.hausdorff_distance(p, p, num_classes=2, spacing=spacing)
    with pytest.raises(error, match="`spacing`"):
        jaxseg.distance_transform(p[0] == 0, spacing=spacing)


def test_spacing_range_edges_are_exact():
    """The documented range ends give distances scaled exactly, neither 0 nor inf."""
    mask = np.zeros((5, 6), bool)
    mask[0, 0] = True
    unit = np.asarray(_EDT(mask, spacing=(1.0, 1.0)), np.float64)
    for s in (1e-12, 1e12):
        got = np.asarray(_EDT(mask, spacing=(s, s)), np.float64)
        np.testing.assert_allclose(got, unit * s, rtol=1e-6)


@pytest.mark.parametrize("percentile", [True, -1, 100.5, np.nan, "95", np.array([95.0])])
def test_bad_percentile_is_refused(percentile):
    p = np.zeros((1, 4, 4), np.int32)
    with pytest.raises((TypeError, ValueError), match="`percentile`"):
        jaxseg.hausdorff_distance(p, p, num_classes=2, percentile=percentile)


def test_d1_benchmark_quick_runs(tmp_path):
    """The D1 benchmark runs end to end at tiny shapes and its rows check out."""
    from benchmarks import distance

    assert distance.main(["--tiny", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "distance.md").read_text()
    assert "| EDT |" in text and "BoundaryIoU" in text and "HD95+NSD" in text
    assert "vs SciPy" in text


# -- the windowed EDT (long axes on CPU) -------------------------------------------


def _edt_masks(shape, rng):
    """Degenerate and realistic masks of one shape: empty, full, single seeds in
    corners and the centre, symmetric pairs (ties), a line, sparse to dense."""
    masks = [np.zeros(shape, bool), np.ones(shape, bool)]
    for corner in ([0] * len(shape), [n - 1 for n in shape], [n // 2 for n in shape]):
        m = np.zeros(shape, bool)
        m[tuple(corner)] = True
        masks.append(m)
    m = np.zeros(shape, bool)
    m[(0,) * len(shape)] = m[tuple(n - 1 for n in shape)] = True  # equidistant seeds
    masks.append(m)
    m = np.zeros(shape, bool)
    m[(slice(None),) + (0,) * (len(shape) - 1)] = True  # a line along the first axis
    masks.append(m)
    for density in (0.001, 0.003, 0.01, 0.05, 0.2, 0.5, 0.9):
        masks.append(rng.random(shape) < density)
    blob = np.zeros(shape, bool)  # a solid block: far-away points outside it
    blob[tuple(slice(n // 3, n // 3 + max(1, n // 4)) for n in shape)] = True
    masks.append(blob)
    # seeds on k distinct positions of every axis, in one corner: at and just past the
    # number of positions a pass takes by brute force (jaxseg._distance._SPARSE_POSITIONS)
    for count in (8, 9):
        m = np.zeros(shape, bool)
        for i in range(count):
            m[tuple(i % n for n in shape)] = True
        masks.append(m)
    return np.stack(masks)


WINDOWED = [
    ((67,), (0.7,)),
    ((29, 23), (1.0, 1.0)),
    ((29, 23), (0.5, 2.0)),
    ((9, 13, 11), (1.0, 0.8, 2.5)),
    ((9, 13, 11), (1e-3, 1.0, 1e3)),
]


@functools.cache
def _windowed_all():
    """Masks, windowed and brute-force EDTs of every :data:`WINDOWED` case, from ONE
    jitted call (one compilation instead of one per shape and spacing)."""
    from jaxseg import _distance

    masks = [_edt_masks(shape, np.random.default_rng(sum(shape))) for shape, _ in WINDOWED]

    def run(masks):
        out = []
        for (_, spacing), m in zip(WINDOWED, masks, strict=True):
            one = functools.partial(_distance._squared_edt_windowed, spacing=spacing)
            ref = functools.partial(_distance._squared_edt_min_plus, spacing=spacing)
            out.append((jnp.sqrt(jax.vmap(one)(m)), jnp.sqrt(jax.vmap(ref)(m))))
        return out

    return masks, jax.device_get(jax.jit(run)(masks))


@pytest.mark.parametrize("k", range(len(WINDOWED)), ids=[str(w) for w in WINDOWED])
def test_windowed_edt_equals_scipy_and_brute_force(k):
    """The windowed passes (bounded by the coarse-grid distance bound) equal SciPy
    and the brute-force min-plus, on 16 masks per shape and spacing (the axes are
    summed in another order, so float32 rounding may differ in the last bit)."""
    _, spacing = WINDOWED[k]
    all_masks, results = _windowed_all()
    masks, (got, brute) = all_masks[k], results[k]
    np.testing.assert_allclose(got, brute, rtol=1e-6, atol=0)
    for m, g in zip(masks, got, strict=True):
        want = ndimage.distance_transform_edt(~m, sampling=spacing) if m.any() else np.inf
        np.testing.assert_allclose(g, np.broadcast_to(want, m.shape), rtol=1e-6, atol=1e-6)


def test_long_axes_take_the_windowed_path():
    """From 64 elements along an axis, ``distance_transform`` runs the windowed loop
    on CPU (a ``while`` in the program) and still equals SciPy, vmapped."""
    masks = _edt_masks((70, 12), np.random.default_rng(3))
    fn = jax.jit(jax.vmap(functools.partial(jaxseg.distance_transform, spacing=(1.0, 0.6))))
    if jax.default_backend() == "cpu":
        assert "while" in fn.lower(masks).as_text()
    got = jax.device_get(fn(masks))
    for m, g in zip(masks, got, strict=True):
        want = ndimage.distance_transform_edt(~m, sampling=(1.0, 0.6)) if m.any() else np.inf
        np.testing.assert_allclose(g, np.broadcast_to(want, m.shape), rtol=1e-6, atol=1e-6)
