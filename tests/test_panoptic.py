"""PanopticStats and the object scores against panoptica, SciPy and NumPy references.

panoptica (the engine of the BraTS evaluation) is run image by image on the host
with semantic input and its connected-components approximator; jaxseg runs each
batch of generated cases in one jitted call.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

import jaxseg
from jaxseg import _panoptic

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

panoptica = pytest.importorskip(
    "panoptica", reason="panoptica is not installed (the `parity` extra)"
)


# -- generated cases ------------------------------------------------------------------


def _blobs(rng, shape, density):
    """Random lesions: thresholded smoothed noise (a few components of varied size)."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.0)
    return noise > np.quantile(noise, 1 - density)


def _perturb(rng, mask):
    """A prediction: the reference grown, shrunk, shifted or partly dropped, plus noise."""
    op = rng.integers(5)
    if op == 0:
        out = ndimage.binary_dilation(mask)
    elif op == 1:
        out = ndimage.binary_erosion(mask)
    elif op == 2:
        out = np.roll(mask, 1, axis=int(rng.integers(mask.ndim)))
    elif op == 3:
        out = mask & (rng.random(mask.shape) < 0.8)
    else:
        out = mask.copy()
    return out | (rng.random(mask.shape) < 0.02)


def _structured(shape):
    """Edge cases: empty prediction / reference / both, a prediction touching two
    lesions (a merge), a lesion split in two, and an exact match."""
    z = np.zeros(shape, bool)
    two = z.copy()
    a = (slice(1, 4),) * len(shape)
    b = (slice(5, 8),) * len(shape)
    two[a] = True
    two[b] = True
    bridge = two.copy()
    bridge[(slice(1, 8),) + (slice(3, 6),) * (len(shape) - 1)] = True  # one blob over both
    split = z.copy()
    split[(slice(1, 8),) + (slice(1, 4),) * (len(shape) - 1)] = True
    halves = split.copy()
    halves[(slice(4, 5),) + (slice(None),) * (len(shape) - 1)] = False
    return [
        (z, z),
        (z, two),
        (two, z),
        (bridge, two),  # pred touches two lesions
        (two, bridge),
        (halves, split),  # split
        (split, halves),  # merge
        (two, two),
    ]


def make_cases(shape, n, seed):
    rng = np.random.default_rng(seed)
    cases = _structured(shape)
    while len(cases) < n:
        ref = _blobs(rng, shape, rng.uniform(0.05, 0.35))
        cases.append((_perturb(rng, ref), ref))
    pred = np.stack([p for p, _ in cases]).astype(np.int32)
    ref = np.stack([r for _, r in cases]).astype(np.int32)
    return pred, ref


# -- panoptica ---------------------------------------------------------------------------


def _evaluator(matcher, backend, distances=False):
    from panoptica import ConnectedComponentsInstanceApproximator, InputType, Panoptica_Evaluator
    from panoptica.metrics import Metric
    from panoptica.utils.edge_case_handling import (
        EdgeCaseHandler,
        EdgeCaseResult,
        MetricZeroTPEdgeCaseHandling,
    )

    metrics = [Metric.IOU, Metric.DSC] + ([Metric.HD95, Metric.ASSD] if distances else [])
    # panoptica's default handler has no zero-TP rule for HD95 (it raises); give it
    # the one its default gives ASSD: NaN without instances, else +inf
    rules = EdgeCaseHandler().listmetric_zeroTP_handling
    rules[Metric.HD95] = MetricZeroTPEdgeCaseHandling(
        no_instances_result=EdgeCaseResult.NAN, default_result=EdgeCaseResult.INF
    )
    return Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(cca_backend=backend),
        instance_matcher=matcher,
        edge_case_handler=EdgeCaseHandler(listmetric_zeroTP_handling=rules),
        instance_metrics=metrics,
        global_metrics=[],
        verbose=False,
        log_times=False,
    )


KEYS = ("tp", "fp", "fn", "rq", "sq", "pq", "sq_dsc", "pq_dsc")


def panoptica_values(evaluator, pred, ref, spacing=None, keys=KEYS):
    """``[n, len(keys)]`` panoptica's values, one binary image at a time."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, r in zip(pred, ref, strict=True):
            res = next(
                iter(
                    evaluator.evaluate(
                        p.astype(np.uint8), r.astype(np.uint8), voxelspacing=spacing, verbose=False
                    ).values()
                )
            )
            rows.append([float(getattr(res, k)) for k in keys])
    return np.array(rows)


def jaxseg_values(state, column, xp=np):
    """The same ``[n, 8]`` from a per-image state (one category column); ``xp=jnp``
    under ``jit``."""
    cols = [
        state.tp,
        state.fp,
        state.fn,
        jaxseg.recognition_quality(state, average=None),
        jaxseg.segmentation_quality(state, average=None),
        jaxseg.panoptic_quality(state, average=None),
        jaxseg.segmentation_quality(state, metric="dice", average=None),
        jaxseg.panoptic_quality(state, metric="dice", average=None),
    ]
    return xp.stack([xp.asarray(c)[:, column] for c in cols], 1)


def _matcher(name):
    from panoptica import MaxBipartiteMatching, NaiveThresholdMatching
    from panoptica.metrics import Metric

    if name == "naive>=":
        return NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=0.5), {
            "matching": "threshold",
            "strict": False,
        }
    if name == "naive>":
        return NaiveThresholdMatching(
            matching_metric=Metric.IOU, matching_threshold=0.5, strict_threshold=True
        ), {"matching": "threshold", "strict": True}
    if name == "bipartite-iou":
        return MaxBipartiteMatching(matching_metric=Metric.IOU, matching_threshold=0.5), {
            "matching": "bipartite",
            "strict": False,
        }
    # BraTS' configuration: Dice above 1e-6
    return MaxBipartiteMatching(matching_metric=Metric.DSC, matching_threshold=1e-6), {
        "matching": "bipartite",
        "match_metric": "dice",
        "threshold": 1e-6,
        "strict": False,
    }


def _scores(state, column, distances=False):
    """Under ``jit``: ``[n, 8]`` (``[n, 10]`` with distances) jaxseg values of one category
    column, and the total overflow."""
    got = jaxseg_values(state, column, xp=jnp)
    if distances:
        sq = [
            jaxseg.segmentation_quality(state, metric=m, average=None)[:, column]
            for m in ("hd95", "assd")
        ]
        got = jnp.concatenate([got, jnp.stack(sq, 1)], 1)
    return got, state.num_overflow.sum()


def _check(scores, pred, ref, matcher, backend, spacing=None):
    from panoptica.utils.constants import CCABackend

    distances = spacing is not None
    evaluator = _evaluator(_matcher(matcher)[0], getattr(CCABackend, backend), distances)
    keys = KEYS + (("sq_hd95", "sq_assd") if distances else ())
    want = panoptica_values(evaluator, pred, ref, spacing, keys)
    got, overflow = (np.asarray(x) for x in scores)
    assert float(overflow) == 0
    np.testing.assert_allclose(got[:, :8], want[:, :8], rtol=0, atol=1e-6, equal_nan=True)
    if distances:
        # float32 distances and sums (panoptica: float64): relative 5e-6
        np.testing.assert_allclose(got[:, 8:], want[:, 8:], rtol=5e-6, atol=1e-6, equal_nan=True)
        assert np.isfinite(want[:, 8:]).sum() > 20 and np.isinf(want[:, 8:]).any()


def _labelled(masks, connectivity):
    structure = ndimage.generate_binary_structure(masks.ndim - 1, connectivity)
    return np.stack([ndimage.label(m, structure)[0] for m in masks])


@pytest.mark.parametrize(
    ("shape", "n", "connectivity", "backend", "semantic", "instances", "spacing"),
    [
        # 2-D: panoptica's default backend (SciPy, 4-connectivity)
        ((14, 14), 140, 1, "scipy", "naive>=", ("naive>", "bipartite-iou"), None),
        # 3-D: panoptica's default backend (cc3d, 26-connectivity), BraTS' matching,
        # anisotropic spacing, HD95 / ASSD
        ((8, 8, 8), 60, 3, "cc3d", "bipartite-dice", ("naive>=",), (1.0, 2.0, 0.7)),
    ],
)
def test_parity_with_panoptica(shape, n, connectivity, backend, semantic, instances, spacing):
    """from_semantic (jaxseg's components) with one matching, and from_instances on
    SciPy's components with the others, against panoptica's semantic evaluation:
    tp, fp, fn, rq, sq, pq, sq_dsc, pq_dsc to 1e-6 on 200 cases (140 2-D and 60 3-D,
    8 structured ones in each), each under 1 to 3 matchings; in 3-D with anisotropic
    spacing also sq_hd95 and sq_assd (medpy's definitions) to a relative 5e-6
    (float32)."""
    pred, ref = make_cases(shape, n, seed=len(shape))

    def run(p, r, pi, ri):
        # the states and every score in one compiled program (no eager score ops)
        sem = jaxseg.PanopticStats.from_semantic(
            p,
            r,
            num_classes=2,
            connectivity=connectivity,
            max_segments=32,
            instance_metrics=("hd95", "assd") if spacing else (),
            spacing=spacing,
            **_matcher(semantic)[1],
        )
        inst = [
            jaxseg.PanopticStats.from_instances(pi, ri, max_segments=32, **_matcher(m)[1])
            for m in instances
        ]
        return _scores(sem, 1, spacing is not None), [_scores(s, 0) for s in inst]

    pi, ri = _labelled(pred, connectivity), _labelled(ref, connectivity)
    sem, inst = jax.jit(run)(pred, ref, pi, ri)
    _check(sem, pred, ref, semantic, backend, spacing)
    for scores, m in zip(inst, instances, strict=True):
        _check(scores, pred, ref, m, backend)


def test_bipartite_against_linear_sum_assignment():
    """The jitted Hungarian method finds an optimal assignment (SciPy's value) on 300 matrices."""
    rng = np.random.default_rng(3)
    w = rng.random((300, 9, 9)) * (rng.random((300, 9, 9)) < 0.35)
    w[:20] = 0.0  # nothing to match
    w[20:40] = np.round(w[20:40] * 4) / 4  # many ties
    rows = np.asarray(jax.jit(jax.vmap(_panoptic._hungarian))(jnp.asarray(w, jnp.float32)))
    for k in range(len(w)):
        assert sorted(rows[k]) == list(range(9))
        r, c = linear_sum_assignment(-w[k])
        assert w[k][rows[k], np.arange(9)].sum() == pytest.approx(w[k][r, c].sum(), abs=1e-5)


# -- multiclass, regions, instances, ignore ------------------------------------------------


def _reference_counts(pred_inst, ref_inst):
    """tp, fp, fn, sum IoU, sum Dice of one image by unique IoU > 0.5 (a slow NumPy loop)."""
    p_ids = [i for i in np.unique(pred_inst) if i != 0]
    r_ids = [i for i in np.unique(ref_inst) if i != 0]
    tp, s_iou, s_dice = 0, 0.0, 0.0
    for r in r_ids:
        for p in p_ids:
            a, b = ref_inst == r, pred_inst == p
            inter, union = np.sum(a & b), np.sum(a | b)
            if inter / union > 0.5:
                tp += 1
                s_iou += inter / union
                s_dice += 2 * inter / (a.sum() + b.sum())
    return [tp, len(p_ids) - tp, len(r_ids) - tp, s_iou, s_dice]


def test_from_semantic_multiclass_and_regions():
    """Per class and per region, with ignored pixels, against SciPy's labels and a NumPy
    IoU > 0.5 loop (24 images x 6 categories; classes and regions share one compile)."""
    rng = np.random.default_rng(7)
    n, shape = 24, (12, 12)
    ref = np.stack([ndimage.median_filter(rng.integers(0, 4, shape), 3) for _ in range(n)])
    pred = np.where(rng.random(ref.shape) < 0.1, rng.integers(0, 4, ref.shape), ref)
    pred[:3] = 0  # empty predictions
    ref[3:6, :2] = 9  # ignored pixels: removed from both masks
    regions = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}
    names = []

    @jax.jit
    def run(p, r):  # both states and every score in one compiled program
        by_class = jaxseg.PanopticStats.from_semantic(p, r, num_classes=4, ignore_index=9)
        by_region = jaxseg.PanopticStats.from_semantic(
            p, r, num_classes=4, ignore_index=9, regions=regions
        )
        total = by_class.reduce()
        counts = [
            jnp.stack([s.tp, s.fp, s.fn, s.pair_sum("iou"), s.pair_sum("dice")], -1)
            for s in (by_class, by_region)
        ]
        scores = {
            "total": jnp.stack([total.tp, total.fp, total.fn]),
            "rq": jaxseg.recognition_quality(total),
            "dice": jaxseg.dice(total),
            "precision": jaxseg.precision(total, average=None),
            "recall": jaxseg.recall(total, average=None),
        }
        names.append(by_region.category_names)  # static: read while tracing
        return counts, scores

    counts, scores = run(pred, ref)
    assert names == [("wt", "tc", "et")]
    for got, groups in (
        (np.asarray(counts[0]), [(0,), (1,), (2,), (3,)]),
        (np.asarray(counts[1]), list(regions.values())),
    ):
        for i in range(n):
            for k, g in enumerate(groups):
                if len(groups) == 4 and k == 0:
                    assert np.all(got[i, 0] == 0)  # background forms no instances
                    continue
                keep = ref[i] != 9
                want = _reference_counts(
                    ndimage.label(np.isin(pred[i], g) & keep)[0],
                    ndimage.label(np.isin(ref[i], g) & keep)[0],
                )
                np.testing.assert_allclose(got[i, k], want, atol=1e-5)
    # dataset level: background is left out of the averages
    scores = {k: np.asarray(x) for k, x in scores.items()}
    tp, fp, fn = scores["total"][:, 1:]
    want_rq = np.mean(tp / (tp + 0.5 * (fp + fn)))
    assert float(scores["rq"]) == pytest.approx(want_rq, rel=1e-6)
    assert float(scores["dice"]) == pytest.approx(want_rq, rel=1e-6)  # F1 = RQ
    np.testing.assert_allclose(scores["precision"][1:], tp / (tp + fp), 1e-6)
    np.testing.assert_allclose(scores["recall"][1:], tp / (tp + fn), 1e-6)


def test_from_instances_any_ids_and_overflow():
    rng = np.random.default_rng(11)
    n, shape = 20, (10, 10)
    ref = np.stack([ndimage.label(rng.random(shape) < 0.3)[0] for _ in range(n)])
    pred = np.where(rng.random(ref.shape) < 0.15, 0, ref)
    # arbitrary, non-consecutive ids
    ref = np.where(ref > 0, ref * 37 + 1000, 0).astype(np.int32)
    pred = np.where(pred > 0, (pred * 13) % 101 + 1, 0).astype(np.int32)

    @jax.jit
    def run(p, r):  # both caps and their counts in one compiled program
        state = jaxseg.PanopticStats.from_instances(p, r, max_segments=40)
        small = jaxseg.PanopticStats.from_instances(p, r, max_segments=3)
        got = jnp.stack(
            [state.tp, state.fp, state.fn, state.pair_sum("iou"), state.pair_sum("dice")], -1
        )[:, 0]
        return got, jnp.stack([small.num_overflow, small.tp, small.fp, small.fn])[..., 0]

    got, (overflow, tp, fp, fn) = (np.asarray(x) for x in run(pred, ref))
    for i in range(n):
        np.testing.assert_allclose(got[i], _reference_counts(pred[i], ref[i]), atol=1e-5)
    # past the cap: left out of matching, still counted as unmatched, and in the overflow
    n_p = np.array([len(np.unique(x)) - 1 for x in pred])
    n_r = np.array([len(np.unique(x)) - 1 for x in ref])
    np.testing.assert_array_equal(overflow, np.maximum(n_p - 3, 0) + np.maximum(n_r - 3, 0))
    np.testing.assert_array_equal(tp + fp, n_p)
    np.testing.assert_array_equal(tp + fn, n_r)
    checked = jaxseg.checked(lambda p, r: jaxseg.PanopticStats.from_instances(p, r, max_segments=3))
    with pytest.raises(Exception, match="max_segments"):
        checked(pred, ref)


def test_spacing_is_data_one_program_for_every_spacing():
    """The instance distances take the spacing as data: three spacings on one shape
    compile one program, and each gives medpy's HD95 and ASSD (panoptica's) at that
    spacing, and the value of the static-spacing distance functions bit for bit (one
    spacing: those compile once per spacing)."""
    from panoptica.metrics.assd import _average_symmetric_surface_distance
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95

    rng = np.random.default_rng(5)
    ref = np.zeros((1, 24, 70), np.int32)  # long axis: the windowed transform on CPU
    ref[0, 3:9, 4:20], ref[0, 14:22, 40:66] = 1, 2
    pred = np.zeros_like(ref)
    pred[0, 4:10, 6:19], pred[0, 12:21, 43:69] = 5, 7
    pred[0][rng.random((24, 70)) < 0.03] = 0
    kw = dict(instance_metrics=("hd95", "assd"), max_segments=4)  # 2 lesions a side
    before = _panoptic._instances_core._cache_size()
    for i, spacing in enumerate(((0.8, 1.7), (2.0, 2.0), (1.0, 3.25))):
        s = jaxseg.PanopticStats.from_instances(pred, ref, spacing=spacing, **kw)
        assert float(s.tp[0, 0]) == 2
        hd95, assd = (float(s.sums[0, s.metrics.index(m), 0]) for m in ("hd95", "assd"))
        pairs = [(ref[0] == 1, pred[0] == 5), (ref[0] == 2, pred[0] == 7)]
        want_hd = sum(_compute_hausdorff_distance95(a, b, voxelspacing=spacing) for a, b in pairs)
        want_assd = sum(
            _average_symmetric_surface_distance(a, b, voxelspacing=spacing) for a, b in pairs
        )
        np.testing.assert_allclose([hd95, assd], [want_hd, want_assd], rtol=2e-6)
        if i:  # the static functions compile per spacing: one comparison is enough
            continue
        static = [
            jaxseg.hausdorff_distance(
                b[None].astype(np.int32),
                a[None].astype(np.int32),
                num_classes=2,
                percentile=95,
                spacing=spacing,
                definition="medpy",
            )[0, 1]
            for a, b in pairs
        ]
        assert hd95 == float(np.float32(static[0]) + np.float32(static[1]))
    assert _panoptic._instances_core._cache_size() == before + 1


def test_lesion_wise_brats_formula():
    """BraTS 2023 lesion-wise Dice (fill 0) and HD95 (fill 374), by hand and with
    panoptica's medpy HD95 of the matched pairs."""
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95

    row_p = [1, 1, 1, 0, 2, 0, 3, 0, 0, 0]
    row_r = [1, 1, 0, 0, 2, 0, 0, 0, 4, 4]
    pred = np.array([[row_p] * 3, [[0] * 10] * 3])  # [2, 3, 10]: lesions are columns
    ref = np.array([[row_r] * 3, [[0] * 10] * 3])

    @jax.jit
    def scores(p, r):  # the state and every score in one compiled program
        s = jaxseg.PanopticStats.from_instances(p, r, instance_metrics=("hd95",), spacing=2.0)
        return {
            "dice": jaxseg.lesion_wise(s),
            "iou": jaxseg.lesion_wise(s, metric="iou", fill=1.0),
            "hd95": jaxseg.lesion_wise(s, metric="hd95", fill=374.0),
            "sq_hd95": jaxseg.segmentation_quality(s, metric="hd95"),
            "empty": jaxseg.lesion_wise(s, empty=1.0),
            "pooled": jaxseg.lesion_wise(s.reduce()),
        }

    got = {k: np.asarray(x) for k, x in scores(pred, ref).items()}
    # tp 2 (Dice 0.8 and 1), fp 1, fn 1
    assert float(got["dice"][0]) == pytest.approx(1.8 / 4)
    assert float(got["iou"][0]) == pytest.approx((2 / 3 + 1 + 2) / 4)
    hd = [
        _compute_hausdorff_distance95(ref[0] == r, pred[0] == p, voxelspacing=(2.0, 2.0))
        for r, p in ((1, 1), (2, 2))
    ]
    assert hd[0] > 0
    want = (sum(hd) + 374 * 2) / 4
    assert float(got["hd95"][0]) == pytest.approx(want)
    assert float(got["sq_hd95"][0]) == pytest.approx(sum(hd) / 2)
    assert math.isnan(float(got["dice"][1]))  # no lesion at all
    assert float(got["empty"][1]) == 1.0
    # dataset level: pooled over images by `reduce`
    assert float(got["pooled"]) == pytest.approx(1.8 / 4)


# -- the state algebra ---------------------------------------------------------------------


def test_batch_split_scan_and_vmap_equal_one_call():
    """One call, two half batches, and a scan over chunks give the same state."""
    rng = np.random.default_rng(2)
    ref = np.stack([ndimage.label(rng.random((8, 8)) < 0.3)[0] for _ in range(16)])
    pred = np.where(rng.random(ref.shape) < 0.2, 0, ref)
    f = jaxseg.PanopticStats.from_instances

    @jax.jit
    def run(p, r):  # the three ways in one compiled program
        whole = f(p, r).reduce()
        halves = f(p[:8], r[:8]).reduce() + f(p[8:], r[8:]).reduce()

        def step(acc, batch):
            return acc + f(*batch).reduce(), None

        chunks = jax.lax.scan(
            step, jaxseg.PanopticStats.empty(1), (p.reshape(2, 8, 8, 8), r.reshape(2, 8, 8, 8))
        )[0]
        return whole, halves, chunks

    whole, halves, chunks = run(pred, ref)
    assert whole.to_numpy()[0].sum() > 0
    for other in (halves, chunks):
        np.testing.assert_array_equal(other.to_numpy(), whole.to_numpy())
        np.testing.assert_allclose(other.sums, whole.sums, rtol=1e-6)


def test_bad_input_names_the_argument():
    x = np.zeros((1, 4, 4), np.int32)
    with pytest.raises(TypeError, match="predictions"):
        jaxseg.PanopticStats.from_semantic(x.astype(np.float32), x, num_classes=2)
    with pytest.raises(ValueError, match="predictions"):
        jaxseg.PanopticStats.from_semantic(
            np.zeros((1, 2, 2, 2, 2), int), np.zeros((1, 2, 2, 2, 2), int), num_classes=2
        )
    with pytest.raises(ValueError, match="connectivity"):
        jaxseg.PanopticStats.from_semantic(x, x, num_classes=2, connectivity=3)
    with pytest.raises(ValueError, match="max_segments"):
        jaxseg.PanopticStats.from_semantic(x, x, num_classes=2, max_segments=0)
    with pytest.raises(ValueError, match="matching"):
        jaxseg.PanopticStats.from_semantic(x, x, num_classes=2, matching="hungarian")
    with pytest.raises(ValueError, match="regions"):
        jaxseg.PanopticStats.from_semantic(x, x, num_classes=2, regions={"a": (1, 5)})
    with pytest.raises(TypeError, match="state"):
        jaxseg.panoptic_quality(jaxseg.ConfusionMatrix.empty(2))


def test_distance_definition_medpy_against_panoptica():
    """`definition="medpy"` of hausdorff_distance (HD95, pooled) and average_surface_distance
    (symmetric: mean of the two directed means) against panoptica's medpy-derived functions,
    24 images x 2 classes, anisotropic spacing."""
    from panoptica.metrics.assd import _average_symmetric_surface_distance
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95

    rng = np.random.default_rng(4)
    labels = np.stack([ndimage.median_filter(rng.integers(0, 3, (12, 12)), 3) for _ in range(24)])
    preds = np.where(rng.random(labels.shape) < 0.1, rng.integers(0, 3, labels.shape), labels)
    spacing = (0.8, 1.7)

    @jax.jit
    def run(p, r):
        kw = dict(num_classes=3, spacing=spacing, definition="medpy")
        return (
            jaxseg.hausdorff_distance(p, r, percentile=95, **kw),
            jaxseg.average_surface_distance(p, r, symmetric=True, **kw),
        )

    hd, assd = (np.asarray(x) for x in run(preds, labels))
    checked = 0
    for i in range(len(labels)):
        for c in (1, 2):
            a, b = labels[i] == c, preds[i] == c
            if not (a.any() and b.any()):
                continue
            want_hd = _compute_hausdorff_distance95(a, b, voxelspacing=spacing)
            want_assd = _average_symmetric_surface_distance(a, b, voxelspacing=spacing)
            np.testing.assert_allclose([hd[i, c], assd[i, c]], [want_hd, want_assd], rtol=2e-6)
            checked += 1
    assert checked > 30


def test_brats_gli_configuration():
    """brats-evaluation's bundled `gli` configuration (panoptica, six regions incl. the
    wt / tc merges, Dice > 1e-6 bipartite matching, 26-connected components), whose
    lesion-wise means are panoptica's sq_dsc and sq_hd95: equal on 10 generated volumes."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("brats_evaluation")
    if spec is None:
        pytest.skip("brats-evaluation is not installed (the `parity` extra)")
    from panoptica import Panoptica_Evaluator

    config = Path(spec.submodule_search_locations[0]) / "configs" / "config_gli.yaml"
    evaluator = Panoptica_Evaluator.load_from_config(config)
    regions = {"snfh": (2,), "et": (3,), "netc": (1,), "rc": (4,), "tc": (1, 3), "wt": (1, 2, 3)}
    rng = np.random.default_rng(12)
    ref = np.stack([ndimage.median_filter(rng.integers(0, 5, (8, 8, 8)), 3) for _ in range(10)])
    pred = np.where(rng.random(ref.shape) < 0.08, rng.integers(0, 5, ref.shape), ref)
    pred[0] = 0  # an empty prediction

    @jax.jit
    def scores(p, r):  # the state and every score in one compiled program
        s = jaxseg.PanopticStats.from_semantic(
            p,
            r,
            num_classes=5,
            connectivity=3,
            matching="bipartite",
            match_metric="dice",
            threshold=1e-6,
            strict=False,
            regions=regions,
            instance_metrics=("hd95",),
            max_segments=32,
        )
        return s.num_overflow.sum(), {
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "rq": jaxseg.recognition_quality(s, average=None),
            "sq_dsc": jaxseg.segmentation_quality(s, metric="dice", average=None),
            "pq_dsc": jaxseg.panoptic_quality(s, metric="dice", average=None),
            "sq_hd95": jaxseg.segmentation_quality(s, metric="hd95", average=None),
        }

    overflow, ours = scores(pred, ref)
    assert float(overflow) == 0
    ours = {k: np.asarray(x) for k, x in ours.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(ref)):
            results = evaluator.evaluate(
                pred[i].astype(np.uint8), ref[i].astype(np.uint8), verbose=False
            )
            for k, name in enumerate(regions):
                res = results[name]
                for key, value in ours.items():
                    np.testing.assert_allclose(
                        float(value[i, k]),
                        float(getattr(res, key)),
                        rtol=5e-6,
                        atol=1e-5 if key == "sq_hd95" else 1e-6,  # float32 distances
                        err_msg=f"image {i}, region {name}, {key}",
                    )
