"""ConfusionMatrix and BinaryStats: counts against loops and scikit-learn, state algebra."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix
from tests import reference as ref

# -- strategies ------------------------------------------------------------------


@st.composite
def label_maps(draw):
    """Random preds/labels with out-of-range values, ignore ids and a mask."""
    c = draw(st.sampled_from([1, 3, 19, 200]))
    shape = draw(st.sampled_from([(7,), (3, 5), (2, 3, 4)]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    labels = rng.integers(-2, c + 2, size=shape)
    labels[rng.random(shape) < 0.15] = 255
    preds = rng.integers(0, c, size=shape)
    preds[rng.random(shape) < 0.05] = c + 1  # out-of-range predictions are invalid too
    ignore = draw(
        st.sampled_from([None, 255, -1, 0, (255, -1), (0, c - 1), (c + 1,), (-2, 1, 255), [1, 1]])
    )
    where = None
    if draw(st.booleans()):
        where = rng.random(shape) < 0.7
    return c, preds.astype(np.int32), labels.astype(np.int32), ignore, where


def _all_stats(state):
    return state, state.tp, state.fp, state.fn, state.tn


@functools.partial(jax.jit, static_argnames=("c", "ignore"))
def _confusion_stats(preds, labels, where, *, c, ignore):
    cm = ConfusionMatrix.from_predictions(
        preds, labels, num_classes=c, ignore_index=ignore, where=where
    )
    return _all_stats(cm)


#: ``ConfusionMatrix.from_predictions`` jitted whole (an eager call compiles each op).
_from_predictions = jax.jit(
    ConfusionMatrix.from_predictions, static_argnames=("num_classes", "ignore_index")
)


def _hashable(ignore):
    return tuple(ignore) if isinstance(ignore, list) else ignore


# -- counts against the reference ------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(label_maps())
def test_confusion_matrix_matches_reference(case):
    c, preds, labels, ignore, where = case
    cm, *stats = _confusion_stats(preds, labels, where, c=c, ignore=_hashable(ignore))
    m, void, invalid = ref.confusion(preds, labels, c, ignore, where, with_void=True)
    np.testing.assert_array_equal(cm.to_numpy(), m)
    np.testing.assert_array_equal(cm.void_to_numpy(), void)
    assert int(ref_int(cm.invalid)) == invalid
    assert float(cm.num_invalid) == invalid
    want = ref.stats_from_matrix(m, void)
    for name, got, w in zip(("tp", "fp", "fn", "tn"), stats, want, strict=True):
        np.testing.assert_array_equal(np.asarray(got), w, err_msg=name)
    np.testing.assert_array_equal(cm.counted_classes, ref.counted_classes(c, ignore))


def ref_int(limbs):
    return jaxseg._counts.to_int64_numpy(limbs)


@settings(max_examples=5, deadline=None)
@given(label_maps())
def test_from_logits_is_argmax_then_predictions(case):
    c, _, labels, ignore, where = case
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(*labels.shape, c)).astype(np.float32)
    cm = jax.jit(functools.partial(ConfusionMatrix.from_logits, ignore_index=ignore, where=where))(
        logits, labels
    )
    m, _ = ref.confusion(np.argmax(logits, -1), labels, c, ignore, where)
    np.testing.assert_array_equal(cm.to_numpy(), m)


@st.composite
def multilabel_maps(draw):
    c = draw(st.sampled_from([1, 4]))
    shape = draw(st.sampled_from([(), (3, 4)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    logits = rng.normal(size=(*shape, c)).astype(np.float32)
    labels = rng.integers(0, 2, size=(*shape, c))
    labels[rng.random(labels.shape) < 0.1] = 255
    labels[rng.random(labels.shape) < 0.05] = 2
    ignore = draw(st.sampled_from([None, 255, (255, 2)]))
    where = None
    kind = draw(st.sampled_from(["none", "pixel", "element"]))
    if kind == "pixel":
        where = rng.random(shape) < 0.7
    elif kind == "element":
        where = rng.random((*shape, c)) < 0.7
    threshold = draw(st.sampled_from([0.5, 0.3, "per-class"]))
    if threshold == "per-class":
        threshold = rng.random(c).astype(np.float32)
    return logits, labels.astype(np.int32), ignore, where, threshold


@functools.partial(jax.jit, static_argnames=("ignore",))
def _binary_stats(logits, labels, threshold, where, *, ignore):
    s = BinaryStats.from_logits(
        logits, labels, threshold=threshold, ignore_index=ignore, where=where
    )
    return _all_stats(s)


@settings(max_examples=6, deadline=None)
@given(multilabel_maps())
def test_binary_stats_match_reference(case):
    logits, labels, ignore, where, threshold = case
    s, *stats = _binary_stats(logits, labels, threshold, where, ignore=ignore)
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    preds = probs > np.asarray(threshold, np.float64)
    want, invalid = ref.binary_stats(preds, labels, ignore, where)
    # float32 sigmoid can differ from float64 at the threshold itself: skip such draws
    close = np.abs(probs - np.asarray(threshold, np.float64)) < 1e-6
    if close.any():
        return
    np.testing.assert_array_equal(s.to_numpy(), want)
    assert int(ref_int(s.invalid)) == invalid
    for k, got in enumerate(stats):
        np.testing.assert_array_equal(np.asarray(got), want[k])


def test_binary_stats_against_sklearn_multilabel():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(400, 5))
    preds = rng.integers(0, 2, size=(400, 5))
    preds[:, 4] = 0  # a channel never predicted: precision takes zero_division
    s = BinaryStats.from_predictions(preds, labels)
    mcm = metrics.multilabel_confusion_matrix(labels, preds)  # [[tn, fp], [fn, tp]]
    np.testing.assert_array_equal(s.to_numpy()[0], mcm[:, 1, 1])
    np.testing.assert_array_equal(s.to_numpy()[1], mcm[:, 0, 1])
    np.testing.assert_array_equal(s.to_numpy()[2], mcm[:, 1, 0])
    np.testing.assert_array_equal(s.to_numpy()[3], mcm[:, 0, 0])
    averages = (None, "micro", "macro", "weighted")
    # every score in one jitted call (one compilation, not every eager op of twelve calls)
    got = jax.jit(
        lambda s: (
            {
                f"{name}-{average}": getattr(jaxseg, name)(s, average=average, empty=0.0)
                for name in ("dice", "iou", "precision")
                for average in averages
            }
            | {"pixel_accuracy": jaxseg.pixel_accuracy(s)}
        )
    )(s)
    for average in averages:
        kw = dict(average=average, zero_division=0)
        np.testing.assert_allclose(
            got[f"dice-{average}"], metrics.f1_score(labels, preds, **kw), rtol=1e-6
        )
        np.testing.assert_allclose(
            got[f"iou-{average}"], metrics.jaccard_score(labels, preds, **kw), rtol=1e-6
        )
        np.testing.assert_allclose(
            got[f"precision-{average}"], metrics.precision_score(labels, preds, **kw), rtol=1e-6
        )
    # sklearn's multilabel accuracy is subset accuracy; ours is the element-wise one
    np.testing.assert_allclose(got["pixel_accuracy"], np.mean(labels == preds), rtol=1e-6)


# -- acceptance: W3-sized inputs against scikit-learn ----------------------------


def test_w3_counts_equal_sklearn_and_scores_equal_reference():
    metrics = pytest.importorskip("sklearn.metrics")
    c = 19
    rng = np.random.default_rng(19)
    labels = rng.integers(0, c, size=(8, 512, 512), dtype=np.int32)
    preds = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, c, labels.shape))
    preds = preds.astype(np.int32)
    cm = jax.jit(lambda p, y: ConfusionMatrix.from_predictions(p, y, num_classes=c))(preds, labels)
    want = metrics.confusion_matrix(labels.reshape(-1), preds.reshape(-1), labels=range(c))
    np.testing.assert_array_equal(cm.to_numpy(), want)
    tp, fp, fn, tn = ref.stats_from_matrix(want)
    counted = np.ones(c, bool)
    names, averages = ("iou", "dice", "precision", "recall"), (None, "micro", "macro", "weighted")
    # every score in one jitted call (one compilation, not every eager op of sixteen calls)
    got = jax.jit(
        lambda cm: (
            {
                f"{name}-{average}": getattr(jaxseg, name)(cm, average=average)
                for name in names
                for average in averages
            }
            | {"pixel_accuracy": jaxseg.pixel_accuracy(cm)}
        )
    )(cm)
    for name in names:
        for average in averages:
            np.testing.assert_allclose(
                got[f"{name}-{average}"],
                ref.score(name, tp, fp, fn, tn, counted, average=average),
                rtol=1e-6,
                err_msg=f"{name} {average}",
            )
    np.testing.assert_allclose(
        got["pixel_accuracy"], ref.pixel_accuracy(tp, fp, fn, tn, counted), rtol=1e-6
    )


# -- semantics of ignore and masks (DESIGN 3.1) ----------------------------------


def test_label_255_without_ignore_is_invalid_not_wrapped():
    labels = jnp.array([0, 255, 18, 19])
    preds = jnp.array([0, 0, 18, 18])
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=19)
    assert cm.to_numpy().sum() == 2
    assert cm.to_numpy()[0, 0] == 1 and cm.to_numpy()[18, 18] == 1
    assert float(cm.num_invalid) == 2


def test_minus_one_never_wraps_to_last_class():
    cm = ConfusionMatrix.from_predictions(jnp.array([2, 2]), jnp.array([-1, 2]), num_classes=3)
    np.testing.assert_array_equal(cm.to_numpy()[2], [0, 0, 1])
    assert float(cm.num_invalid) == 1
    ignored = ConfusionMatrix.from_predictions(
        jnp.array([2, 2]), jnp.array([-1, 2]), num_classes=3, ignore_index=-1
    )
    assert float(ignored.num_invalid) == 0 and ignored.to_numpy().sum() == 1


def test_ignored_class_in_range_is_left_out_of_averages():
    labels = jnp.array([0, 0, 1, 1, 2, 2])
    preds = jnp.array([0, 1, 1, 1, 2, 0])
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=3, ignore_index=1)
    # label 1 pixels are gone; class 1 stays a prediction target (column) for the others
    np.testing.assert_array_equal(cm.to_numpy(), [[1, 1, 0], [0, 0, 0], [1, 0, 1]])
    averages = (None, "macro", "micro", "weighted")
    got = jax.jit(lambda cm: [jaxseg.iou(cm, average=a) for a in averages])(cm)  # one compile
    per = np.asarray(got[0])
    assert np.isnan(per[1])
    np.testing.assert_allclose(got[1], np.mean(per[[0, 2]]), rtol=1e-6)
    for value in got[2:]:
        assert np.isfinite(float(value))


def test_where_false_pixels_contribute_nothing():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (6, 7))
    preds = rng.integers(0, 4, (6, 7))
    where = rng.random((6, 7)) < 0.5
    masked = _from_predictions(preds, labels, num_classes=4, where=where)
    sliced = _from_predictions(preds[where], labels[where], num_classes=4)
    np.testing.assert_array_equal(masked.to_numpy(), sliced.to_numpy())
    # ignore_index is the same as a where mask on the label value
    ig = _from_predictions(preds, labels, num_classes=4, ignore_index=2)
    wh = _from_predictions(preds, labels, num_classes=4, where=labels != 2)
    np.testing.assert_array_equal(ig.to_numpy(), wh.to_numpy())
    # a where mask of lower rank broadcasts over leading axes
    row = np.array([True, False, True, True, False, True, True])
    bc = _from_predictions(preds, labels, num_classes=4, where=row)
    full = _from_predictions(preds, labels, num_classes=4, where=np.broadcast_to(row, (6, 7)))
    np.testing.assert_array_equal(bc.to_numpy(), full.to_numpy())


def test_void_predictions_are_misses():
    """A prediction outside [0, C) at a valid pixel: a false negative of the label's
    class and a false positive of none (the Cityscapes evaluation's rule)."""
    cm = ConfusionMatrix.from_predictions(
        jnp.array([0, 3, -1, 1, 255]), jnp.array([0, 1, 1, 1, 2]), num_classes=3
    )
    np.testing.assert_array_equal(cm.to_numpy().sum(), 2)
    np.testing.assert_array_equal(cm.void_to_numpy(), [0, 2, 1])
    assert float(cm.num_invalid) == 0
    np.testing.assert_array_equal(cm.tp, [1, 1, 0])
    np.testing.assert_array_equal(cm.fp, [0, 0, 0])
    np.testing.assert_array_equal(cm.fn, [0, 2, 1])
    np.testing.assert_array_equal(cm.tn, [4, 2, 4])
    np.testing.assert_array_equal(cm.label_counts(), [1, 3, 1])
    # dropping the void pixels instead would report class 1 as perfect
    np.testing.assert_allclose(jaxseg.iou(cm, average=None), [1.0, 1 / 3, 0.0])


def test_void_predictions_match_cityscapes_formula():
    """Cityscapes: tp = M[c, c], fn = row sum over every predicted id (void included)
    minus tp, fp = column sum over evaluated label rows minus tp."""
    rng = np.random.default_rng(11)
    c = 6
    labels = rng.integers(0, c, (4, 9, 9)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.1] = 255
    preds = rng.integers(0, c, labels.shape).astype(np.int32)
    preds[rng.random(labels.shape) < 0.2] = 255  # void predictions
    cm = _from_predictions(preds, labels, num_classes=c, ignore_index=255)
    # a [C, C + 1] host matrix over label ids x (prediction ids + void column)
    full = np.zeros((c, c + 1), np.int64)
    for y, p in zip(labels.ravel(), preds.ravel(), strict=True):
        if y != 255:
            full[y, p if p < c else c] += 1
    tp = np.diag(full[:, :c])
    fn = full.sum(1) - tp
    fp = full[:, :c].sum(0) - tp
    np.testing.assert_allclose(jaxseg.iou(cm, average=None), tp / (tp + fp + fn), rtol=1e-6)


def test_wide_integer_inputs_are_range_checked_not_wrapped():
    """int64 / uint64 host arrays with x64 off: 2**32 + 1 must not become class 1."""
    labels = np.array([0, 1, 2**32 + 1, -(2**40), 1], np.int64)
    preds = np.array([0, 2**32 + 1, 1, 0, 2**33], np.int64)
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=3)
    np.testing.assert_array_equal(cm.to_numpy(), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(cm.void_to_numpy(), [0, 2, 0])
    assert float(cm.num_invalid) == 2
    big = np.array([0, 2**63 + 5, 1], np.uint64)
    cm = ConfusionMatrix.from_predictions(np.array([0, 1, 1], np.uint64), big, num_classes=2)
    assert float(cm.num_invalid) == 1
    np.testing.assert_array_equal(cm.to_numpy(), [[1, 0], [0, 1]])
    # the losses see the same saturated labels: the wide label is invalid, not class 1
    x = jnp.zeros((1, 3, 2))
    lab = np.array([[0, 2**32 + 1, 1]], np.int64)
    stats = jaxseg.SoftStats.from_logits(x, lab)
    np.testing.assert_allclose(stats.tp + stats.fn, [[1.0, 1.0]])
    assert float(stats.invalid[0]) == 1


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8, jnp.int16, jnp.uint32, jnp.bool_])
def test_label_dtypes(dtype):
    labels = np.array([0, 1, 1, 0, 1])
    preds = np.array([0, 1, 0, 0, 1])
    cm = ConfusionMatrix.from_predictions(
        preds.astype(dtype), labels.astype(dtype), num_classes=2, ignore_index=(-1, 255)
    )
    np.testing.assert_array_equal(cm.to_numpy(), [[2, 0], [1, 2]])


def test_uint8_labels_with_more_classes_than_the_dtype_holds():
    labels = np.array([0, 200, 255], np.uint8)
    cm = ConfusionMatrix.from_predictions(labels, labels, num_classes=300, ignore_index=-1)
    assert cm.to_numpy().trace() == 3 and float(cm.num_invalid) == 0


# -- state algebra ---------------------------------------------------------------


def _random_state(seed, c=4, n=50, ignore=255):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c + 1, n)
    labels[labels == c] = 255
    return _from_predictions(
        rng.integers(0, c, n).astype(np.int32),
        labels.astype(np.int32),
        num_classes=c,
        ignore_index=ignore,
    )


def _same(a, b):
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    np.testing.assert_array_equal(ref_int(a.invalid), ref_int(b.invalid))


def test_empty_is_identity_merge_commutative_associative():
    a, b, c = (_random_state(s) for s in range(3))
    e = ConfusionMatrix.empty(4, ignore_index=255)
    _same(e.merge(a), a)
    _same(a.merge(e), a)
    _same(a.merge(b), b.merge(a))
    _same(a.merge(b).merge(c), a.merge(b.merge(c)))
    _same(a + b, a.merge(b))
    be = BinaryStats.empty(3)
    bs = BinaryStats.from_predictions(np.eye(3, dtype=bool), np.eye(3, dtype=np.int32))
    np.testing.assert_array_equal((be + bs).to_numpy(), bs.to_numpy())


def test_split_batch_vmap_reduce_scan_and_loop_agree():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5, 4, 3)).astype(np.float32)
    labels = rng.integers(-1, 4, (6, 5, 4)).astype(np.int32)
    kw = dict(ignore_index=-1)
    count = jax.jit(functools.partial(ConfusionMatrix.from_logits, **kw))
    whole = count(logits, labels)
    halves = count(logits[:3], labels[:3]) + count(logits[3:], labels[3:])
    _same(whole, halves)
    per_image = jax.jit(jax.vmap(count))(logits, labels)
    assert per_image.batch_shape == (6,)
    assert per_image.to_numpy().shape == (6, 3, 3)
    _same(whole, per_image.reduce())

    def step(state, xy):
        return state + ConfusionMatrix.from_logits(*xy, **kw), None

    scan = jax.jit(lambda s, xs: jax.lax.scan(step, s, xs)[0])
    _same(whole, scan(ConfusionMatrix.empty(3, ignore_index=-1), (logits, labels)))
    looped = ConfusionMatrix.empty(3, ignore_index=-1)
    merge = jax.jit(ConfusionMatrix.merge)
    for i in range(6):
        looped = merge(looped, count(logits[i], labels[i]))
    _same(whole, looped)
    # per-image scores from the batched state equal scores of each image's state
    score = jax.jit(functools.partial(jaxseg.iou, average=None))
    per = score(per_image)
    for i in range(6):
        np.testing.assert_array_equal(per[i], score(count(logits[i], labels[i])))


def test_jitted_accumulation_traces_once():
    traces = []

    @jax.jit
    def update(state, logits, labels):
        traces.append(1)
        return state + ConfusionMatrix.from_logits(logits, labels, ignore_index=255)

    state = ConfusionMatrix.empty(3, ignore_index=255)
    rng = np.random.default_rng(0)
    for _ in range(4):
        logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
        labels = rng.integers(0, 3, (2, 5)).astype(np.int32)
        state = update(state, logits, labels)
    assert len(traces) == 1
    assert state.to_numpy().sum() == 40

    btraces = []

    @jax.jit
    def bupdate(state, logits, labels):
        btraces.append(1)
        return state + BinaryStats.from_logits(logits, labels)

    bstate = BinaryStats.empty(3)
    for _ in range(3):
        bstate = bupdate(bstate, np.zeros((4, 3), np.float32), np.ones((4, 3), np.int32))
    assert len(btraces) == 1 and bstate.to_numpy()[2].sum() == 36


def test_merge_mismatches_raise():
    with pytest.raises(ValueError, match=r"different `num_classes`: 3 and 4"):
        ConfusionMatrix.empty(3).merge(ConfusionMatrix.empty(4))
    with pytest.raises(ValueError, match=r"different ignored classes: \(\) and \(1,\)"):
        ConfusionMatrix.empty(3) + ConfusionMatrix.empty(3, ignore_index=1)
    with pytest.raises(TypeError, match="can only merge ConfusionMatrix with ConfusionMatrix"):
        ConfusionMatrix.empty(3).merge(BinaryStats.empty(3))
    with pytest.raises(ValueError, match=r"different batch shapes.*\.reduce\(\)"):
        batched = jax.vmap(lambda y: ConfusionMatrix.from_predictions(y, y, num_classes=3))(
            jnp.zeros((2, 4), jnp.int32)
        )
        ConfusionMatrix.empty(3) + batched
    # ignore ids outside [0, C) do not change the class set, so they merge freely
    _same(
        ConfusionMatrix.empty(3, ignore_index=255) + ConfusionMatrix.empty(3),
        ConfusionMatrix.empty(3),
    )


def test_reduce_on_unbatched_state_raises():
    with pytest.raises(ValueError, match="`reduce` folds a leading batch axis"):
        ConfusionMatrix.empty(3).reduce()
    with pytest.raises(ValueError, match="`reduce` folds a leading batch axis"):
        BinaryStats.empty(3).reduce()


def test_clu_protocol_methods():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    labels = jnp.array([0, 0])
    a = ConfusionMatrix.from_model_output(logits=logits, labels=labels, mask=jnp.array([1, 0]))
    np.testing.assert_array_equal(a.to_numpy(), [[1, 0], [0, 0]])
    np.testing.assert_allclose(a.compute(), 1.0)
    b = BinaryStats.from_model_output(logits=logits, labels=jnp.ones((2, 2), jnp.int32))
    np.testing.assert_array_equal(b.to_numpy()[0], [1, 1])
